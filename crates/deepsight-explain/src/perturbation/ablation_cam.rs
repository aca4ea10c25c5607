//! Ablation-CAM.
//!
//! # Computes
//! Where in the chosen layer's feature maps the evidence for the class lies, without gradients:
//! each feature map in turn is switched off (set to zero) and the relative drop of the class
//! score weighs that feature map.
//!
//! # Equation
//! `alpha_k^c = (S_c - S_c^k) / S_c`, where `S_c^k` is the class score with channel `k` of the
//! layer set to zero (the logit; `P_c` with `--probability`);
//! `L^c = ReLU(sum_k alpha_k^c A^k)`, upsampled bilinearly to the input.
//!
//! # Paper
//! Desai and Ramaswamy, *Ablation-CAM: Visual Explanations for Deep Convolutional Network via
//! Gradient-free Localization*, WACV 2020 (the weight `(y^c - y^c_k) / y^c`), as pytorch-grad-cam
//! 1.5 codes it (`AblationCAM` with `ratio_channels_to_ablate = 1`).
//!
//! # Deviations
//! A channel is always ablated to zero, the paper's definition. pytorch-grad-cam does the same
//! whenever the smallest activation of the layer is exactly 0 (every ReLU layer in practice), and
//! otherwise writes `min - 1e7` into the channel. A channel that is already all zeros is not run:
//! ablating it changes nothing, so its weight is exactly 0. A class score of exactly 0 (weights
//! undefined) is refused. Passes: one forward per image to read the layer and its score, and one
//! per non-zero channel per image (batched, `batch_size` images per forward). An ablated pass
//! resumes from the layer (the runtime's `resume`): only the layers after it run, on the kept
//! upstream values, so for the last feature map it costs the head alone; pytorch-grad-cam re-runs
//! the whole network. Those passes are still counted as forward passes.

use super::{check_request, score_of, weighted_sum};
use crate::{ExplainError, Explainer, Explanation, Map, Passes, Progress, Request, Result};
use deepsight_runtime::{LayeredClassifier, Resume, Tensor, TensorData, to_vec};

const NAME: &str = "ablationcam";

/// Ablation-CAM (`ablationcam`).
#[derive(Debug, Clone, PartialEq)]
pub struct AblationCam {
    /// Ablated copies per forward pass (pytorch-grad-cam's `batch_size`).
    pub batch_size: usize,
    pub progress: Progress,
}

impl Default for AblationCam {
    fn default() -> Self {
        AblationCam {
            batch_size: 16,
            progress: Progress::default(),
        }
    }
}

impl AblationCam {
    /// The class score of every image with each channel of `layer` ablated, `[image][channel]`,
    /// and the forward passes run, given the layer's activation (`[N, k, h, w]`, flat) and the
    /// unablated scores. Channels that are all zeros keep `original` (nothing changes).
    pub fn ablated_scores(
        &self,
        resume: &Resume,
        request: &Request,
        activation: &[f32],
        [k, h, w]: [usize; 3],
        original: &[f32],
    ) -> Result<(Vec<Vec<f32>>, usize)> {
        let n = request.images.dims()[0];
        let plane = h * w;
        if self.batch_size == 0 || activation.len() != n * k * plane || original.len() != n {
            return Err(ExplainError::Invalid {
                method: NAME,
                reason: format!(
                    "needs batch size >= 1, an activation of {n}x{k}x{h}x{w} values and {n} scores"
                ),
            });
        }
        let jobs: Vec<(usize, usize)> = (0..n)
            .flat_map(|i| (0..k).map(move |ch| (i, ch)))
            .filter(|&(i, ch)| {
                activation[(i * k + ch) * plane..(i * k + ch + 1) * plane]
                    .iter()
                    .any(|&v| v != 0.0)
            })
            .collect();
        let mut scores: Vec<Vec<f32>> = original.iter().map(|&s| vec![s; k]).collect();
        let total = jobs.len();
        self.progress.report(0, total)?;
        let device = request.images.device();
        for (b, batch) in jobs.chunks(self.batch_size).enumerate() {
            let mut values = Vec::with_capacity(batch.len() * k * plane);
            for &(i, ch) in batch {
                let start = values.len();
                values.extend_from_slice(&activation[i * k * plane..(i + 1) * k * plane]);
                values[start + ch * plane..start + (ch + 1) * plane].fill(0.0);
            }
            let values = Tensor::from_data(TensorData::new(values, [batch.len(), k, h, w]), &device);
            let images: Vec<usize> = batch.iter().map(|&(i, _)| i).collect();
            let logits = to_vec(resume.logits_with(&images, values)?);
            let classes = logits.len() / batch.len();
            for (&(i, ch), row) in batch.iter().zip(logits.chunks(classes)) {
                scores[i][ch] = score_of(row, request.classes[i], request.score);
            }
            self.progress
                .report((b * self.batch_size + batch.len()).min(total), total)?;
        }
        Ok((scores, total))
    }
}

impl Explainer for AblationCam {
    fn name(&self) -> &'static str {
        NAME
    }

    fn explain(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<Explanation> {
        check_request(model, request, NAME, self.batch_size)?;
        let layer = request.layer_of(model, NAME)?;
        let [n, _, height, width] = request.images.dims();
        let resume = model.resume(request.images.clone(), &layer)?;
        let activation = resume.activation();
        let [_, k, h, w] = activation.dims();
        let a = to_vec(activation);
        let logits = to_vec(resume.logits());
        let original: Vec<f32> = logits
            .chunks(model.num_classes())
            .zip(&request.classes)
            .map(|(row, &class)| score_of(row, class, request.score))
            .collect();
        if let Some(i) = original.iter().position(|&s| s == 0.0 || !s.is_finite()) {
            return Err(ExplainError::Invalid {
                method: NAME,
                reason: format!(
                    "image {i}: the class score is {}, so the relative drop is undefined",
                    original[i]
                ),
            });
        }
        let (ablated, runs) = self.ablated_scores(&resume, request, &a, [k, h, w], &original)?;
        let plane = h * w;
        let raw: Vec<Map> = (0..n)
            .map(|i| {
                let weights: Vec<f32> = ablated[i]
                    .iter()
                    .map(|s| (original[i] - s) / original[i])
                    .collect();
                weighted_sum(&a[i * k * plane..(i + 1) * k * plane], &weights, [h, w])
            })
            .collect();
        Ok(Explanation {
            maps: raw.iter().map(|m| m.resize(height, width)).collect(),
            raw: Some(raw),
            passes: Passes {
                forward: n + runs,
                backward: 0,
            },
            extra: Vec::new(),
        })
    }
}
