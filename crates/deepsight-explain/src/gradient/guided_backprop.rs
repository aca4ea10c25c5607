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

use crate::Map;
use crate::gradient::OnePass;
use deepsight_runtime::{RectifierRule, Tensor};

/// Guided backpropagation (`guided-backprop`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GuidedBackprop;

impl OnePass for GuidedBackprop {
    const NAME: &'static str = "guided-backprop";
    const RULE: RectifierRule = RectifierRule::Guided;
    const SIGNED: bool = true;

    fn maps(&self, gradient: Tensor<4>, _images: &Tensor<4>) -> Vec<Map> {
        Map::from_batch(gradient)
    }
}
