//! L-CAM's training loss (Gkartzonika et al. 2022; bmezaris/L-CAM, identical in TAME):
//!
//! `L = λ_ce CE(f(masked), y) + λ_area mean((M + 0.0005)^p) + λ_tv TV(M)`, with
//! `λ_ce = 1.5, λ_area = 2, p = 0.3, λ_tv = 0.01` and
//! `TV(M) = [Σ (M[i+1,j] - M[i,j])² + Σ (M[i,j+1] - M[i,j])²
//!          + 0.3 Σ (M[last row]² + M[first row]² + M[last col]² + M[first col]²)] / (2B)`,
//! where `M` are the sigmoid class maps at the layer's resolution (not upsampled) and `B` is the
//! batch size.

use burn::tensor::activation::log_softmax;
use deepsight_runtime::{Int, Tensor, TensorData};

/// Which maps the area and smoothness terms see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MaskPairing {
    /// Each image's map of its own label, `B x 1 x h x w` (what the paper's text describes).
    OwnLabel,
    /// The reference code's `get_a(labels)`: every image's maps of *all* the batch's labels,
    /// `B x B x h x w` (default). The regulariser then also pushes down each label's map on the
    /// batch's other images, so every class row also learns from negatives; measured better on
    /// held-out AD/IC for Lite0 (BENCHMARKS.md).
    #[default]
    BatchLabels,
}

/// The coefficients (the authors' defaults; TAME names them λ1..λ4).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LcamLoss {
    pub ce: f32,
    pub area: f32,
    pub area_power: f32,
    pub area_epsilon: f32,
    pub tv: f32,
    pub tv_border: f32,
    pub pairing: MaskPairing,
}

impl Default for LcamLoss {
    fn default() -> Self {
        LcamLoss {
            ce: 1.5,
            area: 2.0,
            area_power: 0.3,
            area_epsilon: 0.0005,
            tv: 0.01,
            tv_border: 0.3,
            pairing: MaskPairing::BatchLabels,
        }
    }
}

/// The loss terms of one batch, unweighted, and their weighted sum (all scalar tensors `[1]`,
/// on the tape).
#[derive(Debug, Clone)]
pub struct LossTerms {
    pub ce: Tensor<1>,
    pub area: Tensor<1>,
    pub tv: Tensor<1>,
    pub total: Tensor<1>,
}

/// Mean cross-entropy of `logits` `[B, K]` against `labels`.
pub fn cross_entropy(logits: Tensor<2>, labels: &[usize]) -> Tensor<1> {
    let [b, _] = logits.dims();
    let device = logits.device();
    let index = Tensor::<2, Int>::from_data(
        TensorData::new(labels.iter().map(|&l| l as i64).collect::<Vec<_>>(), [b, 1]),
        &device,
    );
    log_softmax(logits, 1).gather(1, index).mean().neg()
}

/// `mean((M + epsilon)^power)` over every value.
pub fn area(masks: Tensor<4>, epsilon: f32, power: f32) -> Tensor<1> {
    (masks + epsilon).powf_scalar(power).mean()
}

/// The reference total variation with its border penalty, divided by `2 * batch`.
pub fn total_variation(masks: Tensor<4>, border: f32, batch: usize) -> Tensor<1> {
    let [_, _, h, w] = masks.dims();
    let dy = masks.clone().narrow(2, 1, h - 1) - masks.clone().narrow(2, 0, h - 1);
    let dx = masks.clone().narrow(3, 1, w - 1) - masks.clone().narrow(3, 0, w - 1);
    let sq = |t: Tensor<4>| t.powf_scalar(2.0).sum();
    let edges = sq(masks.clone().narrow(2, h - 1, 1))
        + sq(masks.clone().narrow(2, 0, 1))
        + sq(masks.clone().narrow(3, w - 1, 1))
        + sq(masks.narrow(3, 0, 1));
    (sq(dy) + sq(dx) + edges * border) / (2.0 * batch as f32)
}

impl LcamLoss {
    /// The terms for the classifier's `logits` of the masked inputs and the sigmoid `masks`
    /// (`[B, 1, h, w]` or `[B, B, h, w]`, as [`MaskPairing`] says).
    pub fn terms(&self, logits: Tensor<2>, labels: &[usize], masks: Tensor<4>) -> LossTerms {
        let batch = labels.len();
        let ce = cross_entropy(logits, labels);
        let area = area(masks.clone(), self.area_epsilon, self.area_power);
        let tv = total_variation(masks, self.tv_border, batch);
        let total = ce.clone() * self.ce + area.clone() * self.area + tv.clone() * self.tv;
        LossTerms { ce, area, tv, total }
    }
}
