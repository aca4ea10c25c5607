//! Score-CAM.
//!
//! # Computes
//! Where in the chosen layer's feature maps the evidence for the class lies, without gradients:
//! each feature map, upsampled and scaled to [0, 1], masks the image; the class score of each
//! masked image says how much that feature map's region supports the class.
//!
//! # Equation
//! `H^k = (U(A^k) - min U(A^k)) / (max U(A^k) - min U(A^k) + 1e-8)` with `U` bilinear upsampling
//! to the input (corner-aligned); `s_k = S_c(I * H^k)` (the logit; `P_c` with `--probability`);
//! `alpha^c = softmax_k(s_k)`; `L^c = ReLU(sum_k alpha_k^c A^k)`, upsampled bilinearly to the input.
//!
//! # Paper
//! Wang et al., *Score-CAM: Score-Weighted Visual Explanations for Convolutional Neural
//! Networks*, CVPR Workshops 2020 (the channel-wise increase of confidence as weights), as
//! pytorch-grad-cam 1.5 codes it (`ScoreCAM`).
//!
//! # Deviations
//! The paper's baseline subtraction `S_c(I * H^k) - S_c(X_b)` is left out, as in
//! pytorch-grad-cam: a softmax over channels does not change when every score shifts by the same
//! amount. Upsampling is `align_corners=True` bilinear (pytorch-grad-cam's `UpsamplingBilinear2d`)
//! for the masks and half-pixel bilinear for the returned map, like the other CAMs.
//! A channel whose upsampled map is constant (a dead channel: all zeros) gives the all-zero mask,
//! so its score is the score of the all-zero input: that one forward pass is run once per request
//! and reused, which is exact. pytorch-grad-cam runs every channel; for a constant *non-zero*
//! channel its upsampling's float rounding may leave differences of one ulp, which its
//! `/ (max - min + 1e-8)` blows up into a noise mask, where the equation gives the zero mask used
//! here (every constant channel of the fixtures is zero). Passes: one forward per image to read
//! the layer, one per non-constant channel per image (batched, `batch_size` images per forward),
//! and one for the zero image when any channel is constant.

use super::{check_request, logits_rows, score_of, softmax, weighted_sum};
use crate::{ExplainError, Explainer, Explanation, Map, Passes, Progress, Request, Result};
use deepsight_runtime::{LayeredClassifier, to_vec};

const NAME: &str = "scorecam";

/// Score-CAM (`scorecam`).
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreCam {
    /// Masked images per forward pass (pytorch-grad-cam's `batch_size`).
    pub batch_size: usize,
    pub progress: Progress,
}

impl Default for ScoreCam {
    fn default() -> Self {
        ScoreCam {
            batch_size: 16,
            progress: Progress::default(),
        }
    }
}

/// Bilinear upsampling with corner-aligned grids (`align_corners=True`), written as
/// `a + (b - a) t` so that a constant map stays exactly constant.
#[derive(Debug, Clone)]
pub struct CornerUpsample {
    rows: Vec<(usize, usize, f32)>,
    cols: Vec<(usize, usize, f32)>,
    width: usize,
}

impl CornerUpsample {
    /// From `[h, w]` to `[height, width]`.
    pub fn new([h, w]: [usize; 2], [height, width]: [usize; 2]) -> CornerUpsample {
        let axis = |out: usize, inp: usize| -> Vec<(usize, usize, f32)> {
            let scale = if out > 1 {
                (inp - 1) as f32 / (out - 1) as f32
            } else {
                0.0
            };
            (0..out)
                .map(|o| {
                    let src = scale * o as f32;
                    let i0 = (src.floor() as usize).min(inp - 1);
                    let i1 = (i0 + 1).min(inp - 1);
                    (i0, i1, (src - i0 as f32).clamp(0.0, 1.0))
                })
                .collect()
        };
        CornerUpsample {
            rows: axis(height, h),
            cols: axis(width, w),
            width: w,
        }
    }

    /// One `[h * w]` plane upsampled, `[height * width]`.
    pub fn plane(&self, p: &[f32]) -> Vec<f32> {
        let mut out = Vec::with_capacity(self.rows.len() * self.cols.len());
        let lerp = |a: f32, b: f32, t: f32| a + (b - a) * t;
        for &(y0, y1, fy) in &self.rows {
            let (r0, r1) = (&p[y0 * self.width..], &p[y1 * self.width..]);
            for &(x0, x1, fx) in &self.cols {
                out.push(lerp(lerp(r0[x0], r0[x1], fx), lerp(r1[x0], r1[x1], fx), fy));
            }
        }
        out
    }

    /// The Score-CAM mask of a plane, `(u - min) / (max - min + 1e-8)`, or `None` where it is
    /// all zeros (the upsampled plane is constant).
    pub fn mask(&self, p: &[f32]) -> Option<Vec<f32>> {
        if p.iter().all(|&v| v == p[0]) {
            return None;
        }
        let mut u = self.plane(p);
        let (lo, hi) = u.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
            (a.min(v), b.max(v))
        });
        if hi == lo {
            return None;
        }
        u.iter_mut().for_each(|v| *v = (*v - lo) / (hi - lo + 1e-8));
        Some(u)
    }
}

impl Explainer for ScoreCam {
    fn name(&self) -> &'static str {
        NAME
    }

    fn explain(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<Explanation> {
        check_request(model, request, NAME, self.batch_size)?;
        let layer = request.layer_of(model, NAME)?;
        let [n, c, height, width] = request.images.dims();
        let capture = model.capture(request.images.clone(), &[&layer], false)?;
        let activation = capture
            .activations
            .get(&layer)
            .cloned()
            .ok_or(ExplainError::Invalid {
                method: NAME,
                reason: format!("the model did not return layer '{layer}'"),
            })?;
        let [_, k, h, w] = activation.dims();
        let (plane, image) = (h * w, c * height * width);
        let a = to_vec(activation);
        let pixels = to_vec(request.images.clone());
        let up = CornerUpsample::new([h, w], [height, width]);
        // Every (image, channel) whose mask is not all zeros needs a pass of its own.
        let jobs: Vec<(usize, usize)> = (0..n)
            .flat_map(|i| (0..k).map(move |ch| (i, ch)))
            .filter(|&(i, ch)| {
                let p = &a[(i * k + ch) * plane..(i * k + ch + 1) * plane];
                up.mask(p).is_some()
            })
            .collect();
        let zero_masks = n * k - jobs.len();
        let mut scores = vec![vec![0.0f32; k]; n];
        let mut passes = Passes {
            forward: n,
            backward: 0,
        };
        if zero_masks > 0 {
            let row = &logits_rows(model, vec![0.0; image], [1, c, height, width])?[0];
            passes.forward += 1;
            for (i, s) in scores.iter_mut().enumerate() {
                s.fill(score_of(row, request.classes[i], request.score));
            }
        }
        let total = jobs.len();
        self.progress.report(0, total)?;
        for (b, batch) in jobs.chunks(self.batch_size).enumerate() {
            let mut data = Vec::with_capacity(batch.len() * image);
            for &(i, ch) in batch {
                let p = &a[(i * k + ch) * plane..(i * k + ch + 1) * plane];
                let mask = up.mask(p).unwrap_or_else(|| vec![0.0; height * width]);
                for colour in pixels[i * image..(i + 1) * image].chunks(height * width) {
                    data.extend(colour.iter().zip(&mask).map(|(x, m)| x * m));
                }
            }
            let rows = logits_rows(model, data, [batch.len(), c, height, width])?;
            for (&(i, ch), row) in batch.iter().zip(&rows) {
                scores[i][ch] = score_of(row, request.classes[i], request.score);
            }
            passes.forward += batch.len();
            self.progress
                .report((b * self.batch_size + batch.len()).min(total), total)?;
        }
        let raw: Vec<Map> = scores
            .iter()
            .enumerate()
            .map(|(i, s)| weighted_sum(&a[i * k * plane..(i + 1) * k * plane], &softmax(s), [h, w]))
            .collect();
        Ok(Explanation {
            maps: raw.iter().map(|m| m.resize(height, width)).collect(),
            raw: Some(raw),
            passes,
            extra: Vec::new(),
        })
    }
}
