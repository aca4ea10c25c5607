//! Occlusion sensitivity: how the class score falls when a square of the image is hidden.
//!
//! # Computes
//! A `window` (height x width) patch slides over the image with `stride`; at each position the
//! patch is replaced by the fill (a constant per channel in the model's input space: the preset's
//! mean colour by default, zero for Captum's baseline, or the blurred image) and the model is run.
//! Per position it records the class score, the class probability, the most probable class and
//! the summed activity of one feature map of one layer ([`Sensitivity`]). The map is the score
//! drop `S_c(x) - S_c(x with the window hidden)`, each pixel averaging the windows that cover it;
//! `raw` is the drop on the grid of window positions, and the extra outputs `probability`,
//! `top-class` and `feature` are the other grids, with `projection`, the deconvnet projection of
//! that feature map's strongest activation on the unoccluded image (Fig. 7 b-c). The feature map
//! is by default the channel of the chosen layer (default: the model's CAM layer) whose summed
//! activation on the unoccluded image is strongest ([`strongest_channel`]), or a given one.
//!
//! By default only the patch's projective field is recomputed at each layer, on top of the
//! unoccluded image's cached activations (incremental inference, exact to float rounding);
//! [`Inference::Full`] re-runs the whole network on each occluded image instead.
//!
//! # Equation
//! For window positions `w` with mask `M_w` (1 inside the window):
//! `A(i, j) = sum_w M_w(i, j) (S_c(x) - S_c(x ⊙ (1 - M_w) + F ⊙ M_w)) / sum_w M_w(i, j)`
//! (0 where no window covers a pixel). Profile `zeiler-fergus` takes `S_c` = the softmax
//! probability of class `c`; profile `captum` takes the request's score (the logit by default) and
//! equals Captum's `Occlusion(sliding_window_shapes=(C, h, w), strides=(C, sh, sw), baselines=F)`.
//!
//! # Paper
//! M. D. Zeiler, R. Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014,
//! sec. 4.2 and Fig. 7 (probability of the correct class, activity of the strongest feature map
//! and the most probable class as functions of the grey square's position). Incremental inference:
//! S. Nakandala, A. Kumar, Y. Papakonstantinou, "Incremental and Approximate Inference for Faster
//! Occlusion-based Deep CNN Explanations" (Krypton), SIGMOD 2019; here without its approximations.
//!
//! # Deviations
//! Zeiler & Fergus show the grid of positions; DeepSight's map spreads each position's drop over
//! its window (Captum's convention) so that every method's map has the input's size: the grid is
//! kept as `raw`. Windows must lie inside the image (positions `0, s, 2s, ...` up to `H - h`), as
//! in Captum; pixels no window covers get 0. The "most probable class" is over the model's outputs.
//! The strongest feature map is the one of largest summed activation over the positions (ties: the
//! lowest channel); the paper does not say how its Fig. 7 map was picked beyond "the strongest
//! feature map". The feature costs one more forward pass per image to pick the channel and a
//! forward and a backward pass for its projection (on models without a spatial layer and no layer
//! given, no feature is tracked).

use super::softmax;
use crate::gradient::DeconvnetFeature;
use crate::{
    ExplainError, Explainer, Explanation, Extra, ExtraKind, Map, Passes, Progress, Request, Result, Score,
};
use deepsight_runtime::{LayeredClassifier, PatchBatch, Tensor, TensorData, to_vec};

/// Which reference the options and the score follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OcclusionProfile {
    /// Zeiler & Fergus: the class probability.
    #[default]
    ZeilerFergus,
    /// Captum's `Occlusion`: the request's score (logit unless asked for the probability).
    Captum,
}

/// What replaces the occluded window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fill {
    /// The same value in every channel, in the model's input space (Captum's `baselines`).
    Constant(f32),
    /// One value per channel in the model's input space (the dataset's mean colour).
    Colour([f32; 3]),
    /// The image blurred by a Gaussian of this standard deviation in pixels.
    Blur { sigma: f32 },
}

/// How each occluded image is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Inference {
    /// Recompute only the patch's projective field (exact).
    #[default]
    Incremental,
    /// Re-run the whole network on each occluded image.
    Full,
}

/// One feature map whose summed activity is recorded per position (Zeiler & Fergus Fig. 7 b).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeatureTap {
    pub layer: String,
    pub channel: usize,
}

/// Which feature map occlusion tracks (Zeiler & Fergus Fig. 7 b-c).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FeatureChoice {
    /// None: only the class grids.
    Off,
    /// The channel of `layer` (default: the model's default CAM layer) with the strongest summed
    /// activation on the unoccluded image, per image.
    Strongest { layer: Option<String> },
    /// This channel.
    Channel(FeatureTap),
}

impl Default for FeatureChoice {
    fn default() -> Self {
        FeatureChoice::Strongest { layer: None }
    }
}

/// The channel of `layer` whose activation, summed over positions, is largest on `image`
/// (`[1, C, H, W]`; ties: the lowest channel), as a [`FeatureTap`], and that sum.
pub fn strongest_channel(
    model: &dyn LayeredClassifier,
    image: Tensor<4>,
    layer: &str,
) -> Result<(FeatureTap, f32)> {
    let cap = model.capture(image, &[layer], false)?;
    let a = &cap.activations[layer];
    let [_, k, h, w] = a.dims();
    if k == 0 {
        return Err(ExplainError::Invalid {
            method: NAME,
            reason: format!("layer '{layer}' has no channels"),
        });
    }
    let v = to_vec(a.clone());
    // Sums in f64: a 1280x7x7 map's sums would otherwise depend on the summation order.
    let sums: Vec<f64> = (0..k)
        .map(|c| v[c * h * w..(c + 1) * h * w].iter().map(|&x| x as f64).sum())
        .collect();
    let best = (0..k).fold(0, |b, c| if sums[c] > sums[b] { c } else { b });
    Ok((
        FeatureTap {
            layer: layer.to_string(),
            channel: best,
        },
        sums[best] as f32,
    ))
}

/// Occlusion sensitivity with its options.
#[derive(Debug, Clone, PartialEq)]
pub struct Occlusion {
    pub profile: OcclusionProfile,
    /// `[height, width]` of the occluding window.
    pub window: [usize; 2],
    pub stride: [usize; 2],
    pub fill: Fill,
    pub inference: Inference,
    /// Occluded images per forward pass.
    pub batch_size: usize,
    pub feature: FeatureChoice,
    pub progress: Progress,
}

impl Default for Occlusion {
    fn default() -> Self {
        Occlusion {
            profile: OcclusionProfile::ZeilerFergus,
            window: [32, 32],
            stride: [16, 16],
            fill: Fill::Constant(0.0),
            inference: Inference::Incremental,
            batch_size: 16,
            feature: FeatureChoice::default(),
            progress: Progress::default(),
        }
    }
}

/// Everything recorded for one image, per window position (row-major over `grid`).
#[derive(Debug, Clone, PartialEq)]
pub struct Sensitivity {
    /// Window positions `[rows, columns]`.
    pub grid: [usize; 2],
    /// `[top, left]` of each window.
    pub origins: Vec<[usize; 2]>,
    /// The profile's score of the class, unoccluded and per position.
    pub base_score: f32,
    pub score: Vec<f32>,
    /// The class probability, unoccluded and per position.
    pub base_probability: f32,
    pub probability: Vec<f32>,
    /// The most probable class per position.
    pub top_class: Vec<usize>,
    /// The tapped feature map, if any.
    pub tap: Option<FeatureTap>,
    /// The tapped feature map's summed activity, unoccluded and per position.
    pub feature: Option<(f32, Vec<f32>)>,
    /// Forward passes (images), the unoccluded one included.
    pub forward_passes: usize,
    /// Multiply-accumulates run, and what full re-inference of every position would have run.
    pub macs: u64,
    pub full_macs: u64,
}

impl Sensitivity {
    /// The score drop per window position, `[1, rows, columns]`.
    pub fn drop_grid(&self) -> Map {
        Map {
            channels: 1,
            height: self.grid[0],
            width: self.grid[1],
            data: self.score.iter().map(|s| self.base_score - s).collect(),
        }
    }

    /// The drop spread over each window and averaged where windows overlap, `[1, h, w]`.
    pub fn spread(&self, window: [usize; 2], height: usize, width: usize) -> Map {
        let mut sum = vec![0f32; height * width];
        let mut count = vec![0u32; height * width];
        for (o, s) in self.origins.iter().zip(&self.score) {
            let d = self.base_score - s;
            for y in o[0]..o[0] + window[0] {
                for x in o[1]..o[1] + window[1] {
                    sum[y * width + x] += d;
                    count[y * width + x] += 1;
                }
            }
        }
        let data = sum
            .iter()
            .zip(&count)
            .map(|(s, &c)| if c == 0 { 0.0 } else { s / c as f32 })
            .collect();
        Map {
            channels: 1,
            height,
            width,
            data,
        }
    }
}

/// A separable Gaussian blur of `[C, H, W]` with edge clamping.
fn blur(image: &[f32], [c, h, w]: [usize; 3], sigma: f32) -> Vec<f32> {
    let r = (3.0 * sigma).ceil().max(1.0) as i64;
    let k: Vec<f32> = (-r..=r)
        .map(|i| (-((i * i) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let norm: f32 = k.iter().sum();
    let pass = |src: &[f32], along_rows: bool| -> Vec<f32> {
        let mut out = vec![0f32; src.len()];
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    let mut acc = 0f32;
                    for (t, kv) in k.iter().enumerate() {
                        let d = t as i64 - r;
                        let (yy, xx) = if along_rows {
                            ((y as i64 + d).clamp(0, h as i64 - 1) as usize, x)
                        } else {
                            (y, (x as i64 + d).clamp(0, w as i64 - 1) as usize)
                        };
                        acc += kv * src[(ch * h + yy) * w + xx];
                    }
                    out[(ch * h + y) * w + x] = acc / norm;
                }
            }
        }
        out
    };
    pass(&pass(image, true), false)
}

const NAME: &str = "occlusion";

/// The model's own input size in pixels (its MAC count is for that size).
fn model_pixels(model: &dyn LayeredClassifier) -> u64 {
    model
        .layers()
        .first()
        .map_or(1, |l| l.shape.iter().skip(2).product::<usize>() as u64)
}

impl Occlusion {
    fn invalid(reason: String) -> ExplainError {
        ExplainError::Invalid { method: NAME, reason }
    }

    /// Window positions `[rows, columns]` on an `h x w` image.
    pub fn grid(&self, h: usize, w: usize) -> Result<[usize; 2]> {
        let [wh, ww] = self.window;
        let [sh, sw] = self.stride;
        if wh == 0 || ww == 0 || sh == 0 || sw == 0 || self.batch_size == 0 {
            return Err(Self::invalid(
                "window, stride and batch size must be at least 1".into(),
            ));
        }
        if wh > h || ww > w {
            return Err(Self::invalid(format!(
                "window {wh}x{ww} does not fit in the {h}x{w} input"
            )));
        }
        Ok([(h - wh) / sh + 1, (w - ww) / sw + 1])
    }

    fn score(&self, request_score: Score, logits: &[f32], class: usize) -> (f32, f32, usize) {
        let p = softmax(logits);
        let top = (0..p.len()).fold(0, |b, i| if p[i] > p[b] { i } else { b });
        let s = match (self.profile, request_score) {
            (OcclusionProfile::Captum, Score::Logit) => logits[class],
            _ => p[class],
        };
        (s, p[class], top)
    }

    /// The feature map tracked on `image` (`[1, C, H, W]`): see [`FeatureChoice`].
    pub fn feature_tap(
        &self,
        model: &dyn LayeredClassifier,
        image: &Tensor<4>,
    ) -> Result<Option<FeatureTap>> {
        Ok(match &self.feature {
            FeatureChoice::Off => None,
            FeatureChoice::Channel(tap) => Some(tap.clone()),
            FeatureChoice::Strongest { layer } => match layer.clone().or_else(|| model.default_cam_layer()) {
                Some(layer) => Some(strongest_channel(model, image.clone(), &layer)?.0),
                None => None,
            },
        })
    }

    /// Occlusion sensitivity of one image (`[1, C, H, W]`) for `class`.
    pub fn sensitivity(
        &self,
        model: &dyn LayeredClassifier,
        image: Tensor<4>,
        class: usize,
        score: Score,
        done: &mut dyn FnMut(usize) -> Result<()>,
    ) -> Result<Sensitivity> {
        let [_, c, h, w] = image.dims();
        let grid = self.grid(h, w)?;
        let [wh, ww] = self.window;
        let origins: Vec<[usize; 2]> = (0..grid[0])
            .flat_map(|i| (0..grid[1]).map(move |j| [i * self.stride[0], j * self.stride[1]]))
            .collect();
        let pixels = to_vec(image.clone());
        let fill_source = match self.fill {
            Fill::Blur { sigma } if sigma > 0.0 => Some(blur(&pixels, [c, h, w], sigma)),
            Fill::Blur { .. } => return Err(Self::invalid("the blur sigma must be positive".into())),
            Fill::Colour(_) if c != 3 => {
                return Err(Self::invalid(format!(
                    "a colour fill needs 3 channels, the model takes {c}"
                )));
            }
            _ => None,
        };
        let patch = |o: [usize; 2], out: &mut Vec<f32>| {
            for ch in 0..c {
                for y in o[0]..o[0] + wh {
                    match (&fill_source, self.fill) {
                        (Some(src), _) => out.extend_from_slice(&src[(ch * h + y) * w + o[1]..][..ww]),
                        (None, Fill::Colour(rgb)) => out.extend(std::iter::repeat_n(rgb[ch], ww)),
                        (None, Fill::Constant(v)) => out.extend(std::iter::repeat_n(v, ww)),
                        (None, Fill::Blur { .. }) => unreachable!("a blur has its source"),
                    }
                }
            }
        };
        let tap = self.feature_tap(model, &image)?;
        let picked = matches!(self.feature, FeatureChoice::Strongest { .. }) && tap.is_some();
        let taps: Vec<&str> = tap.iter().map(|f| f.layer.as_str()).collect();
        let device = image.device();
        let check_channel = |channel: usize, k: usize| -> Result<()> {
            if channel >= k {
                return Err(Self::invalid(format!(
                    "--feature channel {channel}: layer '{}' has {k} channels (0..={})",
                    taps[0],
                    k.saturating_sub(1)
                )));
            }
            Ok(())
        };
        let channel_sum = |t: &Tensor<4>, channel: usize| -> Result<Vec<f32>> {
            let [n, k, hh, ww] = t.dims();
            check_channel(channel, k)?;
            let v = to_vec(t.clone());
            Ok((0..n)
                .map(|b| v[(b * k + channel) * hh * ww..][..hh * ww].iter().sum())
                .collect())
        };
        // The unoccluded pass: incremental inference runs (and keeps) it anyway.
        let incremental = match self.inference {
            Inference::Incremental => Some(model.incremental(image.clone(), &taps)?),
            Inference::Full => None,
        };
        let (base_logits, base_feature) = match &incremental {
            Some(inc) => {
                let feature = match &tap {
                    Some(f) => {
                        let sums = &inc.base_tap_sums()[0];
                        check_channel(f.channel, sums.len())?;
                        Some(sums[f.channel])
                    }
                    None => None,
                };
                (inc.base_logits().to_vec(), feature)
            }
            None => {
                let capture = model.capture(image, &taps, false)?;
                let feature = match &tap {
                    Some(f) => Some(channel_sum(&capture.activations[&f.layer], f.channel)?[0]),
                    None => None,
                };
                (to_vec(capture.logits), feature)
            }
        };
        if class >= base_logits.len() {
            return Err(Self::invalid(format!("class {class} out of range")));
        }
        let (base_score, base_probability, _) = self.score(score, &base_logits, class);
        // The count is for the model's own input size; convolutions scale with the pixels.
        let full_per_image = match self.inference {
            Inference::Full => {
                model.macs_per_image().unwrap_or(0) * (h * w) as u64 / model_pixels(model).max(1)
            }
            Inference::Incremental => 0,
        };
        let mut out = Sensitivity {
            grid,
            origins: origins.clone(),
            base_score,
            score: Vec::with_capacity(origins.len()),
            base_probability,
            probability: Vec::with_capacity(origins.len()),
            top_class: Vec::with_capacity(origins.len()),
            feature: base_feature.map(|b| (b, Vec::with_capacity(origins.len()))),
            tap: tap.clone(),
            forward_passes: 1 + origins.len() + usize::from(picked),
            macs: 0,
            full_macs: 0,
        };
        for chunk in origins.chunks(self.batch_size) {
            let n = chunk.len();
            let (logits, features) = match &incremental {
                Some(inc) => {
                    let mut values = Vec::with_capacity(n * c * wh * ww);
                    chunk.iter().for_each(|&o| patch(o, &mut values));
                    let values = Tensor::from_data(TensorData::new(values, [n, c, wh, ww]), &device);
                    let r = inc.run(&PatchBatch {
                        origins: chunk.to_vec(),
                        values,
                    })?;
                    out.macs += r.macs;
                    out.full_macs += inc.full_macs() * n as u64;
                    let features = tap.as_ref().map(|f| {
                        let k = r.tap_sums[0].len() / n;
                        (0..n)
                            .map(|b| r.tap_sums[0].get(b * k + f.channel).copied().unwrap_or(0.0))
                            .collect()
                    });
                    (to_vec(r.logits), features)
                }
                None => {
                    let mut images = Vec::with_capacity(n * pixels.len());
                    let mut values = Vec::with_capacity(c * wh * ww);
                    for &o in chunk {
                        let start = images.len();
                        images.extend_from_slice(&pixels);
                        values.clear();
                        patch(o, &mut values);
                        for ch in 0..c {
                            for y in 0..wh {
                                let at = start + (ch * h + o[0] + y) * w + o[1];
                                images[at..at + ww].copy_from_slice(&values[(ch * wh + y) * ww..][..ww]);
                            }
                        }
                    }
                    let images = Tensor::from_data(TensorData::new(images, [n, c, h, w]), &device);
                    let cap = model.capture(images, &taps, false)?;
                    out.macs += full_per_image * n as u64;
                    let features = match &tap {
                        Some(f) => Some(channel_sum(&cap.activations[&f.layer], f.channel)?),
                        None => None,
                    };
                    (to_vec(cap.logits), features)
                }
            };
            let k = logits.len() / n;
            for b in 0..n {
                let (s, p, top) = self.score(score, &logits[b * k..(b + 1) * k], class);
                out.score.push(s);
                out.probability.push(p);
                out.top_class.push(top);
            }
            if let (Some((_, all)), Some(f)) = (&mut out.feature, features) {
                all.extend(f);
            }
            done(n)?;
        }
        if out.full_macs == 0 {
            out.full_macs = out.macs;
        }
        Ok(out)
    }
}

impl Explainer for Occlusion {
    fn name(&self) -> &'static str {
        NAME
    }

    fn signed(&self) -> bool {
        true
    }

    fn explain(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<Explanation> {
        let [n, _, h, w] = request.images.dims();
        let per_image = {
            let g = self.grid(h, w)?;
            g[0] * g[1]
        };
        let total = n * per_image;
        let mut finished = 0;
        let (mut maps, mut raw, mut forward, mut backward) = (Vec::new(), Vec::new(), 0, 0);
        let (mut probability, mut top, mut feature) = (Vec::new(), Vec::new(), Vec::new());
        let (mut projection, mut captions) = (Vec::new(), Vec::new());
        for (i, &class) in request.classes.iter().enumerate() {
            let image = request.images.clone().narrow(0, i, 1);
            let mut done = |k: usize| {
                finished += k;
                self.progress.report(finished, total)
            };
            let s = self.sensitivity(model, image, class, request.score, &mut done)?;
            maps.push(s.spread(self.window, h, w));
            raw.push(s.drop_grid());
            let grid = |data: Vec<f32>| Map {
                channels: 1,
                height: s.grid[0],
                width: s.grid[1],
                data,
            };
            probability.push(grid(s.probability.clone()));
            top.push(grid(s.top_class.iter().map(|&c| c as f32).collect()));
            if let (Some((_, f)), Some(tap)) = (&s.feature, &s.tap) {
                feature.push(grid(f.clone()));
                captions.push(format!("{}:{}", tap.layer, tap.channel));
                // The feature map's strongest activation on the unoccluded image, projected.
                let deconv = DeconvnetFeature {
                    layer: tap.layer.clone(),
                    channel: tap.channel,
                };
                let one = Request {
                    images: request.images.clone().narrow(0, i, 1),
                    classes: vec![class],
                    ..request.clone()
                };
                let e = deconv.explain(model, &one)?;
                projection.extend(e.maps);
                forward += e.passes.forward;
                backward += e.passes.backward;
            }
            forward += s.forward_passes;
        }
        Ok(Explanation {
            maps,
            raw: Some(raw),
            passes: Passes { forward, backward },
            extra: [
                ("probability", probability, ExtraKind::Magnitude, Vec::new()),
                ("top-class", top, ExtraKind::Classes, Vec::new()),
                ("feature", feature, ExtraKind::Magnitude, captions.clone()),
                ("projection", projection, ExtraKind::Attribution, captions),
            ]
            .into_iter()
            .filter(|(_, maps, ..)| !maps.is_empty())
            .map(|(name, maps, kind, captions)| Extra {
                name,
                maps,
                kind,
                captions,
            })
            .collect(),
        })
    }
}
