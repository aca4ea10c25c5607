use std::path::PathBuf;
use thiserror::Error;

/// Errors of loading models, weights and images; each names the file and what is wrong.
#[derive(Debug, Error)]
pub enum ModelError {
    /// A file that could not be read.
    #[error("cannot read '{path}': {source}")]
    Io { path: PathBuf, source: std::io::Error },
    /// A file that could not be written (nothing is left behind).
    #[error("cannot write '{path}': {source}")]
    Write { path: PathBuf, source: std::io::Error },
    /// A file whose content is not what it should be.
    #[error("'{path}': {reason}")]
    Invalid { path: PathBuf, reason: String },
    /// A malformed weight file (the path is added by the caller through [`ModelError::at`]).
    #[error("{0}")]
    Format(String),
    /// A pickle that refers to code: refused, never run.
    #[error(
        "refusing to load: the pickle refers to '{0}', which is not a tensor record (DeepSight never runs pickled code)"
    )]
    UnsafePickle(String),
    /// A weight the architecture needs but the file lacks, or of the wrong shape.
    #[error("weight '{name}': {reason}")]
    Weight { name: String, reason: String },
    /// An image that cannot be decoded.
    #[error("cannot decode image '{path}': {reason}")]
    Image { path: PathBuf, reason: String },
    /// An ONNX file that cannot be imported (the message names the file and the node).
    #[error(transparent)]
    Onnx(#[from] deepsight_onnx::OnnxError),
    /// An error of the runtime while assembling the model.
    #[error(transparent)]
    Runtime(#[from] deepsight_runtime::RuntimeError),
}

impl ModelError {
    /// Attaches `path` to an error that does not name its file yet.
    pub fn at(self, path: &std::path::Path) -> ModelError {
        match self {
            ModelError::Format(reason) => ModelError::Invalid {
                path: path.to_path_buf(),
                reason,
            },
            ModelError::UnsafePickle(g) => ModelError::Invalid {
                path: path.to_path_buf(),
                reason: ModelError::UnsafePickle(g).to_string(),
            },
            ModelError::Weight { name, reason } => ModelError::Invalid {
                path: path.to_path_buf(),
                reason: format!("weight '{name}': {reason}"),
            },
            other => other,
        }
    }
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
