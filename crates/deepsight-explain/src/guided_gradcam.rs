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
use crate::{Explainer, Explanation, Need, Passes, Request, Result, SharedPasses};
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

    fn needs(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<Vec<Need>> {
        let mut needs = GuidedBackprop.needs(model, request)?;
        needs.extend(Cam(GradCam).needs(model, request)?);
        Ok(needs)
    }

    fn explain_shared(
        &self,
        model: &dyn LayeredClassifier,
        request: &Request,
        shared: &SharedPasses,
    ) -> Result<Explanation> {
        let guided = GuidedBackprop.explain_shared(model, request, shared)?;
        let cam = Cam(GradCam).explain_shared(model, request, shared)?;
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
            extra: Vec::new(),
        })
    }
}
