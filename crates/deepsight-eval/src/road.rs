//! ROAD, *RemOve And Debias* (Rong, Leemann, Nguyen, Fiedler, Rieß & Kasneci, *A Consistent and
//! Efficient Evaluation Strategy for Attribution Methods*, ICML 2022), profile `road`: the
//! reference code `tleemann/road_evaluation` (`road/imputations.py` `NoisyLinearImputer`,
//! `road/imputed_dataset.py` `ImputedDataset`) with its default noise.
//!
//! # Computes
//! For the fractions `f = 0.1, 0.2, ..., 0.9`, the pixels of the image that the map ranks first
//! (MoRF, most relevant first) or last (LeRF, least relevant first) are removed, `floor(N * f)` of
//! the `N = H * W` pixels, all channels of a pixel together, and filled by *noisy linear
//! imputation*; the score is class `c`'s softmax probability on the imputed image. A faithful map
//! makes the MoRF curve fall fast and the LeRF curve stay high.
//!
//! # Noisy linear imputation
//! Per channel, the removed pixels' values solve the sparse linear system in which every removed
//! pixel equals the weighted mean of its 8 neighbours (weight 1/6 for the 4 edge neighbours, 1/12
//! for the 4 diagonal ones, normalised over the neighbours that lie inside the image), removed
//! neighbours being unknowns and known pixels fixed. The system is symmetric positive definite
//! whenever any pixel is known; it is solved by Jacobi-preconditioned conjugate gradients in
//! `f64`, iterated until every removed pixel is within `1e-6` of its neighbours' weighted mean
//! (the true residual, recomputed at the end, not only CG's running one). Gaussian noise of
//! standard deviation [`NOISE_STD`] (0.01) is then added to every imputed value, from a seeded
//! generator (splitmix64 + Box–Muller), channel by channel, removed pixels in row-major order.
//! With no pixel known the system is singular; the imputation is then 0 (plus the noise).
//!
//! # Profile details and deviations from the reference code
//! - Order: the map (all its channels summed, as the reference's `rescale_channel`, then resized
//!   bilinearly with half-pixel centres to `H x W`) is ranked by value with a *stable* sort: MoRF by
//!   decreasing value, LeRF by increasing value, ties in both orders taken lower flat (row-major)
//!   index first. The reference instead adds a fixed `1e-4 * randn` map to the min-max normalised
//!   attribution before an unstable `argsort`, which breaks ties at random.
//! - LeRF at fraction `f` removes the `floor(N f)` least relevant pixels. The reference's
//!   `ImputedDataset(remove=False, th_p=p)` removes `salient_order[int(N p):]`, i.e. keeps the top
//!   `p` and removes the rest: its LeRF at `p` is this LeRF at `1 - p` (up to one pixel of rounding).
//! - `floor(N f)` is computed exactly in integers (`N * i / 10`); the reference's `int(N * p)`
//!   rounds a float product.
//! - Space: the imputation runs on the image as given, the model's input space. The weighted mean
//!   commutes with the per-channel affine normalisation, so the imputed values are the reference's
//!   exactly; only the noise differs in scale: the reference adds 0.01 to `[0, 1]` pixel values,
//!   which is `0.01 / sigma_c` in input space (`sigma_c = std_c / 255`, about 0.23 for ImageNet
//!   models: 0.044), so this noise is about 4x smaller. [`impute_with_noise`] takes any standard
//!   deviation.
//! - Score: the class probability per fraction, one image at a time (the reference averages the
//!   probability, and the accuracy, over a data set). The curve also holds the unperturbed score
//!   at fraction 0; [`RoadCurve::mean`] averages the nine perturbed points only, as the reference
//!   averages over its percentages.
//! - Forward passes: one for the clean image and one per fraction, batched `batch_size` at a time.

use crate::{EvalError, Result};
use deepsight_explain::Map;
use deepsight_runtime::{Classifier, Tensor, TensorData, to_vec};

const METRIC: &str = "road";

/// Standard deviation of the Gaussian noise added to imputed values (the reference's default).
pub const NOISE_STD: f32 = 0.01;

/// Fractions of pixels removed: 0.1 to 0.9 in tenths.
pub const STEPS: usize = 9;

/// Stop when every removed pixel is within this of its neighbours' weighted mean.
const TOLERANCE: f64 = 1e-6;

/// Which pixels go first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoadOrder {
    /// MoRF: the pixels the map ranks highest are removed first.
    MostRelevantFirst,
    /// LeRF: the pixels the map ranks lowest are removed first.
    LeastRelevantFirst,
}

impl RoadOrder {
    /// `morf` or `lerf`.
    pub fn name(self) -> &'static str {
        match self {
            RoadOrder::MostRelevantFirst => "morf",
            RoadOrder::LeastRelevantFirst => "lerf",
        }
    }
}

/// The class probability per fraction of pixels removed; `fractions[0]` is 0 (the clean image).
#[derive(Debug, Clone, PartialEq)]
pub struct RoadCurve {
    pub fractions: Vec<f32>,
    pub scores: Vec<f32>,
}

impl RoadCurve {
    /// Mean score over the perturbed fractions (those above 0), as the reference averages its
    /// percentages; NaN for a curve with none.
    pub fn mean(&self) -> f32 {
        let (sum, n) = self
            .fractions
            .iter()
            .zip(&self.scores)
            .filter(|(f, _)| **f > 0.0)
            .fold((0.0f64, 0usize), |(s, n), (_, &v)| (s + v as f64, n + 1));
        (sum / n as f64) as f32
    }
}

fn invalid(reason: impl Into<String>) -> EvalError {
    EvalError::Invalid {
        metric: METRIC,
        reason: reason.into(),
    }
}

/// The ROAD curve of `map` for `class` in `order`, and the forward passes it ran.
///
/// `image`: `[C, H, W]` (`dims`) in the model's input space; `map` any resolution, any number of
/// channels (summed, then resized bilinearly to `H x W`); forwards `batch_size` images at a time
/// (0 counts as 1).
/// `seed` fixes the imputation noise (each fraction and order draws its own stream from it).
/// Refuses maps or images with NaN or infinite values, mismatched sizes, a class out of range.
#[allow(clippy::too_many_arguments)] // the signature the metric is specified with
pub fn road(
    model: &dyn Classifier,
    image: &[f32],
    dims: [usize; 3],
    map: &Map,
    class: usize,
    order: RoadOrder,
    seed: u64,
    batch_size: usize,
) -> Result<(RoadCurve, usize)> {
    let ranking = check_and_rank(model, image, dims, map, class)?;
    let mut images = vec![image.to_vec()];
    images.extend(imputed_steps(image, dims, &ranking, order, seed)?);
    let scores = probabilities(model, &images, dims, class, batch_size)?;
    Ok((curve(scores), images.len()))
}

/// MoRF and LeRF together, sharing the clean image's forward pass (`1 + 2 * 9` passes).
#[allow(clippy::too_many_arguments)]
pub fn road_morf_lerf(
    model: &dyn Classifier,
    image: &[f32],
    dims: [usize; 3],
    map: &Map,
    class: usize,
    seed: u64,
    batch_size: usize,
) -> Result<(RoadCurve, RoadCurve, usize)> {
    let ranking = check_and_rank(model, image, dims, map, class)?;
    let mut images = vec![image.to_vec()];
    for order in [RoadOrder::MostRelevantFirst, RoadOrder::LeastRelevantFirst] {
        images.extend(imputed_steps(image, dims, &ranking, order, seed)?);
    }
    let scores = probabilities(model, &images, dims, class, batch_size)?;
    let clean = scores[0];
    let morf = curve([&[clean], &scores[1..=STEPS]].concat());
    let lerf = curve([&[clean], &scores[STEPS + 1..]].concat());
    Ok((morf, lerf, images.len()))
}

fn curve(scores: Vec<f32>) -> RoadCurve {
    RoadCurve {
        fractions: (0..=STEPS).map(|i| i as f32 / 10.0).collect(),
        scores,
    }
}

/// Checks the inputs; returns the pixels ranked most relevant first (MoRF order).
fn check_and_rank(
    model: &dyn Classifier,
    image: &[f32],
    dims: [usize; 3],
    map: &Map,
    class: usize,
) -> Result<Vec<f32>> {
    let [c, h, w] = dims;
    if c == 0 || h == 0 || w == 0 {
        return Err(invalid(format!("an empty image {dims:?}")));
    }
    if image.len() != c * h * w {
        return Err(invalid(format!(
            "the image has {} values, {dims:?} needs {}",
            image.len(),
            c * h * w
        )));
    }
    if image.iter().any(|v| !v.is_finite()) {
        return Err(invalid("the image has NaN or infinite values"));
    }
    if class >= model.num_classes() {
        return Err(invalid(format!(
            "class {class} is out of range: the model has {} classes",
            model.num_classes()
        )));
    }
    relevance(map, h, w)
}

/// The map's channels summed and resized to `h x w`; refuses NaN, infinities and empty maps.
fn relevance(map: &Map, h: usize, w: usize) -> Result<Vec<f32>> {
    let plane = map.height * map.width;
    if plane == 0 || map.channels == 0 {
        return Err(invalid("the map is empty"));
    }
    if map.data.len() != map.channels * plane {
        return Err(invalid(format!(
            "the map holds {} values, {}x{}x{} needs {}",
            map.data.len(),
            map.channels,
            map.height,
            map.width,
            map.channels * plane
        )));
    }
    if map.data.iter().any(|v| !v.is_finite()) {
        return Err(invalid("the map has NaN or infinite values"));
    }
    let summed = Map {
        channels: 1,
        height: map.height,
        width: map.width,
        data: (0..plane)
            .map(|p| (0..map.channels).map(|ch| map.data[ch * plane + p]).sum())
            .collect(),
    };
    Ok(summed.resize(h, w).data)
}

/// Pixel indices in removal order: a stable sort by value, decreasing for MoRF and increasing for
/// LeRF, ties lower flat index first in both. `values` must be finite.
pub fn removal_order(values: &[f32], order: RoadOrder) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..values.len()).collect();
    // `partial_cmp` rather than `total_cmp`, so that -0.0 and 0.0 tie.
    let cmp = |a: &usize, b: &usize| values[*a].partial_cmp(&values[*b]).expect("finite values");
    match order {
        RoadOrder::MostRelevantFirst => idx.sort_by(|a, b| cmp(b, a)),
        RoadOrder::LeastRelevantFirst => idx.sort_by(cmp),
    }
    idx
}

/// The nine imputed images of `order`, computed on all cores.
fn imputed_steps(
    image: &[f32],
    dims: [usize; 3],
    relevance: &[f32],
    order: RoadOrder,
    seed: u64,
) -> Result<Vec<Vec<f32>>> {
    let n = dims[1] * dims[2];
    let ranked = removal_order(relevance, order);
    let masks: Vec<(Vec<bool>, u64)> = (1..=STEPS)
        .map(|i| {
            let mut removed = vec![false; n];
            for &p in &ranked[..n * i / 10] {
                removed[p] = true;
            }
            let step_seed = SplitMix64::named(seed, &format!("road.{}.{i}", order.name())).next_u64();
            (removed, step_seed)
        })
        .collect();
    parallel_map(&masks, |(removed, s)| impute(image, dims, removed, *s))
        .into_iter()
        .collect()
}

/// Runs `f` over `items` on the available cores, keeping the order.
fn parallel_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len())
        .max(1);
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut out: Vec<(usize, R)> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= items.len() {
                            break mine;
                        }
                        mine.push((i, f(&items[i])));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("an imputation thread panicked"))
            .collect()
    });
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

/// Class `class`'s softmax probability for each image, `batch_size` images per forward pass.
fn probabilities(
    model: &dyn Classifier,
    images: &[Vec<f32>],
    dims: [usize; 3],
    class: usize,
    batch_size: usize,
) -> Result<Vec<f32>> {
    let [c, h, w] = dims;
    let device = model.device();
    let mut out = Vec::with_capacity(images.len());
    for chunk in images.chunks(batch_size.max(1)) {
        let data: Vec<f32> = chunk.concat();
        let batch = Tensor::from_data(TensorData::new(data, [chunk.len(), c, h, w]), &device);
        let logits = to_vec(model.logits(batch)?);
        let k = model.num_classes();
        for row in logits.chunks(k) {
            let max = row.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
            let sum: f64 = row.iter().map(|&v| (v as f64 - max).exp()).sum();
            out.push(((row[class] as f64 - max).exp() / sum) as f32);
        }
    }
    Ok(out)
}

/// Noisy linear imputation of the `removed` pixels (`H * W` flags, row-major) of `image`
/// (`[C, H, W]` = `dims`), with noise of standard deviation [`NOISE_STD`] drawn from `seed`.
/// Known pixels are returned unchanged. Lengths that do not match `dims` are refused.
pub fn impute(image: &[f32], dims: [usize; 3], removed: &[bool], seed: u64) -> Result<Vec<f32>> {
    impute_with_noise(image, dims, removed, seed, NOISE_STD)
}

/// [`impute`] with noise of standard deviation `noise_std` (0: the exact linear solution).
pub fn impute_with_noise(
    image: &[f32],
    dims: [usize; 3],
    removed: &[bool],
    seed: u64,
    noise_std: f32,
) -> Result<Vec<f32>> {
    let [c, h, w] = dims;
    if image.len() != c * h * w || removed.len() != h * w {
        return Err(EvalError::Invalid {
            metric: "road",
            reason: format!(
                "imputation of {} values with {} removal flags does not fit [C, H, W] = {dims:?}",
                image.len(),
                removed.len()
            ),
        });
    }
    let system = System::new(removed, h, w);
    let mut out = image.to_vec();
    let mut rng = SplitMix64::new(seed);
    for ch in 0..c {
        let plane = &image[ch * h * w..(ch + 1) * h * w];
        let solution = system.solve(plane);
        let dst = &mut out[ch * h * w..(ch + 1) * h * w];
        for (&p, &v) in system.pixels.iter().zip(&solution) {
            let noise = if noise_std == 0.0 {
                0.0
            } else {
                noise_std as f64 * rng.gaussian()
            };
            dst[p] = (v + noise) as f32;
        }
    }
    Ok(out)
}

/// Neighbour weights: 1/6 for the 4 edge neighbours, 1/12 for the 4 diagonal ones.
const EDGE: f64 = 1.0 / 6.0;
const DIAGONAL: f64 = 1.0 / 12.0;

/// The imputation system of one mask, shared by the channels, on the image grid padded with one
/// ring of zeros (so that the 9-point stencil needs no bounds checks): for a removed pixel `i`,
/// `diag_i * x_i - sum_j w_ij x_j = 0` over its in-image neighbours `j`, known ones fixed, where
/// `diag_i` is the total weight of those neighbours. The vectors of the solver live on the whole
/// padded grid and are 0 off the unknowns.
struct System {
    w: usize,
    /// Flat (unpadded, row-major) index of each unknown.
    pixels: Vec<usize>,
    /// Padded grid: 1 at the unknowns, 0 elsewhere.
    mask: Vec<f64>,
    /// Padded grid: `diag_i` (1 off the image).
    diag: Vec<f64>,
    /// Padded grid: `1 / diag_i` at the unknowns, 0 elsewhere (the Jacobi preconditioner).
    inv_diag: Vec<f64>,
    /// Image rows `first..last` (padded numbering) hold every unknown: the solver works there.
    rows: std::ops::Range<usize>,
}

impl System {
    fn new(removed: &[bool], h: usize, w: usize) -> System {
        let stride = w + 2;
        let mut s = System {
            w,
            pixels: (0..h * w).filter(|&p| removed[p]).collect(),
            mask: vec![0.0; (h + 2) * stride],
            diag: vec![1.0; (h + 2) * stride],
            inv_diag: vec![0.0; (h + 2) * stride],
            rows: 1..1,
        };
        if let (Some(first), Some(last)) = (s.pixels.first(), s.pixels.last()) {
            s.rows = first / w + 1..last / w + 2;
        }
        for y in 0..h {
            for x in 0..w {
                // Weight of the neighbours inside the image.
                let rows = 1 + usize::from(y > 0) + usize::from(y + 1 < h);
                let cols = 1 + usize::from(x > 0) + usize::from(x + 1 < w);
                let edges = (rows - 1) + (cols - 1);
                let diagonals = (rows - 1) * (cols - 1);
                let i = (y + 1) * stride + x + 1;
                s.diag[i] = edges as f64 * EDGE + diagonals as f64 * DIAGONAL;
                if removed[y * w + x] {
                    s.mask[i] = 1.0;
                    s.inv_diag[i] = 1.0 / s.diag[i];
                }
            }
        }
        s
    }

    fn stride(&self) -> usize {
        self.w + 2
    }

    /// `out = mask * (diag * v - sum_j w_j v_j)` on the image; returns `<v, out>`. `v` must be 0 on
    /// the padding.
    fn apply(&self, v: &[f64], out: &mut [f64]) -> f64 {
        let (s, w) = (self.stride(), self.w);
        let mut dot = 0.0;
        for y in self.rows.clone() {
            let row = y * s;
            let (up, mid, down) = (&v[row - s..row], &v[row..row + s], &v[row + s..row + 2 * s]);
            let (mask, diag) = (&self.mask[row..row + s], &self.diag[row..row + s]);
            let out = &mut out[row..row + s];
            for x in 1..=w {
                let edges = mid[x - 1] + mid[x + 1] + up[x] + down[x];
                let diagonals = up[x - 1] + up[x + 1] + down[x - 1] + down[x + 1];
                let value = mask[x] * (diag[x] * mid[x] - EDGE * edges - DIAGONAL * diagonals);
                out[x] = value;
                dot += value * mid[x];
            }
        }
        dot
    }

    /// The unknowns' values for one channel `plane` (Jacobi-preconditioned conjugate gradients),
    /// in the order of `pixels`.
    fn solve(&self, plane: &[f32]) -> Vec<f64> {
        let n = self.pixels.len();
        if n == 0 {
            return Vec::new();
        }
        let (s, w) = (self.stride(), self.w);
        let grid = |p: usize| (p / w + 1) * s + p % w + 1;
        // Start from the mean of the known pixels (0 when none is known: then the system is
        // singular with right-hand side 0, and 0 is a solution).
        let known = plane.len() - n;
        let start = if known == 0 {
            0.0
        } else {
            let total: f64 = plane.iter().map(|&v| v as f64).sum::<f64>()
                - self.pixels.iter().map(|&p| plane[p] as f64).sum::<f64>();
            total / known as f64
        };
        let len = self.mask.len();
        // The vector loops cover the rows of the unknowns (elsewhere r, z, p, q stay 0).
        let span = self.rows.start * s..self.rows.end * s;
        let mut x = vec![0.0; len];
        for (p, &v) in plane.iter().enumerate() {
            x[grid(p)] = v as f64;
        }
        for &p in &self.pixels {
            x[grid(p)] = start;
        }
        let (mut r, mut z, mut p, mut q) = (vec![0.0; len], vec![0.0; len], vec![0.0; len], vec![0.0; len]);
        let max_iterations = 4 * n + 1000;
        let mut iterations = 0;
        // Each round starts from the true residual, so that the result meets the tolerance
        // whatever CG's running residual drifted to.
        for _round in 0..8 {
            self.apply(&x, &mut q);
            let mut rz = 0.0;
            let mut deviation = 0.0f64;
            for i in span.clone() {
                r[i] = -q[i];
                z[i] = r[i] * self.inv_diag[i];
                p[i] = z[i];
                rz += r[i] * z[i];
                deviation = deviation.max(z[i].abs());
            }
            if deviation < TOLERANCE || iterations >= max_iterations {
                break;
            }
            while iterations < max_iterations {
                iterations += 1;
                let pq = self.apply(&p, &mut q);
                if pq <= 0.0 || !pq.is_finite() {
                    break;
                }
                let alpha = rz / pq;
                let mut rz_next = 0.0;
                let mut deviation = 0.0f64;
                for i in span.clone() {
                    x[i] += alpha * p[i];
                    r[i] -= alpha * q[i];
                    z[i] = r[i] * self.inv_diag[i];
                    rz_next += r[i] * z[i];
                    deviation = deviation.max(z[i].abs());
                }
                if deviation < TOLERANCE * 0.5 {
                    break;
                }
                let beta = rz_next / rz;
                rz = rz_next;
                for i in span.clone() {
                    p[i] = z[i] + beta * p[i];
                }
            }
        }
        self.pixels.iter().map(|&p| x[grid(p)]).collect()
    }
}

/// splitmix64 (Steele, Lea & Flood 2014), the generator of the metrics' seeded randomness.
#[derive(Debug, Clone)]
pub(crate) struct SplitMix64 {
    state: u64,
    spare: Option<f64>,
}

impl SplitMix64 {
    pub(crate) fn new(seed: u64) -> Self {
        SplitMix64 {
            state: seed,
            spare: None,
        }
    }

    /// A stream named `name` under `seed` (the FNV-1a hash of the name, offset basis xor seed).
    pub(crate) fn named(seed: u64, name: &str) -> Self {
        let h = name.bytes().fold(seed ^ 0xcbf29ce484222325, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        SplitMix64::new(h)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`, 53 bits.
    pub(crate) fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller, both values of each pair used).
    pub(crate) fn gaussian(&mut self) -> f64 {
        if let Some(v) = self.spare.take() {
            return v;
        }
        let u1 = 1.0 - self.uniform(); // (0, 1]
        let u2 = self.uniform();
        let radius = (-2.0 * u1.ln()).sqrt();
        let angle = 2.0 * std::f64::consts::PI * u2;
        self.spare = Some(radius * angle.sin());
        radius * angle.cos()
    }
}
