//! Deletion and insertion (Petsiuk et al. 2018), `../shared/docs/METHODS.md` section F.
//!
//! **Profile `rise`**: the RISE authors' `CausalMetric`, exactly as `causal_metric` in
//! `../shared/fixtures/generate_fixtures.py` runs it:
//! - The image is one `[3, H, W]` image *in the model's input space* (already normalised), as
//!   the RISE code works; the map is resized bilinearly (half-pixel centres, `align_corners=False`)
//!   to `H x W`, raw (no normalisation: only the order counts). The resize is
//!   [`upsample_like_torch`]: PyTorch's CPU arithmetic reproduced to the bit, because the order of
//!   near-equal values decides which pixels go first, and `deepsight_explain::Map::resize` (same
//!   formula, other rounding) differs from it by an ulp on a third of the pixels: enough to swap
//!   pixels across a step boundary and move a curve point by up to 2e-3 on the fixtures.
//! - Pixels are ordered by decreasing saliency with a **stable** sort: equal values keep
//!   row-major order, the lower flat index `y * W + x` first (NumPy's
//!   `argsort(-sal, kind="stable")`; `-0.0` and `0.0` are equal).
//! - `n = ceil(H W / step)` steps, `n + 1` scores: the score before any step, then after each
//!   step, which replaces the next `step` pixels of the order (all three channels; the last step
//!   may hold fewer). The default step is the image width (224 at 224x224: 224 steps, 225 points).
//! - Deletion: from the image towards zeros in input space (the normalised value 0).
//!   Insertion: from a Gaussian blur of the image (kernel 11x11, sigma 5, weights
//!   `g = exp(-r^2 / 50)`, `r = -5..=5`, normalised to sum 1, the 2-D kernel the outer product
//!   `g g^T`, each channel on its own, **zero padding** of 5 in input space, as `F.conv2d`) towards
//!   the image.
//! - Score = softmax probability (`f32`) of `class` (the clean top-1 when the evaluate command
//!   chooses it).
//! - `AUC = (sum s - s_0/2 - s_n/2) / n`, the trapezoid rule on `[0, 1]`, summed in `f64`.
//!
//! Choices where METHODS.md is silent: maps must be one-channel and finite (NaN or infinity is
//! refused with [`EvalError::Invalid`](crate::EvalError::Invalid) naming the metric); `step` and
//! `batch_size` must be at least 1. A constant map orders the pixels row-major. Forward passes
//! are counted per image: `n + 1` for one curve.

use crate::Result;
use crate::adic::{check_classes, check_map, class_probabilities, invalid};
use deepsight_explain::Map;
use deepsight_runtime::Classifier;

/// Deletion (remove the most salient pixels first) or insertion (add them first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CausalMode {
    Deletion,
    Insertion,
}

impl CausalMode {
    /// The metric's name, for messages and reports.
    pub fn name(self) -> &'static str {
        match self {
            CausalMode::Deletion => "deletion",
            CausalMode::Insertion => "insertion",
        }
    }
}

/// The scores after 0, 1, ..., n steps, and the area under them.
#[derive(Debug, Clone, PartialEq)]
pub struct CausalCurve {
    pub scores: Vec<f32>,
    pub auc: f32,
}

/// One image's deletion or insertion curve and the forward passes run (`n + 1`).
///
/// `image`: `[3, H, W]` in the model's input space; `dims` = `[3, H, W]`; `map`: one-channel, any
/// resolution (resized to `H x W` inside); `step`: pixels per step; forwards are batched by
/// `batch_size` images. See the module doc.
#[allow(clippy::too_many_arguments)]
pub fn causal_curve(
    model: &dyn Classifier,
    image: &[f32],
    dims: [usize; 3],
    map: &Map,
    class: usize,
    mode: CausalMode,
    step: usize,
    batch_size: usize,
) -> Result<(CausalCurve, usize)> {
    let metric = mode.name();
    let [c, h, w] = dims;
    if c == 0 || h == 0 || w == 0 {
        return Err(invalid(metric, format!("empty image dims {dims:?}")));
    }
    if image.len() != c * h * w {
        return Err(invalid(
            metric,
            format!("{} image values for dims {dims:?}", image.len()),
        ));
    }
    if step == 0 || batch_size == 0 {
        return Err(invalid(
            metric,
            format!("step ({step}) and batch size ({batch_size}) must be at least 1"),
        ));
    }
    check_map(metric, map)?;
    check_classes(metric, model, &[class])?;

    let order = saliency_order(&upsample_like_torch(map, h, w));
    let hw = h * w;
    let steps = hw.div_ceil(step);
    let (mut cur, finish) = match mode {
        CausalMode::Deletion => (image.to_vec(), vec![0.0; image.len()]),
        CausalMode::Insertion => (blur(image, dims), image.to_vec()),
    };

    let mut scores = Vec::with_capacity(steps + 1);
    let mut batch: Vec<f32> = Vec::with_capacity(batch_size.min(steps + 1) * image.len());
    let mut queued = 0;
    for s in 0..=steps {
        batch.extend_from_slice(&cur);
        queued += 1;
        if queued == batch_size || s == steps {
            let probs = class_probabilities(
                model,
                std::mem::take(&mut batch),
                [queued, c, h, w],
                &vec![class; queued],
            )?;
            scores.extend(probs);
            queued = 0;
        }
        if s < steps {
            for &p in &order[s * step..((s + 1) * step).min(hw)] {
                for ch in 0..c {
                    cur[ch * hw + p] = finish[ch * hw + p];
                }
            }
        }
    }
    let auc = auc(&scores);
    Ok((CausalCurve { scores, auc }, steps + 1))
}

/// `(sum s - s_0/2 - s_n/2) / n` over the `n + 1` scores, in `f64`; 0 for fewer than 2 scores.
pub fn auc(scores: &[f32]) -> f32 {
    if scores.len() < 2 {
        return 0.0;
    }
    let sum: f64 = scores.iter().map(|&v| v as f64).sum();
    let (first, last) = (scores[0] as f64, scores[scores.len() - 1] as f64);
    ((sum - first / 2.0 - last / 2.0) / (scores.len() - 1) as f64) as f32
}

/// PyTorch's `F.interpolate(x, size, mode="bilinear", align_corners=False)` of a one-channel
/// `float32` map on the CPU, bit for bit (checked against the fixtures' `guided_gradcam`, which is
/// `guided_backprop` times this upsampling of `gradcam_raw`: 0 of 36864 products differ for the
/// tiny nets, 0 of 903168 for Lite0). Of a map with more channels, the first is used; an empty map
/// gives zeros.
///
/// PyTorch picks one of two kernels, with different roundings. Source positions are
/// `src = max(scale * (o + 0.5) - 0.5, 0)` with `scale = in / out` in `f32` (computed fused),
/// `i0 = floor(src)`, `i1 = min(i0 + 1, in - 1)`, `l1 = src - i0`, `l0 = 1 - l1`; corners
/// `a = (y0, x0)`, `b = (y0, x1)`, `c = (y1, x0)`, `d = (y1, x1)`:
/// - output `height + width <= 128`: the channels-last kernel,
///   `fma(d, w11, fma(c, w10, fma(a, w00, b * w01)))` with `w00 = l0y * l0x`, `w01 = l0y * l1x`,
///   `w10 = l1y * l0x`, `w11 = l1y * l1x`;
/// - otherwise the generic separable kernel, `fma(t0, l0y, t1 * l1y)` with rows
///   `t0 = fma(a, l0x, b * l1x)`, `t1 = fma(c, l0x, d * l1x)`.
///
/// The weights are exact at the fixtures' integer scale factors (4, 8, 32); at other scales the
/// fused source position is a guess of the compiler's contraction and may differ by an ulp.
pub fn upsample_like_torch(map: &Map, height: usize, width: usize) -> Vec<f32> {
    let (ih, iw) = (map.height, map.width);
    if ih == 0 || iw == 0 || map.data.len() < ih * iw {
        return vec![0.0; height * width];
    }
    let axis = |inp: usize, out: usize| -> Vec<(usize, usize, f32, f32)> {
        let scale = inp as f32 / out as f32;
        (0..out)
            .map(|o| {
                let src = scale.mul_add(o as f32 + 0.5, -0.5).max(0.0);
                let i0 = (src as usize).min(inp - 1);
                let i1 = if i0 + 1 < inp { i0 + 1 } else { i0 };
                let l1 = (src - i0 as f32).clamp(0.0, 1.0);
                (i0, i1, 1.0 - l1, l1)
            })
            .collect()
    };
    let (ys, xs) = (axis(ih, height), axis(iw, width));
    let channels_last = height + width <= 128;
    let at = |y: usize, x: usize| map.data[y * iw + x];
    let mut out = Vec::with_capacity(height * width);
    for &(y0, y1, h0, h1) in &ys {
        for &(x0, x1, w0, w1) in &xs {
            let (a, b, c, d) = (at(y0, x0), at(y0, x1), at(y1, x0), at(y1, x1));
            out.push(if channels_last {
                let (w00, w01, w10, w11) = (h0 * w0, h0 * w1, h1 * w0, h1 * w1);
                d.mul_add(w11, c.mul_add(w10, a.mul_add(w00, b * w01)))
            } else {
                let t0 = a.mul_add(w0, b * w1);
                let t1 = c.mul_add(w0, d * w1);
                t0.mul_add(h0, t1 * h1)
            });
        }
    }
    out
}

/// Flat indices by decreasing value, stable: ties keep the lower index first.
pub fn saliency_order(values: &[f32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    // `total_cmp` would put -0.0 after 0.0; NumPy treats them as equal.
    order.sort_by(|&a, &b| {
        values[b]
            .partial_cmp(&values[a])
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    order
}

/// The RISE insertion substrate: an 11x11 Gaussian blur (sigma 5) of each channel with zero
/// padding, as `F.conv2d(x, g g^T, padding=5, groups=3)`.
pub(crate) fn blur(image: &[f32], [c, h, w]: [usize; 3]) -> Vec<f32> {
    const K: usize = 11;
    const R: isize = 5;
    let g: Vec<f32> = (0..K)
        .map(|i| {
            let r = i as f32 - 5.0;
            (-(r * r) / 50.0).exp()
        })
        .collect();
    let sum: f32 = g.iter().sum();
    let g: Vec<f32> = g.iter().map(|v| v / sum).collect();
    let mut out = vec![0.0f32; c * h * w];
    for ch in 0..c {
        let plane = &image[ch * h * w..(ch + 1) * h * w];
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0.0f32;
                for (i, gi) in g.iter().enumerate() {
                    let yy = y as isize + i as isize - R;
                    if yy < 0 || yy >= h as isize {
                        continue;
                    }
                    let row = &plane[yy as usize * w..(yy as usize + 1) * w];
                    for (j, gj) in g.iter().enumerate() {
                        let xx = x as isize + j as isize - R;
                        if xx < 0 || xx >= w as isize {
                            continue;
                        }
                        acc += gi * gj * row[xx as usize];
                    }
                }
                out[ch * h * w + y * w + x] = acc;
            }
        }
    }
    out
}
