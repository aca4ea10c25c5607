//! Named float tensors as read from a weight file, before they become a model.

use crate::error::{ModelError, Result};
use deepsight_runtime::{Device, Tensor, TensorData};
use std::collections::BTreeMap;
use std::path::Path;

/// One tensor: row-major `f32` data and its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct WeightTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A state dict: names (PyTorch's, e.g. `_blocks.3._bn1.running_var`) to tensors.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Weights {
    pub tensors: BTreeMap<String, WeightTensor>,
    /// Tensors of the file that were not read, by name: their type (`I64`, `BOOL`, ...), so that
    /// a message can say why a name is missing.
    pub skipped: BTreeMap<String, String>,
}

impl Weights {
    /// Reads a `.safetensors` file (F32, F64, F16 and BF16 tensors; integer tensors are skipped).
    pub fn from_safetensors(path: &Path) -> Result<Weights> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.into(),
            source,
        })?;
        Self::from_safetensors_bytes(&bytes).map_err(|e| e.at(path))
    }

    /// Parses safetensors bytes.
    pub fn from_safetensors_bytes(bytes: &[u8]) -> Result<Weights> {
        use safetensors::Dtype;
        let st = safetensors::SafeTensors::deserialize(bytes)
            .map_err(|e| ModelError::Format(format!("not a valid safetensors file: {e}")))?;
        let (mut tensors, mut skipped) = (BTreeMap::new(), BTreeMap::new());
        for (name, view) in st.tensors() {
            let raw = view.data();
            let data: Vec<f32> = match view.dtype() {
                Dtype::F32 => raw
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes(c.try_into().expect("4")))
                    .collect(),
                Dtype::F64 => raw
                    .chunks_exact(8)
                    .map(|c| f64::from_le_bytes(c.try_into().expect("8")) as f32)
                    .collect(),
                Dtype::F16 => raw
                    .chunks_exact(2)
                    .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                Dtype::BF16 => raw
                    .chunks_exact(2)
                    .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
                    .collect(),
                other => {
                    skipped.insert(name.to_string(), format!("{other:?}"));
                    continue;
                }
            };
            tensors.insert(
                name.to_string(),
                WeightTensor {
                    shape: view.shape().to_vec(),
                    data,
                },
            );
        }
        Ok(Weights { tensors, skipped })
    }

    /// Writes every tensor as F32 to a `.safetensors` file, atomically (a temporary file renamed
    /// into place), so that a failed write never leaves a partial file.
    pub fn save_safetensors(&self, path: &Path) -> Result<()> {
        crate::io::write_atomic(path, &self.to_safetensors_bytes()?)
    }

    /// Every tensor as F32, serialised in the `.safetensors` format.
    pub fn to_safetensors_bytes(&self) -> Result<Vec<u8>> {
        let bytes: BTreeMap<&String, Vec<u8>> = self
            .tensors
            .iter()
            .map(|(k, t)| (k, t.data.iter().flat_map(|v| v.to_le_bytes()).collect()))
            .collect();
        let views: Vec<(&String, safetensors::tensor::TensorView)> = self
            .tensors
            .iter()
            .map(|(k, t)| {
                let view =
                    safetensors::tensor::TensorView::new(safetensors::Dtype::F32, t.shape.clone(), &bytes[k])
                        .map_err(|e| ModelError::Format(format!("tensor '{k}': {e}")))?;
                Ok((k, view))
            })
            .collect::<Result<_>>()?;
        safetensors::serialize(views, None).map_err(|e| ModelError::Format(e.to_string()))
    }

    /// The tensor `name` with exactly `shape`.
    pub fn get(&self, name: &str, shape: &[usize]) -> Result<&WeightTensor> {
        let t = self.tensors.get(name).ok_or_else(|| ModelError::Weight {
            name: name.into(),
            reason: "missing from the weight file".into(),
        })?;
        if t.shape != shape {
            return Err(ModelError::Weight {
                name: name.into(),
                reason: format!("has shape {:?}, the architecture needs {shape:?}", t.shape),
            });
        }
        Ok(t)
    }

    /// `name` as a rank-`D` tensor on `device`, checked against `shape`.
    pub fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &Device,
    ) -> Result<Tensor<D>> {
        let t = self.get(name, &shape)?;
        Ok(Tensor::from_data(TensorData::new(t.data.clone(), shape), device))
    }
}
