//! Grad-CAM++.
//!
//! # Computes
//! Grad-CAM with pixel-wise weighting of the positive gradients, so that several instances of a
//! class all show up.
//!
//! # Equation
//! With `g = dS_c/dA^k_ij`: `a_ij^k = g^2 / (2 g^2 + sum_ab A^k_ab * g^3 + eps)` (0 where `g = 0`),
//! `alpha_k = sum_ij a_ij^k ReLU(g)`, `L = ReLU(sum_k alpha_k A^k)`; `eps = 1e-6`.
//!
//! # Paper
//! Chattopadhay et al., *Grad-CAM++: Generalized Gradient-based Visual Explanations for Deep
//! Convolutional Networks*, WACV 2018, equation 19 with the exponential-score closed form.
//!
//! # Deviations
//! As pytorch-grad-cam implements equation 19: the gradients of the score stand for the
//! derivatives of `exp(S_c)` after the closed form's cancellation.

use crate::cam::{CamVariant, LayerData};

/// Grad-CAM++ (`gradcam++`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GradCamPlusPlus;

impl CamVariant for GradCamPlusPlus {
    const NAME: &'static str = "gradcam++";

    fn weights(&self, d: &LayerData) -> Vec<f32> {
        (0..d.channels)
            .map(|k| {
                let sum_a: f32 = d.a(k).iter().sum();
                d.g(k)
                    .iter()
                    .map(|&g| {
                        let (g2, g3) = (g * g, g * g * g);
                        let aij = if g != 0.0 {
                            g2 / (2.0 * g2 + sum_a * g3 + 1e-6)
                        } else {
                            0.0
                        };
                        g.max(0.0) * aij
                    })
                    .sum()
            })
            .collect()
    }
}
