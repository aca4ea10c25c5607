//! `--metrics segmentation`: maps against ground-truth pixel masks, the protocol of Stalder et al.
//! 2022 (NN-Explainer's `compute_scores.py`; metrics in `deepsight_eval::segmentation`).
//!
//! Per image with a mask and per method: every ground-truth class of the image is explained, each
//! class's map is resized to the model input (bilinear, as the other metrics) and min-max
//! normalised, and the image's map `m` is their elementwise max (how the authors merge the
//! per-class maps of their baselines). `m` is scored against the union of the ground-truth
//! classes' masks (mask pixels of other classes count as background; void is ignored). The
//! classifier sees `m ⊙ x` and `1[m >= 0.5] ⊙ x`, `x` the *normalised* input, so masked pixels take
//! the normalisation's mean colour, as the authors mask their normalised images; probabilities
//! are the softmax of its logits. The class-specific IoU scores each class's own map against that
//! class's own mask.
//!
//! Masks are brought to the model input by **nearest neighbour** through the same geometry as the
//! image (resize, or resize of the shorter side then centre crop), after a nearest resize to the
//! image's size if they differ from it, so that a class value is never blended with its neighbour.
//!
//! Baselines (no explanation method), rows beside the methods: `constant-0`, `constant-0.5`,
//! `constant-1`, `intensity` (the input's grey level in `[0, 1]`, mean over channels) and
//! `perfect` (the union mask itself; each class's own mask for the class-specific IoU). They are
//! not normalised. A map holding NaN is replaced by zeros, as the authors do.

use super::dataset::Item;
use anyhow::{Context, Result, bail};
use deepsight_eval::adic::softmax;
use deepsight_eval::causal::upsample_like_torch;
use deepsight_eval::segmentation::{self as seg, Truth};
use deepsight_explain::Map;
use deepsight_models::preprocess::{Preprocess, Resize, load_rgb};
use deepsight_runtime::{Classifier, Tensor, TensorData, to_vec};
use deepsight_train::mosaic::{MaskImage, VOID, read_mask};
use serde_json::{Value, json};

/// The baseline rows, in report order.
pub const BASELINES: [&str; 5] = ["constant-0", "constant-0.5", "constant-1", "intensity", "perfect"];

/// The profile line of the report.
pub const PROFILE: &str = "segmentation `nn-explainer` (one map per ground-truth class, min-max normalised at the \
     model input, merged by max; against the union of the classes' masks, void ignored; mean F1 at 0.25/0.5/0.75, \
     mean IoU at 0.1..0.9, strict >; saliency log(max(area, 0.05)) - log sum_GT p(m*x); p(GT) on 1[m >= 0.5]*x \
     averaged over the classes; masked pixels at the mean colour; class IoU per class's own map and mask)";

/// One image's ground truth at the model's input size.
pub struct Truths {
    /// Mask values (0 background, `v` class `v - 1`, 255 void), row-major at the model input.
    values: Vec<u8>,
    /// The image's labels.
    pub labels: Vec<usize>,
}

impl Truths {
    fn of(&self, is_object: impl Fn(usize) -> bool) -> Vec<Truth> {
        self.values
            .iter()
            .map(|&v| match v {
                0 => Truth::Background,
                VOID => Truth::Void,
                v if is_object(v as usize - 1) => Truth::Object,
                _ => Truth::Background,
            })
            .collect()
    }
    /// The union of the labels' masks.
    fn union(&self) -> Vec<Truth> {
        self.of(|c| self.labels.contains(&c))
    }
    /// One class's mask.
    fn class(&self, class: usize) -> Vec<Truth> {
        self.of(|c| c == class)
    }
}

/// Nearest-neighbour resize (source index `floor((o + 0.5) * in / out)`, Pillow's `NEAREST`).
fn nearest(v: &[u8], w: usize, h: usize, ow: usize, oh: usize) -> Vec<u8> {
    let idx = |o: usize, inp: usize, out: usize| (((2 * o + 1) * inp) / (2 * out)).min(inp - 1);
    let xs: Vec<usize> = (0..ow).map(|x| idx(x, w, ow)).collect();
    (0..oh)
        .flat_map(|y| {
            let row = idx(y, h, oh) * w;
            xs.iter().map(move |&x| v[row + x])
        })
        .collect()
}

/// The mask through the pipeline's geometry, nearest neighbour (see `Preprocess::resize`).
fn to_input(mask: &MaskImage, pipeline: &Preprocess) -> Vec<u8> {
    let (w, h) = (mask.width, mask.height);
    match pipeline.resize {
        Resize::Exact { size: [oh, ow], .. } => nearest(&mask.values, w, h, ow, oh),
        Resize::ShorterThenCrop {
            shorter,
            crop: [ch, cw],
            ..
        } => {
            let (nw, nh) = if w <= h {
                (shorter, shorter * h / w)
            } else {
                (shorter * w / h, shorter)
            };
            let resized = nearest(&mask.values, w, h, nw, nh);
            let top = ((nh.saturating_sub(ch)) as f64 / 2.0).round() as usize;
            let left = ((nw.saturating_sub(cw)) as f64 / 2.0).round() as usize;
            (0..ch.min(nh))
                .flat_map(|y| resized[(top + y) * nw + left..(top + y) * nw + left + cw.min(nw)].to_vec())
                .collect()
        }
    }
}

/// The item's ground truth at the model input, `None` without a mask; its labels must be classes
/// of the model.
pub fn load_truths(item: &Item, pipeline: &Preprocess, num_classes: usize) -> Result<Option<Truths>> {
    let Some(path) = &item.mask else {
        return Ok(None);
    };
    if let Some(l) = item.labels.iter().find(|&&l| l >= num_classes) {
        bail!(
            "{}: label {l} is not a class of the model ({num_classes} classes)",
            item.name
        );
    }
    let mut mask = read_mask(path)?;
    if mask.width == 0 || mask.height == 0 {
        bail!("'{}': an empty mask", path.display());
    }
    let image = load_rgb(&item.path).with_context(|| format!("'{}'", item.path.display()))?;
    if (mask.width, mask.height) != (image.width, image.height) {
        mask = MaskImage {
            values: nearest(&mask.values, mask.width, mask.height, image.width, image.height),
            width: image.width,
            height: image.height,
        };
    }
    let values = to_input(&mask, pipeline);
    let [h, w] = pipeline.size();
    if values.len() != h * w {
        bail!(
            "'{}': the image is smaller than the model input {h}x{w}",
            item.path.display()
        );
    }
    Ok(Some(Truths {
        values,
        labels: item.labels.clone(),
    }))
}

/// A method's one-channel map of one class at the model input `[h, w]`, min-max normalised.
pub fn normalised(map: &Map, h: usize, w: usize) -> Vec<f32> {
    seg::min_max_normalise(&upsample_like_torch(map, h, w))
}

/// A baseline's image map and per-class maps. `x01` is the `[3, h, w]` input in `[0, 1]`.
pub fn baseline(name: &str, x01: &[f32], truths: &Truths) -> (Vec<f32>, Vec<Vec<f32>>) {
    let n = truths.values.len();
    let binary =
        |t: Vec<Truth>| -> Vec<f32> { t.iter().map(|t| (*t == Truth::Object) as u8 as f32).collect() };
    let same = |m: Vec<f32>| {
        let per = vec![m.clone(); truths.labels.len()];
        (m, per)
    };
    match name {
        "constant-0" => same(vec![0.0; n]),
        "constant-0.5" => same(vec![0.5; n]),
        "constant-1" => same(vec![1.0; n]),
        "intensity" => same(
            (0..n)
                .map(|i| ((x01[i] + x01[n + i] + x01[2 * n + i]) / 3.0).clamp(0.0, 1.0))
                .collect(),
        ),
        _ => (
            binary(truths.union()),
            truths.labels.iter().map(|&c| binary(truths.class(c))).collect(),
        ),
    }
}

/// `x ⊙ keep(m)`, the map broadcast over the channels: `x` is `[c, h, w]`, `m` one value per pixel
/// (`h * w` of them). `x` normalised, a masked pixel takes the normalisation's mean colour.
pub(super) fn masked(x: &[f32], m: &[f32], keep: impl Fn(f32) -> f32) -> Vec<f32> {
    let plane = m.len();
    debug_assert!(
        plane > 0 && x.len().is_multiple_of(plane),
        "the map is not one value per pixel"
    );
    x.iter()
        .enumerate()
        .map(|(i, &v)| v * keep(m[i % plane]))
        .collect()
}

/// The softmax of the model on each of `images` (`[3, h, w]` each, normalised), `batch` at a time.
pub(super) fn probabilities(
    model: &dyn Classifier,
    images: &[Vec<f32>],
    chw: [usize; 3],
    batch: usize,
) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::new();
    for chunk in images.chunks(batch.max(1)) {
        let data: Vec<f32> = chunk.iter().flatten().copied().collect();
        let t = Tensor::from_data(
            TensorData::new(data, [chunk.len(), chw[0], chw[1], chw[2]]),
            &model.device(),
        );
        let logits = to_vec(model.logits(t)?);
        out.extend(logits.chunks(model.num_classes()).map(softmax));
    }
    Ok(out)
}

/// All zeros when `m` holds a NaN (how the authors treat a map they cannot score), else `None`.
pub(super) fn without_nan(m: &[f32]) -> Option<Vec<f32>> {
    m.iter().any(|v| v.is_nan()).then(|| vec![0.0; m.len()])
}

/// Scores `maps` = (the image map, the per-class maps: one per label, in order) into the record
/// `r`; returns the forward passes run (two images). `x` is the normalised input `[3, h, w]`.
pub fn score(
    model: &dyn Classifier,
    x: &[f32],
    chw: [usize; 3],
    (merged, class_maps): (Vec<f32>, Vec<Vec<f32>>),
    truths: &Truths,
    batch: usize,
    r: &mut Value,
) -> Result<usize> {
    let mut had_nan = false;
    let mut clean = |m: Vec<f32>| match without_nan(&m) {
        Some(z) => {
            had_nan = true;
            z
        }
        None => m,
    };
    let m = clean(merged);
    let class_maps: Vec<Vec<f32>> = class_maps.into_iter().map(&mut clean).collect();
    let s = seg::scores(&m, &truths.union())?;
    let images = [masked(x, &m, |v| v), masked(x, &m, |v| (v >= 0.5) as u8 as f32)];
    let p = probabilities(model, &images, chw, batch)?;
    let labels = &truths.labels;
    let p_masked: f64 = labels.iter().map(|&c| p[0][c] as f64).sum();
    let p_thresholded = labels.iter().map(|&c| p[1][c] as f64).sum::<f64>() / labels.len() as f64;
    let area = seg::mean_area(&m);
    let class_iou = labels
        .iter()
        .zip(&class_maps)
        .map(|(&c, cm)| seg::mean_iou(cm, &truths.class(c)))
        .sum::<f64>()
        / labels.len() as f64;
    for (key, v) in [
        ("seg_soft_accuracy", json!(s.soft_accuracy)),
        ("seg_soft_f1", json!(s.soft_f1)),
        ("seg_f1", json!(s.f1)),
        ("seg_mean_f1", json!(s.mean_f1)),
        ("seg_mean_iou", json!(s.mean_iou)),
        ("seg_continuous_iou", json!(s.continuous_iou)),
        ("seg_mae", json!(s.mae)),
        ("seg_area", json!(area)),
        ("seg_p_masked", json!(p_masked)),
        ("seg_saliency", json!(seg::saliency(area, p_masked))),
        ("seg_p_thresholded", json!(p_thresholded)),
        ("seg_class_iou", json!(class_iou)),
    ] {
        r[key] = v;
    }
    if had_nan {
        r["seg_nan_map_zeroed"] = json!(true);
    }
    Ok(images.len())
}

/// The report's columns: header, record key, digits.
pub const COLUMNS: [(&str, &str); 9] = [
    ("soft accuracy", "seg_soft_accuracy"),
    ("soft F1", "seg_soft_f1"),
    ("mean F1", "seg_mean_f1"),
    ("mean IoU", "seg_mean_iou"),
    ("continuous IoU", "seg_continuous_iou"),
    ("MAE (lower)", "seg_mae"),
    ("saliency (lower)", "seg_saliency"),
    ("p(GT) on 1[m>=0.5]", "seg_p_thresholded"),
    ("class IoU", "seg_class_iou"),
];

/// The cells and JSON fields of one row: each column's mean over the records that have it.
pub fn cells(rows: &[&Value], j: &mut Value) -> Vec<String> {
    mean_cells(&COLUMNS, rows, j)
}

/// The cells of `columns` (header, record key) and their JSON fields: each key's mean over the
/// records that have it, "-" (JSON null) when none has.
pub(super) fn mean_cells(columns: &[(&str, &str)], rows: &[&Value], j: &mut Value) -> Vec<String> {
    columns
        .iter()
        .map(|(_, key)| {
            let (s, n) = rows
                .iter()
                .filter_map(|r| r[*key].as_f64())
                .fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
            let mean = (n > 0).then(|| s / n as f64);
            j[*key] = json!(mean);
            mean.map_or("-".into(), |v| format!("{v:.4}"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepsight_models::resample::Filter;

    #[test]
    fn nearest_doubles_and_halves() {
        let v = [1, 2, 3, 4];
        assert_eq!(
            nearest(&v, 2, 2, 4, 4),
            [1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4]
        );
        assert_eq!(nearest(&nearest(&v, 2, 2, 4, 4), 4, 4, 2, 2), v);
    }

    #[test]
    fn masks_follow_the_pipeline_geometry() {
        // 4x2 (w x h): the shorter side to 4 makes 8x4 (each column twice), the centre crop 4x4
        // keeps columns 2..6.
        let mask = MaskImage {
            width: 4,
            height: 2,
            values: vec![1, 2, 3, 4, 5, 6, 7, 8],
        };
        let p = Preprocess {
            resize: Resize::ShorterThenCrop {
                shorter: 4,
                crop: [4, 4],
                filter: Filter::Bilinear,
            },
            mean: [0.0; 3],
            std: [1.0; 3],
        };
        assert_eq!(
            to_input(&mask, &p),
            [2, 2, 3, 3, 2, 2, 3, 3, 6, 6, 7, 7, 6, 6, 7, 7]
        );
        let exact = Preprocess {
            resize: Resize::Exact {
                size: [2, 2],
                filter: Filter::Bicubic,
            },
            ..p
        };
        assert_eq!(to_input(&mask, &exact), [2, 4, 6, 8]);
    }

    #[test]
    fn union_and_class_truths() {
        let t = Truths {
            values: vec![0, 1, 3, 255, 6],
            labels: vec![0, 2],
        };
        use Truth::*;
        assert_eq!(t.union(), [Background, Object, Object, Void, Background]);
        assert_eq!(t.class(2), [Background, Background, Object, Void, Background]);
        let (m, per) = baseline("perfect", &[0.0; 15], &t);
        assert_eq!(m, [0.0, 1.0, 1.0, 0.0, 0.0]);
        assert_eq!(per[0], [0.0, 1.0, 0.0, 0.0, 0.0]);
        let (m, per) = baseline("intensity", &[0.3; 15], &t);
        assert!(m.iter().all(|v| (v - 0.3).abs() < 1e-6) && per.len() == 2);
    }
}
