//! Every method by its CLI name, with its documentation (the module doc of its file, so the code
//! and `deepsight methods --explain NAME` cannot drift apart).

use crate::Explainer;
use crate::cam::{Cam, ClassActivationMap, EigenCam, GradCam, GradCamPlusPlus, LayerCam, XGradCam};
use crate::gradient::{Deconvnet, GuidedBackprop, InputXGradient, IntegratedGradients, Saliency};
use crate::guided_gradcam::GuidedGradCam;
use crate::smoothgrad::SmoothGrad;

/// A method's name, one-line summary and full documentation.
pub struct MethodInfo {
    pub name: &'static str,
    pub doc: String,
}

impl MethodInfo {
    /// The first line of the doc: what the method is.
    pub fn title(&self) -> &str {
        self.doc.lines().next().unwrap_or_default()
    }
}

fn module_doc(source: &str) -> String {
    source
        .lines()
        .take_while(|l| l.starts_with("//!"))
        .map(|l| {
            l.trim_start_matches("//!")
                .strip_prefix(' ')
                .unwrap_or(l.trim_start_matches("//!"))
        })
        .collect::<Vec<_>>()
        .join("\n")
}

const SOURCES: [(&str, &str); 13] = [
    ("saliency", include_str!("gradient/saliency.rs")),
    ("input-x-gradient", include_str!("gradient/input_x_gradient.rs")),
    ("guided-backprop", include_str!("gradient/guided_backprop.rs")),
    ("deconvnet", include_str!("gradient/deconvnet.rs")),
    (
        "integrated-gradients",
        include_str!("gradient/integrated_gradients.rs"),
    ),
    ("smoothgrad", include_str!("smoothgrad.rs")),
    ("cam", include_str!("cam/cam.rs")),
    ("gradcam", include_str!("cam/gradcam.rs")),
    ("gradcam++", include_str!("cam/gradcam_pp.rs")),
    ("xgradcam", include_str!("cam/xgradcam.rs")),
    ("layercam", include_str!("cam/layercam.rs")),
    ("eigencam", include_str!("cam/eigencam.rs")),
    ("guided-gradcam", include_str!("guided_gradcam.rs")),
];

/// Every method, in the order `deepsight methods` lists them.
pub fn methods() -> Vec<MethodInfo> {
    SOURCES
        .iter()
        .map(|(name, src)| MethodInfo {
            name,
            doc: module_doc(src),
        })
        .collect()
}

/// The method called `name` with default options, or `None`.
pub fn by_name(name: &str) -> Option<Box<dyn Explainer>> {
    Some(match name {
        "saliency" => Box::new(Saliency),
        "input-x-gradient" => Box::new(InputXGradient),
        "guided-backprop" => Box::new(GuidedBackprop),
        "deconvnet" => Box::new(Deconvnet),
        "integrated-gradients" => Box::new(IntegratedGradients::default()),
        "smoothgrad" => Box::new(SmoothGrad {
            base: Saliency,
            samples: 25,
            sigma: 0.15,
            seed: 0,
            batch_size: 16,
        }),
        "cam" => Box::new(Cam(ClassActivationMap)),
        "gradcam" => Box::new(Cam(GradCam)),
        "gradcam++" => Box::new(Cam(GradCamPlusPlus)),
        "xgradcam" => Box::new(Cam(XGradCam)),
        "layercam" => Box::new(Cam(LayerCam)),
        "eigencam" => Box::new(Cam(EigenCam::default())),
        "guided-gradcam" => Box::new(GuidedGradCam),
        _ => return None,
    })
}
