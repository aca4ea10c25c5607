//! DeepSight's model runtime: runs convolutional classifiers on burn and opens them up.
//!
//! A model is a [`Graph`] of named operations; [`GraphModel`] runs it as a [`Classifier`] (images
//! in, logits out) and a [`LayeredClassifier`] (activations, gradients at any layer under a
//! chosen [`RectifierRule`], max-pool switches). burn's `flex` CPU backend is the default device;
//! the code names no backend, so burn's GPU devices work the same.

mod classifier;
pub mod depthwise;
pub mod depthwise_infer;
mod error;
mod exec;
pub mod flex;
mod graph;
mod incremental;
pub mod limits;
mod model;
pub mod ops;
mod plan;
pub mod rectifier;
mod resize;
mod resume;
mod shapes;
pub mod tensor_ops;
mod tensor_shape;
mod validate;
pub mod value;

pub use classifier::{
    Capture, Classifier, GradientRequest, Gradients, LayerGradient, LayerInfo, LayeredClassifier, Objective,
};
pub use error::{Result, RuntimeError};
pub use graph::{BatchNorm, Conv2d, Graph, Linear, Node, NodeId, Op, Padding, Pool};
pub use incremental::{Incremental, PatchBatch, PatchedOutput};
pub use model::GraphModel;
pub use ops::{Activation, Arithmetic, ConvTranspose2d, ExtOp, Lrn, Pad};
pub use rectifier::{Bounds, RectifierRule, rectify};
pub use resize::{CoordinateMode, Interpolation, NearestMode, Resize};
pub use resume::Resume;
pub use tensor_ops::{Comparison, Constant, Reduction, TensorOp};
pub use value::{Axis, ValueShape};

/// burn's tensor type and device, re-exported so users need no direct burn dependency.
pub use burn::tensor::{Device, Int, Tensor, TensorData};

/// The default device: burn's pure-Rust `flex` CPU backend.
pub fn default_device() -> Device {
    Device::flex()
}

/// Copies a tensor's values out as `f32`, row-major.
pub fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .expect("converted to f32")
}
