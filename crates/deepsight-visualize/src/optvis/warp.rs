//! Bilinear resampling as a differentiable gather: every output pixel reads four source pixels
//! with fixed weights, so one `select` per corner carries the gradient back to the source (the
//! adjoint is burn's scatter-add). Lucent's pad, jitter, scale, rotation and final upsampling are
//! composed into one such map per step.

use burn::tensor::{Device, Int, Tensor, TensorData};

/// A resampling from a `[src_h, src_w]` image to `[out_h, out_w]`: output pixel `(y, x)` samples
/// the source at `source(y, x)` (continuous pixel coordinates, pixel centres at integers);
/// samples outside the source read `fill`.
#[derive(Debug, Clone)]
pub struct Warp {
    src: [usize; 2],
    out: [usize; 2],
    /// Per corner, per output pixel: the flat source index (0 where invalid) and its weight
    /// (0 where invalid).
    index: [Vec<i64>; 4],
    weight: [Vec<f32>; 4],
    /// `1 - sum of valid weights`: how much of each output pixel is fill.
    outside: Vec<f32>,
}

impl Warp {
    pub fn new(src: [usize; 2], out: [usize; 2], source: impl Fn(f32, f32) -> (f32, f32)) -> Warp {
        let n = out[0] * out[1];
        let mut index: [Vec<i64>; 4] = std::array::from_fn(|_| Vec::with_capacity(n));
        let mut weight: [Vec<f32>; 4] = std::array::from_fn(|_| Vec::with_capacity(n));
        let mut outside = Vec::with_capacity(n);
        for y in 0..out[0] {
            for x in 0..out[1] {
                let (sy, sx) = source(y as f32, x as f32);
                let (y0, x0) = (sy.floor(), sx.floor());
                let (fy, fx) = (sy - y0, sx - x0);
                let corners = [
                    (y0, x0, (1.0 - fy) * (1.0 - fx)),
                    (y0, x0 + 1.0, (1.0 - fy) * fx),
                    (y0 + 1.0, x0, fy * (1.0 - fx)),
                    (y0 + 1.0, x0 + 1.0, fy * fx),
                ];
                let mut inside = 0f32;
                for (k, &(cy, cx, w)) in corners.iter().enumerate() {
                    let valid = cy >= 0.0 && cx >= 0.0 && cy < src[0] as f32 && cx < src[1] as f32;
                    if valid {
                        index[k].push(cy as i64 * src[1] as i64 + cx as i64);
                        weight[k].push(w);
                        inside += w;
                    } else {
                        index[k].push(0);
                        weight[k].push(0.0);
                    }
                }
                outside.push((1.0 - inside).max(0.0));
            }
        }
        Warp {
            src,
            out,
            index,
            weight,
            outside,
        }
    }

    /// Bilinear resize with `align_corners = True` (PyTorch's, as Lucent upsamples).
    pub fn resize(src: [usize; 2], out: [usize; 2]) -> Warp {
        let ratio = |s: usize, o: usize| {
            if o > 1 {
                (s - 1) as f32 / (o - 1) as f32
            } else {
                0.0
            }
        };
        let (ry, rx) = (ratio(src[0], out[0]), ratio(src[1], out[1]));
        Warp::new(src, out, move |y, x| (y * ry, x * rx))
    }

    /// Applies the warp to `[N, C, src_h, src_w]`, filling outside samples with `fill`.
    pub fn apply(&self, image: Tensor<4>, fill: f32) -> Tensor<4> {
        let [n, c, h, w] = image.dims();
        debug_assert_eq!([h, w], self.src);
        let device = image.device();
        let flat = image.reshape([n, c, h * w]);
        let p = self.out[0] * self.out[1];
        let mut acc: Option<Tensor<3>> = None;
        for k in 0..4 {
            let idx = Tensor::<1, Int>::from_data(TensorData::new(self.index[k].clone(), [p]), &device);
            let wt = row(&self.weight[k], &device);
            let term = flat.clone().select(2, idx) * wt;
            acc = Some(match acc {
                Some(a) => a + term,
                None => term,
            });
        }
        let mut out = acc.expect("four corners");
        if fill != 0.0 {
            out = out + row(&self.outside, &device).mul_scalar(fill);
        }
        out.reshape([n, c, self.out[0], self.out[1]])
    }
}

fn row(values: &[f32], device: &Device) -> Tensor<3> {
    Tensor::from_data(TensorData::new(values.to_vec(), [1, 1, values.len()]), device)
}

/// Lucent's `standard_transforms` drawn for one step, composed with the final resize of the
/// transformed canvas to the model's input: pad 12 (fill 0.5), jitter 8, scale, rotate, jitter 4.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transforms {
    pub pad: usize,
    /// Translations in whole pixels, `(dy, dx)`, before and after the scale and rotation.
    pub jitter: [(f32, f32); 2],
    pub scale: f32,
    /// Degrees, counter-clockwise.
    pub rotate: f32,
}

impl Transforms {
    pub const IDENTITY: Transforms = Transforms {
        pad: 0,
        jitter: [(0.0, 0.0); 2],
        scale: 1.0,
        rotate: 0.0,
    };

    /// Draws one step's transforms from Lucent's lists with `next`, a uniform index in `0..n`.
    pub fn draw(mut next: impl FnMut(usize) -> usize) -> Transforms {
        let scales: Vec<f32> = (0..11).map(|i| 1.0 + (i as f32 - 5.0) / 50.0).collect();
        let angles: Vec<f32> = (-10..=10).map(|d| d as f32).chain([0.0; 5]).collect();
        let first = (next(8) as f32, next(8) as f32);
        let scale = scales[next(scales.len())];
        let rotate = angles[next(angles.len())];
        let second = (next(4) as f32, next(4) as f32);
        Transforms {
            pad: 12,
            jitter: [first, second],
            scale,
            rotate,
        }
    }

    /// The warp from an `[s, s]` parameter image to the model's `[out_h, out_w]` input.
    pub fn warp(&self, src: [usize; 2], out: [usize; 2]) -> Warp {
        let pad = self.pad as f32;
        let (ph, pw) = (src[0] as f32 + 2.0 * pad, src[1] as f32 + 2.0 * pad);
        // The scaled canvas, as Lucent's `interpolate` to int(scale * size).
        let (th, tw) = (
            (ph * self.scale).floor().max(1.0),
            (pw * self.scale).floor().max(1.0),
        );
        let ratio = |t: f32, o: usize| if o > 1 { (t - 1.0) / (o - 1) as f32 } else { 0.0 };
        let (ry, rx) = (ratio(th, out[0]), ratio(tw, out[1]));
        let (sy, sx) = (ph / th, pw / tw);
        let (cy, cx) = ((th - 1.0) / 2.0, (tw - 1.0) / 2.0);
        let (sin, cos) = self.rotate.to_radians().sin_cos();
        let [(j1y, j1x), (j2y, j2x)] = self.jitter;
        Warp::new(src, out, move |y, x| {
            // Output pixel -> transformed canvas -> undo the second jitter -> undo the rotation
            // about the canvas centre -> undo the scale -> undo the first jitter -> undo the pad.
            let (ty, tx) = (y * ry - j2y, x * rx - j2x);
            let (dy, dx) = (ty - cy, tx - cx);
            let (uy, ux) = (cy + cos * dy - sin * dx, cx + sin * dy + cos * dx);
            let (qy, qx) = (uy * sy - j1y, ux * sx - j1x);
            (qy - pad, qx - pad)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepsight_runtime::{default_device, to_vec};

    #[test]
    fn identity_warp_copies_and_resize_matches_align_corners() {
        let d = default_device();
        let v: Vec<f32> = (0..12).map(|i| i as f32).collect();
        let img = Tensor::<4>::from_data(TensorData::new(v.clone(), [1, 1, 3, 4]), &d);
        let same = Transforms::IDENTITY.warp([3, 4], [3, 4]).apply(img.clone(), 0.5);
        assert_eq!(to_vec(same), v);
        // Align-corners 3 -> 5 along the rows: rows 0, 0.5, 1, 1.5, 2.
        let up = to_vec(Warp::resize([3, 4], [5, 4]).apply(img, 0.0));
        assert_eq!(&up[4..8], &[2.0, 3.0, 4.0, 5.0]);
        assert_eq!(&up[16..20], &[8.0, 9.0, 10.0, 11.0]);
    }

    #[test]
    fn padding_reads_the_fill_and_jitter_shifts_whole_pixels() {
        let d = default_device();
        let img = Tensor::<4>::from_data(TensorData::new(vec![1f32; 4], [1, 1, 2, 2]), &d);
        let t = Transforms {
            pad: 1,
            ..Transforms::IDENTITY
        };
        let out = to_vec(t.warp([2, 2], [4, 4]).apply(img.clone(), 0.5));
        // A 4x4 canvas: the 2x2 ones in the middle, the fill around.
        let expect = [
            0.5, 0.5, 0.5, 0.5, 0.5, 1.0, 1.0, 0.5, 0.5, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5, 0.5,
        ];
        assert_eq!(out, expect);
        let shifted = Transforms {
            pad: 1,
            jitter: [(1.0, 0.0), (0.0, 0.0)],
            ..Transforms::IDENTITY
        };
        let out = to_vec(shifted.warp([2, 2], [4, 4]).apply(img, 0.5));
        assert_eq!(&out[8..12], &[0.5, 1.0, 1.0, 0.5]);
        assert_eq!(&out[4..8], &[0.5, 0.5, 0.5, 0.5]);
    }

    #[test]
    fn the_gradient_is_the_adjoint_of_the_warp() {
        // <W x, y> = <x, W^T y> for a rotated, scaled warp.
        let d = default_device();
        let t = Transforms {
            pad: 2,
            jitter: [(1.0, 2.0), (0.0, 1.0)],
            scale: 1.1,
            rotate: 7.0,
        };
        let warp = t.warp([6, 6], [9, 9]);
        let x: Vec<f32> = (0..36).map(|i| ((i * 7) % 11) as f32 / 11.0).collect();
        let y: Vec<f32> = (0..81).map(|i| ((i * 5) % 13) as f32 / 13.0 - 0.5).collect();
        let ad = d.autodiff();
        let xt = Tensor::<4>::from_data(TensorData::new(x.clone(), [1, 1, 6, 6]), &ad).require_grad();
        let yt = Tensor::<4>::from_data(TensorData::new(y.clone(), [1, 1, 9, 9]), &ad);
        let wx = warp.apply(xt.clone(), 0.0);
        let lhs: f32 = to_vec(wx.clone()).iter().zip(&y).map(|(a, b)| a * b).sum();
        let grads = (wx * yt).sum().backward();
        let wty = to_vec(xt.grad(&grads).expect("gradient reaches the source"));
        let rhs: f32 = x.iter().zip(&wty).map(|(a, b)| a * b).sum();
        assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
        assert!(wty.iter().any(|&g| g != 0.0));
    }
}
