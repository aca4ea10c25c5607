//! EfficientNet-Lite0, the embedded default model: [`crate::efficientnet_lite`] at width and
//! depth 1.0 (kept as a module of its own so that `lite0::lite0` keeps working).

pub use crate::efficientnet_lite::{BN_EPS, lite0};
