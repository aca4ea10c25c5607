//! Guided Grad-CAM.
//!
//! # Computes
//! Fine-grained, class-discriminative detail: guided backpropagation's pixel-space map masked by
//! the (upsampled) Grad-CAM of the class.
//!
//! # Equation
//! `M = GB_c ⊙ up(L^c_Grad-CAM)`, elementwise per colour channel, `up` bilinear with half-pixel
//! centres (`align_corners=False`).
//!
//! # Paper
//! Selvaraju et al., *Grad-CAM*, ICCV 2017, section 3.
//!
//! # Deviations
//! None beyond those of its parts (guided backpropagation's rule applies to every rectifier).
//! Two forward passes and two backward passes (one to the input, guided; one to the layer).

use crate::cam::{Cam, GradCam};
use crate::gradient::GuidedBackprop;
use crate::{Explainer, Explanation, Passes, Request, Result};
use deepsight_runtime::LayeredClassifier;

/// Guided Grad-CAM (`guided-gradcam`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GuidedGradCam;

impl Explainer for GuidedGradCam {
    fn name(&self) -> &'static str {
        "guided-gradcam"
    }

    fn signed(&self) -> bool {
        true
    }

    fn explain(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<Explanation> {
        let guided = GuidedBackprop.explain(model, request)?;
        let cam = Cam(GradCam).explain(model, request)?;
        let maps = guided
            .maps
            .iter()
            .zip(&cam.maps)
            .map(|(g, c)| g.times_plane(c))
            .collect();
        Ok(Explanation {
            maps,
            raw: cam.raw,
            passes: Passes {
                forward: guided.passes.forward + cam.passes.forward,
                backward: guided.passes.backward + cam.passes.backward,
            },
        })
    }
}
