//! Checkpoints: the module's weight file (so a checkpoint is usable wherever the weights are)
//! with the optimiser state as one more (byte) tensor and the run's state in the metadata.
//! Written atomically, so a killed run leaves the previous checkpoint intact.

use crate::error::{Result, TrainError};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The metadata key holding [`RunState`].
pub const STATE_KEY: &str = "deepsight.train.state";
/// The tensor holding the optimiser's state (burn's burnpack bytes).
pub const OPTIMIZER_TENSOR: &str = "deepsight.train.optimizer";

/// What a resumed run must agree on and where it continues.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// Epochs completed.
    pub epochs_done: usize,
    /// Iterations completed.
    pub steps_done: usize,
    /// The settings that determine the result; a resume with others is refused.
    pub fingerprint: String,
}

/// Reads a checkpoint's run state and optimiser bytes.
pub fn read(path: &Path) -> Result<(Vec<u8>, RunState, Vec<u8>)> {
    let bytes = std::fs::read(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let bad = |reason: String| TrainError::Checkpoint {
        path: path.to_path_buf(),
        reason,
    };
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)
        .map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
    let state: RunState = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get(STATE_KEY))
        .ok_or_else(|| bad("no run state in its metadata (a weight file, not a checkpoint)".into()))
        .and_then(|s| serde_json::from_str(s).map_err(|e| bad(format!("unreadable run state ({e})"))))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .map_err(|e| bad(format!("not a valid safetensors file ({e})")))?;
    let optimizer = st
        .tensor(OPTIMIZER_TENSOR)
        .map_err(|_| bad("no optimiser state".into()))?
        .data()
        .to_vec();
    Ok((bytes, state, optimizer))
}
