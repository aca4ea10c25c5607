//! The weight files of the classifiers trained here (Fashion-MNIST, mosaic): safetensors holding
//! the module's tensors, extra byte tensors and `format` / `arch` / `info.*` metadata; and their
//! parameters, whose ids follow from the tensor names.

use crate::error::{Result, TrainError};
use burn::module::{Param, ParamId};
use deepsight_models::{Arch, Weights};
use deepsight_runtime::Tensor;
use safetensors::Dtype;
use safetensors::tensor::TensorView;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// One tensor: name, shape and little-endian bytes.
pub(crate) type Encoded = (String, Vec<usize>, Vec<u8>);

/// A parameter id fixed by the tensor's name (FNV-1a), so that an optimiser state saved in a
/// checkpoint maps back onto the parameters of a module rebuilt from that checkpoint (burn keys
/// the state by id, and fresh modules get random ids).
pub(crate) fn id_of(name: &str) -> ParamId {
    let h = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    ParamId::from(h)
}

/// A parameter of `t` whose id is [`id_of`] `name`.
pub(crate) fn param<const D: usize>(name: &str, t: Tensor<D>) -> Param<Tensor<D>> {
    let mut p = Param::from_tensor(t);
    p.id = id_of(name);
    p
}

/// A weight file `source` that cannot be used, and why.
pub(crate) fn bad_weights(source: &str, reason: impl Into<String>) -> TrainError {
    TrainError::Data {
        path: PathBuf::from(source),
        reason: reason.into(),
    }
}

/// The safetensors bytes of `tensors` (all of `dtype`) and the `extra` byte tensors, with
/// `format`, `arch`, `info.<key>` for each of `info` and then `meta` as metadata.
pub(crate) fn encode(
    dtype: Dtype,
    tensors: &[Encoded],
    extra: &[(&str, &[u8])],
    format: &str,
    arch: Arch,
    info: &BTreeMap<String, String>,
    meta: &[(&str, String)],
) -> Vec<u8> {
    let mut views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(k, shape, b)| {
            let view = TensorView::new(dtype, shape.clone(), b).expect("sizes match by construction");
            (k.clone(), view)
        })
        .collect();
    for (name, b) in extra {
        views.push((
            name.to_string(),
            TensorView::new(Dtype::U8, vec![b.len()], b).expect("a byte vector"),
        ));
    }
    let mut metadata: HashMap<String, String> = HashMap::new();
    metadata.insert("format".into(), format.into());
    metadata.insert("arch".into(), arch.name().into());
    for (k, v) in info {
        metadata.insert(format!("info.{k}"), v.clone());
    }
    for (k, v) in meta {
        metadata.insert(k.to_string(), v.clone());
    }
    safetensors::serialize(views, Some(metadata)).expect("in-memory serialisation cannot fail")
}

/// The module `build` makes from the weight file `bytes` read from `source`; either failure is
/// reported as [`bad_weights`].
pub(crate) fn decode<M>(
    bytes: &[u8],
    source: &str,
    build: impl FnOnce(&Weights) -> deepsight_models::Result<M>,
) -> Result<M> {
    let w = Weights::from_safetensors_bytes(bytes).map_err(|e| bad_weights(source, e.to_string()))?;
    build(&w).map_err(|e| bad_weights(source, e.to_string()))
}
