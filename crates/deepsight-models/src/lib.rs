//! DeepSight's models: built-in architectures, weight readers (a restricted `.pth` unpickler and
//! safetensors), preprocessing presets and class names.

pub mod alexnet;
mod builder;
pub mod efficientnet_lite;
pub mod error;
pub mod fmnist_cnn;
mod io;
pub mod lite0;
pub mod mosaic_cnn;
mod pickle;
pub mod preprocess;
pub mod pth;
pub mod resample;
pub mod resnet;
pub mod source;
pub mod vgg;
pub mod weights;
pub mod zoo;

pub use error::{ModelError, Result};
pub use io::write_atomic;
pub use preprocess::{Preprocess, Preset, RgbImage};
pub use source::{RandomWeights, WeightSource, uniform_stream};
pub use weights::{WeightTensor, Weights};
pub use zoo::{Arch, LoadedModel, ModelSource};
