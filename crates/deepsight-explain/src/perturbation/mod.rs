//! Perturbation methods: no gradients, many forward passes, made fast by doing less work
//! (incremental inference for occlusion, shared masks for RISE, skipped channels for Score-CAM).

pub mod ablation_cam;
pub mod occlusion;
pub mod rise;
pub mod score_cam;

use crate::{Map, Request, Result, Score};
use deepsight_runtime::{Classifier, RuntimeError, Tensor, TensorData, to_vec};

/// Refuses a zero batch size and a target list that does not fit the batch or the model's classes.
pub(crate) fn check_request(
    model: &dyn Classifier,
    request: &Request,
    method: &'static str,
    batch_size: usize,
) -> Result<()> {
    if batch_size == 0 {
        return Err(crate::ExplainError::Invalid {
            method,
            reason: "the batch size must be at least 1".into(),
        });
    }
    check_classes(model, request)
}

/// Refuses a target list that does not fit the batch or the model's classes.
pub(crate) fn check_classes(model: &dyn Classifier, request: &Request) -> Result<()> {
    let batch = request.images.dims()[0];
    if request.classes.len() != batch {
        return Err(RuntimeError::BatchMismatch {
            what: "target classes",
            got: request.classes.len(),
            batch,
        }
        .into());
    }
    let num_classes = model.num_classes();
    match request.classes.iter().find(|&&c| c >= num_classes) {
        Some(&index) => Err(RuntimeError::ClassIndex { index, num_classes }.into()),
        None => Ok(()),
    }
}

/// `softmax(x)`, computed as PyTorch does (shifted by the maximum).
pub fn softmax(x: &[f32]) -> Vec<f32> {
    let m = x.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = x.iter().map(|v| (v - m).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.iter().map(|v| v / sum).collect()
}

/// The explained score of `class` in one row of logits.
pub(crate) fn score_of(logits: &[f32], class: usize, score: Score) -> f32 {
    match score {
        Score::Logit => logits[class],
        Score::Probability => softmax(logits)[class],
    }
}

/// Logits of `images` (`count` images of `dims`, flat) as rows.
pub(crate) fn logits_rows(model: &dyn Classifier, data: Vec<f32>, dims: [usize; 4]) -> Result<Vec<Vec<f32>>> {
    let images = Tensor::from_data(TensorData::new(data, dims), &model.device());
    let k = model.num_classes();
    Ok(to_vec(model.logits(images)?)
        .chunks(k)
        .map(<[f32]>::to_vec)
        .collect())
}

/// `L = ReLU(sum_k w_k A^k)` at the layer's resolution.
pub(crate) fn weighted_sum(a: &[f32], weights: &[f32], [h, w]: [usize; 2]) -> Map {
    let plane = h * w;
    let mut data = vec![0.0f32; plane];
    for (k, wk) in weights.iter().enumerate() {
        for (m, v) in data.iter_mut().zip(&a[k * plane..(k + 1) * plane]) {
            *m += wk * v;
        }
    }
    Map {
        channels: 1,
        height: h,
        width: w,
        data,
    }
    .relu()
}
