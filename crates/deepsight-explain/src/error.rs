//! Errors of explanation methods.

use deepsight_runtime::RuntimeError;

#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    /// The model refused the request (unknown layer, class out of range, wrong input shape).
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// An option outside its domain, or a request the method cannot serve.
    #[error("{method}: {reason}")]
    Invalid { method: &'static str, reason: String },
    /// The front end cancelled the work (see [`Progress`](crate::Progress)).
    #[error("cancelled")]
    Cancelled,
}

pub type Result<T, E = ExplainError> = std::result::Result<T, E>;
