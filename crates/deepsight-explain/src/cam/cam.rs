//! CAM: the class activation map of a network that ends in global average pooling and a linear
//! classifier.
//!
//! # Computes
//! The classifier's own evidence for the class at each position of the last feature maps: the
//! feature maps weighted by the class's weights in the final linear layer.
//!
//! # Equation
//! `M_c = sum_k w_k^c A^k`, where `S_c = sum_k w_k^c GAP(A^k) + b_c`. DeepSight reads `w_k^c` as
//! `sum_ij dS_c/dA^k_ij`, which equals it exactly on such a head (one backward pass to the layer).
//!
//! # Paper
//! Zhou et al., *Learning Deep Features for Discriminative Localization*, CVPR 2016.
//!
//! # Deviations
//! Refused (with a message) unless the layer feeds a global average pooling whose only path to the
//! scores is one linear layer (identity / flatten nodes allowed): elsewhere the gradient is not the
//! classifier's weight and the result would not be CAM. The map is not rectified (CAM keeps
//! negative evidence); it is upsampled like the others.

use crate::cam::{CamVariant, LayerData};
use crate::{ExplainError, Result};
use deepsight_runtime::LayeredClassifier;

/// CAM (`cam`).
#[derive(Debug, Clone, Copy, Default)]
pub struct ClassActivationMap;

impl CamVariant for ClassActivationMap {
    const NAME: &'static str = "cam";
    const RELU: bool = false;

    fn weights(&self, d: &LayerData) -> Vec<f32> {
        (0..d.channels).map(|k| d.g(k).iter().sum()).collect()
    }

    fn check(&self, model: &dyn LayeredClassifier, layer: &str) -> Result<()> {
        let layers = model.layers();
        let refuse = |why: String| ExplainError::Invalid {
            method: "cam",
            reason: format!("{why}; CAM needs global average pooling then one linear layer (use gradcam)"),
        };
        let start = layers
            .iter()
            .position(|l| l.name == layer)
            .ok_or_else(|| refuse(format!("no layer '{layer}'")))?;
        let tail = &layers[start + 1..];
        let mut expect_input = layer.to_string();
        let mut seen_pool = false;
        for (i, l) in tail.iter().enumerate() {
            if l.inputs != [expect_input.clone()] {
                return Err(refuse(format!(
                    "'{}' does not only read '{expect_input}'",
                    l.name
                )));
            }
            match l.op {
                "GlobalAvgPool" if !seen_pool => seen_pool = true,
                "Identity" | "Flatten" if seen_pool => {}
                "Linear" if seen_pool && i == tail.len() - 1 => return Ok(()),
                op => return Err(refuse(format!("'{}' ({op}) follows layer '{layer}'", l.name))),
            }
            expect_input = l.name.clone();
        }
        Err(refuse(format!("nothing after '{layer}' gives the scores")))
    }
}
