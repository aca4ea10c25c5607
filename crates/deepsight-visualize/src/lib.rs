//! DeepSight's views of the model itself rather than of one image's decision.
//!
//! Simonyan et al. 2014 section 2 (an image that maximises a class score) and Zeiler & Fergus
//! 2014 sections 4-5 (what each feature map responds to across a dataset, how features evolve in
//! training, how invariant they are, whether parts correspond, how discriminative each layer is).
//! Every analysis runs on any [`LayeredClassifier`](deepsight_runtime::LayeredClassifier), built-in
//! or ONNX, and returns numbers and pictures; the CLI only writes them to files.

pub mod correspondence;
mod error;
pub mod evolution;
pub mod filters;
mod flat_features;
pub mod invariance;
pub mod optvis;
pub mod probes;
pub mod receptive_field;
pub mod top9;
pub mod top_k;

pub use error::{Result, VisualizeError};
