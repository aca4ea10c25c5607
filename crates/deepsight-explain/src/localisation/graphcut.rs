//! Weakly supervised object localisation by GraphCut on the saliency map.
//!
//! # Computes
//! Where the object of the class is, from nothing but the classifier: the class saliency map
//! (`saliency`) is thresholded into confident foreground and background pixels, colour models of
//! both are fitted, a GraphCut segmentation spreads the labels along the image's colours, and the
//! largest connected object region gives the mask and its bounding box. The map is the mask (1 on
//! the object, 0 elsewhere); the extras are `box` (`x0, y0, x1, y1`, inclusive pixel
//! coordinates, all -1 if the mask is empty), `saliency` (the map segmented) and `seeds`, the
//! thresholded saliency of the paper's Fig. 4 (0: foreground-model pixels, above the 95%
//! quantile; 1: background-model pixels, below the 30% quantile; 2: the rest, ignored by the
//! colour models).
//!
//! # Equation
//! `M` the saliency map; `F = {p : M_p > q_0.95(M)}`, `B = {p : M_p < q_0.30(M)}`; Gaussian
//! mixtures `P_F`, `P_B` over RGB fitted to the colours of `F` and `B`. The labelling `L` minimises
//! `E(L) = sum_p D_p(L_p) + sum_{(p,q) in N_8, L_p != L_q} gamma exp(-beta ||I_p - I_q||^2) / dist(p,q)`
//! with `D_p(fg) = -ln P_F(I_p)`, `D_p(bg) = -ln P_B(I_p)`, `beta = 1 / (2 <||I_p - I_q||^2>_N8)`,
//! `dist` 1 or sqrt 2, subject to `L = fg` on `F` and `L = bg` on `B`; found exactly as the minimum
//! s-t cut (Boykov-Kolmogorov max-flow). The mask is the largest 8-connected component of
//! `{L = fg}`; the box is its bounding box.
//!
//! # Paper
//! Simonyan, Vedaldi & Zisserman, *Deep Inside Convolutional Networks: Visualising Image
//! Classification Models and Saliency Maps*, ICLR Workshop 2014, section 3.2; the GraphCut of
//! Boykov & Jolly, *Interactive Graph Cuts for Optimal Boundary & Region Segmentation*, ICCV 2001,
//! with GrabCut's colour models and pairwise term (Rother, Kolmogorov & Blake, SIGGRAPH 2004).
//!
//! # Deviations
//! Where the paper is silent: the thresholded pixels are hard constraints (the seeds of Boykov &
//! Jolly, whose method the paper applies with the saliency in place of a user's strokes), the rest
//! is labelled by the colour models; 5 Gaussians per model with full covariances (GrabCut), plus
//! `1e-4 I` (colours in [0, 1]) so a flat colour stays invertible; k-means++ initialisation from a
//! seeded generator, one hard assignment, then 10 EM iterations; gamma = 50 (GrabCut); an
//! 8-connected grid, `beta` averaged over its pairs; the hard-constraint weight `K = 1 + max_p sum_q
//! B_pq` (Boykov & Jolly). Quantiles interpolate linearly (NumPy's default); where ties leave no
//! pixel strictly above (below) a quantile, the pixels equal to it are taken. Connected components
//! are 8-connected; a tie between the largest goes to the first in raster order. The colours are the
//! model input mapped back to [0, 1] by the `colour` option's per-channel affine map. One forward
//! and one backward pass per image (the saliency's).

use super::gmm::Gmm;
use super::maxflow::Graph;
use super::{GraphCutOptions, Localisation, bounding_box, largest_component, quantile};
use crate::gradient::Saliency;
use crate::{
    ExplainError, Explainer, Explanation, Extra, ExtraKind, Map, Need, Request, Result, SharedPasses,
};
use deepsight_runtime::{LayeredClassifier, to_vec};

const NAME: &str = "graphcut-loc";

fn invalid(reason: String) -> ExplainError {
    ExplainError::Invalid { method: NAME, reason }
}

/// The forward half of the 8-neighbourhood `(dy, dx, 1 / distance)`: each pair once.
const PAIRS: [(usize, isize, f64); 4] = [
    (0, 1, 1.0),
    (1, 0, 1.0),
    (1, 1, std::f64::consts::FRAC_1_SQRT_2),
    (1, -1, std::f64::consts::FRAC_1_SQRT_2),
];

fn check_inputs(rgb: &[f32], saliency: &[f32], [h, w]: [usize; 2], o: &GraphCutOptions) -> Result<()> {
    if h == 0 || w == 0 {
        return Err(invalid(format!("the image is empty ({h}x{w})")));
    }
    if saliency.len() != h * w {
        return Err(invalid(format!(
            "the saliency map has {} values, but the image is {h}x{w} ({} pixels)",
            saliency.len(),
            h * w
        )));
    }
    if rgb.len() != 3 * h * w {
        return Err(invalid(format!(
            "the colours have {} values, but a 3x{h}x{w} image has {}",
            rgb.len(),
            3 * h * w
        )));
    }
    if let Some(p) = saliency.iter().position(|v| !v.is_finite()) {
        return Err(invalid(format!(
            "the saliency map is not finite at pixel (row {}, column {}): {}",
            p / w,
            p % w,
            saliency[p]
        )));
    }
    if let Some(p) = rgb.iter().position(|v| !v.is_finite()) {
        return Err(invalid(format!("colour value {p} is not finite: {}", rgb[p])));
    }
    let (fq, bq) = (o.fg_quantile, o.bg_quantile);
    if !(0.0..=1.0).contains(&fq) || !(0.0..=1.0).contains(&bq) || bq >= fq {
        return Err(invalid(format!(
            "the quantiles must satisfy 0 <= background ({bq}) < foreground ({fq}) <= 1"
        )));
    }
    if o.components == 0 {
        return Err(invalid("a colour model needs at least one Gaussian".into()));
    }
    if !(o.gamma.is_finite() && o.gamma >= 0.0) {
        return Err(invalid(format!("gamma must be finite and >= 0, not {}", o.gamma)));
    }
    Ok(())
}

/// What the thresholded saliency makes of a pixel (Simonyan et al. Fig. 4, third column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Seed {
    /// Saliency above the foreground quantile: fits the foreground colour model, fixed to the object.
    Foreground = 0,
    /// Saliency below the background quantile: fits the background colour model, fixed to it.
    Background = 1,
    /// In between: labelled by the GraphCut.
    Ignored = 2,
}

impl Seed {
    /// The names of the ids `0, 1, 2` (the `seeds` extra's legend).
    pub const LABELS: &'static [&'static str] = &["foreground model", "background model", "ignored"];
}

/// The thresholded saliency: each pixel's [`Seed`] by the saliency's quantiles (linear
/// interpolation; where ties leave no pixel strictly beyond a quantile, the tied pixels are taken).
pub fn seed_labels(saliency: &[f32], options: &GraphCutOptions) -> Result<Vec<Seed>> {
    let (fg, bg) = seeds(saliency, options)?;
    Ok(fg
        .iter()
        .zip(&bg)
        .map(|(&f, &b)| match (f, b) {
            (true, _) => Seed::Foreground,
            (false, true) => Seed::Background,
            (false, false) => Seed::Ignored,
        })
        .collect())
}

/// The seed pixels: `(foreground, background)` from the saliency's quantiles.
fn seeds(saliency: &[f32], o: &GraphCutOptions) -> Result<(Vec<bool>, Vec<bool>)> {
    let mut sorted = saliency.to_vec();
    sorted.sort_by(f32::total_cmp);
    let (qf, qb) = (quantile(&sorted, o.fg_quantile), quantile(&sorted, o.bg_quantile));
    if qf <= qb {
        return Err(invalid(format!(
            "no pixel has a saliency above the {} quantile that is not also below the {} quantile \
             (both are {qf}): the map is too flat to seed the colour models",
            o.fg_quantile, o.bg_quantile
        )));
    }
    let pick = |strict: &dyn Fn(f32) -> bool, tied: &dyn Fn(f32) -> bool| {
        let set: Vec<bool> = saliency.iter().map(|&s| strict(s)).collect();
        if set.contains(&true) {
            set
        } else {
            saliency.iter().map(|&s| tied(s)).collect()
        }
    };
    let fg = pick(&|s| s > qf, &|s| s >= qf);
    let bg = pick(&|s| s < qb, &|s| s <= qb);
    Ok((fg, bg))
}

/// The GraphCut labelling (`true`: foreground) before the connected-component step.
pub fn segment(
    rgb: &[f32],
    saliency: &[f32],
    [h, w]: [usize; 2],
    options: &GraphCutOptions,
) -> Result<Vec<bool>> {
    check_inputs(rgb, saliency, [h, w], options)?;
    let (fg, bg) = seeds(saliency, options)?;
    let n = h * w;
    let colour = |p: usize| [rgb[p], rgb[n + p], rgb[2 * n + p]];
    let sample = |set: &[bool]| -> Vec<[f32; 3]> { (0..n).filter(|&p| set[p]).map(colour).collect() };
    let fit = |set: &[bool], seed: u64, what: &str| {
        Gmm::fit(&sample(set), options.components, options.iterations, seed)
            .ok_or_else(|| invalid(format!("no {what} pixel to fit a colour model to")))
    };
    let fg_model = fit(&fg, options.seed, "foreground")?;
    let bg_model = fit(&bg, options.seed.wrapping_add(1), "background")?;

    // The grid's pairs and their squared colour differences, then beta and the weights.
    let neighbour = |p: usize, (dy, dx, _): (usize, isize, f64)| -> Option<usize> {
        let (y, x) = (p / w + dy, (p % w) as isize + dx);
        (y < h && x >= 0 && (x as usize) < w).then(|| y * w + x as usize)
    };
    let d2 = |p: usize, q: usize| -> f64 {
        let (a, b) = (colour(p), colour(q));
        (0..3).map(|c| ((a[c] - b[c]) as f64).powi(2)).sum()
    };
    let (mut sum, mut count) = (0.0f64, 0usize);
    for p in 0..n {
        for pair in PAIRS {
            if let Some(q) = neighbour(p, pair) {
                sum += d2(p, q);
                count += 1;
            }
        }
    }
    let mean = if count > 0 { sum / count as f64 } else { 0.0 };
    let beta = if mean > 0.0 { 1.0 / (2.0 * mean) } else { 0.0 };
    let gamma = options.gamma as f64;

    let mut graph = Graph::new(n, 4 * n);
    let mut incident = vec![0.0f64; n];
    for p in 0..n {
        for pair in PAIRS {
            if let Some(q) = neighbour(p, pair) {
                let weight = gamma * (-beta * d2(p, q)).exp() * pair.2;
                graph.add_edge(p, q, weight, weight);
                incident[p] += weight;
                incident[q] += weight;
            }
        }
    }
    let k = 1.0 + incident.iter().copied().fold(0.0, f64::max);
    for p in 0..n {
        let (source, sink) = if fg[p] {
            (k, 0.0)
        } else if bg[p] {
            (0.0, k)
        } else {
            // Cutting p from the source labels it background: that costs D_p(bg), and vice versa.
            let c = colour(p);
            let (d_bg, d_fg) = (-bg_model.log_likelihood(c), -fg_model.log_likelihood(c));
            let m = d_bg.min(d_fg);
            (d_bg - m, d_fg - m)
        };
        graph.add_tweights(p, source, sink);
    }
    graph.maxflow();
    Ok((0..n).map(|p| graph.is_source_side(p)).collect())
}

/// Simonyan et al.'s localisation: the GraphCut segmentation seeded by the saliency map, its
/// largest 8-connected component and that component's bounding box.
///
/// `rgb`: `[3, H, W]` colours in [0, 1]; `saliency`: `[H, W]` non-negative saliency (Simonyan's
/// max over channels of `|grad|`).
pub fn localise(
    rgb: &[f32],
    saliency: &[f32],
    [h, w]: [usize; 2],
    options: &GraphCutOptions,
) -> Result<Localisation> {
    let labels = segment(rgb, saliency, [h, w], options)?;
    let mask = largest_component(&labels, [h, w]);
    let bbox = bounding_box(&mask, [h, w]);
    Ok(Localisation { mask, bbox })
}

/// Weakly supervised localisation from the saliency map (`graphcut-loc`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GraphCutLocalisation {
    pub options: GraphCutOptions,
    /// Per channel `(scale, offset)`: the colour in [0, 1] is `input * scale + offset`.
    pub colour: [(f32, f32); 3],
}

impl Default for GraphCutLocalisation {
    fn default() -> Self {
        GraphCutLocalisation {
            options: GraphCutOptions::default(),
            colour: [(1.0, 0.0); 3],
        }
    }
}

impl GraphCutLocalisation {
    /// The `colour` map that undoes a preprocessing `input = (pixel - mean) / std` with `pixel`,
    /// `mean` and `std` in 0..=255 units (DeepSight's `Preprocess`).
    pub fn colour_of_normalisation(mean: [f32; 3], std: [f32; 3]) -> [(f32, f32); 3] {
        std::array::from_fn(|c| (std[c] / 255.0, mean[c] / 255.0))
    }
}

impl Explainer for GraphCutLocalisation {
    fn name(&self) -> &'static str {
        NAME
    }

    fn needs(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<Vec<Need>> {
        Saliency.needs(model, request)
    }

    fn explain_shared(
        &self,
        model: &dyn LayeredClassifier,
        request: &Request,
        shared: &SharedPasses,
    ) -> Result<Explanation> {
        let [n, c, h, w] = request.images.dims();
        if c != 3 {
            return Err(invalid(format!("needs RGB images (3 channels), not {c}")));
        }
        let saliency = Saliency.explain_shared(model, request, shared)?;
        let images = to_vec(request.images.clone());
        let plane = h * w;
        let (mut maps, mut boxes, mut seed_maps) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::new());
        for (i, s) in saliency.maps.iter().enumerate() {
            let x = &images[i * 3 * plane..(i + 1) * 3 * plane];
            let rgb: Vec<f32> = x
                .iter()
                .enumerate()
                .map(|(j, v)| {
                    let (scale, offset) = self.colour[j / plane];
                    v * scale + offset
                })
                .collect();
            let found = localise(&rgb, &s.data, [s.height, s.width], &self.options)?;
            seed_maps.push(Map {
                channels: 1,
                height: s.height,
                width: s.width,
                data: seed_labels(&s.data, &self.options)?
                    .iter()
                    .map(|&l| l as u8 as f32)
                    .collect(),
            });
            maps.push(Map {
                channels: 1,
                height: s.height,
                width: s.width,
                data: found.mask.iter().map(|&m| if m { 1.0 } else { 0.0 }).collect(),
            });
            boxes.push(Map {
                channels: 1,
                height: 1,
                width: 4,
                data: found.bbox.map_or(vec![-1.0; 4], |b| b.to_vec()),
            });
        }
        Ok(Explanation {
            maps,
            raw: None,
            passes: saliency.passes,
            extra: vec![
                Extra::new("box", boxes, ExtraKind::BoundingBox),
                Extra::new("saliency", saliency.maps, ExtraKind::Magnitude),
                Extra::new("seeds", seed_maps, ExtraKind::Categories(Seed::LABELS)),
            ],
        })
    }
}
