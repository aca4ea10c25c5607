//! Which explanation is faithful: the papers' metrics, each implemented as the named *profile* of
//! a reference implementation (`../shared/docs/METHODS.md` section F), every one counting the
//! forward passes it runs. Maps are [`deepsight_explain::Map`]s; images are `[3, H, W]` values in
//! `[0, 1]` at the model's input size together with the model's [`Normaliser`].

pub mod adic;
pub mod causal;
mod error;
pub mod localisation;
pub mod pointing;
pub mod road;
pub mod sanity;
pub mod segmentation;

pub use error::{EvalError, Result};

/// The model's input normalisation: `input = (x * 255 - mean) / std`, `mean` and `std` in
/// `0..=255` units per channel (as `deepsight_models::Preprocess` holds them).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Normaliser {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normaliser {
    /// `[3, H, W]` values in `[0, 1]` to the model's input space.
    pub fn apply(&self, x01: &[f32]) -> Vec<f32> {
        let plane = x01.len() / 3;
        x01.iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = i / plane;
                (v * 255.0 - self.mean[c]) / self.std[c]
            })
            .collect()
    }

    /// The inverse of [`Normaliser::apply`]: model input back to `[3, H, W]` values in `[0, 1]`.
    pub fn invert(&self, x: &[f32]) -> Vec<f32> {
        let plane = x.len() / 3;
        x.iter()
            .enumerate()
            .map(|(i, &v)| {
                let c = i / plane;
                (v * self.std[c] + self.mean[c]) / 255.0
            })
            .collect()
    }
}
