//! Deconvnet projection of a class score.
//!
//! # Computes
//! The class score projected back to pixel space through the network as Zeiler & Fergus's
//! deconvnet does: unpooling by the max-pool switches of the forward pass, rectifying the signal
//! going back, filtering with the transposed convolution weights.
//!
//! # Equation
//! Backprop where each rectifier's backward is `R_in = max(R_out, 0)` (independent of the forward
//! input); max-pool backward routes to the recorded argmax (the switch), convolution backward is
//! the transposed convolution.
//!
//! # Paper
//! Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks*, ECCV 2014, section 2.1.
//!
//! # Deviations
//! This method projects the class score (Captum's `Deconvolution`); projecting one feature map's
//! activation is the runtime's `Objective::Activation` with the same rule. Like guided
//! backpropagation the rule applies to every rectifier (clamps included).

use crate::shared::passes_alone;
use crate::{Explainer, Explanation, Map, Need, Request, Result, SharedPasses};
use deepsight_runtime::{LayeredClassifier, RectifierRule};

const NEED: Need = Need {
    rule: Some(RectifierRule::Deconv),
    input: true,
    layers: Vec::new(),
};

/// Deconvnet (`deconvnet`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Deconvnet;

impl Explainer for Deconvnet {
    fn name(&self) -> &'static str {
        "deconvnet"
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
        let grad = shared.input_gradient(RectifierRule::Deconv);
        let passes = passes_alone(&[NEED], request.images.dims()[0]);
        Ok(Explanation {
            maps: Map::from_batch(grad),
            raw: None,
            passes,
        })
    }
}
