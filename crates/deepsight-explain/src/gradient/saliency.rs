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

use crate::shared::passes_alone;
use crate::{Explainer, Explanation, Map, Need, Request, Result, SharedPasses};
use deepsight_runtime::{LayeredClassifier, RectifierRule};

const NEED: Need = Need {
    rule: Some(RectifierRule::Plain),
    input: true,
    layers: Vec::new(),
};

/// Simonyan's saliency map (`saliency`).
#[derive(Debug, Clone, Copy, Default)]
pub struct Saliency;

impl Explainer for Saliency {
    fn name(&self) -> &'static str {
        "saliency"
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
            maps: Map::from_batch(grad)
                .iter()
                .map(Map::max_abs_over_channels)
                .collect(),
            raw: None,
            passes,
        })
    }
}
