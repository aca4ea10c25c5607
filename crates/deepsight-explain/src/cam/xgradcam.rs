//! XGrad-CAM.
//!
//! # Computes
//! Grad-CAM with channel weights that make the map satisfy the sensitivity and conservation
//! axioms: gradients weighted by the normalised activation.
//!
//! # Equation
//! `alpha_k = sum_ij (A^k_ij / (sum_ab A^k_ab + eps)) dS_c/dA^k_ij`, `L = ReLU(sum_k alpha_k A^k)`,
//! `eps = 1e-7`.
//!
//! # Paper
//! Fu et al., *Axiom-based Grad-CAM: Towards Accurate Visualization and Explanation of CNNs*,
//! BMVC 2020.
//!
//! # Deviations
//! None (pytorch-grad-cam's `XGradCAM`).

use crate::cam::{CamVariant, LayerData};

/// XGrad-CAM (`xgradcam`).
#[derive(Debug, Clone, Copy, Default)]
pub struct XGradCam;

impl CamVariant for XGradCam {
    const NAME: &'static str = "xgradcam";

    fn weights(&self, d: &LayerData) -> Vec<f32> {
        (0..d.channels)
            .map(|k| {
                let sum_a: f32 = d.a(k).iter().sum::<f32>() + 1e-7;
                d.a(k).iter().zip(d.g(k)).map(|(a, g)| g * a / sum_a).sum()
            })
            .collect()
    }
}
