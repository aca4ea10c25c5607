//! Errors of the pipeline: a request that names something the model or the registry lacks, an
//! option outside its domain, or a failure of a method, the model or an input.

use deepsight_explain::ExplainError;

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    /// An option (a CLI flag, a form field) with a value outside its domain. `reason` follows the
    /// option's name: the CLI prints `--<option> <reason>`, the server `<option> <reason>`.
    #[error("{option}{reason}")]
    Invalid { option: String, reason: String },
    /// An image that cannot be decoded.
    #[error("{input}: not a readable image ({reason})")]
    Image { input: String, reason: String },
    #[error(transparent)]
    Explain(ExplainError),
    #[error(transparent)]
    Model(#[from] deepsight_models::ModelError),
    #[error(transparent)]
    Runtime(#[from] deepsight_runtime::RuntimeError),
    #[error(transparent)]
    Eval(#[from] deepsight_eval::EvalError),
    /// Class scores that are not numbers: the weights or the input hold NaN or infinite values.
    #[error(
        "the model gave {count} non-finite class scores (NaN or infinity) for image #{image}: its weights or its input hold NaN or infinite values"
    )]
    NonFinite { image: usize, count: usize },
    /// The front end cancelled the work.
    #[error("cancelled")]
    Cancelled,
}

impl From<ExplainError> for PipelineError {
    fn from(e: ExplainError) -> Self {
        match e {
            ExplainError::Cancelled => PipelineError::Cancelled,
            e => PipelineError::Explain(e),
        }
    }
}

impl PipelineError {
    /// An invalid-option error; `reason` starts with the separator (`": ..."` or `" ..."`).
    pub fn invalid(option: &str, reason: impl Into<String>) -> Self {
        PipelineError::Invalid {
            option: option.to_string(),
            reason: reason.into(),
        }
    }
}

pub type Result<T, E = PipelineError> = std::result::Result<T, E>;
