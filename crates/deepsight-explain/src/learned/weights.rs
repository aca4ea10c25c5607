//! L-CAM weight files: the attention module's `weight` `[K, C]` and `bias` `[K]` in safetensors,
//! with metadata naming the variant, the layer and the model they were trained for, so that a
//! file trained elsewhere is refused with a message naming both.

use crate::learned::LcamVariant;
use crate::{ExplainError, Result};
use deepsight_runtime::LayeredClassifier;
use safetensors::Dtype;
use std::collections::BTreeMap;

const FORMAT: &str = "deepsight-lcam/1";

/// Which model a weight file belongs to: a name for messages and a fingerprint of its layer table
/// (names, operations, shapes, parameter counts), which is what must agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelIdentity {
    pub name: String,
    pub fingerprint: String,
}

impl ModelIdentity {
    /// The identity of `model`, called `name` in messages.
    pub fn of(model: &dyn LayeredClassifier, name: &str) -> Self {
        // FNV-1a over the layer table: stable across runs, platforms and backends.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for l in model.layers() {
            let line = format!("{}|{}|{:?}|{}|{:?};", l.name, l.op, l.shape, l.params, l.inputs);
            for b in line.bytes() {
                h ^= b as u64;
                h = h.wrapping_mul(0x0100_0000_01b3);
            }
        }
        ModelIdentity {
            name: name.to_string(),
            fingerprint: format!("{h:016x}"),
        }
    }
}

/// A trained (or initial) attention module with what it was trained for.
#[derive(Debug, Clone, PartialEq)]
pub struct LcamWeights {
    pub variant: LcamVariant,
    pub layer: String,
    pub model: ModelIdentity,
    pub channels: usize,
    pub classes: usize,
    /// Row-major `[classes, channels]`.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    /// Free-form facts kept in the file (training command, epochs, data).
    pub info: BTreeMap<String, String>,
}

fn invalid(source: &str, reason: impl std::fmt::Display) -> ExplainError {
    ExplainError::Invalid {
        method: "l-cam",
        reason: format!("weight file {source}: {reason}"),
    }
}

/// A safetensors tensor's values as `f32` (F32 or F16 files); the reason on another dtype.
pub(crate) fn decode_floats(
    name: &str,
    view: &safetensors::tensor::TensorView,
) -> std::result::Result<Vec<f32>, String> {
    let raw = view.data();
    Ok(match view.dtype() {
        Dtype::F32 => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect(),
        Dtype::F16 => raw
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        other => return Err(format!("tensor '{name}' is {other:?}, expected F32 or F16")),
    })
}

/// `values` as little-endian F16 (`half`) or F32 bytes, with the dtype to declare.
pub(crate) fn encode_floats(values: &[f32], half: bool) -> (Dtype, Vec<u8>) {
    if half {
        let bytes = values
            .iter()
            .flat_map(|x| half::f16::from_f32(*x).to_le_bytes())
            .collect();
        (Dtype::F16, bytes)
    } else {
        (Dtype::F32, values.iter().flat_map(|x| x.to_le_bytes()).collect())
    }
}

fn floats(source: &str, name: &str, view: &safetensors::tensor::TensorView) -> Result<Vec<f32>> {
    decode_floats(name, view).map_err(|reason| invalid(source, reason))
}

impl LcamWeights {
    /// Parses a weight file's bytes; `source` names it in errors. Unknown extra tensors (a
    /// training checkpoint's optimiser state) are ignored.
    pub fn from_bytes(bytes: &[u8], source: &str) -> Result<Self> {
        let (_, meta) = safetensors::SafeTensors::read_metadata(bytes)
            .map_err(|e| invalid(source, format!("not a valid safetensors file ({e})")))?;
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| invalid(source, format!("not a valid safetensors file ({e})")))?;
        let meta: BTreeMap<String, String> =
            meta.metadata().clone().unwrap_or_default().into_iter().collect();
        let get = |k: &str| {
            meta.get(k).cloned().ok_or_else(|| {
                invalid(
                    source,
                    format!("no '{k}' in its metadata (not an L-CAM weight file)"),
                )
            })
        };
        if get("format")? != FORMAT {
            return Err(invalid(source, format!("format is not {FORMAT}")));
        }
        let variant = match get("variant")?.as_str() {
            "img" => LcamVariant::Img,
            "fm" => LcamVariant::Fm,
            v => return Err(invalid(source, format!("unknown variant '{v}'"))),
        };
        let tensor = |name: &str| {
            st.tensor(name)
                .map_err(|_| invalid(source, format!("no tensor '{name}'")))
        };
        let (w, b) = (tensor("weight")?, tensor("bias")?);
        let (classes, channels) = match (w.shape(), b.shape()) {
            ([k, c], [kb]) if k == kb && *k > 0 && *c > 0 => (*k, *c),
            (ws, bs) => {
                return Err(invalid(
                    source,
                    format!("weight {ws:?} and bias {bs:?} are not [K, C] and [K]"),
                ));
            }
        };
        let weight = floats(source, "weight", &w)?;
        let bias = floats(source, "bias", &b)?;
        if weight.len() != classes * channels || bias.len() != classes {
            return Err(invalid(source, "tensor data do not match their shapes"));
        }
        let info = meta
            .iter()
            .filter_map(|(k, v)| k.strip_prefix("info.").map(|k| (k.to_string(), v.clone())))
            .collect();
        Ok(LcamWeights {
            variant,
            layer: get("layer")?,
            model: ModelIdentity {
                name: get("model")?,
                fingerprint: get("model_fingerprint")?,
            },
            channels,
            classes,
            weight,
            bias,
            info,
        })
    }

    /// The file's bytes: the two tensors (F16 when `half`, else F32), any `extra` byte tensors
    /// (U8, e.g. an optimiser state), and the metadata.
    pub fn to_bytes(&self, half: bool, extra: &[(&str, &[u8])], extra_meta: &[(&str, String)]) -> Vec<u8> {
        let ((dtype, wb), (_, bb)) = (encode_floats(&self.weight, half), encode_floats(&self.bias, half));
        let mut views = vec![
            (
                "weight".to_string(),
                safetensors::tensor::TensorView::new(dtype, vec![self.classes, self.channels], &wb)
                    .expect("sizes match by construction"),
            ),
            (
                "bias".to_string(),
                safetensors::tensor::TensorView::new(dtype, vec![self.classes], &bb)
                    .expect("sizes match by construction"),
            ),
        ];
        for (name, bytes) in extra {
            views.push((
                name.to_string(),
                safetensors::tensor::TensorView::new(Dtype::U8, vec![bytes.len()], bytes)
                    .expect("a byte vector"),
            ));
        }
        let mut meta: std::collections::HashMap<String, String> = [
            ("format", FORMAT.to_string()),
            ("variant", self.variant.code().to_string()),
            ("layer", self.layer.clone()),
            ("model", self.model.name.clone()),
            ("model_fingerprint", self.model.fingerprint.clone()),
        ]
        .into_iter()
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

    /// Refuses weights trained for another model, layer or variant, naming both.
    pub fn check_fits(&self, model: &dyn LayeredClassifier, variant: LcamVariant, layer: &str) -> Result<()> {
        let here = ModelIdentity::of(model, "");
        let method = variant.name();
        let refuse = |reason: String| ExplainError::Invalid { method, reason };
        if self.variant != variant {
            return Err(refuse(format!(
                "the weights are for {}, not {method}",
                self.variant.name()
            )));
        }
        if self.model.fingerprint != here.fingerprint {
            return Err(refuse(format!(
                "the weights were trained for model '{}' (layer table {}), not for this model (layer table {}); train them for it with `deepsight train lcam`",
                self.model.name, self.model.fingerprint, here.fingerprint
            )));
        }
        if self.layer != layer {
            return Err(refuse(format!(
                "the weights were trained at layer '{}' of '{}', not at layer '{layer}'",
                self.layer, self.model.name
            )));
        }
        let shape = model
            .layers()
            .into_iter()
            .find(|l| l.name == layer)
            .map(|l| l.shape)
            .unwrap_or_default();
        if shape.len() != 4 || shape[1] != self.channels || model.num_classes() != self.classes {
            return Err(refuse(format!(
                "the weights map {} channels to {} classes; layer '{layer}' has shape {shape:?} and the model {} classes",
                self.channels,
                self.classes,
                model.num_classes()
            )));
        }
        Ok(())
    }
}

/// The weights DeepSight ships for the embedded Lite0 (its CAM layer `features`), if any.
pub fn shipped(variant: LcamVariant) -> Option<std::sync::Arc<LcamWeights>> {
    let bytes: &[u8] = match variant {
        LcamVariant::Img => SHIPPED_IMG,
        LcamVariant::Fm => SHIPPED_FM,
    };
    static PARSED: [std::sync::OnceLock<Option<std::sync::Arc<LcamWeights>>>; 2] =
        [std::sync::OnceLock::new(), std::sync::OnceLock::new()];
    PARSED[variant as usize]
        .get_or_init(|| {
            (!bytes.is_empty()).then(|| {
                let source = format!("(shipped {} weights for lite0)", variant.name());
                std::sync::Arc::new(
                    LcamWeights::from_bytes(bytes, &source).expect("the shipped weights are tested"),
                )
            })
        })
        .clone()
}

/// Trained by the commands in BENCHMARKS.md ("L-CAM on Lite0"), stored as F16.
const SHIPPED_IMG: &[u8] = include_bytes!("../../assets/lcam-img-lite0.safetensors");
const SHIPPED_FM: &[u8] = include_bytes!("../../assets/lcam-fm-lite0.safetensors");
