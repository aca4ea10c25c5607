//! The two traits everything in DeepSight stands on.
//!
//! [`Classifier`] is all that perturbation methods and metrics need: images in, logits out.
//! [`LayeredClassifier`] opens the model up: named layers, captured activations, gradients of a
//! scalar objective with respect to the input and chosen layers under a chosen rectifier rule,
//! and max-pool switches. Gradient methods require it, so the split is checked at compile time.

use crate::error::{Result, RuntimeError};
use crate::incremental::Incremental;
use crate::rectifier::RectifierRule;
use crate::resume::Resume;
use burn::tensor::{Device, Int, Tensor};
use std::collections::BTreeMap;

/// Images in, logits out.
pub trait Classifier: Send + Sync {
    /// Number of classes the logits cover.
    fn num_classes(&self) -> usize;
    /// The device the model's weights live on; inputs are moved there.
    fn device(&self) -> Device;
    /// Logits `[N, classes]` for a batch `[N, C, H, W]` of preprocessed images.
    fn logits(&self, images: Tensor<4>) -> Result<Tensor<2>>;
}

/// One layer as `deepsight layers` shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerInfo {
    pub name: String,
    /// Operation kind (`Conv2d`, `ReLU6`, ...).
    pub op: &'static str,
    /// Output shape for the model's default input size; flat vectors as `[N, F]`.
    pub shape: Vec<usize>,
    /// Learned parameters.
    pub params: usize,
    /// Names of the layers it reads.
    pub inputs: Vec<String>,
}

/// The scalar whose gradient is taken. Batch items never interact, so one backward pass gives
/// every image the gradient of its own objective.
#[derive(Debug, Clone, PartialEq)]
pub enum Objective {
    /// The unnormalised class score `S_c` of each image's class (one class per image).
    Logit(Vec<usize>),
    /// The softmax probability `P_c` of each image's class.
    Probability(Vec<usize>),
    /// Activation of one channel of a layer (the same channel for every image): summed over the
    /// feature map, or taken at one `[row, col]` position.
    Activation {
        layer: String,
        channel: usize,
        position: Option<[usize; 2]>,
    },
}

/// What a gradient pass computes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GradientRequest {
    pub objective: Option<Objective>,
    /// How every rectifier passes the gradient back...
    pub rule: RectifierRule,
    /// ...except these named rectifiers. Reproduces tools that switch the rule only on some
    /// rectifiers (Captum hooks `nn.ReLU` modules and misses functional `F.relu` calls).
    pub rule_overrides: Vec<(String, RectifierRule)>,
    /// Return the gradient with respect to the input.
    pub wrt_input: bool,
    /// Layers whose activation and gradient to return.
    pub wrt_layers: Vec<String>,
    /// Further layers whose activation alone to return.
    pub capture: Vec<String>,
    /// Return every max-pool's switches.
    pub switches: bool,
}

impl GradientRequest {
    /// The gradient of `objective` with respect to the input, under `rule`.
    pub fn input(objective: Objective, rule: RectifierRule) -> Self {
        GradientRequest {
            objective: Some(objective),
            rule,
            wrt_input: true,
            ..Default::default()
        }
    }
}

/// A layer's activation and the objective's gradient there.
#[derive(Debug, Clone)]
pub struct LayerGradient {
    pub activation: Tensor<4>,
    pub gradient: Tensor<4>,
}

/// The results of one forward and one backward pass; all tensors are detached.
#[derive(Debug, Clone)]
pub struct Gradients {
    pub logits: Tensor<2>,
    pub input: Option<Tensor<4>>,
    pub layers: BTreeMap<String, LayerGradient>,
    pub activations: BTreeMap<String, Tensor<4>>,
    pub switches: BTreeMap<String, Tensor<4, Int>>,
}

/// Activations captured on a forward pass.
#[derive(Debug, Clone)]
pub struct Capture {
    pub logits: Tensor<2>,
    pub activations: BTreeMap<String, Tensor<4>>,
    /// Argmax positions of each max-pool, flat `h * W + w` indices into its input map.
    pub switches: BTreeMap<String, Tensor<4, Int>>,
}

/// A classifier whose layers can be named, read and differentiated.
pub trait LayeredClassifier: Classifier {
    /// Every layer in execution order.
    fn layers(&self) -> Vec<LayerInfo>;
    /// The layer CAM methods use by default: the last spatial feature map.
    fn default_cam_layer(&self) -> Option<String>;
    /// One forward pass returning the logits and the named layers' activations.
    fn capture(&self, images: Tensor<4>, layers: &[&str], switches: bool) -> Result<Capture>;
    /// One forward pass that stays on the autodiff tape, for training a module on a frozen
    /// classifier: `images` are on the model's device with autodiff (see [`Device::autodiff`]),
    /// usually computed by a trainable module, and the returned logits and activations are still
    /// tracked, so a loss on them back-propagates through the frozen network into that module.
    /// The classifier's own weights are constants (frozen) and BatchNorm runs in inference mode
    /// (folded into its running statistics).
    fn forward_tracked(&self, _images: Tensor<4>, _layers: &[&str]) -> Result<Capture> {
        Err(RuntimeError::Unsupported {
            what: "differentiable forward passes (this classifier is not a DeepSight graph)".into(),
        })
    }
    /// One forward and one backward pass as `request` says.
    fn gradients(&self, images: Tensor<4>, request: &GradientRequest) -> Result<Gradients>;
    /// Multiply-accumulates of the convolutions and linear layers in one forward pass of one
    /// image, where known.
    fn macs_per_image(&self) -> Option<u64> {
        None
    }
    /// Runs `images` once up to `layer` and keeps what the layers after it read, so that the class
    /// scores for replaced values of `layer` cost only the layers that depend on it.
    fn resume(&self, _images: Tensor<4>, _layer: &str) -> Result<Resume> {
        Err(RuntimeError::Unsupported {
            what: "resuming from a layer (this classifier is not a DeepSight graph)".into(),
        })
    }
    /// Prepares incremental re-inference of one image (`[1, C, H, W]`) under patch edits, with
    /// the per-channel spatial sums of the `taps` layers (see [`Incremental`]).
    fn incremental(&self, _image: Tensor<4>, _taps: &[&str]) -> Result<Incremental> {
        Err(RuntimeError::Unsupported {
            what: "incremental inference (this classifier is not a DeepSight graph)".into(),
        })
    }
}
