//! Guided backpropagation.
//!
//! # Computes
//! The input gradient with every rectifier passing back only positive gradient where its input
//! was positive: the image features that excite the class, sharp and signed per channel.
//!
//! # Equation
//! Backward through each rectifier: `R_in = R_out * [x > 0] * [R_out > 0]` (for a clamp
//! `[lo, hi]`: `[lo < x < hi] * [R_out > 0]`).
//!
//! # Paper
//! Springenberg et al., *Striving for Simplicity: The All Convolutional Net*, ICLR Workshop 2015.
//!
//! # Deviations
//! The rule applies to every rectifier of the graph (ReLU and clamps such as ReLU6), as the
//! paper defines it. Captum's `GuidedBackprop` overrides only `nn.ReLU` modules: on
//! EfficientNet-Lite0 (ReLU6) and on functional `F.relu` calls it leaves the plain gradient.
//! Other activations (sigmoid, hard-swish, ...) keep their true derivative.

use crate::shared::passes_alone;
use crate::{Explainer, Explanation, Map, Need, Request, Result, SharedPasses};
use deepsight_runtime::{LayeredClassifier, RectifierRule};

const NEED: Need = Need {
    rule: Some(RectifierRule::Guided),
    input: true,
    layers: Vec::new(),
};

/// Guided backpropagation (`guided-backprop`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GuidedBackprop;

impl Explainer for GuidedBackprop {
    fn name(&self) -> &'static str {
        "guided-backprop"
    }

    fn signed(&self) -> bool {
        true
    }

    fn needs(&self, _model: &dyn LayeredClassifier, _request: &Request) -> Result<Vec<Need>> {
        Ok(vec![NEED])
    }

    fn explain_shared(
        &self,
        _model: &dyn LayeredClassifier,
        request: &Request,
        shared: &SharedPasses,
    ) -> Result<Explanation> {
        let grad = shared.input_gradient(RectifierRule::Guided);
        let passes = passes_alone(&[NEED], request.images.dims()[0]);
        Ok(Explanation {
            maps: Map::from_batch(grad),
            raw: None,
            passes,
        })
    }
}
