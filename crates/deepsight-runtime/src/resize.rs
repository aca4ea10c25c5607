//! Resize of the spatial axes (ONNX `Resize` and `Upsample`), as two interpolation matrices:
//! `y = A_h x A_w^T`, exact for nearest (one-hot rows) and linear (two weights per row), and
//! differentiable with no code of its own.

use burn::tensor::{Tensor, TensorData};

/// How Resize maps an output coordinate back to the input (ONNX `coordinate_transformation_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CoordinateMode {
    /// `(x + 0.5) / scale - 0.5` (PyTorch's `align_corners=False`).
    HalfPixel,
    /// As `HalfPixel`, but 0 where the output has one pixel.
    PytorchHalfPixel,
    /// `x * (in - 1) / (out - 1)`.
    AlignCorners,
    /// `x / scale` (PyTorch's nearest).
    Asymmetric,
    /// `(x + 0.5) / scale` (TensorFlow's nearest with half-pixel centres).
    TfHalfPixelForNn,
}

/// Which input pixel a nearest-neighbour Resize picks (ONNX `nearest_mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NearestMode {
    RoundPreferFloor,
    RoundPreferCeil,
    Floor,
    Ceil,
}

/// How Resize interpolates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interpolation {
    Nearest(NearestMode),
    /// Bilinear over height and width.
    Linear,
}

/// Resizing of the spatial axes of an `[N, C, H, W]` value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resize {
    /// Output `[h, w]`.
    pub size: [usize; 2],
    /// The scales the coordinate transform divides by; `None` for `out / in`.
    pub scales: Option<[f32; 2]>,
    pub mode: Interpolation,
    pub coordinates: CoordinateMode,
}

/// The interpolation matrix `[out, in]` of one axis.
pub(crate) fn resize_matrix(
    r: &Resize,
    axis: usize,
    input: usize,
    device: &burn::tensor::Device,
) -> Tensor<2> {
    let out = r.size[axis];
    let scale = r.scales.map_or(out as f64 / input as f64, |s| s[axis] as f64);
    let mut m = vec![0f32; out * input];
    for o in 0..out {
        let x = o as f64;
        let src = match r.coordinates {
            CoordinateMode::HalfPixel => (x + 0.5) / scale - 0.5,
            CoordinateMode::PytorchHalfPixel if out > 1 => (x + 0.5) / scale - 0.5,
            CoordinateMode::PytorchHalfPixel => 0.0,
            CoordinateMode::AlignCorners if out > 1 => x * (input - 1) as f64 / (out - 1) as f64,
            CoordinateMode::AlignCorners => 0.0,
            CoordinateMode::Asymmetric => x / scale,
            CoordinateMode::TfHalfPixelForNn => (x + 0.5) / scale,
        };
        let last = (input - 1) as f64;
        match r.mode {
            Interpolation::Nearest(n) => {
                let i = match n {
                    NearestMode::RoundPreferFloor if src.fract() == 0.5 => src.floor(),
                    NearestMode::RoundPreferFloor => src.round(),
                    NearestMode::RoundPreferCeil => (src + 0.5).floor(),
                    NearestMode::Floor => src.floor(),
                    NearestMode::Ceil => src.ceil(),
                };
                m[o * input + i.clamp(0.0, last) as usize] = 1.0;
            }
            Interpolation::Linear => {
                let s = src.clamp(0.0, last);
                let lo = s.floor() as usize;
                let hi = (lo + 1).min(input - 1);
                let t = (s - lo as f64) as f32;
                m[o * input + lo] += 1.0 - t;
                m[o * input + hi] += t;
            }
        }
    }
    Tensor::from_data(TensorData::new(m, [out, input]), device)
}
