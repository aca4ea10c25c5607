//! Counterfactual Grad-CAM: where the evidence *against* the class lies.
//!
//! # Computes
//! The regions whose removal would make the network more confident in the class: Grad-CAM with
//! the gradients negated, so the feature maps that lower the class score get positive weight.
//!
//! # Equation
//! `alpha_k^c = 1/(h w) sum_ij -dS_c/dA^k_ij`; `L^c = ReLU(sum_k alpha_k^c A^k)`, upsampled
//! bilinearly to the input. Since the weights are linear in the gradient, `L^c = ReLU(-G^c) =
//! -min(0, G^c)` with `G^c = sum_k (1/(h w) sum_ij dS_c/dA^k_ij) A^k` the map of Grad-CAM before
//! its ReLU.
//!
//! # Paper
//! Selvaraju et al., *Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
//! Localization*, ICCV 2017, section "Counterfactual Explanations" (the weights of equation 1 with
//! `-dy^c/dA^k`, then equation 2).
//!
//! # Deviations
//! None from the paper. The seed text on Grad-CAM (`../shared/seeds/002_*`, note 3) proposes
//! `f(x) = min(0, x)` in place of the ReLU of ordinary Grad-CAM to see which positions most
//! suppress the class; that is this map with its sign flipped (`min(0, G) = -ReLU(-G)`), so the
//! paper's form is kept: the map is non-negative, larger where the evidence against the class is
//! stronger, and normalises and colours like every other CAM. One forward pass and one backward
//! pass to the layer; on a network ending in global average pooling and a linear layer it is
//! `ReLU(-sum_k w_k^c A^k) / (h w)`.

use crate::cam::{CamVariant, LayerData};

/// Mean negated gradient per channel (`gradcam-counterfactual`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GradCamCounterfactual;

impl CamVariant for GradCamCounterfactual {
    const NAME: &'static str = "gradcam-counterfactual";

    fn weights(&self, d: &LayerData) -> Vec<f32> {
        (0..d.channels)
            .map(|k| -d.g(k).iter().sum::<f32>() / d.positions as f32)
            .collect()
    }
}
