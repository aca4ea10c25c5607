//! Every method by its CLI name, with its documentation (the module doc of its file, so the code
//! and `deepsight methods --explain NAME` cannot drift apart).

use crate::Explainer;
use crate::Progress;
use crate::cam::{
    Cam, ClassActivationMap, EigenCam, GradCam, GradCamCounterfactual, GradCamPlusPlus, LayerCam, XGradCam,
};
use crate::gradient::{
    Deconvnet, GradientSign, GuidedBackprop, InputGradient, InputXGradient, IntegratedGradients,
    PositiveSaliency, Saliency,
};
use crate::guided_gradcam::GuidedGradCam;
use crate::learned::{ExplainerWeights, Lcam, LcamFm, LcamImg, LcamVariant, LcamWeights, NnExplainer};
use crate::localisation::GraphCutLocalisation;
use crate::perturbation::ablation_cam::AblationCam;
use crate::perturbation::occlusion::Occlusion;
use crate::perturbation::rise::Rise;
use crate::perturbation::score_cam::ScoreCam;
use crate::smoothgrad::SmoothGrad;
use std::sync::Arc;

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

const SOURCES: [(&str, &str); 22] = [
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
    (
        "gradcam-counterfactual",
        include_str!("cam/gradcam_counterfactual.rs"),
    ),
    ("gradcam++", include_str!("cam/gradcam_pp.rs")),
    ("xgradcam", include_str!("cam/xgradcam.rs")),
    ("layercam", include_str!("cam/layercam.rs")),
    ("eigencam", include_str!("cam/eigencam.rs")),
    ("guided-gradcam", include_str!("guided_gradcam.rs")),
    ("occlusion", include_str!("perturbation/occlusion.rs")),
    ("rise", include_str!("perturbation/rise.rs")),
    ("scorecam", include_str!("perturbation/score_cam.rs")),
    ("ablationcam", include_str!("perturbation/ablation_cam.rs")),
    ("graphcut-loc", include_str!("localisation/graphcut.rs")),
    ("l-cam-img", include_str!("learned/lcam_img.rs")),
    ("l-cam-fm", include_str!("learned/lcam_fm.rs")),
    ("explainer", include_str!("learned/explainer.rs")),
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

/// The method SmoothGrad averages (Smilkov et al. apply it to any gradient-based map).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SmoothGradBase {
    /// Simonyan et al.'s saliency (max over channels of |gradient|): the paper's main figures.
    #[default]
    Saliency,
    /// Gradient x input.
    InputXGradient,
    /// Guided backpropagation.
    GuidedBackprop,
    /// Integrated Gradients with the `ig_*` options.
    IntegratedGradients,
}

/// The options of the methods that have any (typed; the CLI maps its flags onto them).
#[derive(Debug, Clone, PartialEq)]
pub struct MethodOptions {
    /// Integrated Gradients: path points.
    pub ig_steps: usize,
    /// Integrated Gradients: the baseline's constant value in the model's input space.
    pub ig_baseline: f32,
    /// SmoothGrad: the gradient method averaged over the noisy samples.
    pub smoothgrad_base: SmoothGradBase,
    /// SmoothGrad: noisy samples.
    pub smoothgrad_samples: usize,
    /// SmoothGrad: noise standard deviation as a fraction of each image's value range.
    pub smoothgrad_sigma: f32,
    /// Saliency and SmoothGrad: which part of the gradient the map keeps (absolute value, or
    /// positive part as the seed's code snippet).
    pub gradient_sign: GradientSign,
    /// Seed of every random choice (SmoothGrad's noise).
    pub seed: u64,
    /// Images per batch of the methods that run many passes.
    pub batch_size: usize,
    /// Occlusion's options (its `batch_size` and `progress` are replaced by the ones here).
    pub occlusion: Occlusion,
    /// GraphCut localisation's options and the model's colour normalisation.
    pub graphcut: GraphCutLocalisation,
    /// RISE's options (its `seed`, `batch_size` and `progress` are replaced by the ones here).
    pub rise: Rise,
    /// Reports the progress of long methods.
    pub progress: Progress,
    /// L-CAM-Img's trained weights (default: the ones shipped for the embedded Lite0).
    pub lcam_img: Option<Arc<LcamWeights>>,
    /// L-CAM-Fm's trained weights (default: the ones shipped for the embedded Lite0).
    pub lcam_fm: Option<Arc<LcamWeights>>,
    /// The explainer network's trained weights (default: the ones shipped for the embedded Lite0).
    pub explainer: Option<Arc<ExplainerWeights>>,
}

impl Default for MethodOptions {
    fn default() -> Self {
        MethodOptions {
            ig_steps: 50,
            ig_baseline: 0.0,
            smoothgrad_base: SmoothGradBase::Saliency,
            smoothgrad_samples: 25,
            smoothgrad_sigma: 0.15,
            gradient_sign: GradientSign::Absolute,
            seed: 0,
            batch_size: 16,
            occlusion: Occlusion::default(),
            rise: Rise::default(),
            graphcut: GraphCutLocalisation::default(),
            progress: Progress::default(),
            lcam_img: crate::learned::weights::shipped(LcamVariant::Img),
            lcam_fm: crate::learned::weights::shipped(LcamVariant::Fm),
            explainer: crate::learned::explainer_weights::shipped(),
        }
    }
}

/// The method called `name` with default options, or `None`.
pub fn by_name(name: &str) -> Option<Box<dyn Explainer>> {
    by_name_with(name, &MethodOptions::default())
}

/// The method called `name` with `options`, or `None`.
pub fn by_name_with(name: &str, o: &MethodOptions) -> Option<Box<dyn Explainer>> {
    Some(match name {
        "saliency" => match o.gradient_sign {
            GradientSign::Absolute => Box::new(Saliency),
            GradientSign::Positive => Box::new(PositiveSaliency),
        },
        "input-x-gradient" => Box::new(InputXGradient),
        "guided-backprop" => Box::new(GuidedBackprop),
        "deconvnet" => Box::new(Deconvnet),
        "integrated-gradients" => Box::new(integrated_gradients(o)),
        "smoothgrad" => smoothgrad(o),
        "cam" => Box::new(Cam(ClassActivationMap)),
        "gradcam" => Box::new(Cam(GradCam)),
        "gradcam-counterfactual" => Box::new(Cam(GradCamCounterfactual)),
        "gradcam++" => Box::new(Cam(GradCamPlusPlus)),
        "xgradcam" => Box::new(Cam(XGradCam)),
        "layercam" => Box::new(Cam(LayerCam)),
        "eigencam" => Box::new(Cam(EigenCam::default())),
        "guided-gradcam" => Box::new(GuidedGradCam),
        "occlusion" => Box::new(Occlusion {
            batch_size: o.batch_size,
            progress: o.progress.clone(),
            ..o.occlusion.clone()
        }),
        "rise" => Box::new(Rise {
            seed: o.seed,
            batch_size: o.batch_size,
            progress: o.progress.clone(),
            ..o.rise.clone()
        }),
        "scorecam" => Box::new(ScoreCam {
            batch_size: o.batch_size,
            progress: o.progress.clone(),
        }),
        "graphcut-loc" => Box::new(o.graphcut),
        "ablationcam" => Box::new(AblationCam {
            batch_size: o.batch_size,
            progress: o.progress.clone(),
        }),
        "l-cam-img" => Box::new(Lcam {
            kind: LcamImg,
            weights: o.lcam_img.clone(),
        }),
        "l-cam-fm" => Box::new(Lcam {
            kind: LcamFm,
            weights: o.lcam_fm.clone(),
        }),
        "explainer" => Box::new(NnExplainer::new(o.explainer.clone())),
        _ => return None,
    })
}

fn integrated_gradients(o: &MethodOptions) -> IntegratedGradients {
    IntegratedGradients {
        steps: o.ig_steps,
        baseline: o.ig_baseline,
        batch_size: o.batch_size,
        ..Default::default()
    }
}

fn smoothgrad(o: &MethodOptions) -> Box<dyn Explainer> {
    fn wrap<E: Explainer + 'static>(base: E, o: &MethodOptions) -> Box<dyn Explainer> {
        Box::new(SmoothGrad {
            base,
            samples: o.smoothgrad_samples,
            sigma: o.smoothgrad_sigma,
            seed: o.seed,
            batch_size: o.batch_size,
            reduce: match o.gradient_sign {
                GradientSign::Absolute => None,
                GradientSign::Positive => Some(GradientSign::Positive),
            },
        })
    }
    match o.smoothgrad_base {
        // Positive: the snippet's clamp of the *mean* gradient, so the raw gradient is averaged.
        SmoothGradBase::Saliency if o.gradient_sign == GradientSign::Positive => wrap(InputGradient, o),
        SmoothGradBase::Saliency => wrap(Saliency, o),
        SmoothGradBase::InputXGradient => wrap(InputXGradient, o),
        SmoothGradBase::GuidedBackprop => wrap(GuidedBackprop, o),
        SmoothGradBase::IntegratedGradients => wrap(integrated_gradients(o), o),
    }
}
