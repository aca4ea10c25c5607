//! What a classifier makes of a saved image: its top-1 class and the probability it gives the
//! class the image was made for. Run on the decoded PNG, so that the rounding and clipping of the
//! file are part of the test.

use crate::error::Result;
use crate::flat_features::softmax;
use burn::tensor::{Tensor, TensorData};
use deepsight_models::{Preprocess, RgbImage};
use deepsight_runtime::{Classifier, to_vec};

/// One classifier's reading of one image.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub top1: usize,
    pub top1_probability: f32,
    /// The probability of the class the image was made for (`None` for feature targets).
    pub target_probability: Option<f32>,
    /// The target's rank among all classes, 1 = top-1.
    pub target_rank: Option<usize>,
}

/// Classifies `images` (any size: `pre` resizes them) and reads off each one's `targets` entry.
pub fn judge(
    model: &dyn Classifier,
    pre: &Preprocess,
    images: &[RgbImage],
    targets: &[Option<usize>],
) -> Result<Vec<Verdict>> {
    let [h, w] = pre.size();
    let mut data: Vec<f32> = Vec::with_capacity(images.len() * 3 * h * w);
    for img in images {
        data.extend(pre.normalise(&pre.resize(img)?));
    }
    let batch = Tensor::from_data(TensorData::new(data, [images.len(), 3, h, w]), &model.device());
    let logits = to_vec(model.logits(batch)?);
    let k = model.num_classes();
    Ok(logits
        .chunks(k)
        .zip(targets)
        .map(|(row, target)| {
            let p = softmax(row);
            let top1 = (0..k).fold(0, |b, i| if row[i] > row[b] { i } else { b });
            let target = target.filter(|&t| t < k);
            Verdict {
                top1,
                top1_probability: p[top1],
                target_probability: target.map(|t| p[t]),
                target_rank: target.map(|t| 1 + row.iter().filter(|&&v| v > row[t]).count()),
            }
        })
        .collect())
}
