//! Explainer weight files: the segmenter's tensors in safetensors, with metadata naming its
//! architecture (`taps`, the default when the key is absent, or `deeplabv3-resnet50`), the taps
//! and the width (of a tap decoder), the profile it was trained with, the classifier kind and the
//! model it was trained for, so that a file trained for another model is refused with a message
//! naming both.

use crate::learned::deeplab::DeepLabV3;
use crate::learned::explainer_loss::ClassifierKind;
use crate::learned::explainer_net::{Architecture, ExplainerNet, deeplab_spec};
use crate::learned::segmenter::{NamedTensors, TapDecoder, TapSpec};
use crate::learned::weights::{ModelIdentity, decode_floats, encode_floats};
use crate::{ExplainError, Result};
use deepsight_runtime::{Device, LayeredClassifier};
use safetensors::Dtype;
use std::collections::BTreeMap;

const FORMAT: &str = "deepsight-explainer/1";

/// A trained explainer with what it was trained for.
#[derive(Debug, Clone, PartialEq)]
pub struct ExplainerWeights {
    /// Which segmenter the tensors make.
    pub architecture: Architecture,
    /// The tap decoder's taps, channels and width; of a DeepLabv3 only `classes` counts (no taps,
    /// width 0).
    pub spec: TapSpec,
    pub model: ModelIdentity,
    /// The training profile's name (`imagenet-lite0`, `rtis`, ...).
    pub profile: String,
    pub kind: ClassifierKind,
    pub tensors: NamedTensors,
    /// Free-form facts (training command, epochs, data).
    pub info: BTreeMap<String, String>,
}

fn invalid(source: &str, reason: impl std::fmt::Display) -> ExplainError {
    ExplainError::Invalid {
        method: "explainer",
        reason: format!("weight file {source}: {reason}"),
    }
}

impl ExplainerWeights {
    /// Parses a weight file's bytes; `source` names it in errors. Unknown tensors (a training
    /// checkpoint's optimiser state) are ignored.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Self> {
        let bad =
            |e: safetensors::SafeTensorError| invalid(source, format!("not a valid safetensors file ({e})"));
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes).map_err(bad)?;
        let st = safetensors::SafeTensors::deserialize(bytes).map_err(bad)?;
        let meta: BTreeMap<String, String> =
            meta.metadata().clone().unwrap_or_default().into_iter().collect();
        let get = |k: &str| {
            meta.get(k).cloned().ok_or_else(|| {
                invalid(
                    source,
                    format!("no '{k}' in its metadata (not an explainer weight file)"),
                )
            })
        };
        if get("format")? != FORMAT {
            return Err(invalid(source, format!("format is not {FORMAT}")));
        }
        let number = |k: &str| -> Result<usize> {
            let v = get(k)?;
            v.parse()
                .map_err(|_| invalid(source, format!("'{k}' = '{v}' is not a number")))
        };
        let architecture = match meta.get("architecture") {
            None => Architecture::Taps,
            Some(v) => Architecture::from_name(v).ok_or_else(|| {
                let names: Vec<&str> = Architecture::ALL.iter().map(|a| a.name()).collect();
                invalid(
                    source,
                    format!("unknown architecture '{v}' (known: {})", names.join(", ")),
                )
            })?,
        };
        let spec = match architecture {
            Architecture::Taps => {
                let taps: Vec<String> = get("taps")?.split(',').map(str::to_string).collect();
                let channels = get("channels")?
                    .split(',')
                    .map(|c| {
                        c.parse::<usize>()
                            .map_err(|_| invalid(source, format!("bad channel count '{c}'")))
                    })
                    .collect::<Result<Vec<_>>>()?;
                if taps.len() != channels.len() || taps.is_empty() {
                    return Err(invalid(source, "taps and channels do not match"));
                }
                TapSpec {
                    taps,
                    channels,
                    width: number("width")?,
                    classes: number("classes")?,
                    skip: meta.get("skip").is_some_and(|v| v == "cam"),
                }
            }
            Architecture::DeepLabV3ResNet50 => deeplab_spec(number("classes")?),
        };
        let kind = match get("classifier_kind")?.as_str() {
            "softmax" => ClassifierKind::Softmax,
            "multi-label" => ClassifierKind::MultiLabel,
            v => return Err(invalid(source, format!("unknown classifier kind '{v}'"))),
        };
        let mut tensors = Vec::new();
        for (name, view) in st.tensors() {
            if name.starts_with("deepsight.") {
                continue;
            }
            let values = decode_floats(&name, &view).map_err(|reason| invalid(source, reason))?;
            tensors.push((name, view.shape().to_vec(), values));
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        let info = meta
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("info.").map(|k| (k.to_string(), v.clone())))
            .collect();
        let w = ExplainerWeights {
            architecture,
            spec,
            model: ModelIdentity {
                name: get("model")?,
                fingerprint: get("model_fingerprint")?,
            },
            profile: get("profile")?,
            kind,
            tensors,
            info,
        };
        // A file whose tensors do not make the network it describes is refused here, not later.
        w.net(&deepsight_runtime::default_device()).ok_or_else(|| {
            invalid(
                source,
                match architecture {
                    Architecture::Taps => "its tensors do not match its taps, channels, width and classes",
                    Architecture::DeepLabV3ResNet50 => {
                        "its tensors do not make a DeepLabv3-ResNet-50 with its classes"
                    }
                },
            )
        })?;
        Ok(w)
    }

    /// The file's bytes (F16 when `half`), with `extra` byte tensors (U8, e.g. an optimiser state)
    /// and metadata.
    pub fn to_bytes(&self, half: bool, extra: &[(&str, &[u8])], extra_meta: &[(&str, String)]) -> Vec<u8> {
        let dtype = if half { Dtype::F16 } else { Dtype::F32 };
        let encoded: Vec<(String, Vec<usize>, Vec<u8>)> = self
            .tensors
            .iter()
            .map(|(n, s, v)| (n.clone(), s.clone(), encode_floats(v, half).1))
            .collect();
        let mut views: Vec<(String, safetensors::tensor::TensorView)> = encoded
            .iter()
            .map(|(n, s, b)| {
                let view = safetensors::tensor::TensorView::new(dtype, s.clone(), b)
                    .expect("sizes match by construction");
                (n.clone(), view)
            })
            .collect();
        for (name, bytes) in extra {
            let view = safetensors::tensor::TensorView::new(Dtype::U8, vec![bytes.len()], bytes)
                .expect("a byte vector");
            views.push((name.to_string(), view));
        }
        let join = |v: Vec<String>| v.join(",");
        let taps = [
            ("taps", self.spec.taps.join(",")),
            (
                "channels",
                join(self.spec.channels.iter().map(|c| c.to_string()).collect()),
            ),
            ("width", self.spec.width.to_string()),
            ("skip", if self.spec.skip { "cam" } else { "none" }.to_string()),
        ];
        let taps = match self.architecture {
            Architecture::Taps => &taps[..],
            Architecture::DeepLabV3ResNet50 => &[],
        };
        let mut meta: std::collections::HashMap<String, String> = taps
            .iter()
            .cloned()
            .chain([
                ("format", FORMAT.to_string()),
                ("architecture", self.architecture.name().to_string()),
                ("classes", self.spec.classes.to_string()),
                ("profile", self.profile.clone()),
                (
                    "classifier_kind",
                    match self.kind {
                        ClassifierKind::Softmax => "softmax",
                        ClassifierKind::MultiLabel => "multi-label",
                    }
                    .to_string(),
                ),
                ("model", self.model.name.clone()),
                ("model_fingerprint", self.model.fingerprint.clone()),
            ])
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        for (k, v) in &self.info {
            meta.insert(format!("info.{k}"), v.clone());
        }
        for (k, v) in extra_meta {
            meta.insert(k.to_string(), v.clone());
        }
        safetensors::serialize(views, Some(meta)).expect("in-memory serialisation cannot fail")
    }

    /// The tap decoder on `device`; `None` when the tensors do not fit the spec or the file holds
    /// another architecture.
    pub fn decoder(&self, device: &Device) -> Option<TapDecoder> {
        match self.architecture {
            Architecture::Taps => TapDecoder::from_named(&self.spec, self.tensors.clone(), device),
            Architecture::DeepLabV3ResNet50 => None,
        }
    }

    /// The segmenter on `device`, whichever its architecture; `None` when the tensors do not make
    /// it.
    pub fn net(&self, device: &Device) -> Option<ExplainerNet> {
        match self.architecture {
            Architecture::Taps => self.decoder(device).map(ExplainerNet::Taps),
            Architecture::DeepLabV3ResNet50 => {
                DeepLabV3::from_named(self.spec.classes, self.tensors.clone(), device)
                    .map(ExplainerNet::DeepLab)
            }
        }
    }

    /// Refuses weights trained for another model, naming both.
    pub fn check_fits(&self, model: &dyn LayeredClassifier) -> Result<()> {
        let here = ModelIdentity::of(model, "");
        let refuse = |reason: String| ExplainError::Invalid {
            method: "explainer",
            reason,
        };
        if self.model.fingerprint != here.fingerprint {
            return Err(refuse(format!(
                "the weights were trained for model '{}' (layer table {}), not for this model (layer table {}); train them for it with `deepsight train explainer`",
                self.model.name, self.model.fingerprint, here.fingerprint
            )));
        }
        if model.num_classes() != self.spec.classes {
            return Err(refuse(format!(
                "the weights have {} classes, the model {}",
                self.spec.classes,
                model.num_classes()
            )));
        }
        Ok(())
    }
}

/// The explainer DeepSight ships for the embedded Lite0, if any.
pub fn shipped() -> Option<std::sync::Arc<ExplainerWeights>> {
    static PARSED: std::sync::OnceLock<Option<std::sync::Arc<ExplainerWeights>>> = std::sync::OnceLock::new();
    PARSED
        .get_or_init(|| {
            (!SHIPPED.is_empty()).then(|| {
                std::sync::Arc::new(
                    ExplainerWeights::from_bytes(SHIPPED, "(shipped explainer for lite0)")
                        .expect("the shipped weights are tested"),
                )
            })
        })
        .clone()
}

/// Trained by the command in BENCHMARKS.md ("The explainer network on Lite0"), stored as F16.
const SHIPPED: &[u8] = include_bytes!("../../assets/explainer-lite0.safetensors");
