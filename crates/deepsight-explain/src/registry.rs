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

/// One registered method: its CLI name, the source of its file (whose module doc is its
/// documentation), the names of the options it reads (fields of [`MethodOptions`], as a front
/// end's settings call them), and how it is built from them.
pub struct Registered {
    pub name: &'static str,
    source: &'static str,
    pub options: &'static [&'static str],
    build: fn(&MethodOptions) -> Box<dyn Explainer>,
}

/// Every method, in the order `deepsight methods` lists them: the registry is this list.
pub const REGISTRY: [Registered; 22] = [
    Registered {
        name: "saliency",
        source: include_str!("gradient/saliency.rs"),
        options: &["gradient_sign"],
        build: |o| match o.gradient_sign {
            GradientSign::Absolute => Box::new(Saliency),
            GradientSign::Positive => Box::new(PositiveSaliency),
        },
    },
    Registered {
        name: "input-x-gradient",
        source: include_str!("gradient/input_x_gradient.rs"),
        options: &[],
        build: |_| Box::new(InputXGradient),
    },
    Registered {
        name: "guided-backprop",
        source: include_str!("gradient/guided_backprop.rs"),
        options: &[],
        build: |_| Box::new(GuidedBackprop),
    },
    Registered {
        name: "deconvnet",
        source: include_str!("gradient/deconvnet.rs"),
        options: &[],
        build: |_| Box::new(Deconvnet),
    },
    Registered {
        name: "integrated-gradients",
        source: include_str!("gradient/integrated_gradients.rs"),
        options: &["ig_steps", "ig_baseline", "batch_size"],
        build: |o| Box::new(integrated_gradients(o)),
    },
    Registered {
        name: "smoothgrad",
        source: include_str!("smoothgrad.rs"),
        options: &[
            "smoothgrad_base",
            "smoothgrad_samples",
            "smoothgrad_sigma",
            "gradient_sign",
            "seed",
            "batch_size",
            "ig_steps",
            "ig_baseline",
        ],
        build: smoothgrad,
    },
    Registered {
        name: "cam",
        source: include_str!("cam/cam.rs"),
        options: &[],
        build: |_| Box::new(Cam(ClassActivationMap)),
    },
    Registered {
        name: "gradcam",
        source: include_str!("cam/gradcam.rs"),
        options: &[],
        build: |_| Box::new(Cam(GradCam)),
    },
    Registered {
        name: "gradcam-counterfactual",
        source: include_str!("cam/gradcam_counterfactual.rs"),
        options: &[],
        build: |_| Box::new(Cam(GradCamCounterfactual)),
    },
    Registered {
        name: "gradcam++",
        source: include_str!("cam/gradcam_pp.rs"),
        options: &[],
        build: |_| Box::new(Cam(GradCamPlusPlus)),
    },
    Registered {
        name: "xgradcam",
        source: include_str!("cam/xgradcam.rs"),
        options: &[],
        build: |_| Box::new(Cam(XGradCam)),
    },
    Registered {
        name: "layercam",
        source: include_str!("cam/layercam.rs"),
        options: &[],
        build: |_| Box::new(Cam(LayerCam)),
    },
    Registered {
        name: "eigencam",
        source: include_str!("cam/eigencam.rs"),
        options: &[],
        build: |_| Box::new(Cam(EigenCam::default())),
    },
    Registered {
        name: "guided-gradcam",
        source: include_str!("guided_gradcam.rs"),
        options: &[],
        build: |_| Box::new(GuidedGradCam),
    },
    Registered {
        name: "occlusion",
        source: include_str!("perturbation/occlusion.rs"),
        options: &[
            "occlusion_window",
            "occlusion_stride",
            "occlusion_fill",
            "occlusion_blur_sigma",
            "occlusion_profile",
            "full_inference",
            "batch_size",
        ],
        build: |o| {
            Box::new(Occlusion {
                batch_size: o.batch_size,
                progress: o.progress.clone(),
                ..o.occlusion.clone()
            })
        },
    },
    Registered {
        name: "rise",
        source: include_str!("perturbation/rise.rs"),
        options: &["rise_masks", "rise_cell", "rise_p", "seed", "batch_size"],
        build: |o| {
            Box::new(Rise {
                seed: o.seed,
                batch_size: o.batch_size,
                progress: o.progress.clone(),
                ..o.rise.clone()
            })
        },
    },
    Registered {
        name: "scorecam",
        source: include_str!("perturbation/score_cam.rs"),
        options: &["batch_size"],
        build: |o| {
            Box::new(ScoreCam {
                batch_size: o.batch_size,
                progress: o.progress.clone(),
            })
        },
    },
    Registered {
        name: "ablationcam",
        source: include_str!("perturbation/ablation_cam.rs"),
        options: &["batch_size"],
        build: |o| {
            Box::new(AblationCam {
                batch_size: o.batch_size,
                progress: o.progress.clone(),
            })
        },
    },
    Registered {
        name: "graphcut-loc",
        source: include_str!("localisation/graphcut.rs"),
        options: &[],
        build: |o| Box::new(o.graphcut),
    },
    Registered {
        name: "l-cam-img",
        source: include_str!("learned/lcam_img.rs"),
        options: &[],
        build: |o| {
            Box::new(Lcam {
                kind: LcamImg,
                weights: o.lcam_img.clone(),
            })
        },
    },
    Registered {
        name: "l-cam-fm",
        source: include_str!("learned/lcam_fm.rs"),
        options: &[],
        build: |o| {
            Box::new(Lcam {
                kind: LcamFm,
                weights: o.lcam_fm.clone(),
            })
        },
    },
    Registered {
        name: "explainer",
        source: include_str!("learned/explainer.rs"),
        options: &[],
        build: |o| Box::new(NnExplainer::new(o.explainer.clone())),
    },
];

/// Every method, in the order `deepsight methods` lists them.
pub fn methods() -> Vec<MethodInfo> {
    REGISTRY
        .iter()
        .map(|m| MethodInfo {
            name: m.name,
            doc: module_doc(m.source),
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
    REGISTRY.iter().find(|m| m.name == name).map(|m| (m.build)(o))
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
