//! How much a model's features and prediction move when the image is translated, scaled or
//! rotated (Zeiler & Fergus 2014, section 4.2 and fig. 5).
//!
//! # Computes
//! For each image and each amount `a` of one [`Transform`], the Euclidean distance between the
//! feature vectors of the original and the transformed image at each chosen layer, and the
//! softmax probability of the image's class (the given true class, else the original's top-1).
//! The transform works on the RGB image already resized (and cropped) to the model's input, so
//! amounts are in input pixels; uncovered pixels take the preset's mean colour (0 after
//! normalisation, the fill occlusion uses). All versions of one image go through the model in
//! batches of [`Invariance::batch`], with the original first.
//!
//! # Equation
//! `d_l(a) = || phi_l(x) - phi_l(T_a x) ||_2` with `phi_l` the activations of layer `l`
//! flattened (C*H*W values), and `p(a) = softmax(f(T_a x))_c`. `T_a` samples the input
//! bilinearly at the inverse-mapped position of each output pixel centre:
//! translate `(x, y - a)` (positive `a` moves the content down), scale `c + (p - c) / a` about
//! the image centre `c` (`a > 1` zooms in), rotate `c + R(a) (p - c)` (`a` degrees, positive
//! counter-clockwise as seen). A source position outside `[-0.5, size - 0.5]` is uncovered.
//!
//! # Paper
//! Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014, fig. 5:
//! five images under vertical translation, scale and rotation; columns 2 and 3 the Euclidean
//! distance at layers 1 and 7, column 4 the probability of the true label. The ranges appear
//! only on the figure's axes; the defaults here are -60..60 pixels in steps of 10, scale
//! 0.6..1.4 in steps of 0.1 and 0..350 degrees in steps of 10 (see [`Transform::default_amounts`]).
//!
//! # Deviations
//! - Default layers: the first convolution's output (before its BatchNorm and rectifier in
//!   Lite0; the paper's layer 1 is after rectifier, pooling and normalisation) and the input of
//!   the last linear layer (the pooled features; the paper's layer 7 is the second 4096-d fully
//!   connected layer). Any layers can be named instead.
//! - The fill is the preset's mean colour everywhere uncovered; the paper does not say what it
//!   filled with. Scaling down is not antialiased (plain bilinear), so small factors alias a
//!   little.
//! - The transform is applied after the preset's resize, not to the original photograph, so a
//!   zoom-in does not bring back resolution the resize threw away.

use crate::error::{Result, invalid};
use crate::flat_features::{checked_input, chosen_layers, forward_flat};
use deepsight_models::{Preprocess, RgbImage};
use deepsight_render::{Canvas, Panel, XySeries, montage, xy_plot};
use deepsight_runtime::LayeredClassifier;
use serde::Serialize;

/// A geometric transform of the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transform {
    /// Vertical translation by a number of input pixels (positive: down).
    Translate,
    /// Scaling about the image centre by a factor (above 1: zoom in).
    Scale,
    /// Rotation about the image centre in degrees (positive: counter-clockwise).
    Rotate,
}

impl Transform {
    pub const ALL: [Transform; 3] = [Transform::Translate, Transform::Scale, Transform::Rotate];

    pub fn name(self) -> &'static str {
        match self {
            Transform::Translate => "translate",
            Transform::Scale => "scale",
            Transform::Rotate => "rotate",
        }
    }

    /// What the amount measures, for axis labels.
    pub fn unit(self) -> &'static str {
        match self {
            Transform::Translate => "vertical shift (input pixels)",
            Transform::Scale => "scale factor",
            Transform::Rotate => "rotation (degrees)",
        }
    }

    /// The amount that leaves the image unchanged.
    pub fn identity(self) -> f32 {
        match self {
            Transform::Scale => 1.0,
            Transform::Translate | Transform::Rotate => 0.0,
        }
    }

    /// The default sweep for a `size`-pixel-high input: translation -60..60 pixels in steps of
    /// 10 at 224 (scaled with the height), scale 0.6..1.4 in steps of 0.1, rotation 0..350
    /// degrees in steps of 10 (the axes of the paper's fig. 5 as far as they can be read).
    pub fn default_amounts(self, height: usize) -> Vec<f32> {
        match self {
            Transform::Translate => {
                let step = (10.0 * height as f32 / 224.0).round().max(1.0);
                (-6..=6).map(|k| k as f32 * step).collect()
            }
            Transform::Scale => (6..=14).map(|k| k as f32 / 10.0).collect(),
            Transform::Rotate => (0..36).map(|k| k as f32 * 10.0).collect(),
        }
    }

    /// Whether `amount` is one this transform can apply.
    fn check(self, amount: f32) -> Result<()> {
        let ok = amount.is_finite() && (self != Transform::Scale || amount > 0.0);
        if ok {
            Ok(())
        } else {
            Err(invalid(
                "amounts",
                format!("{amount} is not a valid {} amount", self.name()),
            ))
        }
    }
}

/// The invariance sweep's options.
#[derive(Debug, Clone)]
pub struct Invariance {
    pub transform: Transform,
    /// Amounts to sweep; empty: [`Transform::default_amounts`].
    pub amounts: Vec<f32>,
    /// Layers whose feature vectors are compared; empty: [`default_layers`].
    pub layers: Vec<String>,
    /// Images per forward pass.
    pub batch: usize,
}

impl Default for Invariance {
    fn default() -> Self {
        Invariance {
            transform: Transform::Translate,
            amounts: Vec::new(),
            layers: Vec::new(),
            batch: 16,
        }
    }
}

/// One image to sweep: the decoded picture (any size; the preset resizes it) and its true class
/// where known.
#[derive(Debug, Clone)]
pub struct SweepImage {
    pub name: String,
    pub image: RgbImage,
    pub class: Option<usize>,
}

/// One image's curves.
#[derive(Debug, Clone, Serialize)]
pub struct ImageCurves {
    pub name: String,
    /// The class whose probability is tracked.
    pub class: usize,
    /// Whether `class` is the original's top-1 (no true class given).
    pub class_from_top1: bool,
    /// The class's probability on the untransformed image.
    pub original_probability: f32,
    /// `||phi_l(x)||_2` of the original, per layer, to read the distances against.
    pub feature_norms: Vec<f32>,
    /// `distances[layer][amount]`.
    pub distances: Vec<Vec<f32>>,
    /// The class's probability per amount.
    pub probability: Vec<f32>,
    /// The top-1 class per amount.
    pub top1: Vec<usize>,
}

/// The sweep's numbers.
#[derive(Debug, Clone, Serialize)]
pub struct InvarianceReport {
    pub transform: Transform,
    pub unit: &'static str,
    pub amounts: Vec<f32>,
    pub layers: Vec<String>,
    /// Input size `[height, width]` the amounts refer to.
    pub input_size: [usize; 2],
    /// The fill of uncovered pixels, RGB 0..255 (the preset's mean colour).
    pub fill: [f32; 3],
    pub images: Vec<ImageCurves>,
}

/// The paper's two layers for any model: the first convolution's output and the input of the
/// last linear layer (the pooled or flattened features the classifier reads).
pub fn default_layers(model: &dyn LayeredClassifier) -> Result<Vec<String>> {
    let layers = model.layers();
    let first = layers
        .iter()
        .find(|l| matches!(l.op, "Conv2d" | "DepthwiseConv2d"))
        .ok_or_else(|| {
            invalid(
                "layers",
                "the model has no convolution: name the layers to compare",
            )
        })?;
    let penultimate = layers
        .iter()
        .rev()
        .find(|l| l.op == "Linear")
        .and_then(|l| l.inputs.first())
        .ok_or_else(|| {
            invalid(
                "layers",
                "the model has no final linear layer: name the layers to compare",
            )
        })?;
    let mut out = vec![first.name.clone()];
    if penultimate != &first.name {
        out.push(penultimate.clone());
    }
    Ok(out)
}

/// `image` (interleaved RGB8) transformed by `amount` as interleaved RGB floats in 0..=255, the
/// same size, uncovered pixels set to `fill`.
pub fn transform_image(image: &RgbImage, transform: Transform, amount: f32, fill: [f32; 3]) -> Vec<f32> {
    let (w, h) = (image.width, image.height);
    let (cx, cy) = ((w as f64 - 1.0) / 2.0, (h as f64 - 1.0) / 2.0);
    let a = amount as f64;
    let (sin, cos) = a.to_radians().sin_cos();
    // Snaps values within rounding of a whole pixel, so that the identity, whole-pixel shifts and
    // quarter turns copy pixels exactly instead of mixing in 1e-16 of a neighbour.
    let snap = |v: f64| {
        if (v - v.round()).abs() < 1e-9 {
            v.round()
        } else {
            v
        }
    };
    let mut out = vec![0f32; w * h * 3];
    for y in 0..h {
        for x in 0..w {
            let (dx, dy) = (x as f64 - cx, y as f64 - cy);
            let (sx, sy) = match transform {
                Transform::Translate => (x as f64, y as f64 - a),
                Transform::Scale => (cx + dx / a, cy + dy / a),
                Transform::Rotate => (cx + dx * cos - dy * sin, cy + dx * sin + dy * cos),
            };
            let (sx, sy) = (snap(sx), snap(sy));
            let o = (y * w + x) * 3;
            if !(-0.5..=w as f64 - 0.5).contains(&sx) || !(-0.5..=h as f64 - 0.5).contains(&sy) {
                out[o..o + 3].copy_from_slice(&fill);
                continue;
            }
            let (sx, sy) = (sx.clamp(0.0, w as f64 - 1.0), sy.clamp(0.0, h as f64 - 1.0));
            let (x0, y0) = (sx.floor() as usize, sy.floor() as usize);
            let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
            let (fx, fy) = (sx - x0 as f64, sy - y0 as f64);
            let px = |xx: usize, yy: usize, c: usize| image.pixels[(yy * w + xx) * 3 + c] as f64;
            for c in 0..3 {
                let top = px(x0, y0, c) * (1.0 - fx) + px(x1, y0, c) * fx;
                let bottom = px(x0, y1, c) * (1.0 - fx) + px(x1, y1, c) * fx;
                out[o + c] = (top * (1.0 - fy) + bottom * fy) as f32;
            }
        }
    }
    out
}

/// `image` as the model would see it (the preset's resize) under each of `amounts`, side by
/// side and titled with the amount: the paper's first column.
pub fn examples(
    image: &RgbImage,
    pipeline: &Preprocess,
    transform: Transform,
    amounts: &[f32],
) -> Result<Canvas> {
    let resized = pipeline.resize(image)?;
    let panels = amounts
        .iter()
        .map(|&a| {
            transform.check(a)?;
            let rgb = transform_image(&resized, transform, a, pipeline.mean);
            Ok(Panel {
                canvas: Canvas {
                    width: resized.width,
                    height: resized.height,
                    pixels: rgb.iter().map(|v| v.round().clamp(0.0, 255.0) as u8).collect(),
                },
                title: vec![format!("{} {a}", transform.name())],
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(montage(&panels, panels.len()))
}

/// Runs the sweep on every image.
pub fn invariance(
    model: &dyn LayeredClassifier,
    pipeline: &Preprocess,
    images: &[SweepImage],
    options: &Invariance,
) -> Result<InvarianceReport> {
    let size = checked_input(model, pipeline)?;
    if images.is_empty() {
        return Err(invalid("images", "no image to sweep"));
    }
    let transform = options.transform;
    let amounts = if options.amounts.is_empty() {
        transform.default_amounts(size[0])
    } else {
        options.amounts.clone()
    };
    for &a in &amounts {
        transform.check(a)?;
    }
    let layers = chosen_layers(model, &options.layers, default_layers)?;
    let classes = model.num_classes();
    let fill = pipeline.mean;
    let mut curves = Vec::with_capacity(images.len());
    for img in images {
        if let Some(c) = img.class.filter(|&c| c >= classes) {
            return Err(invalid(
                "class",
                format!("{c} for image '{}': the model has {classes} classes", img.name),
            ));
        }
        let resized = pipeline.resize(&img.image)?;
        if [resized.height, resized.width] != size {
            return Err(invalid(
                "image",
                format!(
                    "'{}' resizes to {}x{}, not the model's {size:?}",
                    img.name, resized.height, resized.width
                ),
            ));
        }
        // The original first, then every transformed version: one batched pass per image.
        let mut inputs =
            vec![pipeline.normalise_rgb(&transform_image(&resized, transform, transform.identity(), fill))];
        inputs.extend(
            amounts
                .iter()
                .map(|&a| pipeline.normalise_rgb(&transform_image(&resized, transform, a, fill))),
        );
        let mut original: Option<(Vec<Vec<f32>>, usize)> = None;
        let mut c = ImageCurves {
            name: img.name.clone(),
            class: 0,
            class_from_top1: img.class.is_none(),
            original_probability: 0.0,
            feature_norms: Vec::new(),
            distances: vec![Vec::with_capacity(amounts.len()); layers.len()],
            probability: Vec::with_capacity(amounts.len()),
            top1: Vec::with_capacity(amounts.len()),
        };
        forward_flat(model, &inputs, size, &layers, options.batch, |i, out| {
            let top1 = argmax(&out.probabilities);
            if i == 0 {
                c.class = img.class.unwrap_or(top1);
                c.original_probability = out.probabilities[c.class];
                c.feature_norms = out.features.iter().map(|f| l2(f, None)).collect();
                original = Some((out.features, c.class));
                return Ok(());
            }
            let (base, class) = original.as_ref().expect("the original runs first");
            for (l, f) in out.features.iter().enumerate() {
                c.distances[l].push(l2(f, Some(&base[l])));
            }
            c.probability.push(out.probabilities[*class]);
            c.top1.push(top1);
            Ok(())
        })?;
        curves.push(c);
    }
    Ok(InvarianceReport {
        transform,
        unit: transform.unit(),
        amounts,
        layers,
        input_size: size,
        fill,
        images: curves,
    })
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(
            (0, f32::NEG_INFINITY),
            |(bi, bv), (i, &x)| if x > bv { (i, x) } else { (bi, bv) },
        )
        .0
}

/// `||a - b||_2` (or `||a||_2`), summed in f64: feature vectors reach 400k values.
fn l2(a: &[f32], b: Option<&[f32]>) -> f32 {
    let s: f64 = match b {
        Some(b) => a.iter().zip(b).map(|(x, y)| ((x - y) as f64).powi(2)).sum(),
        None => a.iter().map(|&x| (x as f64).powi(2)).sum(),
    };
    s.sqrt() as f32
}

impl InvarianceReport {
    /// The paper's plots: one per layer (distance) and one of the probability, one line per image,
    /// as `(file stem, picture)`. `class_names` labels the legend where given.
    pub fn plots(&self, class_names: &[String]) -> Vec<(String, Canvas)> {
        let t = self.transform.name();
        let label = |c: &ImageCurves| match class_names.get(c.class) {
            Some(n) => format!("{} {}", c.name, n.split(',').next().unwrap_or(n)),
            None => format!("{} c{}", c.name, c.class),
        };
        let series = |values: &dyn Fn(&ImageCurves) -> &[f32]| -> Vec<XySeries> {
            self.images
                .iter()
                .map(|c| XySeries {
                    label: label(c),
                    points: self
                        .amounts
                        .iter()
                        .copied()
                        .zip(values(c).iter().copied())
                        .collect(),
                })
                .collect()
        };
        let mut out = Vec::new();
        for (l, layer) in self.layers.iter().enumerate() {
            let s = series(&|c: &ImageCurves| &c.distances[l][..]);
            out.push((
                format!("invariance-{t}-{}", file_safe(layer)),
                xy_plot(
                    &s,
                    &format!("{t}: distance at {layer}"),
                    self.unit,
                    "Euclidean distance",
                    0.0,
                ),
            ));
        }
        let s = series(&|c: &ImageCurves| &c.probability[..]);
        out.push((
            format!("invariance-{t}-probability"),
            xy_plot(
                &s,
                &format!("{t}: probability of the class"),
                self.unit,
                "P(class)",
                1.0,
            ),
        ));
        out
    }

    /// One row per image and amount: `image,class,transform,amount,probability,top1` and one
    /// distance column per layer.
    pub fn csv(&self) -> String {
        let mut s = String::from("image,class,transform,amount,probability,top1");
        for l in &self.layers {
            s.push_str(&format!(",distance:{l}"));
        }
        s.push('\n');
        for c in &self.images {
            for (k, a) in self.amounts.iter().enumerate() {
                s.push_str(&format!(
                    "{},{},{},{a},{},{}",
                    c.name,
                    c.class,
                    self.transform.name(),
                    c.probability[k],
                    c.top1[k]
                ));
                for d in &c.distances {
                    s.push_str(&format!(",{}", d[k]));
                }
                s.push('\n');
            }
        }
        s
    }
}

/// A layer name as part of a file name.
fn file_safe(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests;
