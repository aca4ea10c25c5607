//! The explainer's training forward: class logits to target / non-target masks (the authors'
//! `extract_masks`), the masked and inverted images through the frozen classifier, and the loss of
//! a profile (Stalder et al.'s four terms, or RTIS's).

use crate::Result;
use crate::learned::explainer_loss::{
    ClassifierKind, ExplainerCoefficients, ExplainerTerms, class_mask_area, classification, negative_entropy,
    rtis_loss, total_variation,
};
use crate::learned::lcam::TrainBatch;
use crate::learned::segmenter::Segmenter;
use crate::learned::upsample::upsample_bilinear;
use burn::tensor::activation::sigmoid;
use deepsight_runtime::{Device, Int, LayeredClassifier, Tensor, TensorData};
use rand::{Rng, SeedableRng};

/// The masks of a batch at the input resolution.
pub struct ExplainerMasks {
    /// `sigmoid(max_{c ∈ T} up(S_c))`, `[B, 1, H, W]`.
    pub target: Tensor<4>,
    /// `sigmoid(up(max_{c ∉ T} S_c))`, `[B, 1, H, W]`.
    pub non_target: Tensor<4>,
    /// `sigmoid(up(S_c))` of every (image, target) pair, `[P, H * W]`.
    pub classes: Tensor<2>,
}

/// The masks from class logits `S` `[B, K, h, w]` and each image's target classes, at `[H, W]`.
/// The target mask upsamples each target's logits and then takes the maximum (the authors' order);
/// the non-target maximum over the other `K - |T|` classes is taken at `h x w` and then upsampled,
/// so that 1000 full-resolution maps per image are never made (bilinear upsampling and the maximum
/// agree wherever one class wins a whole neighbourhood).
pub fn extract_masks(
    logits: Tensor<4>,
    labels: &[Vec<usize>],
    height: usize,
    width: usize,
) -> ExplainerMasks {
    let [b, k, h, w] = logits.dims();
    let device = logits.device();
    let rows: Vec<i64> = labels
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.iter().map(move |&c| (i * k + c) as i64))
        .collect();
    let p = rows.len();
    let index = Tensor::<1, Int>::from_data(TensorData::new(rows, [p]), &device);
    let pairs = logits
        .clone()
        .reshape([b * k, h * w])
        .select(0, index)
        .reshape([1, p, h, w]);
    let up = upsample_bilinear(pairs, height, width, &device).reshape([p, height * width]);
    let mut start = 0;
    let mut per_image = Vec::with_capacity(b);
    for l in labels {
        per_image.push(
            up.clone()
                .slice([start..start + l.len(), 0..height * width])
                .max_dim(0),
        );
        start += l.len();
    }
    let target = sigmoid(Tensor::cat(per_image, 0)).reshape([b, 1, height, width]);
    let mut off = vec![0f32; b * k];
    for (i, l) in labels.iter().enumerate() {
        for &c in l {
            off[i * k + c] = -1e4;
        }
    }
    let off = Tensor::<4>::from_data(TensorData::new(off, [b, k, 1, 1]), &device);
    let nt = (logits + off).max_dim(1);
    let non_target = sigmoid(upsample_bilinear(nt, height, width, &device));
    ExplainerMasks {
        target,
        non_target,
        classes: sigmoid(up),
    }
}

/// Which objective trains the explainer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Objective {
    /// Stalder et al.'s loss with these coefficients.
    Explainer(ExplainerCoefficients),
    /// Dabkowski & Gal's real-time saliency loss (the RTIS baseline).
    Rtis,
}

impl Objective {
    /// The names of the unweighted terms [`training_loss`] returns, in order.
    pub fn terms(&self) -> &'static [&'static str] {
        match self {
            Objective::Explainer(_) => &[
                "classification",
                "entropy",
                "tv",
                "area",
                "target_mean",
                "non_target_mean",
            ],
            Objective::Rtis => &["tv2", "area", "preserver", "destroyer"],
        }
    }

    /// The coefficients of the terms in the total (RTIS: its fixed `10, 1, 1` and the destroyer
    /// enters as `5 d^0.3`, plotted with weight 5).
    pub fn weights(&self) -> Vec<f32> {
        match self {
            Objective::Explainer(c) => vec![1.0, c.entropy, c.tv, c.area, c.target_mean, c.non_target_mean],
            Objective::Rtis => vec![10.0, 1.0, 1.0, 5.0],
        }
    }
}

/// One training forward and its loss: `(total, unweighted terms)`.
pub fn training_loss<S: Segmenter>(
    model: &dyn LayeredClassifier,
    segmenter: &S,
    batch: &TrainBatch,
    labels: &[Vec<usize>],
    kind: ClassifierKind,
    objective: Objective,
) -> Result<(Tensor<1>, Vec<Tensor<1>>)> {
    let [b, _, h, w] = batch.images01.dims();
    let x = batch.normalise(batch.images01.clone());
    let logits = segmenter.class_logits(model, x.clone())?;
    let masks = extract_masks(logits, labels, h, w);
    let m = masks.target.clone();
    match objective {
        Objective::Explainer(c) => {
            let inverse = m.clone().neg() + 1.0;
            let kept = model.forward_tracked(x.clone() * m.clone(), &[])?.logits;
            let removed = model.forward_tracked(x * inverse, &[])?.logits;
            let terms = ExplainerTerms {
                classification: classification(kind, kept, labels),
                entropy: negative_entropy(removed),
                tv: total_variation(m.clone(), false) + total_variation(masks.non_target.clone(), false),
                area: class_mask_area(masks.classes, b, c.min_area, c.max_area),
                target_mean: m.mean(),
                non_target_mean: masks.non_target.mean(),
            };
            let total = terms.total(&c);
            Ok((
                total,
                vec![
                    terms.classification,
                    terms.entropy,
                    terms.tv,
                    terms.area,
                    terms.target_mean,
                    terms.non_target_mean,
                ],
            ))
        }
        Objective::Rtis => {
            let alt = alternative_image(&x, labels);
            let inverse = m.clone().neg() + 1.0;
            let preserved = x.clone() * m.clone() + alt.clone() * inverse.clone();
            let destroyed = x * inverse + alt * m.clone();
            let lp = model.forward_tracked(preserved, &[])?.logits;
            let ld = model.forward_tracked(destroyed, &[])?.logits;
            let (total, t) = rtis_loss(kind, m, lp, ld, labels);
            Ok((total, t.to_vec()))
        }
    }
}

/// Dabkowski & Gal's alternative image (`rtsal_helper.generate_alternative_image`), in the model's
/// input space: with probability 1/2 the image blurred by a Gaussian of σ = 10 (TorchRay's
/// `imsmooth`, zero padding), else noise `N(0.11, 1)` plus a colour uniform in `±0.33` per image
/// and channel. Seeded by the batch's labels and pixels, so that a step is reproducible.
pub fn alternative_image(x: &Tensor<4>, labels: &[Vec<usize>]) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let device: Device = x.device();
    let values = deepsight_runtime::to_vec(x.clone());
    let mut seed = 0x0a17_5a1e_u64;
    for (i, l) in labels.iter().enumerate() {
        for &k in l {
            seed = seed.rotate_left(7) ^ (k as u64 + 1).wrapping_mul(0x9e37_79b9 + i as u64);
        }
    }
    for v in values.iter().step_by(997) {
        seed = seed.rotate_left(5) ^ v.to_bits() as u64;
    }
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let out = if rng.random_bool(0.5) {
        gaussian_blur(&values, [b * c, h, w], 10.0)
    } else {
        let mut out = Vec::with_capacity(values.len());
        for _ in 0..b * c {
            let colour = rng.random_range(-0.33f32..0.33);
            for _ in 0..h * w {
                // Box-Muller: a standard normal from two uniforms.
                let (u1, u2): (f32, f32) = (rng.random_range(1e-7..1.0), rng.random());
                let z = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
                out.push(0.11 + z + colour);
            }
        }
        out
    };
    Tensor::from_data(TensorData::new(out, [b, c, h, w]), &device)
}

/// TorchRay's `imsmooth`: a separable Gaussian of `sigma` (half-width `ceil(4 sigma)`, normalised
/// to sum 1) with zero padding, on `planes` of `[n, h, w]`.
pub fn gaussian_blur(values: &[f32], [n, h, w]: [usize; 3], sigma: f32) -> Vec<f32> {
    let r = (4.0 * sigma).ceil() as isize;
    let mut k: Vec<f32> = (-r..=r)
        .map(|i| {
            let t = i as f32 / (std::f32::consts::SQRT_2 * sigma + f32::EPSILON);
            (-t * t).exp()
        })
        .collect();
    let s: f32 = k.iter().sum();
    k.iter_mut().for_each(|v| *v /= s);
    let mut tmp = vec![0f32; values.len()];
    let mut out = vec![0f32; values.len()];
    for p in 0..n {
        let src = &values[p * h * w..(p + 1) * h * w];
        let mid = &mut tmp[p * h * w..(p + 1) * h * w];
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0f32;
                for (j, kv) in k.iter().enumerate() {
                    let yy = y as isize + j as isize - r;
                    if (0..h as isize).contains(&yy) {
                        acc += kv * src[yy as usize * w + x];
                    }
                }
                mid[y * w + x] = acc;
            }
        }
        let dst = &mut out[p * h * w..(p + 1) * h * w];
        for y in 0..h {
            for x in 0..w {
                let mut acc = 0f32;
                for (j, kv) in k.iter().enumerate() {
                    let xx = x as isize + j as isize - r;
                    if (0..w as isize).contains(&xx) {
                        acc += kv * mid[y * w + xx as usize];
                    }
                }
                dst[y * w + x] = acc;
            }
        }
    }
    out
}
