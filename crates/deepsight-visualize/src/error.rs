//! Errors of the model visualisations.

use deepsight_explain::ExplainError;
use deepsight_models::ModelError;
use deepsight_runtime::RuntimeError;

#[derive(Debug, thiserror::Error)]
pub enum VisualizeError {
    /// The model refused a request (unknown layer, class out of range, wrong input shape).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Explain(#[from] ExplainError),
    #[error(transparent)]
    Model(#[from] ModelError),
    /// An option outside its domain, or an input the analysis cannot use.
    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },
}

pub type Result<T, E = VisualizeError> = std::result::Result<T, E>;

#[allow(dead_code)] // used by the analyses as they land
pub(crate) fn invalid(what: &'static str, reason: impl Into<String>) -> VisualizeError {
    VisualizeError::Invalid {
        what,
        reason: reason.into(),
    }
}
