//! ONNX import: the CNN graphs that `torch.onnx.export` (opset 13 to 18) and tf2onnx produce,
//! as DeepSight [`Graph`]s whose layers are named by the ONNX node outputs.
//!
//! Shape-computing subgraphs (TF-SAME padding, `x.view(x.size(0), -1)`) are folded for the input
//! size the model is imported at; a zero `Pad` read by a convolution becomes that convolution's
//! padding; a trailing `Softmax` is dropped so that the model gives class scores. PyTorch's
//! `nn.LocalResponseNorm`, which the exporters write as its steps (`x * x`, a view as
//! `[N, 1, C, H, W]`, a channel `Pad`, a `(size, 1, 1)` `AveragePool`, then
//! `x / (k + alpha * mean)^beta`), becomes one LRN with PyTorch's window (even sizes included);
//! a near miss of that chain is refused. Anything else not listed in the error message of an
//! unsupported operator is refused with the node's name, its operator and what is missing: never
//! a silent wrong answer.

mod constant;
mod error;
mod fold;
mod import;
mod node;

pub use error::{OnnxError, Result};
pub use import::Imported;
/// Every ONNX operator the importer takes (the rest are refused by name).
pub use import::SUPPORTED as SUPPORTED_OPS;

use deepsight_runtime::{Device, Graph};
use protobuf::Message;
use std::path::Path;

/// Imports an ONNX model from its bytes; `input_size` (`[height, width]`) is required where the
/// model's input size is dynamic (else 224x224 is assumed, with a note).
pub fn import_bytes(bytes: &[u8], device: &Device, input_size: Option<[usize; 2]>) -> Result<Imported> {
    let model =
        onnx_protobuf::ModelProto::parse_from_bytes(bytes).map_err(|e| OnnxError::Parse(e.to_string()))?;
    import::import_model(&model, device, input_size)
}

/// Imports an ONNX file; errors name the file.
pub fn import_file(path: &Path, device: &Device, input_size: Option<[usize; 2]>) -> Result<Imported> {
    let bytes = std::fs::read(path).map_err(|source| OnnxError::Io {
        path: path.into(),
        source,
    })?;
    import_bytes(&bytes, device, input_size).map_err(|inner| OnnxError::InFile {
        path: path.into(),
        inner: Box::new(inner),
    })
}

/// The graph only, for callers that need no notes.
pub fn import_graph(bytes: &[u8], device: &Device, input_size: Option<[usize; 2]>) -> Result<Graph> {
    Ok(import_bytes(bytes, device, input_size)?.graph)
}
