//! Average Drop (AD) and Increase in Confidence (IC), `../shared/docs/METHODS.md` section F.
//!
//! **Profile `lcam`** (the default): the Grad-CAM++ definition as the L-CAM evaluation code runs
//! it, and exactly as `ad_ic` in `../shared/fixtures/generate_fixtures.py` does:
//! 1. `Y` = softmax probability of the image's class on the clean image (the evaluate command
//!    passes the clean top-1 class). Softmax is computed in `f32`, shifted by the row maximum.
//! 2. The map is min-max normalised over the whole map, `(m - min) / max(max - min, 1e-12)`, so a
//!    **constant map becomes all zeros** (every pixel masked: the image turns black), as the
//!    reference's `clamp_min(1e-12)` does.
//! 3. It is upsampled bilinearly with half-pixel centres (`align_corners=False`) to the image size
//!    with PyTorch's CPU rounding reproduced to the bit ([`crate::causal::upsample_like_torch`]), so
//!    that the keep threshold below splits ties and near-ties as the reference does.
//! 4. For `keep < 1`: `k = round(keep * H * W)` (Python's `round`: halves to even; at least 1),
//!    the threshold is the k-th largest value counted with multiplicity (`topk(k).values[-1]`),
//!    and values `< threshold` become 0; every value equal to the threshold is kept, so ties can
//!    keep more than `k` pixels. Kept pixels keep their soft values. `keep == 1` skips this step.
//! 5. The mask multiplies the `[0, 1]` image *before* the model's mean/std normalisation (masked
//!    pixels become black); `O` = the class's softmax probability on that image.
//! 6. `AD = 100/N * sum max(0, Y - O) / Y`, `IC = 100/N * sum 1[O > Y]` (strict).
//!
//! **Profile `pgc`** (pytorch-grad-cam's `DropInConfidence` / `IncreaseInConfidence`): the same
//! map steps 2-4 (METHODS.md names only two differences, and those are all that change), but the
//! mask multiplies the *normalised* tensor, and the drop is absolute:
//! `AD = 100/N * sum max(0, Y - O)` (probability points, in percent). IC is the same.
//!
//! Choices where METHODS.md is silent:
//! - `Y = 0` (the class's softmax underflowed; impossible for the clean top-1, which is at least
//!   `1/classes`): the reference computes `0/0 = NaN`. [`confidences`] **refuses** it under
//!   `lcam` with [`EvalError::Invalid`]; [`average_drop`] given such a record follows the reference
//!   arithmetic and returns NaN, as it does for an empty slice.
//! - Maps must be one-channel, non-empty and finite: a NaN or infinite value is refused with
//!   [`EvalError::Invalid`] naming the metric (the reference would propagate NaN into `O`).
//! - `keep` must lie in `(0, 1]`.
//! - Forward passes are counted per image (a batch of N images is N passes), as
//!   `deepsight_explain::Passes` counts them: `2 N` for one call (one clean batch, one masked batch).

use crate::causal::upsample_like_torch;
use crate::{EvalError, Normaliser, Result};
use deepsight_explain::Map;
use deepsight_runtime::{Classifier, Tensor, TensorData, to_vec};

const METRIC: &str = "AD/IC";

/// Which reference implementation's definition AD/IC follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdIcProfile {
    /// L-CAM's evaluation code (Grad-CAM++ definition): mask on the `[0, 1]` image, relative drop.
    #[default]
    Lcam,
    /// pytorch-grad-cam: mask on the normalised tensor, absolute drop.
    Pgc,
}

impl AdIcProfile {
    /// The profile's name as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            AdIcProfile::Lcam => "lcam",
            AdIcProfile::Pgc => "pgc",
        }
    }
}

/// One image's clean (`y`) and masked-image (`o`) probability of its class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Confidence {
    pub y: f32,
    pub o: f32,
}

/// `Y` and `O` per image, and the forward passes run (`2 N`).
///
/// `images01`: N images `[3, H, W]` in `[0, 1]` at the model's input size, flat; `dims` =
/// `[N, 3, H, W]`; `maps`: one one-channel map per image at any resolution; `classes`: the class
/// per image; `keep`: the fraction of pixels kept (1.0, 0.5, 0.15). See the module doc.
#[allow(clippy::too_many_arguments)]
pub fn confidences(
    model: &dyn Classifier,
    images01: &[f32],
    dims: [usize; 4],
    normaliser: Normaliser,
    maps: &[Map],
    classes: &[usize],
    keep: f32,
    profile: AdIcProfile,
) -> Result<(Vec<Confidence>, usize)> {
    check_inputs(model, images01, dims, maps, classes, keep)?;
    let per = dims[1] * dims[2] * dims[3];
    let clean: Vec<f32> = images01.chunks(per).flat_map(|x| normaliser.apply(x)).collect();
    let ys = class_probabilities(model, clean, dims, classes)?;
    let (out, passes) = confidences_given_y(
        model, images01, dims, normaliser, maps, classes, &ys, keep, profile,
    )?;
    Ok((out, passes + dims[0]))
}

/// [`confidences`] for callers that already hold each clean image's class probability `ys`
/// (from their own forward pass): only the masked images are run (`N` forward passes), so
/// several keep levels or methods on one image share one clean pass.
#[allow(clippy::too_many_arguments)]
pub fn confidences_given_y(
    model: &dyn Classifier,
    images01: &[f32],
    dims: [usize; 4],
    normaliser: Normaliser,
    maps: &[Map],
    classes: &[usize],
    ys: &[f32],
    keep: f32,
    profile: AdIcProfile,
) -> Result<(Vec<Confidence>, usize)> {
    check_inputs(model, images01, dims, maps, classes, keep)?;
    let [n, c, h, w] = dims;
    if ys.len() != n {
        return Err(invalid(
            METRIC,
            format!("{n} images but {} clean probabilities", ys.len()),
        ));
    }
    if profile == AdIcProfile::Lcam
        && let Some(i) = ys.iter().position(|&y| y <= 0.0)
    {
        return Err(invalid(
            METRIC,
            format!(
                "image {i}: the clean probability Y of class {} is 0 (softmax underflow); \
                 Average Drop divides by Y",
                classes[i]
            ),
        ));
    }
    let per = c * h * w;
    let plane = h * w;
    let mut masked = Vec::with_capacity(n * per);
    for (i, m) in maps.iter().enumerate() {
        let mask = keep_mask(m, [h, w], keep);
        let x = &images01[i * per..(i + 1) * per];
        match profile {
            AdIcProfile::Lcam => {
                let x: Vec<f32> = x.iter().enumerate().map(|(j, v)| v * mask[j % plane]).collect();
                masked.extend(normaliser.apply(&x));
            }
            AdIcProfile::Pgc => masked.extend(
                normaliser
                    .apply(x)
                    .iter()
                    .enumerate()
                    .map(|(j, v)| v * mask[j % plane]),
            ),
        }
    }
    let os = class_probabilities(model, masked, dims, classes)?;
    let out = ys.iter().zip(os).map(|(&y, o)| Confidence { y, o }).collect();
    Ok((out, n))
}

/// Refuses inputs that do not fit one another or the model.
fn check_inputs(
    model: &dyn Classifier,
    images01: &[f32],
    dims: [usize; 4],
    maps: &[Map],
    classes: &[usize],
    keep: f32,
) -> Result<()> {
    let [n, c, h, w] = dims;
    if n == 0 {
        return Err(invalid(METRIC, "no images".into()));
    }
    if c != 3 || h == 0 || w == 0 {
        return Err(invalid(
            METRIC,
            format!("images must be [N, 3, H, W], got {dims:?}"),
        ));
    }
    let per = c * h * w;
    if images01.len() != n * per {
        return Err(invalid(
            METRIC,
            format!(
                "{} image values for dims {dims:?} ({} expected)",
                images01.len(),
                n * per
            ),
        ));
    }
    if maps.len() != n || classes.len() != n {
        return Err(invalid(
            METRIC,
            format!("{n} images but {} maps and {} classes", maps.len(), classes.len()),
        ));
    }
    check_classes(METRIC, model, classes)?;
    if !(keep > 0.0 && keep <= 1.0) {
        return Err(invalid(METRIC, format!("keep must be in (0, 1], got {keep}")));
    }
    for (i, m) in maps.iter().enumerate() {
        check_map(METRIC, m).map_err(|e| with_image(e, i))?;
    }
    Ok(())
}

/// The map as the module doc's steps 2-4 make it: min-max normalised, resized to `size`, values
/// below the k-th largest set to 0 when `keep < 1`. `size` = `[height, width]`.
/// A map that is not one non-empty plane uses its first plane; an empty one gives zeros.
pub fn keep_mask(map: &Map, size: [usize; 2], keep: f32) -> Vec<f32> {
    let Some(plane) = first_plane(map) else {
        return vec![0.0; size[0] * size[1]];
    };
    let lo = plane.data.iter().copied().fold(f32::INFINITY, f32::min);
    let hi = plane.data.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let range = (hi - lo).max(1e-12);
    let norm = Map {
        data: plane.data.iter().map(|v| (v - lo) / range).collect(),
        ..plane
    };
    let mut m = upsample_like_torch(&norm, size[0], size[1]);
    if keep < 1.0 && !m.is_empty() {
        let k = ((keep as f64 * m.len() as f64).round_ties_even() as usize).clamp(1, m.len());
        let mut sorted = m.clone();
        let (_, kth, _) = sorted.select_nth_unstable_by(k - 1, |a, b| b.total_cmp(a));
        let thr = *kth;
        m.iter_mut().filter(|v| **v < thr).for_each(|v| *v = 0.0);
    }
    m
}

/// `100/N * sum max(0, Y - O) / Y` (`lcam`) or `100/N * sum max(0, Y - O)` (`pgc`), in percent.
/// As the reference computes it: NaN for an empty slice, and under `lcam` for a record with `Y = 0`.
pub fn average_drop(c: &[Confidence], profile: AdIcProfile) -> f32 {
    let sum: f32 = c
        .iter()
        .map(|r| {
            let drop = (r.y - r.o).max(0.0);
            100.0
                * match profile {
                    AdIcProfile::Lcam => drop / r.y,
                    AdIcProfile::Pgc => drop,
                }
        })
        .sum();
    sum / c.len() as f32
}

/// `100/N * sum 1[O > Y]` (strict), in percent; NaN for an empty slice.
pub fn increase_in_confidence(c: &[Confidence]) -> f32 {
    let hits = c.iter().filter(|r| r.o > r.y).count();
    100.0 * hits as f32 / c.len() as f32
}

// ---- helpers shared by the metrics of this crate ----

pub(crate) fn invalid(metric: &'static str, reason: String) -> EvalError {
    EvalError::Invalid { metric, reason }
}

fn with_image(e: EvalError, i: usize) -> EvalError {
    match e {
        EvalError::Invalid { metric, reason } => EvalError::Invalid {
            metric,
            reason: format!("image {i}: {reason}"),
        },
        other => other,
    }
}

/// The map's first channel as a one-channel map; `None` when the map holds no complete plane.
pub(crate) fn first_plane(map: &Map) -> Option<Map> {
    let plane = map.height.checked_mul(map.width)?;
    if plane == 0 || map.channels == 0 || map.data.len() < plane {
        return None;
    }
    Some(Map {
        channels: 1,
        height: map.height,
        width: map.width,
        data: map.data[..plane].to_vec(),
    })
}

/// Refuses a map that is not one non-empty plane of finite values.
pub(crate) fn check_map(metric: &'static str, map: &Map) -> Result<()> {
    if map.channels != 1 {
        return Err(invalid(
            metric,
            format!("a one-channel map is needed, got {} channels", map.channels),
        ));
    }
    if map.height == 0 || map.width == 0 || map.data.len() != map.height * map.width {
        return Err(invalid(
            metric,
            format!(
                "the map holds {} values for {}x{}",
                map.data.len(),
                map.height,
                map.width
            ),
        ));
    }
    if let Some(p) = map.data.iter().position(|v| !v.is_finite()) {
        return Err(invalid(
            metric,
            format!(
                "the map has a non-finite value ({}) at row {}, column {}",
                map.data[p],
                p / map.width,
                p % map.width
            ),
        ));
    }
    Ok(())
}

pub(crate) fn check_classes(metric: &'static str, model: &dyn Classifier, classes: &[usize]) -> Result<()> {
    let k = model.num_classes();
    match classes.iter().find(|&&c| c >= k) {
        Some(c) => Err(invalid(
            metric,
            format!("class {c} is out of range: the model has {k} classes"),
        )),
        None => Ok(()),
    }
}

/// `softmax(x)` in `f32`, shifted by the maximum as PyTorch computes it (the explain crate's).
pub use deepsight_explain::softmax;

/// One forward of `data` (`dims`); the softmax probability of each image's class.
pub(crate) fn class_probabilities(
    model: &dyn Classifier,
    data: Vec<f32>,
    dims: [usize; 4],
    classes: &[usize],
) -> Result<Vec<f32>> {
    let images = Tensor::from_data(TensorData::new(data, dims), &model.device());
    let k = model.num_classes();
    let logits = to_vec(model.logits(images)?);
    if logits.len() != dims[0] * k {
        return Err(invalid(
            "forward pass",
            format!("{} logits for {} images of {k} classes", logits.len(), dims[0]),
        ));
    }
    Ok(logits
        .chunks(k)
        .zip(classes)
        .map(|(row, &c)| softmax(row)[c])
        .collect())
}
