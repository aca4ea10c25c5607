//! The explainer network on the engine: the [`Task`] that trains a segmenter (a tap decoder on the
//! frozen classifier, or the authors' DeepLabv3) with Stalder et al.'s loss (or RTIS's), the
//! default taps of the frozen encoder, and the target sets a single-label classifier's own
//! predictions give.

use crate::engine::Task;
use crate::error::{Result, TrainError};
use deepsight_explain::learned::explainer_train::{Objective, training_loss};
use deepsight_explain::learned::lcam::TrainBatch;
use deepsight_explain::learned::{
    Architecture, ClassifierKind, ExplainerNet, ExplainerProfile, ExplainerWeights, ModelIdentity,
    TapDecoder, TapSpec,
};
use deepsight_runtime::{Device, LayeredClassifier, Tensor};
use std::collections::BTreeMap;

/// Training an explainer on a frozen classifier.
pub struct ExplainerTask<'a> {
    pub model: &'a dyn LayeredClassifier,
    /// The segmenter trained (the module's variant).
    pub architecture: Architecture,
    /// The tap decoder's spec; for a DeepLabv3 only its `classes` counts
    /// ([`deepsight_explain::learned::explainer_net::deeplab_spec`]).
    pub spec: TapSpec,
    pub kind: ClassifierKind,
    pub profile: ExplainerProfile,
    pub objective: Objective,
    /// The model's normalisation, `(255 x - mean) / std`.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub identity: ModelIdentity,
    /// Facts recorded in the weight file (command, data, epochs).
    pub info: BTreeMap<String, String>,
}

impl ExplainerTask<'_> {
    /// The weights of `net` as a weight file's contents.
    pub fn weights(&self, net: &ExplainerNet) -> ExplainerWeights {
        ExplainerWeights {
            architecture: net.architecture(),
            spec: self.spec.clone(),
            model: self.identity.clone(),
            profile: self.profile.name().to_string(),
            kind: self.kind,
            tensors: net.to_named(),
            info: self.info.clone(),
        }
    }
}

impl Task for ExplainerTask<'_> {
    type Module = ExplainerNet;

    fn terms(&self) -> &'static [&'static str] {
        self.objective.terms()
    }

    fn term_weights(&self) -> Vec<f32> {
        self.objective.weights()
    }

    fn loss(
        &self,
        module: &ExplainerNet,
        images01: Tensor<4>,
        labels: &[Vec<usize>],
    ) -> Result<(Tensor<1>, Vec<Tensor<1>>)> {
        let batch = TrainBatch {
            images01,
            labels: &[],
            mean: self.mean,
            std: self.std,
        };
        Ok(training_loss(
            self.model,
            module,
            &batch,
            labels,
            self.kind,
            self.objective,
        )?)
    }

    fn encode(&self, module: &ExplainerNet, extra: &[(&str, &[u8])], meta: &[(&str, String)]) -> Vec<u8> {
        self.weights(module).to_bytes(false, extra, meta)
    }

    fn decode(&self, bytes: &[u8], source: &str, device: &Device) -> Result<ExplainerNet> {
        let w = ExplainerWeights::from_bytes(bytes, source)?;
        w.check_fits(self.model)?;
        if w.architecture != self.architecture {
            return Err(TrainError::Config(format!(
                "{source} holds a {} explainer, this run trains a {}",
                w.architecture, self.architecture
            )));
        }
        if w.spec != self.spec {
            return Err(TrainError::Config(format!(
                "{source} was trained with taps {:?} and width {}, this run has {:?} and {}",
                w.spec.taps, w.spec.width, self.spec.taps, self.spec.width
            )));
        }
        w.net(device)
            .ok_or_else(|| TrainError::Config(format!("{source}: its tensors do not make the network")))
    }
}

/// The frozen encoder's default taps: for each of the strides 8, 16 and 32 that the model has,
/// its last block output at that resolution (a residual sum or a named block, else the last layer
/// there); at stride 32 the model's CAM layer where it is there. The first tap sets the output
/// resolution (stride 8: 28x28 at 224, the authors' output stride).
pub fn default_taps(model: &dyn LayeredClassifier) -> Result<Vec<String>> {
    let layers = model.layers();
    let [h, w] = match layers.first().map(|l| &l.shape[..]) {
        Some([_, _, h, w]) => [*h, *w],
        _ => return Err(TrainError::Config("the model's input is not an image".into())),
    };
    let cam = model.default_cam_layer();
    let mut taps = Vec::new();
    for stride in [8, 16, 32] {
        let at: Vec<_> = layers
            .iter()
            .filter(|l| matches!(l.shape[..], [_, _, lh, lw] if lh == h / stride && lw == w / stride))
            .collect();
        if at.is_empty() {
            continue;
        }
        let pick = if let Some(c) = cam
            .as_ref()
            .filter(|c| stride == 32 && at.iter().any(|l| &l.name == *c))
        {
            c.clone()
        } else {
            at.iter()
                .rev()
                .find(|l| matches!(l.op, "Add" | "Identity" | "Concat"))
                .or(at.last())
                .map(|l| l.name.clone())
                .expect("not empty")
        };
        if !taps.contains(&pick) {
            taps.push(pick);
        }
    }
    if taps.is_empty() {
        if let Some(c) = cam {
            taps.push(c);
        } else {
            return Err(TrainError::Config(
                "the model has no spatial layer at stride 8, 16 or 32: name taps with --taps".into(),
            ));
        }
    }
    Ok(taps)
}

/// The decoder's spec for `taps` of `model` at `width` (with a CAM skip from the last tap where
/// `skip`), checking that every tap is a spatial layer.
pub fn tap_spec(model: &dyn LayeredClassifier, taps: &[String], width: usize, skip: bool) -> Result<TapSpec> {
    let layers = model.layers();
    let channels = taps
        .iter()
        .map(
            |t| match layers.iter().find(|l| &l.name == t).map(|l| &l.shape[..]) {
                Some([_, c, _, _]) => Ok(*c),
                Some(s) => Err(TrainError::Config(format!(
                    "tap '{t}' is flat ({s:?}): a tap must be a feature map"
                ))),
                None => Err(TrainError::Config(format!(
                    "the model has no layer '{t}' (see `deepsight layers`)"
                ))),
            },
        )
        .collect::<Result<Vec<_>>>()?;
    Ok(TapSpec {
        taps: taps.to_vec(),
        channels,
        width,
        classes: model.num_classes(),
        skip,
    })
}

/// The decoder that starts from CAM: its skip holds the classifier's own GAP + linear head at the
/// last tap, centred and rescaled exactly as L-CAM's CAM initialisation (`Init::Cam`: unsaturated
/// sigmoid masks whose min-max normalised maps are CAM's), and its head is zero. Refused where
/// the last tap does not feed such a head.
pub fn cam_start(
    model: &dyn LayeredClassifier,
    spec: &TapSpec,
    seed: u64,
    sample: Tensor<4>,
    device: &Device,
) -> Result<TapDecoder> {
    let last = spec.taps.last().expect("a spec has taps").clone();
    let lcam = crate::lcam::LcamTask {
        model,
        variant: deepsight_explain::learned::LcamVariant::Img,
        layer: last,
        loss: Default::default(),
        mean: [0.0; 3],
        std: [1.0; 3],
        identity: ModelIdentity::of(model, ""),
        info: BTreeMap::new(),
    };
    let head = lcam.initial(crate::lcam::Init::Cam, sample, device)?;
    let weight = deepsight_runtime::to_vec(head.weight.val().inner());
    let bias = deepsight_runtime::to_vec(head.bias.val().inner());
    TapDecoder::init(spec, seed, device)
        .start_from_cam(weight, bias)
        .ok_or_else(|| TrainError::Config("the decoder's skip does not match the CAM head".into()))
}

/// Each image's target set from a single-label classifier's probabilities `[N, K]`: its top-1
/// plus every other class whose probability is at least `threshold` (`None`: the top-1 only).
pub fn predicted_targets(probabilities: &[f32], classes: usize, threshold: Option<f32>) -> Vec<Vec<usize>> {
    probabilities
        .chunks(classes)
        .map(|row| {
            let top = (0..classes)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                .unwrap_or(0);
            let mut set = vec![top];
            if let Some(t) = threshold {
                set.extend((0..classes).filter(|&c| c != top && row[c] >= t));
            }
            set
        })
        .collect()
}
