//! Errors of the training engine.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Runtime(#[from] deepsight_runtime::RuntimeError),
    #[error(transparent)]
    Model(#[from] deepsight_models::error::ModelError),
    #[error(transparent)]
    Explain(#[from] deepsight_explain::ExplainError),
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: std::io::Error },
    /// A data folder, label file or image the run cannot use.
    #[error("{}: {reason}", path.display())]
    Data { path: PathBuf, reason: String },
    /// A checkpoint that cannot be resumed from.
    #[error("checkpoint {}: {reason}", path.display())]
    Checkpoint { path: PathBuf, reason: String },
    /// An option outside its domain.
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
