//! Image-specific class saliency.
//!
//! # Computes
//! How much each pixel's change would change the class score: the magnitude of the score's
//! gradient at the image, one value per pixel.
//!
//! # Equation
//! `w = dS_c/dI |_{I_0}`, `M_ij = max_ch |w_{ch,i,j}|`.
//!
//! # Paper
//! Simonyan, Vedaldi & Zisserman, *Deep Inside Convolutional Networks: Visualising Image
//! Classification Models and Saliency Maps*, ICLR Workshop 2014, section 3.1.
//!
//! # Deviations
//! None. Captum's `Saliency(abs=True)` returns the per-channel `|w|`; its maximum over channels
//! is this map. One forward and one backward pass per image.

use crate::Map;
use crate::gradient::OnePass;
use deepsight_runtime::{RectifierRule, Tensor};

/// Simonyan's saliency map (`saliency`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Saliency;

impl OnePass for Saliency {
    const NAME: &'static str = "saliency";
    const RULE: RectifierRule = RectifierRule::Plain;
    const SIGNED: bool = false;

    fn maps(&self, gradient: Tensor<4>, _images: &Tensor<4>) -> Vec<Map> {
        Map::from_batch(gradient)
            .iter()
            .map(Map::max_abs_over_channels)
            .collect()
    }
}
