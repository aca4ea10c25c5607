//! DeepSight's explanation methods, behind one extension point: [`Explainer`].
//!
//! A method is one file whose module doc has the sections *Computes / Equation / Paper /
//! Deviations* (what `deepsight methods --explain NAME` prints). The CAM family shares one generic
//! implementation over [`cam::ChannelWeights`]; a new CAM variant is one small file. Every method
//! returns raw maps (at input resolution, and at layer resolution for CAMs); normalisation is an
//! explicit later step ([`map::Normalisation`]).

pub mod cam;
mod error;
pub mod gradient;
pub mod guided_gradcam;
pub mod learned;
pub mod localisation;
pub mod map;
pub mod perturbation;
pub mod progress;
pub mod registry;
pub mod shared;
pub mod smoothgrad;

pub use error::{ExplainError, Result};
pub use map::{Map, Normalisation};
/// The one softmax of the workspace (shifted by the maximum, as PyTorch computes it).
pub use perturbation::softmax;
pub use progress::Progress;
pub use shared::{Need, SharedPasses};

use deepsight_runtime::{LayeredClassifier, Objective, Tensor};

/// Which score is explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Score {
    /// The unnormalised class score `S_c` (what the papers use).
    #[default]
    Logit,
    /// The softmax probability `P_c`.
    Probability,
}

/// One explanation request: a batch of preprocessed images and one class per image.
#[derive(Debug, Clone)]
pub struct Request {
    pub images: Tensor<4>,
    pub classes: Vec<usize>,
    pub score: Score,
    /// The layer of layer-based methods (CAMs); `None`: the model's default CAM layer.
    pub layer: Option<String>,
}

impl Request {
    /// The objective of the requested classes and score.
    pub fn objective(&self) -> Objective {
        match self.score {
            Score::Logit => Objective::Logit(self.classes.clone()),
            Score::Probability => Objective::Probability(self.classes.clone()),
        }
    }

    /// The layer to use: the requested one, or the model's default CAM layer.
    pub fn layer_of(&self, model: &dyn LayeredClassifier, method: &'static str) -> Result<String> {
        match &self.layer {
            Some(l) => Ok(l.clone()),
            None => model.default_cam_layer().ok_or(ExplainError::Invalid {
                method,
                reason: "the model has no spatial layer to use; name one with --layer".into(),
            }),
        }
    }
}

/// Forward and backward passes a method ran (the L-CAM paper reports them as a column).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Passes {
    /// Forward passes, counting each image once (a batch of 16 images is 16).
    pub forward: usize,
    /// Backward passes, counted the same way.
    pub backward: usize,
}

/// What a method returns for a batch.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// One map per image at input resolution: one channel, or three for per-channel attributions.
    pub maps: Vec<Map>,
    /// The unprocessed map at the layer's resolution (CAMs), one per image.
    pub raw: Option<Vec<Map>>,
    pub passes: Passes,
    /// Further named outputs (occlusion's probability, feature-activity and top-class grids).
    pub extra: Vec<Extra>,
}

/// A further output of a method: one map per image.
#[derive(Debug, Clone)]
pub struct Extra {
    /// Stable name, used in file and tensor names (`<method>.<name>`).
    pub name: &'static str,
    pub maps: Vec<Map>,
    /// What the values are, so that a front end draws them fittingly.
    pub kind: ExtraKind,
    /// Per image, what the map shows when that varies by image (occlusion's feature map as
    /// `layer:channel`); empty when there is nothing to say.
    pub captions: Vec<String>,
}

impl Extra {
    /// An extra of `kind` with no captions.
    pub fn new(name: &'static str, maps: Vec<Map>, kind: ExtraKind) -> Extra {
        Extra {
            name,
            maps,
            kind,
            captions: Vec::new(),
        }
    }
}

/// The kind of values of an [`Extra`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtraKind {
    /// Magnitudes, on a grid or at input resolution (drawn as a heat map).
    Magnitude,
    /// Class indices of the model (drawn as flat colours with the class names).
    Classes,
    /// Category ids `0..labels.len()` named by `labels` (flat colours with a legend).
    Categories(&'static [&'static str]),
    /// A signed per-channel attribution at input resolution (drawn as the gradient methods').
    Attribution,
    /// A box `[x0, y0, x1, y1]` in inclusive pixel coordinates, all -1 for none (`[1, 1, 4]`).
    BoundingBox,
}

/// The extension point: every explanation method.
///
/// A method either reads passes that other methods can share (it implements [`Explainer::needs`]
/// and [`Explainer::explain_shared`]), or runs passes of its own (it overrides
/// [`Explainer::explain`]: Integrated Gradients, SmoothGrad).
pub trait Explainer: Send + Sync {
    /// The method's CLI name (`gradcam`, `guided-backprop`, ...): a stable contract.
    fn name(&self) -> &'static str;
    /// Whether its maps are signed (a diverging colour map shows them).
    fn signed(&self) -> bool {
        false
    }
    /// The shareable passes it reads; empty for methods that run their own.
    fn needs(&self, _model: &dyn LayeredClassifier, _request: &Request) -> Result<Vec<Need>> {
        Ok(Vec::new())
    }
    /// Its maps from passes computed for it and others.
    fn explain_shared(
        &self,
        model: &dyn LayeredClassifier,
        request: &Request,
        _shared: &SharedPasses,
    ) -> Result<Explanation> {
        self.explain(model, request)
    }
    /// Explains each image of the request for its class.
    fn explain(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<Explanation> {
        let needs = self.needs(model, request)?;
        if needs.is_empty() {
            return Err(ExplainError::Invalid {
                method: self.name(),
                reason: "implements neither its own passes nor shared ones".into(),
            });
        }
        let shared = SharedPasses::run(model, request, &needs)?;
        self.explain_shared(model, request, &shared)
    }
}

/// Runs several methods on one request, sharing what they can: one forward+backward per backward
/// rule for all gradient and CAM methods together. Returns each method's explanation (whose
/// `passes` say what it would cost alone) and the passes actually run.
pub fn explain_all(
    model: &dyn LayeredClassifier,
    request: &Request,
    methods: &[&dyn Explainer],
) -> Result<(Vec<Explanation>, Passes)> {
    let per_method: Vec<Vec<Need>> = methods
        .iter()
        .map(|m| m.needs(model, request))
        .collect::<Result<_>>()?;
    let shared = SharedPasses::run(model, request, &per_method.concat())?;
    let mut total = shared.passes;
    let mut out = Vec::with_capacity(methods.len());
    for (m, needs) in methods.iter().zip(&per_method) {
        let e = m.explain_shared(model, request, &shared)?;
        // Methods with passes of their own ran them outside the shared ones.
        if needs.is_empty() {
            total.forward += e.passes.forward;
            total.backward += e.passes.backward;
        }
        out.push(e);
    }
    Ok((out, total))
}
