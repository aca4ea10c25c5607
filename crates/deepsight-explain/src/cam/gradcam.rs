//! Grad-CAM.
//!
//! # Computes
//! Where in the chosen layer's feature maps the evidence for the class lies: the feature maps
//! weighted by how much the class score depends on each, summed, positive part.
//!
//! # Equation
//! `alpha_k^c = 1/(h w) sum_ij dS_c/dA^k_ij`; `L^c = ReLU(sum_k alpha_k^c A^k)`, upsampled
//! bilinearly to the input.
//!
//! # Paper
//! Selvaraju et al., *Grad-CAM: Visual Explanations from Deep Networks via Gradient-based
//! Localization*, ICCV 2017, equations 1-2.
//!
//! # Deviations
//! None. On a network ending in global average pooling and a linear layer it equals CAM (Zhou et
//! al. 2016) up to the factor `1/(h w)`. One forward pass and one backward pass to the layer.

use crate::cam::{CamVariant, LayerData};

/// Mean gradient per channel (`gradcam`).
#[derive(Debug, Clone, Copy, Default)]
pub struct GradCam;

impl CamVariant for GradCam {
    const NAME: &'static str = "gradcam";

    fn weights(&self, d: &LayerData) -> Vec<f32> {
        (0..d.channels)
            .map(|k| d.g(k).iter().sum::<f32>() / d.positions as f32)
            .collect()
    }
}
