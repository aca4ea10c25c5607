//! Image-specific class saliency.
//!
//! # Computes
//! How much each pixel's change would change the class score: the magnitude of the score's
//! gradient at the image, one value per pixel; or, with `--gradient-sign positive`, only where
//! brightening the pixel would raise the score.
//!
//! # Equation
//! `w = dS_c/dI |_{I_0}`, `M_ij = max_ch |w_{ch,i,j}|` (the default, `absolute`), or
//! `M_ij = max_ch max(w_{ch,i,j}, 0)` (`positive`).
//!
//! # Paper
//! Simonyan, Vedaldi & Zisserman, *Deep Inside Convolutional Networks: Visualising Image
//! Classification Models and Saliency Maps*, ICLR Workshop 2014, section 3.1.
//!
//! # Deviations
//! None for the default. Captum's `Saliency(abs=True)` returns the per-channel `|w|`; its maximum
//! over channels is this map. The `positive` sign is not the paper's: it is what the code snippet
//! of the Zeiler & Fergus seed text computes (`input.grad.clamp(min=0)`, then the maximum over
//! channels), which drops the pixels whose darkening would raise the score. One forward and one
//! backward pass per image.

use crate::Map;
use crate::gradient::OnePass;
use deepsight_runtime::{RectifierRule, Tensor};

/// Which part of the input gradient a saliency map keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GradientSign {
    /// `|w|`: Simonyan et al.'s map.
    #[default]
    Absolute,
    /// `max(w, 0)`: the seed snippet's `clamp(min=0)`.
    Positive,
}

impl GradientSign {
    /// One plane from a signed per-channel map: the maximum over channels of `|x|` or of
    /// `max(x, 0)`.
    pub fn over_channels(self, m: &Map) -> Map {
        match self {
            GradientSign::Absolute => m.max_abs_over_channels(),
            GradientSign::Positive => m.max_positive_over_channels(),
        }
    }

    /// [`GradientSign::over_channels`] of each image's gradient in a batch.
    pub fn over_batch(self, gradient: Tensor<4>) -> Vec<Map> {
        Map::from_batch(gradient)
            .iter()
            .map(|m| self.over_channels(m))
            .collect()
    }
}

/// Simonyan's saliency map (`saliency`), absolute gradient.
#[derive(Debug, Clone, Copy, Default)]
pub struct Saliency;

impl OnePass for Saliency {
    const NAME: &'static str = "saliency";
    const RULE: RectifierRule = RectifierRule::Plain;
    const SIGNED: bool = false;

    fn maps(&self, gradient: Tensor<4>, _images: &Tensor<4>) -> Vec<Map> {
        GradientSign::Absolute.over_batch(gradient)
    }
}

/// The saliency map of positive gradients only (`saliency --gradient-sign positive`).
#[derive(Debug, Clone, Copy, Default)]
pub struct PositiveSaliency;

impl OnePass for PositiveSaliency {
    const NAME: &'static str = "saliency";
    const RULE: RectifierRule = RectifierRule::Plain;
    const SIGNED: bool = false;

    fn maps(&self, gradient: Tensor<4>, _images: &Tensor<4>) -> Vec<Map> {
        GradientSign::Positive.over_batch(gradient)
    }
}

/// The raw input gradient `dS_c/dI`, signed, one channel per input channel: what SmoothGrad
/// averages before reducing to a saliency map by a [`GradientSign`].
#[derive(Debug, Clone, Copy, Default)]
pub struct InputGradient;

impl OnePass for InputGradient {
    const NAME: &'static str = "gradient";
    const RULE: RectifierRule = RectifierRule::Plain;
    const SIGNED: bool = true;

    fn maps(&self, gradient: Tensor<4>, _images: &Tensor<4>) -> Vec<Map> {
        Map::from_batch(gradient)
    }
}
