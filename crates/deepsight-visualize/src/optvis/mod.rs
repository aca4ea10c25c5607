//! Class model visualisation and feature visualisation by optimising the input image.
//!
//! # Computes
//! For each target (a class score, one channel of a layer, one unit, or a whole layer's energy)
//! an image that maximises it, by gradient ascent through the frozen model: one batched forward
//! and backward pass per step serves every target of the run. Three recipes:
//! - [`Simonyan`] (default): plain gradient ascent on `S_c(I) - lambda ||I||^2` from the zero
//!   image, which after the preset's normalisation is the mean image.
//! - [`Yosinski`]: ascent on `S_c` with L2 decay, a Gaussian blur every k steps and pixel clipping.
//! - [`Lucent`]: Adam on a decorrelated Fourier (or pixel) parameterisation through a sigmoid,
//!   with random pad, jitter, scale and rotation at each step.
//!
//! # Equation
//! Simonyan: `I <- I + lr * (dS_c/dI - 2 lambda I)`. Yosinski: `I <- (1 - decay) (I + lr dS_c/dI)`
//! in 0..255 pixel units, every `k` steps `I <- G_sigma * I`, pixels whose RGB norm is below the
//! `p`-th percentile set to the mean, clipped to the valid range. Lucent:
//! `I = sigmoid(M_colour Re(F^-1(s ⊙ z)) / 4)`, `x = T(I)` with a random transform `T`, and Adam
//! on `z` maximising the objective at `x`. Objectives: the class logit `S_c` (default) or its
//! softmax probability; a channel's mean activation; one unit (the map's centre by default); the
//! layer's mean squared activation (DeepDream).
//!
//! # Paper
//! K. Simonyan, A. Vedaldi, A. Zisserman, "Deep Inside Convolutional Networks: Visualising Image
//! Classification Models and Saliency Maps", ICLR Workshop 2014, section 2. J. Yosinski et al.,
//! "Understanding Neural Networks Through Deep Visualization", ICML DL Workshop 2015 (table 1,
//! set 3: "used for most of the images in the paper"). C. Olah, A. Mordvintsev, L. Schubert,
//! "Feature Visualization", Distill 2017, as Lucent's `render_vis` implements it.
//!
//! # Deviations
//! - Simonyan et al. give no step size, lambda or step count; the defaults here are ours. The
//!   seed's code snippet adds `+ reg * ||I||`; the paper's sign and square are used.
//! - Yosinski: the learning rate is in 0..255 pixel units as in their Caffe code, converted by the
//!   preset's standard deviation; the image is clipped to the valid pixel range every step (their
//!   code leaves it to the display); the "progress" learning-rate schedule is not implemented.
//! - Lucent: its pad, jitter, scale, rotation and final upsampling are composed into one bilinear
//!   resampling per step (kornia resamples at every transform), one transform drawn per step for
//!   the whole batch, out-of-canvas samples read the pad value 0.5; the spectrum is a full complex
//!   one (half-weighted) rather than `rfft`'s half spectrum; Lucid's redirected-ReLU gradient for
//!   the first steps is not used. Starting from an image uses the pixel basis at the model's input
//!   size.

mod param;
mod verdict;
mod warp;

pub use param::Basis;
pub use verdict::{Verdict, judge};
pub use warp::{Transforms, Warp};

use crate::error::{Result, invalid};
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use deepsight_explain::learned::explainer_train::gaussian_blur;
use deepsight_models::{Preprocess, RgbImage};
use deepsight_runtime::{LayeredClassifier, to_vec};
use param::ImageParam;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What an image is optimised for.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// A class: its logit (the paper's `S_c`) or its softmax probability.
    Class { class: usize, objective: ClassObjective },
    /// The mean activation of one channel of a layer (Lucent's `channel`).
    Channel { layer: String, channel: usize },
    /// One unit: a channel at one position, the map's centre when `None` (Lucent's `neuron`).
    Neuron {
        layer: String,
        channel: usize,
        position: Option<[usize; 2]>,
    },
    /// The mean squared activation of a whole layer (DeepDream).
    DeepDream { layer: String },
}

/// Which class score is maximised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClassObjective {
    /// The unnormalised score `S_c` (Simonyan et al.'s choice).
    #[default]
    Logit,
    /// The softmax probability `P_c`, which "can be achieved by minimising the scores of other
    /// classes" and gave the authors poor images.
    Probability,
}

/// Simonyan et al.'s plain gradient ascent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Simonyan {
    pub steps: usize,
    /// Step size in the model's (normalised) input space.
    pub lr: f32,
    /// `lambda` of the `- lambda ||I||^2` term.
    pub l2: f32,
    /// Clamp the image to the valid pixel range after each step (off in the paper).
    pub clip: bool,
}

impl Default for Simonyan {
    fn default() -> Self {
        Simonyan {
            steps: 200,
            lr: 20.0,
            l2: 1e-3,
            clip: false,
        }
    }
}

/// Yosinski et al.'s regularised ascent; defaults are their table 1, set 3.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Yosinski {
    pub steps: usize,
    /// Step size in 0..255 pixel units (their Caffe code's).
    pub lr: f32,
    pub decay: f32,
    /// Blur every this many steps (0: never), with this sigma in pixels.
    pub blur_every: usize,
    pub blur_sigma: f32,
    /// Set pixels whose RGB norm is below this percentile (0-100) to the mean.
    pub norm_percentile: Option<f32>,
    /// Standard deviation of the initial noise around the mean image, in pixel units.
    pub init_sd: f32,
}

impl Default for Yosinski {
    fn default() -> Self {
        Yosinski {
            steps: 1000,
            lr: 100.0,
            decay: 1e-4,
            blur_every: 4,
            blur_sigma: 1.0,
            norm_percentile: None,
            init_sd: 10.0,
        }
    }
}

/// Lucent's `render_vis` with its defaults.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lucent {
    pub steps: usize,
    /// Adam's learning rate.
    pub lr: f32,
    /// Side of the square parameter image (upsampled to the model's input).
    pub size: usize,
    pub basis: Basis,
    pub decorrelate: bool,
    /// Random pad, jitter, scale and rotation at every step.
    pub transforms: bool,
}

impl Default for Lucent {
    fn default() -> Self {
        Lucent {
            steps: 512,
            lr: 0.05,
            size: 128,
            basis: Basis::Fourier,
            decorrelate: true,
            transforms: true,
        }
    }
}

/// How the image is optimised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Recipe {
    Simonyan(Simonyan),
    Yosinski(Yosinski),
    Lucent(Lucent),
}

impl Recipe {
    pub fn steps(&self) -> usize {
        match self {
            Recipe::Simonyan(r) => r.steps,
            Recipe::Yosinski(r) => r.steps,
            Recipe::Lucent(r) => r.steps,
        }
    }
}

/// The optimised images and how their objective rose.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// One image per target at the model's input size, as it would be saved.
    pub images: Vec<RgbImage>,
    /// Per target, the objective's value (before any regulariser) at every step.
    pub curves: Vec<Vec<f32>>,
}

/// Optimises one image per target in one batch. `start` (images at the model's input size, one
/// per target) replaces the recipe's initial image; `progress` is called after every step.
pub fn render(
    model: &dyn LayeredClassifier,
    pre: &Preprocess,
    targets: &[Target],
    recipe: &Recipe,
    start: Option<&[RgbImage]>,
    seed: u64,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Rendered> {
    if targets.is_empty() {
        return Err(invalid("class model", "no target to optimise"));
    }
    if let Some(s) = start
        && s.len() != targets.len()
    {
        return Err(invalid(
            "class model",
            format!("{} start images for {} targets", s.len(), targets.len()),
        ));
    }
    check_targets(model, targets)?;
    let mut run = Run {
        model,
        pre,
        targets,
        device: model.device(),
        rng: StdRng::seed_from_u64(seed),
        curves: vec![Vec::new(); targets.len()],
    };
    let images = match recipe {
        Recipe::Simonyan(r) => run.simonyan(r, start, progress)?,
        Recipe::Yosinski(r) => run.yosinski(r, start, progress)?,
        Recipe::Lucent(r) => run.lucent(r, start, progress)?,
    };
    Ok(Rendered {
        images,
        curves: run.curves,
    })
}

fn check_targets(model: &dyn LayeredClassifier, targets: &[Target]) -> Result<()> {
    let layers = model.layers();
    for t in targets {
        match t {
            Target::Class { class, .. } if *class >= model.num_classes() => {
                return Err(invalid(
                    "class model",
                    format!(
                        "class {class} is out of range: the model has {} classes",
                        model.num_classes()
                    ),
                ));
            }
            Target::Class { .. } => {}
            Target::Channel { layer, channel } | Target::Neuron { layer, channel, .. } => {
                let info = layers.iter().find(|l| &l.name == layer).ok_or_else(|| {
                    invalid(
                        "feature visualisation",
                        format!("the model has no layer '{layer}'"),
                    )
                })?;
                let k = info.shape.get(1).copied().unwrap_or(0);
                if *channel >= k {
                    return Err(invalid(
                        "feature visualisation",
                        format!("layer '{layer}' has {k} channels, not channel {channel}"),
                    ));
                }
                if let (
                    Target::Neuron {
                        position: Some([r, c]),
                        ..
                    },
                    [_, _, h, w],
                ) = (t, info.shape.as_slice())
                    && (r >= h || c >= w)
                {
                    return Err(invalid(
                        "feature visualisation",
                        format!("position [{r}, {c}] is outside layer '{layer}''s {h}x{w} map"),
                    ));
                }
            }
            Target::DeepDream { layer } => {
                if !layers.iter().any(|l| &l.name == layer) {
                    return Err(invalid(
                        "feature visualisation",
                        format!("the model has no layer '{layer}'"),
                    ));
                }
            }
        }
    }
    Ok(())
}

struct Run<'a> {
    model: &'a dyn LayeredClassifier,
    pre: &'a Preprocess,
    targets: &'a [Target],
    device: Device,
    rng: StdRng,
    curves: Vec<Vec<f32>>,
}

impl Run<'_> {
    fn size(&self) -> [usize; 2] {
        self.pre.size()
    }

    fn layers(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .targets
            .iter()
            .filter_map(|t| match t {
                Target::Class { .. } => None,
                Target::Channel { layer, .. }
                | Target::Neuron { layer, .. }
                | Target::DeepDream { layer } => Some(layer.as_str()),
            })
            .collect();
        names.sort_unstable();
        names.dedup();
        names
    }

    /// The objective of each target at the tracked input `x`, `[N]`, on the autodiff tape.
    fn objective(&self, x: Tensor<4>) -> Result<Tensor<1>> {
        let layers = self.layers();
        let cap = self.model.forward_tracked(x, &layers)?;
        let probabilities = self
            .targets
            .iter()
            .any(|t| {
                matches!(
                    t,
                    Target::Class {
                        objective: ClassObjective::Probability,
                        ..
                    }
                )
            })
            .then(|| softmax(cap.logits.clone(), 1));
        let values: Vec<Tensor<1>> = self
            .targets
            .iter()
            .enumerate()
            .map(|(n, t)| match t {
                Target::Class { class, objective } => {
                    let scores = match objective {
                        ClassObjective::Logit => cap.logits.clone(),
                        ClassObjective::Probability => probabilities.clone().expect("computed above"),
                    };
                    scores.narrow(0, n, 1).narrow(1, *class, 1).reshape([1])
                }
                Target::Channel { layer, channel } => cap.activations[layer]
                    .clone()
                    .narrow(0, n, 1)
                    .narrow(1, *channel, 1)
                    .mean(),
                Target::Neuron {
                    layer,
                    channel,
                    position,
                } => {
                    let a = cap.activations[layer]
                        .clone()
                        .narrow(0, n, 1)
                        .narrow(1, *channel, 1);
                    let [_, _, h, w] = a.dims();
                    let [r, c] = position.unwrap_or([h / 2, w / 2]);
                    a.narrow(2, r, 1).narrow(3, c, 1).reshape([1])
                }
                Target::DeepDream { layer } => cap.activations[layer]
                    .clone()
                    .narrow(0, n, 1)
                    .powi_scalar(2)
                    .mean(),
            })
            .collect();
        Ok(Tensor::cat(values, 0))
    }

    /// The gradient of every target's objective (plus `extra`, a regulariser on `vars`) with
    /// respect to `vars`, after `to_input` maps them to the model's input; records the curves.
    fn ascend(
        &mut self,
        vars: &Tensor<4>,
        to_input: impl Fn(Tensor<4>) -> Tensor<4>,
        extra: impl Fn(&Tensor<4>) -> Option<Tensor<1>>,
    ) -> Result<Tensor<4>> {
        let tracked = vars.clone().autodiff().require_grad();
        let values = self.objective(to_input(tracked.clone()))?;
        for (curve, v) in self.curves.iter_mut().zip(to_vec(values.clone().inner())) {
            curve.push(v);
        }
        let mut total = values.sum();
        if let Some(reg) = extra(&tracked) {
            total = total + reg;
        }
        let grads = total.backward();
        tracked
            .grad(&grads)
            .ok_or_else(|| invalid("class model", "the objective does not depend on the image"))
    }

    fn normalised(&self, images: &[RgbImage]) -> Result<Tensor<4>> {
        let [h, w] = self.size();
        let mut data: Vec<f32> = Vec::with_capacity(images.len() * 3 * h * w);
        for img in images {
            data.extend(self.pre.normalise(&self.pre.resize(img)?));
        }
        Ok(Tensor::from_data(
            TensorData::new(data, [images.len(), 3, h, w]),
            &self.device,
        ))
    }

    /// Per channel `(lo, hi, std)` of valid pixels in the model's input space.
    fn channel_range(&self) -> [(f32, f32, f32); 3] {
        std::array::from_fn(|c| {
            let s = self.pre.std[c];
            (self.pre.input_value(c, 0.0), self.pre.input_value(c, 255.0), s)
        })
    }

    fn per_channel(&self, values: [f32; 3]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(values.to_vec(), [1, 3, 1, 1]), &self.device)
    }

    fn clamp_valid(&self, x: Tensor<4>) -> Tensor<4> {
        let r = self.channel_range();
        let channels = (0..3)
            .map(|c| x.clone().narrow(1, c, 1).clamp(r[c].0, r[c].1))
            .collect();
        Tensor::cat(channels, 1)
    }

    /// Input-space images back to RGB8 (clipped and rounded, as a PNG stores them).
    fn to_rgb(&self, x: Tensor<4>) -> Vec<RgbImage> {
        let [n, _, h, w] = x.dims();
        let v = to_vec(x);
        v.chunks(3 * h * w)
            .take(n)
            .map(|img| self.pre.denormalise(img, [h, w]))
            .collect()
    }

    fn simonyan(
        &mut self,
        r: &Simonyan,
        start: Option<&[RgbImage]>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<RgbImage>> {
        let [h, w] = self.size();
        let n = self.targets.len();
        let mut x = match start {
            Some(s) => self.normalised(s)?,
            None => Tensor::zeros([n, 3, h, w], &self.device),
        };
        let l2 = r.l2;
        for step in 0..r.steps {
            let g = self.ascend(
                &x,
                |t| t,
                |t| (l2 != 0.0).then(|| t.clone().powi_scalar(2).sum().mul_scalar(-l2)),
            )?;
            x = x + g.mul_scalar(r.lr);
            if r.clip {
                x = self.clamp_valid(x);
            }
            progress(step + 1, r.steps);
        }
        Ok(self.to_rgb(x))
    }

    fn yosinski(
        &mut self,
        r: &Yosinski,
        start: Option<&[RgbImage]>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<RgbImage>> {
        let [h, w] = self.size();
        let n = self.targets.len();
        let range = self.channel_range();
        let mut x = match start {
            Some(s) => self.normalised(s)?,
            None => {
                let v: Vec<f32> = (0..n * 3 * h * w)
                    .map(|i| normal(&mut self.rng) * r.init_sd / range[(i / (h * w)) % 3].2)
                    .collect();
                Tensor::from_data(TensorData::new(v, [n, 3, h, w]), &self.device)
            }
        };
        // A pixel-unit step is lr / std^2 in the normalised space (d/dx_norm = std * d/dx_pixel).
        let lr = self.per_channel(range.map(|(_, _, s)| r.lr / (s * s)));
        for step in 0..r.steps {
            let g = self.ascend(&x, |t| t, |_| None)?;
            x = (x + g * lr.clone()).mul_scalar(1.0 - r.decay);
            if r.blur_every > 0 && (step + 1) % r.blur_every == 0 && r.blur_sigma > 0.0 {
                let blurred = gaussian_blur(&to_vec(x), [n * 3, h, w], r.blur_sigma);
                x = Tensor::from_data(TensorData::new(blurred, [n, 3, h, w]), &self.device);
            }
            if let Some(p) = r.norm_percentile {
                x = zero_small_norms(x, p);
            }
            x = self.clamp_valid(x);
            progress(step + 1, r.steps);
        }
        Ok(self.to_rgb(x))
    }

    fn lucent(
        &mut self,
        r: &Lucent,
        start: Option<&[RgbImage]>,
        progress: &mut dyn FnMut(usize, usize),
    ) -> Result<Vec<RgbImage>> {
        let input = self.size();
        let n = self.targets.len();
        if r.size == 0 {
            return Err(invalid("lucent", "the parameter image must be at least 1 pixel"));
        }
        let (param, mut vars) = match start {
            Some(s) => {
                let p = ImageParam::new(Basis::Pixel, r.decorrelate, input[0].max(input[1]), &self.device);
                let rgb = self.normalised(s)?;
                let unit =
                    rgb * self.per_channel(self.pre.std) / 255.0 + self.per_channel(self.pre.mean) / 255.0;
                let square = Warp::resize(input, [p.size(); 2]).apply(unit, 0.0);
                let v = p.vars_for(square);
                (p, v)
            }
            None => {
                let p = ImageParam::new(r.basis, r.decorrelate, r.size, &self.device);
                let channels = if r.basis == Basis::Fourier { 6 } else { 3 };
                let v: Vec<f32> = (0..n * channels * r.size * r.size)
                    .map(|_| 0.01 * normal(&mut self.rng))
                    .collect();
                let v = Tensor::from_data(TensorData::new(v, [n, channels, r.size, r.size]), &self.device);
                (p, v)
            }
        };
        let s = param.size();
        let mean = self.per_channel(self.pre.mean);
        let std = self.per_channel(self.pre.std);
        let (mut m, mut v) = (vars.zeros_like(), vars.zeros_like());
        let (b1, b2, eps) = (0.9f32, 0.999f32, 1e-8f32);
        for step in 0..r.steps {
            let t = if r.transforms {
                let rng = &mut self.rng;
                Transforms::draw(|k| rng.random_range(0..k))
            } else {
                Transforms::IDENTITY
            };
            let warp = t.warp([s, s], input);
            let to_input = |z: Tensor<4>| {
                let rgb = warp.apply(param.render(z), 0.5);
                (rgb.mul_scalar(255.0) - mean.clone()) / std.clone()
            };
            let g = self.ascend(&vars, to_input, |_| None)?;
            // Adam (PyTorch's defaults) on the negated objective, i.e. ascent.
            m = m.mul_scalar(b1) + g.clone().mul_scalar(1.0 - b1);
            v = v.mul_scalar(b2) + g.powi_scalar(2).mul_scalar(1.0 - b2);
            let k = (step + 1) as i32;
            let mhat = m.clone().div_scalar(1.0 - b1.powi(k));
            let vhat = v.clone().div_scalar(1.0 - b2.powi(k));
            vars = vars + mhat.div(vhat.sqrt().add_scalar(eps)).mul_scalar(r.lr);
            progress(step + 1, r.steps);
        }
        let rgb = Warp::resize([s, s], input).apply(param.render(vars), 0.0);
        Ok(self.to_rgb((rgb.mul_scalar(255.0) - mean) / std))
    }
}

/// Sets every pixel whose RGB norm (in input space) is below the `percentile` of its image to 0
/// (the mean colour).
fn zero_small_norms(x: Tensor<4>, percentile: f32) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let device = x.device();
    let mut v = to_vec(x);
    let hw = h * w;
    for i in 0..n {
        let img = &mut v[i * c * hw..(i + 1) * c * hw];
        let norms: Vec<f32> = (0..hw)
            .map(|p| (0..c).map(|ch| img[ch * hw + p].powi(2)).sum::<f32>().sqrt())
            .collect();
        let mut sorted = norms.clone();
        sorted.sort_by(f32::total_cmp);
        let cut = sorted[((percentile.clamp(0.0, 100.0) / 100.0) * (hw - 1) as f32) as usize];
        for (p, &nv) in norms.iter().enumerate() {
            if nv < cut {
                (0..c).for_each(|ch| img[ch * hw + p] = 0.0);
            }
        }
    }
    Tensor::from_data(TensorData::new(v, [n, c, h, w]), &device)
}

/// A standard normal draw (Box-Muller), so that runs depend only on the seed, not the backend.
fn normal(rng: &mut StdRng) -> f32 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}
