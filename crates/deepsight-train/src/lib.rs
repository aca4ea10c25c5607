//! DeepSight's training engine: modules trained on a frozen [`deepsight_runtime::LayeredClassifier`]
//! (L-CAM's attention module today), on burn's autodiff and optimisers.
//!
//! - data: labelled (`dataset.txt`) or unlabelled folders, several at once; labels are the frozen
//!   classifier's own top-1 (computed once, cached) or the dataset's; a seeded validation split;
//! - typed augmentation presets, decoded on a background thread while the step runs;
//! - SGD (Nesterov), Adam, AdamW with per-group (weights / biases) rates and decays, step-decay and
//!   one-cycle schedules;
//! - a checkpoint after every epoch (atomic), `--resume` ending with the weights of an
//!   uninterrupted run, `train.jsonl` with every loss term, the loss curve PNG.

pub mod augment;
pub mod checkpoint;
pub mod classifier;
pub mod data;
pub mod engine;
pub mod error;
pub mod explainer;
pub mod fmnist;
pub mod lcam;
pub mod loader;
pub mod log;
pub mod mosaic;
pub mod optim;
pub mod rng;
mod weight_file;

pub use augment::Augmentation;
pub use data::{Item, Labels};
pub use engine::{Data, EarlyStop, Progress, StepOutput, Summary, Task, TrainConfig, train, train_step};
pub use error::{Result, TrainError};
pub use optim::{OptimConfig, OptimizerKind, Schedule};
