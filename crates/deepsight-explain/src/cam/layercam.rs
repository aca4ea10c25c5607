//! LayerCAM.
//!
//! # Computes
//! A map with a weight per position, not per channel: each activation weighted by its own positive
//! gradient, which keeps fine detail at shallow layers.
//!
//! # Equation
//! `L = ReLU(sum_k ReLU(dS_c/dA^k) * A^k)` (elementwise).
//!
//! # Paper
//! Jiang et al., *LayerCAM: Exploring Hierarchical Class Activation Maps for Localization*, IEEE
//! TIP 2021.
//!
//! # Deviations
//! None (pytorch-grad-cam's `LayerCAM`).

use crate::cam::{CamVariant, LayerData};

/// LayerCAM (`layercam`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LayerCam;

impl CamVariant for LayerCam {
    const NAME: &'static str = "layercam";

    fn weights(&self, d: &LayerData) -> Vec<f32> {
        vec![1.0; d.channels]
    }

    fn combine(&self, d: &LayerData) -> Vec<f32> {
        let mut map = vec![0.0f32; d.positions];
        for k in 0..d.channels {
            for ((m, a), g) in map.iter_mut().zip(d.a(k)).zip(d.g(k)) {
                *m += g.max(0.0) * a;
            }
        }
        map
    }
}
