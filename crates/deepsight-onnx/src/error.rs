//! What can go wrong importing an ONNX file; every message names the node and its operator.

use deepsight_runtime::RuntimeError;
use std::path::PathBuf;

/// An ONNX import error.
#[derive(Debug, thiserror::Error)]
pub enum OnnxError {
    /// The bytes are not a (complete) ONNX protobuf.
    #[error("not a valid ONNX model ({0}); is the file complete?")]
    Parse(String),
    /// A model-level problem: no graph, several inputs, an unsupported input layout.
    #[error("{0}")]
    Model(String),
    /// An operator or attribute DeepSight does not implement.
    #[error("ONNX node '{node}' ({op}): {what}")]
    Unsupported { node: String, op: String, what: String },
    /// A node that contradicts the ONNX specification or the rest of the graph.
    #[error("ONNX node '{node}' ({op}): {reason}")]
    Invalid {
        node: String,
        op: String,
        reason: String,
    },
    /// The imported graph failed the runtime's checks.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Reading the file failed.
    #[error("cannot read '{path}': {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Any of the above, in a named file.
    #[error("{path}: {inner}")]
    InFile { path: PathBuf, inner: Box<OnnxError> },
}

/// Shorthand for import results.
pub type Result<T, E = OnnxError> = std::result::Result<T, E>;
