//! RISE: randomized input sampling.
//!
//! # Computes
//! How much each pixel matters to the class, from the model's outputs alone: the image is shown
//! through many random smooth masks, and each pixel's importance is the mean probability of the
//! class over the masks that let it through.
//!
//! # Equation
//! `M_i`: an `s x s` grid of independent `Bernoulli(p)` cells, upsampled bilinearly to
//! `(s + 1) * ceil(H / s)` x `(s + 1) * ceil(W / s)` and cropped to `H x W` at a random shift in
//! `[0, ceil(H / s)) x [0, ceil(W / s))`.
//! `S_c = 1 / (N p) * sum_{i=1..N} P_c(I * M_i) M_i`.
//!
//! # Paper
//! Petsiuk et al., *RISE: Randomized Input Sampling for Explanation of Black-box Models*, BMVC
//! 2018: the Monte Carlo estimate `1 / (E[M] N) sum_i f(I * M_i) M_i` with `E[M] = p` and the
//! paper's mask generation, as their reference code computes them (`explanations.py`: skimage
//! `resize(order=1, mode='reflect', anti_aliasing=False)`, normalisation `/ N / p1`).
//!
//! # Deviations
//! The masks come from a seeded splitmix64 generator instead of NumPy's global one: the same
//! seed gives the same masks and the same map. They are generated batch by batch (memory does not
//! grow with `N`) and every image of a request sees the same masks. The score is always the
//! softmax probability, as in the paper; the request's `--probability` switch has no effect.
//! Upsampling follows skimage: half-pixel centres, mirrored at the grid's edges. Passes: `N`
//! forwards per image (batched, `batch_size` images per forward).

use super::{check_classes, logits_rows, softmax};
use crate::{ExplainError, Explainer, Explanation, Map, Passes, Progress, Request, Result};
use deepsight_runtime::{LayeredClassifier, to_vec};

const NAME: &str = "rise";

/// RISE (`rise`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rise {
    /// `N`, the number of masks.
    pub masks: usize,
    /// `s`, the grid's cells per side.
    pub cell: usize,
    /// `p`, the probability that a cell is on.
    pub p: f32,
    pub seed: u64,
    /// Masked images per forward pass.
    pub batch_size: usize,
    pub progress: Progress,
}

impl Default for Rise {
    fn default() -> Self {
        Rise {
            masks: 4000,
            cell: 7,
            p: 0.5,
            seed: 0,
            batch_size: 16,
            progress: Progress::default(),
        }
    }
}

/// One splitmix64 step.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Source coordinates of one upsampled axis: skimage's half-pixel map, mirrored at the edges
/// (`mode='reflect'`) so that `-t` reads `t` and `n - 1 + t` reads `n - 1 - t`.
fn axis(cells: usize, up: usize, shift: usize, len: usize) -> Vec<(usize, usize, f64)> {
    let scale = cells as f64 / up as f64;
    let last = (cells - 1) as f64;
    (shift..shift + len)
        .map(|o| {
            let mut src = (o as f64 + 0.5) * scale - 0.5;
            if src < 0.0 {
                src = -src;
            }
            if src > last {
                src = (2.0 * last - src).max(0.0);
            }
            let i0 = (src.floor() as usize).min(cells - 1);
            let i1 = (i0 + 1).min(cells - 1);
            (i0, i1, src - i0 as f64)
        })
        .collect()
}

impl Rise {
    fn invalid(reason: &str) -> ExplainError {
        ExplainError::Invalid {
            method: NAME,
            reason: reason.into(),
        }
    }

    fn check(&self) -> Result<()> {
        if self.masks == 0 || self.cell == 0 || self.batch_size == 0 {
            return Err(Self::invalid("masks, cell and batch size must be at least 1"));
        }
        if !(self.p > 0.0 && self.p <= 1.0) {
            return Err(Self::invalid("p must lie in (0, 1]"));
        }
        Ok(())
    }

    /// Mask number `index` for an `height x width` input: a function of the seed and the index
    /// only, so masks can be generated in any order and batch.
    pub fn mask(&self, index: usize, height: usize, width: usize) -> Map {
        let s = self.cell.max(1);
        if height == 0 || width == 0 {
            return Map {
                channels: 1,
                height,
                width,
                data: Vec::new(),
            };
        }
        let mut state = self.seed ^ 0x5249_5345_6d61_736b;
        state = splitmix(&mut state) ^ (index as u64).wrapping_mul(0xd1b5_4a32_d192_ed03);
        let mut uniform = || (splitmix(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
        let grid: Vec<f32> = (0..s * s)
            .map(|_| if uniform() < self.p as f64 { 1.0 } else { 0.0 })
            .collect();
        let (ch, cw) = (height.div_ceil(s), width.div_ceil(s));
        let dy = ((uniform() * ch as f64) as usize).min(ch - 1);
        let dx = ((uniform() * cw as f64) as usize).min(cw - 1);
        let (up, shift) = ([(s + 1) * ch, (s + 1) * cw], [dy, dx]);
        upsample_grid(&grid, s, up, shift, [height, width]).expect("an s x s grid")
    }
}

/// The reference code's `resize(grid, up, order=1, mode='reflect', anti_aliasing=False)[dy:dy +
/// height, dx:dx + width]` of an `s x s` grid (row-major): bilinear with half-pixel centres,
/// mirrored at the grid's edges.
pub fn upsample_grid(
    grid: &[f32],
    s: usize,
    [up_h, up_w]: [usize; 2],
    [dy, dx]: [usize; 2],
    [height, width]: [usize; 2],
) -> Result<Map> {
    if s == 0 || grid.len() != s * s || up_h == 0 || up_w == 0 {
        return Err(Rise::invalid(
            "the grid must hold s x s >= 1 cells, upsampled to at least 1x1",
        ));
    }
    let (rows, cols) = (axis(s, up_h, dy, height), axis(s, up_w, dx, width));
    let mut data = Vec::with_capacity(height * width);
    for &(y0, y1, fy) in &rows {
        for &(x0, x1, fx) in &cols {
            let at = |y: usize, x: usize| grid[y * s + x] as f64;
            let top = at(y0, x0) * (1.0 - fx) + at(y0, x1) * fx;
            let bottom = at(y1, x0) * (1.0 - fx) + at(y1, x1) * fx;
            data.push((top * (1.0 - fy) + bottom * fy) as f32);
        }
    }
    Ok(Map {
        channels: 1,
        height,
        width,
        data,
    })
}

/// `sum_i P_c(I * M_i) M_i / (N p)` for every image of `request` over the masks `next(start,
/// count)` yields, `total` in all; returns the maps and the forward passes.
fn accumulate(
    model: &dyn LayeredClassifier,
    request: &Request,
    total: usize,
    p: f32,
    batch_size: usize,
    progress: &Progress,
    mut next: impl FnMut(usize, usize) -> Result<Vec<Map>>,
) -> Result<(Vec<Map>, usize)> {
    check_classes(model, request)?;
    let [n, c, height, width] = request.images.dims();
    if n == 0 {
        return Ok((Vec::new(), 0));
    }
    let (plane, image) = (height * width, c * height * width);
    let pixels = to_vec(request.images.clone());
    let mut sums = vec![vec![0.0f64; plane]; n];
    // Masks per chunk: every image sees each mask of the chunk, `batch_size` images per forward.
    let per_chunk = (batch_size / n).max(1);
    let mut passes = 0;
    let mut done = 0;
    progress.report(0, total)?;
    while done < total {
        let masks = next(done, per_chunk.min(total - done))?;
        if masks.iter().any(|m| m.data.len() != plane) {
            return Err(ExplainError::Invalid {
                method: NAME,
                reason: format!("every mask must be one {height}x{width} plane"),
            });
        }
        let jobs: Vec<(usize, usize)> = (0..masks.len())
            .flat_map(|m| (0..n).map(move |i| (m, i)))
            .collect();
        for batch in jobs.chunks(batch_size) {
            let mut data = Vec::with_capacity(batch.len() * image);
            for &(m, i) in batch {
                for colour in pixels[i * image..(i + 1) * image].chunks(plane) {
                    data.extend(colour.iter().zip(&masks[m].data).map(|(x, v)| x * v));
                }
            }
            let rows = logits_rows(model, data, [batch.len(), c, height, width])?;
            for (&(m, i), row) in batch.iter().zip(&rows) {
                let prob = softmax(row)[request.classes[i]] as f64;
                for (s, &v) in sums[i].iter_mut().zip(&masks[m].data) {
                    *s += prob * v as f64;
                }
            }
            passes += batch.len();
        }
        done += masks.len();
        progress.report(done, total)?;
    }
    let scale = 1.0 / (total as f64 * p as f64);
    let maps = sums
        .into_iter()
        .map(|s| Map {
            channels: 1,
            height,
            width,
            data: s.into_iter().map(|v| (v * scale) as f32).collect(),
        })
        .collect();
    Ok((maps, passes))
}

/// RISE over given masks (one `H x W` plane each, all held by the caller): the same computation
/// as [`Rise`] without generating masks, for tests and for masks from elsewhere.
pub fn rise_from_masks(
    model: &dyn LayeredClassifier,
    request: &Request,
    masks: &[Map],
    p: f32,
    batch_size: usize,
) -> Result<Explanation> {
    if masks.is_empty() || batch_size == 0 || !(p > 0.0 && p <= 1.0) {
        return Err(Rise::invalid(
            "needs at least one mask, batch size >= 1 and p in (0, 1]",
        ));
    }
    let next = |start: usize, count: usize| Ok(masks[start..start + count].to_vec());
    let (maps, forward) = accumulate(
        model,
        request,
        masks.len(),
        p,
        batch_size,
        &Progress::default(),
        next,
    )?;
    Ok(Explanation {
        maps,
        raw: None,
        passes: Passes { forward, backward: 0 },
        extra: Vec::new(),
    })
}

impl Explainer for Rise {
    fn name(&self) -> &'static str {
        NAME
    }

    fn explain(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<Explanation> {
        self.check()?;
        let [_, _, height, width] = request.images.dims();
        let next = |start: usize, count: usize| {
            Ok((start..start + count)
                .map(|i| self.mask(i, height, width))
                .collect())
        };
        let (maps, forward) = accumulate(
            model,
            request,
            self.masks,
            self.p,
            self.batch_size,
            &self.progress,
            next,
        )?;
        Ok(Explanation {
            maps,
            raw: None,
            passes: Passes { forward, backward: 0 },
            extra: Vec::new(),
        })
    }
}
