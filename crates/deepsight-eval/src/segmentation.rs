//! Maps against ground-truth pixel masks: the metrics of Stalder et al. 2022 ("What You See is
//! What You Classify", NN-Explainer, `src/evaluation/eval_utils/assessment_metrics.py` and
//! `compute_scores.py`; `../shared/docs/TRAINED-METHODS.md` section 2.5).
//!
//! Every function takes a map `m` (one value per pixel, in `[0, 1]`) and a ground truth of the
//! same length, one [`Truth`] per pixel. Object pixels count as `s = 1`, background as `s = 0`, and
//! **void pixels are left out of every sum** (the authors have no void: their VOC masks are
//! binarised with `> 0`, so VOC's 255 border counts as object; a caller that wants that convention
//! marks those pixels [`Truth::Object`]). Sums run in `f64` over the valid pixels `P`.
//!
//! The small constants are the authors': `1e-10` in the F1 scores, `1e-15` in the IoUs. Their
//! consequence, kept on purpose:
//! - **empty ground truth and empty map** (no object pixel, no positive map value): F1 and IoU
//!   are 0 (not 1); soft accuracy is 1 and MAE 0;
//! - **no valid pixel at all** (every pixel void, or empty slices): every pixel metric is NaN, as
//!   the authors' `0 / 0` would be; callers leave such images out of means (JSON writes NaN as
//!   null).
//!
//! Thresholds binarise with a strict `m > t`, as the authors' `mask > thresh`; the map is compared
//! in `f64` (numpy promotes their float32 masks the same way), so a `f32` value written `0.8` is
//! above the threshold `0.8`.

use crate::Result;
use crate::adic::invalid;

const METRIC: &str = "segmentation";

/// One ground-truth pixel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    Background,
    Object,
    /// Ignored by every metric (VOC's 255 border, "don't care").
    Void,
}

impl Truth {
    /// `Some(1)` for an object, `Some(0)` for background, `None` for void.
    pub fn value(self) -> Option<f64> {
        match self {
            Truth::Background => Some(0.0),
            Truth::Object => Some(1.0),
            Truth::Void => None,
        }
    }
}

/// The thresholds of the discrete F1 whose mean is "mean F1".
pub const F1_THRESHOLDS: [f64; 3] = [0.25, 0.5, 0.75];

/// The thresholds of the discrete IoU whose mean is "mean IoU": the authors'
/// `np.arange(0.1, 1, 0.1)`, i.e. `0.1 + i * 0.1` in `f64` (hence `0.30000000000000004`).
pub const IOU_THRESHOLDS: [f64; 9] = [
    0.1,
    0.2,
    0.30000000000000004,
    0.4,
    0.5,
    0.6,
    0.7000000000000001,
    0.8,
    0.9,
];

/// The smallest area the saliency metric credits (Dabkowski & Gal's `max(a, 0.05)`).
pub const SALIENCY_MIN_AREA: f64 = 0.05;

/// The smallest probability the saliency metric takes the logarithm of (the authors' code gives
/// `+inf` at `p = 0`; 1e-15 is the floor their `prob_entropy` uses).
pub const SALIENCY_MIN_P: f64 = 1e-15;

/// `(m, s)` of the valid pixels.
///
/// # Panics
/// If the lengths differ (a caller's bug: both come from the same image); [`scores`] checks.
fn valid<'a>(map: &'a [f32], truth: &'a [Truth]) -> impl Iterator<Item = (f64, f64)> + 'a {
    assert_eq!(map.len(), truth.len(), "map and ground truth differ in length");
    map.iter()
        .zip(truth)
        .filter_map(|(&m, t)| t.value().map(|s| (m as f64, s)))
}

/// Soft confusion counts `(tp, tn, fp, fn, n)`: `tp = Σ m·s`, `tn = Σ (1-m)(1-s)`,
/// `fp = Σ m(1-s)`, `fn = Σ (1-m)s` over the valid pixels, `n` their number.
fn soft_counts(map: &[f32], truth: &[Truth]) -> (f64, f64, f64, f64, usize) {
    valid(map, truth).fold((0.0, 0.0, 0.0, 0.0, 0), |(tp, tn, fp, fneg, n), (m, s)| {
        (
            tp + m * s,
            tn + (1.0 - m) * (1.0 - s),
            fp + m * (1.0 - s),
            fneg + (1.0 - m) * s,
            n + 1,
        )
    })
}

/// The authors' F1 from (soft or hard) counts: `P = tp / (tp + fp + 1e-10)`,
/// `R = tp / (tp + fn + 1e-10)`, `F1 = 2PR / (P + R + 1e-10)`.
fn f1_of(tp: f64, fp: f64, fneg: f64) -> f64 {
    let precision = tp / (tp + fp + 1e-10);
    let recall = tp / (tp + fneg + 1e-10);
    2.0 * precision * recall / (precision + recall + 1e-10)
}

/// Soft accuracy: `(tp + tn) / (tp + tn + fp + fn)` with the soft counts of [`soft_f1`], i.e.
/// `1 - MAE` for a binary ground truth. NaN without a valid pixel.
pub fn soft_accuracy(map: &[f32], truth: &[Truth]) -> f64 {
    let (tp, tn, fp, fneg, n) = soft_counts(map, truth);
    if n == 0 {
        return f64::NAN;
    }
    (tp + tn) / (tp + tn + fp + fneg)
}

/// Soft F1, the map not binarised: `tp = Σ m·s`, `fp = Σ m(1-s)`, `fn = Σ (1-m)s`,
/// `P = tp / (tp + fp + 1e-10)`, `R = tp / (tp + fn + 1e-10)`, `F1 = 2PR / (P + R + 1e-10)`.
/// 0 when there is no object pixel; NaN without a valid pixel.
pub fn soft_f1(map: &[f32], truth: &[Truth]) -> f64 {
    let (tp, _, fp, fneg, n) = soft_counts(map, truth);
    if n == 0 {
        return f64::NAN;
    }
    f1_of(tp, fp, fneg)
}

/// Hard counts `(tp, fp, fn, union, n)` of `b = 1[m > thresh]` against `s`.
fn hard_counts(map: &[f32], truth: &[Truth], thresh: f64) -> (f64, f64, f64, f64, usize) {
    valid(map, truth).fold((0.0, 0.0, 0.0, 0.0, 0), |(tp, fp, fneg, union, n), (m, s)| {
        let (b, s) = (m > thresh, s > thresh);
        (
            tp + (b && s) as u8 as f64,
            fp + (b && !s) as u8 as f64,
            fneg + (!b && s) as u8 as f64,
            union + (b || s) as u8 as f64,
            n + 1,
        )
    })
}

/// Discrete F1 at `thresh`: the map binarised `b = 1[m > thresh]`, then the F1 of the object
/// class: `tp = Σ b·s`, `fp = Σ b(1-s)`, `fn = Σ (1-b)s`, `F1 = 2PR / (P + R + 1e-10)` with
/// `P = tp / (tp + fp + 1e-10)`, `R = tp / (tp + fn + 1e-10)` (the authors' `f1_macro` over the
/// label `True` only). 0 when neither has a positive pixel; NaN without a valid pixel.
pub fn discrete_f1(map: &[f32], truth: &[Truth], thresh: f64) -> f64 {
    let (tp, fp, fneg, _, n) = hard_counts(map, truth, thresh);
    if n == 0 {
        return f64::NAN;
    }
    f1_of(tp, fp, fneg)
}

/// "Mean F1": the mean of [`discrete_f1`] at [`F1_THRESHOLDS`] (0.25, 0.5, 0.75).
pub fn mean_f1(map: &[f32], truth: &[Truth]) -> f64 {
    F1_THRESHOLDS
        .iter()
        .map(|&t| discrete_f1(map, truth, t))
        .sum::<f64>()
        / F1_THRESHOLDS.len() as f64
}

/// Discrete IoU at `thresh`: `b = 1[m > thresh]`, `IoU = Σ (b ∧ s) / (Σ (b ∨ s) + 1e-15)`.
/// 0 when neither has a positive pixel; NaN without a valid pixel.
pub fn discrete_iou(map: &[f32], truth: &[Truth], thresh: f64) -> f64 {
    let (tp, _, _, union, n) = hard_counts(map, truth, thresh);
    if n == 0 {
        return f64::NAN;
    }
    tp / (union + 1e-15)
}

/// "Mean IoU": the mean of [`discrete_iou`] at [`IOU_THRESHOLDS`] (0.1, 0.2, ..., 0.9).
pub fn mean_iou(map: &[f32], truth: &[Truth]) -> f64 {
    IOU_THRESHOLDS
        .iter()
        .map(|&t| discrete_iou(map, truth, t))
        .sum::<f64>()
        / IOU_THRESHOLDS.len() as f64
}

/// Continuous IoU (the authors' "1 + Soergel distance"): `Σ min(m, s) / (Σ max(m, s) + 1e-15)`.
/// 0 for an all-zero map on an empty ground truth; NaN without a valid pixel.
pub fn continuous_iou(map: &[f32], truth: &[Truth]) -> f64 {
    let (lo, hi, n) = valid(map, truth).fold((0.0, 0.0, 0), |(lo, hi, n), (m, s)| {
        (lo + m.min(s), hi + m.max(s), n + 1)
    });
    if n == 0 {
        return f64::NAN;
    }
    lo / (hi + 1e-15)
}

/// Mean absolute error `MAE = (1/|P|) Σ |s - m|` over the valid pixels `P`: the authors report
/// `overlap = 1 - MAE`. NaN without a valid pixel.
pub fn mae(map: &[f32], truth: &[Truth]) -> f64 {
    let (sum, n) = valid(map, truth).fold((0.0, 0), |(sum, n), (m, s)| (sum + (s - m).abs(), n + 1));
    if n == 0 {
        return f64::NAN;
    }
    sum / n as f64
}

/// The saliency metric of Dabkowski & Gal, as Stalder et al. compute it:
/// `log(max(a, 0.05)) - log(p)`, `a` the map's mean over **all** its pixels (its area, void
/// included: the area is the map's, not the truth's), `p` the classifier's probability of the
/// target classes on the masked image (summed over the ground-truth classes). Lower is better.
/// `p` is floored at [`SALIENCY_MIN_P`] so a probability that underflowed to 0 gives a large
/// finite value rather than `+inf`; a NaN `a` or `p` gives NaN.
pub fn saliency(mean_area: f64, p: f64) -> f64 {
    if mean_area.is_nan() || p.is_nan() {
        return f64::NAN;
    }
    mean_area.max(SALIENCY_MIN_AREA).ln() - p.max(SALIENCY_MIN_P).ln()
}

/// The mean of a map (its area in [`saliency`]); NaN for an empty map.
pub fn mean_area(map: &[f32]) -> f64 {
    map.iter().map(|&v| v as f64).sum::<f64>() / map.len() as f64
}

/// `(v - min) / (max - min)`, to `[0, 1]`: how every method's per-class map is brought to the
/// metrics' range. A **constant map** (no range) gives all zeros: it says nothing about where the
/// object is, and zeros are what the authors use for a map they cannot score. NaN values are left
/// out of the minimum and maximum and stay NaN; an empty map gives an empty one.
pub fn min_max_normalise(map: &[f32]) -> Vec<f32> {
    let lo = map.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = map.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let range = hi - lo;
    if range.is_nan() || range <= 0.0 || range.is_infinite() {
        return map
            .iter()
            .map(|v| if v.is_nan() { f32::NAN } else { 0.0 })
            .collect();
    }
    map.iter().map(|&v| ((v - lo) / range).clamp(0.0, 1.0)).collect()
}

/// The elementwise maximum of per-class maps: how the authors merge a baseline's maps of the
/// ground-truth classes into the image's map (and how their explainer merges its class logits
/// before the sigmoid). No map gives an empty one.
///
/// # Panics
/// If the maps differ in length (a caller's bug: they are maps of one image at one size).
pub fn merge_max(maps: &[Vec<f32>]) -> Vec<f32> {
    let Some(first) = maps.first() else {
        return Vec::new();
    };
    let mut out = first.clone();
    for m in &maps[1..] {
        assert_eq!(m.len(), out.len(), "maps of one image differ in length");
        for (o, &v) in out.iter_mut().zip(m) {
            *o = o.max(v);
        }
    }
    out
}

/// Every pixel metric of one map against one ground truth.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentationScores {
    pub soft_accuracy: f64,
    pub soft_f1: f64,
    /// Discrete F1 at 0.25, 0.5, 0.75.
    pub f1: [f64; 3],
    pub mean_f1: f64,
    pub mean_iou: f64,
    pub continuous_iou: f64,
    pub mae: f64,
}

/// All of [`SegmentationScores`] for a map that must be as long as the truth and hold values in
/// `[0, 1]` (NaN refused: the authors replace a map holding NaN by zeros, which the caller can do).
pub fn scores(map: &[f32], truth: &[Truth]) -> Result<SegmentationScores> {
    if map.len() != truth.len() {
        return Err(invalid(
            METRIC,
            format!(
                "the map has {} pixels, the ground truth {}",
                map.len(),
                truth.len()
            ),
        ));
    }
    if let Some(p) = map.iter().position(|v| !(0.0..=1.0).contains(v)) {
        return Err(invalid(
            METRIC,
            format!("map value {} at pixel {p} is outside [0, 1]", map[p]),
        ));
    }
    let f1 = F1_THRESHOLDS.map(|t| discrete_f1(map, truth, t));
    Ok(SegmentationScores {
        soft_accuracy: soft_accuracy(map, truth),
        soft_f1: soft_f1(map, truth),
        f1,
        mean_f1: f1.iter().sum::<f64>() / 3.0,
        mean_iou: mean_iou(map, truth),
        continuous_iou: continuous_iou(map, truth),
        mae: mae(map, truth),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Truth::{Background as B, Object as O, Void as V};

    fn close(a: f64, b: f64) {
        // The maps are f32: 0.15 is 0.15 to about 1e-8.
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }

    // 2x2: objects on the top row. m = [0.15, 0.85; 0.55, 0].
    const M: [f32; 4] = [0.15, 0.85, 0.55, 0.0];
    const S: [Truth; 4] = [O, O, B, B];

    #[test]
    fn soft_scores_by_hand() {
        // tp = 0.15 + 0.85 = 1, tn = 0.45 + 1 = 1.45, fp = 0.55, fn = 0.85 + 0.15 = 1.
        close(soft_accuracy(&M, &S), 2.45 / 4.0);
        close(mae(&M, &S), (0.85 + 0.15 + 0.55) / 4.0);
        // F1 = 2 tp / (2 tp + fp + fn) = 2 / 3.55 (up to the 1e-10's).
        close(soft_f1(&M, &S), 2.0 / 3.55);
        // Σ min = 0.15 + 0.85, Σ max = 1 + 1 + 0.55.
        close(continuous_iou(&M, &S), 1.0 / 2.55);
    }

    #[test]
    fn discrete_scores_by_hand() {
        // > 0.25 and > 0.5: [F T; T F]: tp 1, fp 1, fn 1 -> F1 1/2; > 0.75: [F T; F F] -> 2/3.
        close(discrete_f1(&M, &S, 0.25), 0.5);
        close(discrete_f1(&M, &S, 0.75), 2.0 / 3.0);
        close(mean_f1(&M, &S), (0.5 + 0.5 + 2.0 / 3.0) / 3.0);
        // IoU: 0.1 -> 2/3; 0.2..0.5 -> 1/3 (four); 0.6..0.8 -> 1/2 (three); 0.9 -> 0.
        close(discrete_iou(&M, &S, 0.1), 2.0 / 3.0);
        close(discrete_iou(&M, &S, 0.5), 1.0 / 3.0);
        close(discrete_iou(&M, &S, 0.9), 0.0);
        close(mean_iou(&M, &S), (2.0 / 3.0 + 4.0 / 3.0 + 1.5) / 9.0);
        // Strict: a value equal to the threshold is not above it (0.5 is exact in f32).
        close(discrete_iou(&[0.5, 0.5], &[O, B], 0.5), 0.0);
    }

    #[test]
    fn void_pixels_change_nothing() {
        // 3x3: the 2x2 above plus a void column and row whose map values are extreme.
        let m = [0.15, 0.85, 1.0, 0.55, 0.0, 0.0, 1.0, 0.0, 1.0];
        let s = [O, O, V, B, B, V, V, V, V];
        let (a, b) = (scores(&m, &s).unwrap(), scores(&M, &S).unwrap());
        assert_eq!(a, b);
    }

    #[test]
    fn perfect_and_constant_maps() {
        let s = [O, B, B, O, O, B, B, B, B];
        let perfect: Vec<f32> = s.iter().map(|t| t.value().unwrap() as f32).collect();
        let p = scores(&perfect, &s).unwrap();
        close(p.mean_iou, 1.0);
        close(p.mae, 0.0);
        close(p.soft_accuracy, 1.0);
        close(p.mean_f1, 1.0);
        close(p.continuous_iou, 1.0);
        // All-zero map: MAE is the object fraction; no true positive, so F1 and IoU are 0.
        let z = scores(&[0.0; 9], &s).unwrap();
        close(z.mae, 3.0 / 9.0);
        close(z.mean_iou, 0.0);
        close(z.soft_f1, 0.0);
        // All-one map: IoU is the object fraction at every threshold; soft F1 = 2*3/(2*3+6).
        let one = scores(&[1.0; 9], &s).unwrap();
        close(one.mean_iou, 3.0 / 9.0);
        close(one.soft_f1, 0.5);
        close(one.mae, 6.0 / 9.0);
        // 0.5 everywhere: above 0.1..0.4 (IoU 1/3), not above 0.5..0.9 (IoU 0).
        close(mean_iou(&[0.5; 9], &s), 4.0 / 3.0 / 9.0);
        close(continuous_iou(&[0.5; 9], &s), 1.5 / (3.0 + 3.0));
    }

    #[test]
    fn empty_ground_truth_and_all_void() {
        let s = [B; 4];
        let z = scores(&[0.0; 4], &s).unwrap();
        // The authors' epsilons: a perfect answer on an empty truth scores 0 F1 / IoU.
        assert_eq!(
            (z.soft_f1, z.mean_f1, z.mean_iou, z.continuous_iou),
            (0.0, 0.0, 0.0, 0.0)
        );
        assert_eq!((z.soft_accuracy, z.mae), (1.0, 0.0));
        let v = scores(&[0.3; 4], &[V; 4]).unwrap();
        for x in [
            v.soft_accuracy,
            v.soft_f1,
            v.mean_f1,
            v.mean_iou,
            v.continuous_iou,
            v.mae,
        ] {
            assert!(x.is_nan());
        }
        assert!(scores(&[], &[]).unwrap().mae.is_nan());
    }

    #[test]
    fn checked_scores_refuse_bad_maps() {
        let e = scores(&[0.0; 3], &[B; 4]).unwrap_err().to_string();
        assert!(e.contains("3 pixels") && e.contains("4"), "{e}");
        let e = scores(&[0.0, 1.5], &[B; 2]).unwrap_err().to_string();
        assert!(e.contains("outside [0, 1]"), "{e}");
        assert!(scores(&[f32::NAN, 0.0], &[B; 2]).is_err());
    }

    #[test]
    fn saliency_by_hand() {
        // Small areas are credited as 0.05.
        close(saliency(0.02, 0.5), (0.05f64).ln() - (0.5f64).ln());
        close(saliency(0.3, 1.0), (0.3f64).ln());
        close(saliency(0.0, 0.0), (0.05f64).ln() - (1e-15f64).ln());
        assert!(saliency(f64::NAN, 0.5).is_nan());
        close(mean_area(&M), 1.55 / 4.0);
    }

    #[test]
    fn thresholds_are_numpys_arange() {
        for (i, &t) in IOU_THRESHOLDS.iter().enumerate() {
            assert_eq!(t, 0.1 + i as f64 * 0.1);
        }
    }

    #[test]
    fn normalise_and_merge() {
        let n = min_max_normalise(&[2.0, 4.0, 3.0, 6.0]);
        assert_eq!(n, vec![0.0, 0.5, 0.25, 1.0]);
        assert_eq!(min_max_normalise(&[3.0; 4]), vec![0.0; 4]);
        assert!(min_max_normalise(&[]).is_empty());
        let n = min_max_normalise(&[f32::NAN, 1.0, 3.0]);
        assert!(n[0].is_nan() && n[1] == 0.0 && n[2] == 1.0);
        let m = merge_max(&[vec![0.1, 0.9, 0.0], vec![0.5, 0.2, 0.0]]);
        assert_eq!(m, vec![0.5, 0.9, 0.0]);
        assert!(merge_max(&[]).is_empty());
        assert_eq!(merge_max(&[vec![0.3]]), vec![0.3]);
    }
}
