//! Weakly supervised object localisation from a saliency map (Simonyan et al. 2014, section 3.2):
//! colour models from the thresholded saliency, a GraphCut segmentation, and the box of the
//! largest connected component. The method ([`GraphCutLocalisation`], `graphcut-loc`) and its
//! documentation are in `graphcut.rs`; its parts are the Gaussian mixtures of [`gmm`] and the
//! Boykov-Kolmogorov max-flow of [`maxflow`].

pub mod gmm;
mod graphcut;
pub mod maxflow;

pub use graphcut::{GraphCutLocalisation, Seed, localise, seed_labels, segment};

/// The options of the localisation. [`Default`] is the paper's thresholds with GrabCut's colour
/// models and smoothness weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphCutOptions {
    /// Pixels with saliency above this quantile estimate the foreground colour model (paper: 0.95).
    pub fg_quantile: f32,
    /// Pixels with saliency below this quantile estimate the background colour model (paper: 0.30).
    pub bg_quantile: f32,
    /// Gaussians per colour model (GrabCut: 5).
    pub components: usize,
    /// Weight of the contrast-sensitive smoothness term (GrabCut: 50).
    pub gamma: f32,
    /// EM iterations of each colour model after its k-means++ initialisation.
    pub iterations: usize,
    /// Seed of the k-means++ initialisation.
    pub seed: u64,
}

impl Default for GraphCutOptions {
    fn default() -> Self {
        GraphCutOptions {
            fg_quantile: 0.95,
            bg_quantile: 0.30,
            components: 5,
            gamma: 50.0,
            iterations: 10,
            seed: 0,
        }
    }
}

/// What the localisation finds in one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Localisation {
    /// The object mask, `H * W` row-major: the largest 8-connected component of the GraphCut
    /// foreground.
    pub mask: Vec<bool>,
    /// `[x0, y0, x1, y1]`, inclusive pixel coordinates of the mask; `None` if the mask is empty.
    pub bbox: Option<[f32; 4]>,
}

/// The 8 neighbours' offsets `(dy, dx)`.
const NEIGHBOURS: [(isize, isize); 8] = [
    (-1, -1),
    (-1, 0),
    (-1, 1),
    (0, -1),
    (0, 1),
    (1, -1),
    (1, 0),
    (1, 1),
];

/// The largest 8-connected component of `mask` (`[h, w]` row-major); ties go to the component met
/// first in raster order. All `false` if `mask` is (or if it is not `h * w` long).
pub fn largest_component(mask: &[bool], [h, w]: [usize; 2]) -> Vec<bool> {
    if mask.len() != h * w {
        return vec![false; mask.len()];
    }
    let mut label = vec![0u32; mask.len()];
    let (mut best, mut best_size, mut next) = (0u32, 0usize, 0u32);
    let mut stack = Vec::new();
    for start in 0..mask.len() {
        if !mask[start] || label[start] != 0 {
            continue;
        }
        next += 1;
        label[start] = next;
        stack.push(start);
        let mut size = 0;
        while let Some(p) = stack.pop() {
            size += 1;
            let (y, x) = ((p / w) as isize, (p % w) as isize);
            for (dy, dx) in NEIGHBOURS {
                let (ny, nx) = (y + dy, x + dx);
                if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                    continue;
                }
                let q = ny as usize * w + nx as usize;
                if mask[q] && label[q] == 0 {
                    label[q] = next;
                    stack.push(q);
                }
            }
        }
        if size > best_size {
            (best, best_size) = (next, size);
        }
    }
    label.iter().map(|&l| l != 0 && l == best).collect()
}

/// `[x0, y0, x1, y1]` of the `true` pixels (inclusive), `None` if there are none (or if `mask`
/// is not `h * w` long).
pub fn bounding_box(mask: &[bool], [h, w]: [usize; 2]) -> Option<[f32; 4]> {
    if mask.len() != h * w {
        return None;
    }
    let mut b: Option<[usize; 4]> = None;
    for p in (0..mask.len()).filter(|&p| mask[p]) {
        let (y, x) = (p / w, p % w);
        b = Some(match b {
            None => [x, y, x, y],
            Some([x0, y0, x1, y1]) => [x0.min(x), y0.min(y), x1.max(x), y1.max(y)],
        });
    }
    b.map(|b| b.map(|v| v as f32))
}

/// The `q`-quantile of `sorted` (ascending) with linear interpolation between order statistics
/// (NumPy's default): position `q (n - 1)`.
pub fn quantile(sorted: &[f32], q: f32) -> f32 {
    let pos = q as f64 * (sorted.len() - 1) as f64;
    let (i, f) = (pos.floor() as usize, pos - pos.floor());
    let j = (i + 1).min(sorted.len() - 1);
    (sorted[i] as f64 + f * (sorted[j] as f64 - sorted[i] as f64)) as f32
}
