//! Attribution maps as plain arrays, and the explicit post-processing steps applied to them:
//! upsampling to the input (bilinear, half-pixel centres as `align_corners=False`), ReLU, and the
//! named normalisations. Methods return raw maps; nothing here runs unless asked.

use deepsight_runtime::{Tensor, to_vec};

/// One image's map: `channels` planes of `height x width`, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Map {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
    pub data: Vec<f32>,
}

/// How a map is scaled for display or comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalisation {
    /// `(x - min) / (max - min)`; a constant map becomes zeros.
    MinMax,
    /// pytorch-grad-cam's `scale_cam_image`: `x -= min; x /= max + 1e-7`.
    GradCamStyle,
    /// `x / max |x|`, keeping the sign (for signed attributions).
    MaxAbs,
}

impl Map {
    /// Splits a `[N, C, H, W]` tensor into one map per image.
    pub fn from_batch(t: Tensor<4>) -> Vec<Map> {
        let [n, c, h, w] = t.dims();
        let data = to_vec(t);
        let per = c * h * w;
        (0..n)
            .map(|i| Map {
                channels: c,
                height: h,
                width: w,
                data: data[i * per..(i + 1) * per].to_vec(),
            })
            .collect()
    }

    /// Elementwise `max(x, 0)`.
    pub fn relu(mut self) -> Map {
        self.data.iter_mut().for_each(|v| *v = v.max(0.0));
        self
    }

    /// Per-pixel maximum of the absolute value over channels (Simonyan's saliency).
    pub fn max_abs_over_channels(&self) -> Map {
        let plane = self.height * self.width;
        let data = (0..plane)
            .map(|p| {
                (0..self.channels)
                    .map(|c| self.data[c * plane + p].abs())
                    .fold(0.0, f32::max)
            })
            .collect();
        Map {
            channels: 1,
            data,
            ..*self
        }
    }

    /// Per-pixel maximum over channels of the positive part, `max_ch max(x, 0)` (the saliency
    /// of the seed's code snippet: `grad.clamp(min=0)`, then `amax` over channels).
    pub fn max_positive_over_channels(&self) -> Map {
        let plane = self.height * self.width;
        let data = (0..plane)
            .map(|p| {
                (0..self.channels)
                    .map(|c| self.data[c * plane + p])
                    .fold(0.0, f32::max)
            })
            .collect();
        Map {
            channels: 1,
            data,
            ..*self
        }
    }

    /// Elementwise product with `other` broadcast over channels (one-channel `other`).
    pub fn times_plane(&self, other: &Map) -> Map {
        let plane = self.height * self.width;
        assert_eq!(other.data.len(), plane, "a one-channel map of the same size");
        let data = self
            .data
            .iter()
            .enumerate()
            .map(|(i, v)| v * other.data[i % plane])
            .collect();
        Map { data, ..self.clone() }
    }

    /// Bilinear resize of every channel to `[height, width]` with half-pixel centres and edge
    /// clamping: PyTorch's `interpolate(..., align_corners=False)` and OpenCV's `INTER_LINEAR`
    /// (identical when enlarging).
    pub fn resize(&self, height: usize, width: usize) -> Map {
        if (height, width) == (self.height, self.width) {
            return self.clone();
        }
        let axis = |out: usize, inp: usize| -> Vec<(usize, usize, f32)> {
            let scale = inp as f32 / out as f32;
            (0..out)
                .map(|o| {
                    let src = ((o as f32 + 0.5) * scale - 0.5).max(0.0);
                    let i0 = (src.floor() as usize).min(inp - 1);
                    let i1 = (i0 + 1).min(inp - 1);
                    (i0, i1, src - i0 as f32)
                })
                .collect()
        };
        let (ys, xs) = (axis(height, self.height), axis(width, self.width));
        let mut data = Vec::with_capacity(self.channels * height * width);
        for c in 0..self.channels {
            let p = &self.data[c * self.height * self.width..(c + 1) * self.height * self.width];
            for &(y0, y1, fy) in &ys {
                for &(x0, x1, fx) in &xs {
                    let at = |y: usize, x: usize| p[y * self.width + x];
                    let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
                    let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
                    data.push(top * (1.0 - fy) + bottom * fy);
                }
            }
        }
        Map {
            channels: self.channels,
            height,
            width,
            data,
        }
    }

    /// Applies a named normalisation to the whole map.
    pub fn normalise(&self, how: Normalisation) -> Map {
        let min = self.data.iter().copied().fold(f32::INFINITY, f32::min);
        let max = self.data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let data = match how {
            Normalisation::MinMax if max > min => self.data.iter().map(|v| (v - min) / (max - min)).collect(),
            Normalisation::MinMax => vec![0.0; self.data.len()],
            Normalisation::GradCamStyle => {
                let shifted: Vec<f32> = self.data.iter().map(|v| v - min).collect();
                let top = shifted.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                shifted.iter().map(|v| v / (top + 1e-7)).collect()
            }
            Normalisation::MaxAbs => {
                let m = self.data.iter().fold(0.0f32, |a, v| a.max(v.abs()));
                if m > 0.0 {
                    self.data.iter().map(|v| v / m).collect()
                } else {
                    self.data.clone()
                }
            }
        };
        Map { data, ..self.clone() }
    }
}
