use thiserror::Error;

/// Everything the runtime can refuse; every message names the thing at fault.
#[derive(Debug, Error)]
pub enum RuntimeError {
    /// A layer name that the model does not have.
    #[error("unknown layer '{name}' (run `deepsight layers` to list the layers; e.g. {hint})")]
    UnknownLayer { name: String, hint: String },
    /// An input batch of the wrong shape for the model.
    #[error("input of shape {got:?} does not fit the model: {reason}")]
    InputShape { got: Vec<usize>, reason: String },
    /// A class index outside the model's classes.
    #[error("class index {index} is out of range: the model has {num_classes} classes (0..={max})", max = num_classes - 1)]
    ClassIndex { index: usize, num_classes: usize },
    /// A target list whose length does not match the batch.
    #[error("{what}: got {got} entries for a batch of {batch}")]
    BatchMismatch {
        what: &'static str,
        got: usize,
        batch: usize,
    },
    /// A channel or position outside a layer's activation.
    #[error("layer '{layer}': {reason}")]
    LayerIndex { layer: String, reason: String },
    /// Something this classifier cannot do.
    #[error("not supported: {what}")]
    Unsupported { what: String },
    /// A graph that is not a valid classifier.
    #[error("invalid model graph at node '{node}': {reason}")]
    InvalidGraph { node: String, reason: String },
}

/// Shorthand for the runtime's results.
pub type Result<T, E = RuntimeError> = std::result::Result<T, E>;
