//! Eigen-CAM.
//!
//! # Computes
//! The dominant spatial pattern of the layer's feature maps, class-agnostic and gradient-free:
//! the feature maps projected on their first principal component.
//!
//! # Equation
//! `X` = the activation as `[h w, K]` with each channel's spatial mean removed; `X = U S V^T`;
//! `L = ReLU(X v_1) = ReLU(s_1 u_1)`.
//!
//! # Paper
//! Muhammad & Yeasin, *Eigen-CAM: Class Activation Map using Principal Components*, IJCNN 2020.
//!
//! # Deviations
//! A singular vector's sign is arbitrary (pytorch-grad-cam takes whatever LAPACK returns); DeepSight
//! fixes it so that the projection correlates positively with the channel-summed activation, so
//! the map points at where the activation mass is. `u_1` comes from power iteration on `X X^T`
//! (`[h w, h w]`), stopped when it changes by less than 1e-7. One forward pass, no backward.

use crate::cam::{CamVariant, LayerData};

/// Eigen-CAM (`eigencam`).
#[derive(Debug, Clone, Copy, Default)]
pub struct EigenCam {
    /// Takes the opposite sign of the principal component (to reproduce a reference whose SVD
    /// returned it).
    pub flip: bool,
}

impl CamVariant for EigenCam {
    const NAME: &'static str = "eigencam";
    const USES_GRADIENT: bool = false;

    fn weights(&self, d: &LayerData) -> Vec<f32> {
        vec![1.0; d.channels]
    }

    fn combine(&self, d: &LayerData) -> Vec<f32> {
        let p = d.positions;
        // X, [p, K], centred per channel, in f64 for a stable eigenvector.
        let mut x = vec![0f64; p * d.channels];
        for k in 0..d.channels {
            let a = d.a(k);
            let mean = a.iter().map(|&v| v as f64).sum::<f64>() / p as f64;
            for (i, &v) in a.iter().enumerate() {
                x[i * d.channels + k] = v as f64 - mean;
            }
        }
        let row = |i: usize| &x[i * d.channels..(i + 1) * d.channels];
        let mut gram = vec![0f64; p * p];
        for i in 0..p {
            for j in i..p {
                let v: f64 = row(i).iter().zip(row(j)).map(|(a, b)| a * b).sum();
                gram[i * p + j] = v;
                gram[j * p + i] = v;
            }
        }
        let mass: Vec<f64> = (0..p).map(|i| row(i).iter().sum()).collect();
        let mut u: Vec<f64> = (0..p).map(|i| 1.0 + (i as f64 * 0.618).fract()).collect();
        let mut lambda = 0.0;
        for _ in 0..10_000 {
            let next: Vec<f64> = (0..p)
                .map(|i| (0..p).map(|j| gram[i * p + j] * u[j]).sum())
                .collect();
            let norm = next.iter().map(|v| v * v).sum::<f64>().sqrt();
            if norm == 0.0 {
                return vec![0.0; p];
            }
            let next: Vec<f64> = next.iter().map(|v| v / norm).collect();
            let change = next
                .iter()
                .zip(&u)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            u = next;
            lambda = norm;
            if change < 1e-7 {
                break;
            }
        }
        let mut sign = if u.iter().zip(&mass).map(|(a, b)| a * b).sum::<f64>() < 0.0 {
            -1.0
        } else {
            1.0
        };
        if self.flip {
            sign = -sign;
        }
        u.iter().map(|v| (sign * lambda.sqrt() * v) as f32).collect()
    }
}
