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

use crate::Map;
use crate::gradient::OnePass;
use deepsight_runtime::{RectifierRule, Tensor};

/// Deconvnet (`deconvnet`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Deconvnet;

impl OnePass for Deconvnet {
    const NAME: &'static str = "deconvnet";
    const RULE: RectifierRule = RectifierRule::Deconv;
    const SIGNED: bool = true;

    fn maps(&self, gradient: Tensor<4>, _images: &Tensor<4>) -> Vec<Map> {
        Map::from_batch(gradient)
    }
}
