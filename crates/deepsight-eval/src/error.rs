//! Errors of the metrics.

use deepsight_explain::ExplainError;
use deepsight_runtime::RuntimeError;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Explain(#[from] ExplainError),
    /// An input a metric cannot take: a map with NaN, sizes that do not match, an empty set.
    #[error("{metric}: {reason}")]
    Invalid { metric: &'static str, reason: String },
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;
