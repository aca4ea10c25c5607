//! What a front end asks of the pipeline, typed: methods, classes, layer, score, options, and how
//! to draw the maps; plus the hooks through which it follows and cancels the work.

use crate::settings::Settings;
use deepsight_explain::Progress;
use deepsight_explain::gradient::DeconvnetFeature;
use deepsight_explain::learned::{ExplainerWeights, LcamWeights};
use deepsight_explain::registry::MethodOptions;
use deepsight_render::Colormap;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

/// Which classes each image is explained for.
#[derive(Debug, Clone, PartialEq)]
pub enum Classes {
    /// Each image's `k` most probable classes.
    Top(usize),
    /// These classes, for every image.
    Given(Vec<usize>),
}

/// How maps are drawn.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Drawing {
    /// Colour map of unsigned maps (signed ones use a diverging map).
    pub colormap: Colormap,
    /// Opacity of the heat layer over the image, 0..1.
    pub alpha: f32,
}

impl Default for Drawing {
    fn default() -> Self {
        Drawing {
            colormap: Colormap::Jet,
            alpha: 0.5,
        }
    }
}

/// Trained weights of the learned methods (default: the ones shipped for the embedded Lite0).
#[derive(Debug, Clone)]
pub struct LearnedWeights {
    pub lcam_img: Option<Arc<LcamWeights>>,
    pub lcam_fm: Option<Arc<LcamWeights>>,
    pub explainer: Option<Arc<ExplainerWeights>>,
}

impl Default for LearnedWeights {
    fn default() -> Self {
        let o = MethodOptions::default();
        LearnedWeights {
            lcam_img: o.lcam_img,
            lcam_fm: o.lcam_fm,
            explainer: o.explainer,
        }
    }
}

/// "Explain these images with these methods for these classes".
#[derive(Debug, Clone)]
pub struct ExplainRequest {
    /// Registered method names (`deepsight methods`), or the one name `all`.
    pub methods: Vec<String>,
    pub classes: Classes,
    /// The layer of CAM methods (`None`: the model's default CAM layer).
    pub layer: Option<String>,
    /// Explain the softmax probability instead of the logit.
    pub probability: bool,
    pub settings: Settings,
    pub drawing: Drawing,
    /// `deconvnet` projects this feature map's strongest activation instead of the class score;
    /// occlusion tracks it.
    pub feature: Option<DeconvnetFeature>,
    /// Occlusion's feature map: the strongest channel of this layer (default: `layer`, else the
    /// CAM layer).
    pub feature_layer: Option<String>,
    pub learned: LearnedWeights,
}

impl Default for ExplainRequest {
    fn default() -> Self {
        ExplainRequest {
            methods: vec!["gradcam".into()],
            classes: Classes::Top(1),
            layer: None,
            probability: false,
            settings: Settings::default(),
            drawing: Drawing::default(),
            feature: None,
            feature_layer: None,
            learned: LearnedWeights::default(),
        }
    }
}

type ProgressOf = Arc<dyn Fn(&'static str) -> Progress + Send + Sync>;
type Count = Arc<dyn Fn(usize, usize) + Send + Sync>;

/// How a front end follows and stops the work. Every hook is optional.
#[derive(Clone, Default)]
pub struct Hooks {
    /// The progress hook of a long method, by method name (a CLI bar, a web progress field).
    pub progress_of: Option<ProgressOf>,
    /// Called with `(done, total)` explanations (one per image, method and class).
    pub explained: Option<Count>,
    /// Set to stop: long methods stop at their next report, the others before the next method.
    pub cancel: Option<Arc<AtomicBool>>,
}

impl Hooks {
    pub(crate) fn progress(&self, method: &'static str) -> Progress {
        let p = self.progress_of.as_ref().map(|f| f(method)).unwrap_or_default();
        match &self.cancel {
            Some(c) => p.cancelled_by(c.clone()),
            None => p,
        }
    }

    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancel
            .as_ref()
            .is_some_and(|c| c.load(std::sync::atomic::Ordering::Relaxed))
    }
}
