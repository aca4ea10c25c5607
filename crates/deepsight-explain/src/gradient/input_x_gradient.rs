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

use crate::Map;
use crate::gradient::OnePass;
use deepsight_runtime::{RectifierRule, Tensor};

/// Gradient x input (`input-x-gradient`).
#[derive(Debug, Clone, Copy, Default)]
pub struct InputXGradient;

impl OnePass for InputXGradient {
    const NAME: &'static str = "input-x-gradient";
    const RULE: RectifierRule = RectifierRule::Plain;
    const SIGNED: bool = true;

    fn maps(&self, gradient: Tensor<4>, images: &Tensor<4>) -> Vec<Map> {
        Map::from_batch(gradient * images.clone())
    }
}
