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

use crate::gradient::input_gradient;
use crate::{Explainer, Explanation, Map, Request, Result};
use deepsight_runtime::{LayeredClassifier, RectifierRule};

/// Simonyan's saliency map (`saliency`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Saliency;

impl Explainer for Saliency {
    fn name(&self) -> &'static str {
        "saliency"
    }

    fn explain(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<Explanation> {
        let (grad, passes) = input_gradient(model, request, request.images.clone(), RectifierRule::Plain)?;
        Ok(Explanation {
            maps: Map::from_batch(grad)
                .iter()
                .map(Map::max_abs_over_channels)
                .collect(),
            raw: None,
            passes,
        })
    }
}
