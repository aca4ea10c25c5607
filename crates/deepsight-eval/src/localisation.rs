//! Weakly supervised box localisation, ILSVRC protocol, `../shared/docs/METHODS.md` section F.
//!
//! **Box from a map** (Grad-CAM's protocol, Selvaraju et al. sec. 4.1, after CAM): the map (its
//! first channel) is resized bilinearly (half-pixel centres, `align_corners=False`, with
//! [`crate::causal::upsample_like_torch`]) to the image `size`, thresholded at `fraction` (default
//! 0.15) of its maximum, and the box is the bounding box of the largest **4-connected** component
//! of the pixels kept.
//! - A pixel is kept when `value >= fraction * max` (inclusive, so the maximum is always kept).
//!   When the maximum is not positive (no positive evidence) the threshold is the maximum itself:
//!   only the maximal pixels are kept, so a **constant map** (an all-zero one included) keeps every
//!   pixel and its box is the whole image.
//! - Components of equal size: the one reached first in row-major order wins.
//! - Boxes are `[x0, y0, x1, y1]` in 0-based pixel indices, **both ends inclusive** (a one-pixel box
//!   is `[x, y, x, y]`), as the ILSVRC development kit and VOC annotations count them.
//!
//! **IoU** is the ILSVRC development kit's: with inclusive ends, widths and heights are
//! `x1 - x0 + 1`; `IoU = iw * ih / (area_a + area_b - iw * ih)`, 0 when the boxes share no pixel
//! (boxes that share an edge column overlap by that column). A prediction is **localised** when its
//! IoU with some ground-truth box of the image is `>= 0.5`; the top-1 localisation error counts an
//! image as correct when the top-1 class is right *and* its box is localised.
//!
//! Choices where METHODS.md is silent: the `>=` above and the non-positive maximum; a NaN value is
//! never kept by [`box_from_map`] and is refused by [`checked_box_from_map`] with
//! [`EvalError::Invalid`](crate::EvalError::Invalid) naming the metric; a map that keeps no pixel
//! (all NaN, or an empty map) gives the whole image; an empty size gives `[0, 0, -1, -1]`, a box
//! with no pixel. Boxes with `x1 < x0` or `y1 < y0` hold no pixel: IoU 0.

use crate::Result;
use crate::adic::{check_map, first_plane, invalid};
use crate::causal::upsample_like_torch;
use deepsight_explain::Map;

const METRIC: &str = "localisation";

/// Grad-CAM's threshold, as a fraction of the map's maximum.
pub const FRACTION: f32 = 0.15;

/// The box of the largest 4-connected component of the map (resized to `size` = `[height,
/// width]`) at `value >= fraction * max`: `[x0, y0, x1, y1]`, inclusive. See the module doc.
pub fn box_from_map(map: &Map, size: [usize; 2], fraction: f32) -> [f32; 4] {
    let [h, w] = size;
    if h == 0 || w == 0 {
        return [0.0, 0.0, -1.0, -1.0];
    }
    let whole = [0.0, 0.0, (w - 1) as f32, (h - 1) as f32];
    let Some(plane) = first_plane(map) else {
        return whole;
    };
    let data = upsample_like_torch(&plane, h, w);
    let max = data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let thr = if max > 0.0 { fraction * max } else { max };
    let kept: Vec<bool> = data.iter().map(|&v| v >= thr).collect();
    largest_component_box(&kept, h, w).unwrap_or(whole)
}

/// [`box_from_map`] for a map that must be one plane of finite values, a non-empty size and a
/// `fraction` in `[0, 1]`.
pub fn checked_box_from_map(map: &Map, size: [usize; 2], fraction: f32) -> Result<[f32; 4]> {
    check_map(METRIC, map)?;
    if size[0] == 0 || size[1] == 0 {
        return Err(invalid(METRIC, format!("empty image size {size:?}")));
    }
    if !(0.0..=1.0).contains(&fraction) {
        return Err(invalid(
            METRIC,
            format!("the threshold fraction must be in [0, 1], got {fraction}"),
        ));
    }
    Ok(box_from_map(map, size, fraction))
}

/// The inclusive bounding box of the largest 4-connected set of `true` pixels; the first in
/// row-major order among equals; `None` when no pixel is set.
fn largest_component_box(kept: &[bool], h: usize, w: usize) -> Option<[f32; 4]> {
    let mut seen = vec![false; kept.len()];
    let mut best: Option<(usize, [usize; 4])> = None;
    let mut stack = Vec::new();
    for start in 0..kept.len() {
        if !kept[start] || seen[start] {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut count, mut bb) = (0usize, [w, h, 0, 0]);
        while let Some(p) = stack.pop() {
            let (y, x) = (p / w, p % w);
            count += 1;
            bb = [bb[0].min(x), bb[1].min(y), bb[2].max(x), bb[3].max(y)];
            let mut visit = |q: usize| {
                if kept[q] && !seen[q] {
                    seen[q] = true;
                    stack.push(q);
                }
            };
            if x > 0 {
                visit(p - 1);
            }
            if x + 1 < w {
                visit(p + 1);
            }
            if y > 0 {
                visit(p - w);
            }
            if y + 1 < h {
                visit(p + w);
            }
        }
        if best.is_none_or(|(n, _)| count > n) {
            best = Some((count, bb));
        }
    }
    best.map(|(_, b)| b.map(|v| v as f32))
}

/// Intersection over union of two inclusive boxes `[x0, y0, x1, y1]` (ILSVRC: `+1` widths);
/// 0 when they share no pixel or a box is empty or has a NaN coordinate.
pub fn iou(a: [f32; 4], b: [f32; 4]) -> f32 {
    let area = |r: [f32; 4]| ((r[2] - r[0] + 1.0) as f64).max(0.0) * ((r[3] - r[1] + 1.0) as f64).max(0.0);
    let iw = (a[2].min(b[2]) - a[0].max(b[0]) + 1.0) as f64;
    let ih = (a[3].min(b[3]) - a[1].max(b[1]) + 1.0) as f64;
    // `!(x > 0)` also catches NaN.
    if !(iw > 0.0 && ih > 0.0) || a.iter().chain(&b).any(|v| v.is_nan()) {
        return 0.0;
    }
    let inter = iw * ih;
    let union = area(a) + area(b) - inter;
    if union > 0.0 { (inter / union) as f32 } else { 0.0 }
}

/// Whether `pred` has IoU `>= 0.5` with some box of `truth`.
pub fn localised(pred: [f32; 4], truth: &[[f32; 4]]) -> bool {
    truth.iter().any(|&t| iou(pred, t) >= 0.5)
}

/// The top-1 localisation error in percent over `(class_correct, localised)` per image: an
/// image is correct when both hold. NaN for no image.
pub fn top1_localisation_error(results: &[(bool, bool)]) -> f32 {
    let wrong = results.iter().filter(|&&(c, l)| !(c && l)).count();
    100.0 * wrong as f32 / results.len() as f32
}
