//! The pointing game (Zhang et al. 2016), `../shared/docs/METHODS.md` section F.
//!
//! **Profile `torchray`**: TorchRay's `PointingGame` and `examples/attribution_benchmark.py`:
//! - Per (image, ground-truth class). The map is resized bilinearly (half-pixel centres,
//!   `align_corners=False`, PyTorch's rounding: [`crate::causal::upsample_like_torch`], as
//!   TorchRay's `resize` runs `F.interpolate`) to the *original* image size; the point is the
//!   first maximum in row-major order (`torch.argmax` of the flattened map; a NaN would count as
//!   the maximum there, and [`point`] keeps that, while [`checked_point`] refuses NaN).
//! - Ground truth is the union of the class's boxes, as TorchRay's `voc_as_mask` rasterises it:
//!   a box `[x0, y0, x1, y1]` holds the pixels with `x0 <= x <= x1` and `y0 <= y <= y1`, **both
//!   ends inclusive**, in 0-based pixel indices (VOC's 1-based `xmin..=xmax` becomes
//!   `[xmin - 1, ymin - 1, xmax - 1, ymax - 1]`). Fractional coordinates hold the whole pixels
//!   inside them; the parts of a box outside the image hold no pixel (a box on the border is
//!   clipped to it).
//! - A hit when some ground-truth pixel lies at squared distance **strictly** `< tolerance^2`
//!   from the point (default tolerance 15): a pixel exactly 15 away is a miss.
//! - Score = mean over classes of `hits / (hits + misses)`.
//! - The "center" baseline: TorchRay points at `(w / 2, h / 2)` in floating point, half a pixel
//!   off the grid for odd sizes. [`centre`] rounds down to a pixel (`(h / 2, w / 2)` in integer
//!   division: row 2 of a 5-row image, row 2 of a 4-row one); [`centre_exact`] with [`is_hit_at`]
//!   reproduces TorchRay's point exactly. They agree for even sizes.
//!
//! Choices where METHODS.md is silent: [`PointingGame::score`] averages over the classes that
//! have at least one record (TorchRay averages over all of its dataset's classes, counting a
//! class with no record as 0: [`PointingGame::score_over`] does that); NaN with no record at all.
//! Boxes with a NaN coordinate hold no pixel. Points are `(y, x)` = (row, column).

use crate::Result;
use crate::adic::{check_map, first_plane, invalid};
use crate::causal::upsample_like_torch;
use deepsight_explain::Map;
use std::collections::BTreeMap;

const METRIC: &str = "pointing game";

/// TorchRay's default tolerance, in pixels.
pub const TOLERANCE: f32 = 15.0;

/// The first row-major maximum of `map` (its first channel) resized bilinearly to `size` =
/// `[height, width]`: `(y, x)`. A NaN counts as the maximum, as in `torch.argmax`; an empty map
/// or size gives `(0, 0)`.
pub fn point(map: &Map, size: [usize; 2]) -> (usize, usize) {
    let [h, w] = size;
    let Some(plane) = first_plane(map) else {
        return (0, 0);
    };
    if h == 0 || w == 0 {
        return (0, 0);
    }
    let data = upsample_like_torch(&plane, h, w);
    let mut best = 0;
    for (i, &v) in data.iter().enumerate() {
        let b = data[best];
        if b.is_nan() {
            break;
        }
        if v.is_nan() || v > b {
            best = i;
        }
    }
    (best / w, best % w)
}

/// [`point`] for a map that must be one plane of finite values and a non-empty size.
pub fn checked_point(map: &Map, size: [usize; 2]) -> Result<(usize, usize)> {
    check_map(METRIC, map)?;
    if size[0] == 0 || size[1] == 0 {
        return Err(invalid(METRIC, format!("empty image size {size:?}")));
    }
    Ok(point(map, size))
}

/// A hit when some pixel of the union of `boxes` (`[x0, y0, x1, y1]`, inclusive pixel indices of
/// an image of `size` = `[height, width]`) lies at squared distance `< tolerance^2` from `point`
/// = `(y, x)`.
pub fn is_hit(point: (usize, usize), boxes: &[[f32; 4]], size: [usize; 2], tolerance: f32) -> bool {
    is_hit_at((point.0 as f64, point.1 as f64), boxes, size, tolerance)
}

/// [`is_hit`] for a point off the pixel grid, `(y, x)` (TorchRay's centre baseline).
pub fn is_hit_at(point: (f64, f64), boxes: &[[f32; 4]], size: [usize; 2], tolerance: f32) -> bool {
    let [h, w] = size;
    if h == 0 || w == 0 {
        return false;
    }
    let limit = tolerance as f64 * tolerance as f64;
    boxes.iter().any(|b| {
        let (Some((xa, xb)), Some((ya, yb))) = (pixel_range(b[0], b[2], w), pixel_range(b[1], b[3], h))
        else {
            return false;
        };
        // The box's pixels form a rectangle of the grid: its nearest pixel to the point is the
        // nearest grid value clamped into the rectangle, axis by axis.
        let nearest = |p: f64, lo: usize, hi: usize| p.round().clamp(lo as f64, hi as f64) - p;
        let (dy, dx) = (nearest(point.0, ya, yb), nearest(point.1, xa, xb));
        dy * dy + dx * dx < limit
    })
}

/// The pixel indices `lo..=hi` inside `[a, b]` and inside `0..n`; `None` when there are none.
pub(crate) fn pixel_range(a: f32, b: f32, n: usize) -> Option<(usize, usize)> {
    if a.is_nan() || b.is_nan() || n == 0 {
        return None;
    }
    let lo = (a as f64).ceil().max(0.0);
    let hi = (b as f64).floor().min((n - 1) as f64);
    (lo <= hi).then_some((lo as usize, hi as usize))
}

/// The centre baseline's point for an image of `size` = `[height, width]`: `(h / 2, w / 2)`,
/// integer division (rounded down).
pub fn centre(size: [usize; 2]) -> (usize, usize) {
    (size[0] / 2, size[1] / 2)
}

/// TorchRay's centre point `(h / 2, w / 2)` without rounding, for [`is_hit_at`].
pub fn centre_exact(size: [usize; 2]) -> (f64, f64) {
    (size[0] as f64 / 2.0, size[1] as f64 / 2.0)
}

/// Hits and misses per class.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PointingGame {
    counts: BTreeMap<usize, (u64, u64)>,
}

impl PointingGame {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one (image, class) result.
    pub fn add(&mut self, class: usize, hit: bool) {
        let e = self.counts.entry(class).or_default();
        if hit {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }

    /// `(hits, misses)` of one class.
    pub fn counts(&self, class: usize) -> (u64, u64) {
        self.counts.get(&class).copied().unwrap_or_default()
    }

    /// `hits / (hits + misses)` of every class with a record, by class.
    pub fn class_accuracies(&self) -> Vec<(usize, f32)> {
        self.counts
            .iter()
            .map(|(&c, &(h, m))| (c, (h as f64 / (h + m) as f64) as f32))
            .collect()
    }

    /// Mean over the classes with a record of `hits / (hits + misses)`; NaN with no record.
    pub fn score(&self) -> f32 {
        let acc = self.class_accuracies();
        (acc.iter().map(|&(_, a)| a as f64).sum::<f64>() / acc.len() as f64) as f32
    }

    /// TorchRay's `accuracy`: the mean over classes `0..num_classes`, a class with no record
    /// counting as 0 (records of classes outside the range are left out); NaN for 0 classes.
    pub fn score_over(&self, num_classes: usize) -> f32 {
        let sum: f64 = self
            .class_accuracies()
            .iter()
            .filter(|&&(c, _)| c < num_classes)
            .map(|&(_, a)| a as f64)
            .sum();
        (sum / num_classes as f64) as f32
    }

    /// Number of records.
    pub fn len(&self) -> u64 {
        self.counts.values().map(|&(h, m)| h + m).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.counts.is_empty()
    }
}
