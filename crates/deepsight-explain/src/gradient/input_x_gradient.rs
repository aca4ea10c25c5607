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

use crate::gradient::input_gradient;
use crate::{Explainer, Explanation, Map, Request, Result};
use deepsight_runtime::{LayeredClassifier, RectifierRule};

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

    fn explain(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<Explanation> {
        let (grad, passes) = input_gradient(model, request, request.images.clone(), RectifierRule::Plain)?;
        Ok(Explanation {
            maps: Map::from_batch(grad * request.images.clone()),
            raw: None,
            passes,
        })
    }
}
