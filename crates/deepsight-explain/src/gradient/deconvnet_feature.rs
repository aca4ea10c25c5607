//! Deconvnet projection of one feature map's strongest activation.
//!
//! # Computes
//! What in the image drives one feature map of one layer, as Zeiler & Fergus visualise it: the
//! map's strongest activation, all others of the layer set to zero, projected down to pixels
//! through the deconvnet. Class-agnostic: the request's classes are ignored.
//!
//! # Equation
//! `a* = max_ij A^k_ij` at `(i*, j*)`; the map is `d a* / d I` under the deconvnet rule (every
//! rectifier passes `max(R, 0)` back; max-pools route through their forward switches).
//!
//! # Paper
//! Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks*, ECCV 2014, sections
//! 2.1 and 4 (Fig. 2: the top activation of a feature map projected to pixel space).
//!
//! # Deviations
//! One image at a time (each image's strongest position differs): a forward pass to find it, then
//! one forward+backward pass. Ties go to the first position in row-major order. Local contrast
//! normalisation layers, if any, are differentiated as they are (ZF's deconvnet skips them).

use crate::{ExplainError, Explainer, Explanation, Map, Passes, Request, Result};
use deepsight_runtime::{GradientRequest, LayeredClassifier, Objective, RectifierRule, to_vec};

/// Deconvnet projection of channel `channel` of `layer` (`deconvnet` with `--feature L:C`).
#[derive(Debug, Clone)]
pub struct DeconvnetFeature {
    pub layer: String,
    pub channel: usize,
}

impl Explainer for DeconvnetFeature {
    fn name(&self) -> &'static str {
        "deconvnet"
    }

    fn signed(&self) -> bool {
        true
    }

    fn explain(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<Explanation> {
        let n = request.images.dims()[0];
        let cap = model.capture(request.images.clone(), &[&self.layer], false)?;
        let act = &cap.activations[&self.layer];
        let [_, k, h, w] = act.dims();
        if self.channel >= k {
            return Err(ExplainError::Invalid {
                method: "deconvnet",
                reason: format!(
                    "layer '{}' has {k} channels, not channel {}",
                    self.layer, self.channel
                ),
            });
        }
        let values = to_vec(act.clone());
        let mut maps = Vec::with_capacity(n);
        for i in 0..n {
            let plane = &values[(i * k + self.channel) * h * w..(i * k + self.channel + 1) * h * w];
            let best = (0..h * w).fold(0, |b, p| if plane[p] > plane[b] { p } else { b });
            let req = GradientRequest::input(
                Objective::Activation {
                    layer: self.layer.clone(),
                    channel: self.channel,
                    position: Some([best / w, best % w]),
                },
                RectifierRule::Deconv,
            );
            let image = request.images.clone().narrow(0, i, 1);
            let g = model.gradients(image, &req)?;
            maps.extend(Map::from_batch(g.input.expect("requested the input gradient")));
        }
        Ok(Explanation {
            maps,
            raw: None,
            passes: Passes {
                forward: 2 * n,
                backward: n,
            },
            extra: Vec::new(),
        })
    }
}
