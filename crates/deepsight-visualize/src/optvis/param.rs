//! Lucent's image parameterisations: a scaled Fourier spectrum (or plain pixels), colour
//! decorrelation and a sigmoid, giving RGB in `[0, 1]`. Everything is burn tensor algebra, so the
//! gradient reaches the parameters by autodiff.

use burn::tensor::activation::sigmoid;
use burn::tensor::{Device, Tensor, TensorData};

/// Lucent's `color_correlation_svd_sqrt` (ImageNet colour statistics).
const COLOR_SVD_SQRT: [[f32; 3]; 3] = [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]];

/// Lucent's matrix divided by its largest column norm (`color_correlation_normalized`).
fn color_matrix() -> [[f32; 3]; 3] {
    let norm = (0..3)
        .map(|j| (0..3).map(|i| COLOR_SVD_SQRT[i][j].powi(2)).sum::<f32>().sqrt())
        .fold(0f32, f32::max);
    COLOR_SVD_SQRT.map(|r| r.map(|v| v / norm))
}

/// How the optimised variables become an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// One variable per pixel and channel.
    Pixel,
    /// A complex spectrum scaled by `1 / frequency` (Lucent's `fft_image`, decay power 1).
    Fourier,
}

/// The parameterised image: variables, and the fixed matrices that map them to pixels.
pub struct ImageParam {
    pub decorrelate: bool,
    size: usize,
    /// Fourier: `cos` and `sin` DFT matrices `[s, s]`, and the per-frequency scale `[1, 1, s, s]`.
    dft: Option<(Tensor<2>, Tensor<2>, Tensor<4>)>,
}

impl ImageParam {
    pub fn new(basis: Basis, decorrelate: bool, size: usize, device: &Device) -> ImageParam {
        let dft = (basis == Basis::Fourier).then(|| {
            let s = size;
            let angle = |m: usize, k: usize| 2.0 * std::f64::consts::PI * ((m * k) % s) as f64 / s as f64;
            let mat = |f: fn(f64) -> f64| {
                let v: Vec<f32> = (0..s * s).map(|i| f(angle(i / s, i % s)) as f32).collect();
                Tensor::<2>::from_data(TensorData::new(v, [s, s]), device)
            };
            let freq = |k: usize| {
                let k = k as f64;
                let s = s as f64;
                if k < s / 2.0 { k / s } else { (k - s) / s }
            };
            let scale: Vec<f32> = (0..s * s)
                .map(|i| {
                    let f = (freq(i / s).powi(2) + freq(i % s).powi(2)).sqrt();
                    (1.0 / f.max(1.0 / s as f64)) as f32
                })
                .collect();
            let scale = Tensor::<4>::from_data(TensorData::new(scale, [1, 1, s, s]), device);
            (mat(f64::cos), mat(f64::sin), scale)
        });
        ImageParam {
            decorrelate,
            size,
            dft,
        }
    }

    /// Side of the square image.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Pixel variables that render to `rgb` (values in `(0, 1)`), for starting from an image.
    pub fn vars_for(&self, rgb: Tensor<4>) -> Tensor<4> {
        let clamped = rgb.clamp(1e-3, 1.0 - 1e-3);
        let logit = (clamped.clone() / (clamped.neg() + 1.0)).log();
        if self.decorrelate {
            mix_colours(logit, &invert3(color_matrix()))
        } else {
            logit
        }
    }

    /// RGB in `[0, 1]`, `[N, 3, s, s]`.
    pub fn render(&self, vars: Tensor<4>) -> Tensor<4> {
        let raw = match &self.dft {
            None => vars,
            Some((cos, sin, scale)) => {
                let [n, _, s, _] = vars.dims();
                let re = vars.clone().narrow(1, 0, 3) * scale.clone();
                let im = vars.narrow(1, 3, 3) * scale.clone();
                // Re(F^-1 (A + iB)) = C A C - S A S - S B C - C B S, with the "ortho" 1/s and half
                // of it, since a full spectrum counts each frequency pair twice where Lucent's
                // rfft counts it once; Lucent's extra /4 ("magic") follows.
                let left = |m: &Tensor<2>, x: Tensor<4>| {
                    let t = x.swap_dims(2, 3).reshape([n * 3 * s, s]).matmul(m.clone());
                    t.reshape([n, 3, s, s]).swap_dims(2, 3)
                };
                let right = |x: Tensor<4>, m: &Tensor<2>| {
                    x.reshape([n * 3 * s, s]).matmul(m.clone()).reshape([n, 3, s, s])
                };
                let ca = left(cos, re.clone());
                let sa = left(sin, re);
                let cb = left(cos, im.clone());
                let sb = left(sin, im);
                let x = right(ca, cos) - right(sa, sin) - right(sb, cos) - right(cb, sin);
                x.div_scalar(2.0 * s as f32 * 4.0)
            }
        };
        let mixed = if self.decorrelate {
            mix_colours(raw, &color_matrix())
        } else {
            raw
        };
        sigmoid(mixed)
    }
}

/// `out_c = sum_j m[c][j] in_j` at every pixel.
fn mix_colours(x: Tensor<4>, m: &[[f32; 3]; 3]) -> Tensor<4> {
    let channels: Vec<Tensor<4>> = (0..3).map(|j| x.clone().narrow(1, j, 1)).collect();
    let out: Vec<Tensor<4>> = (0..3)
        .map(|c| {
            channels[0].clone().mul_scalar(m[c][0])
                + channels[1].clone().mul_scalar(m[c][1])
                + channels[2].clone().mul_scalar(m[c][2])
        })
        .collect();
    Tensor::cat(out, 1)
}

fn invert3(m: [[f32; 3]; 3]) -> [[f32; 3]; 3] {
    let det = m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);
    let c = |r0: usize, c0: usize, r1: usize, c1: usize| m[r0][c0] * m[r1][c1] - m[r0][c1] * m[r1][c0];
    let adj = [
        [c(1, 1, 2, 2), -c(0, 1, 2, 2), c(0, 1, 1, 2)],
        [-c(1, 0, 2, 2), c(0, 0, 2, 2), -c(0, 0, 1, 2)],
        [c(1, 0, 2, 1), -c(0, 0, 2, 1), c(0, 0, 1, 1)],
    ];
    adj.map(|r| r.map(|v| v / det))
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepsight_runtime::{default_device, to_vec};

    #[test]
    fn fourier_basis_is_the_real_part_of_the_scaled_inverse_dft() {
        let d = default_device();
        let s = 4;
        let p = ImageParam::new(Basis::Fourier, false, s, &d);
        // One spectrum entry: A[0][1] = 1 in channel 0 gives cos(2 pi n / 4) along the columns,
        // scaled by 1 / |f| = 4, the ortho 1/s and the 1/(2 * 4).
        let mut v = vec![0f32; 6 * s * s];
        v[1] = 1.0;
        let x = to_vec(p.render(Tensor::from_data(TensorData::new(v, [1, 6, s, s]), &d)));
        for n in 0..s {
            let expect = 4.0 * (2.0 * std::f32::consts::PI * n as f32 / 4.0).cos() / (2.0 * 4.0 * 4.0);
            let sig = 1.0 / (1.0 + (-expect).exp());
            for m in 0..s {
                assert!((x[m * s + n] - sig).abs() < 1e-6);
            }
        }
        // The other channels stay at sigmoid(0).
        assert!(x[s * s..].iter().all(|&v| (v - 0.5).abs() < 1e-6));
    }

    #[test]
    fn from_rgb_inverts_render_for_pixels() {
        let d = default_device();
        let p = ImageParam::new(Basis::Pixel, true, 3, &d);
        let rgb: Vec<f32> = (0..27).map(|i| 0.1 + 0.8 * i as f32 / 27.0).collect();
        let t = Tensor::<4>::from_data(TensorData::new(rgb.clone(), [1, 3, 3, 3]), &d);
        let back = to_vec(p.render(p.vars_for(t)));
        for (a, b) in back.iter().zip(&rgb) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}
