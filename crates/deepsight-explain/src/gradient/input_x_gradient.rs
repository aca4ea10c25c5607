//! Gradient times input.
//!
//! # Computes
//! Each input value's first-order contribution to the class score: the gradient scaled by the
//! input, per colour channel (signed).
//!
//! # Equation
//! `M_{ch,i,j} = I_{ch,i,j} * dS_c/dI_{ch,i,j}`.
//!
//! # Paper
//! Shrikumar et al., *Not Just a Black Box*, 2016; Captum's `InputXGradient`.
//!
//! # Deviations
//! None; the map is in the model's input space (after the preset's normalisation).

use crate::shared::passes_alone;
use crate::{Explainer, Explanation, Map, Need, Request, Result, SharedPasses};
use deepsight_runtime::{LayeredClassifier, RectifierRule};

const NEED: Need = Need {
    rule: Some(RectifierRule::Plain),
    input: true,
    layers: Vec::new(),
};

/// Gradient x input (`input-x-gradient`).
#[derive(Debug, Clone, Copy, Default)]
pub struct InputXGradient;

impl Explainer for InputXGradient {
    fn name(&self) -> &'static str {
        "input-x-gradient"
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
        let grad = shared.input_gradient(RectifierRule::Plain);
        let passes = passes_alone(&[NEED], request.images.dims()[0]);
        Ok(Explanation {
            maps: Map::from_batch(grad * request.images.clone()),
            raw: None,
            passes,
        })
    }
}
