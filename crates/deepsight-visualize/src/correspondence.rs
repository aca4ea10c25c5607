//! Whether occluding the same object part changes a model's features the same way in different
//! images (Zeiler & Fergus 2014, section 4.3 and table 1).
//!
//! # Computes
//! For each part (boxes from a parts file, e.g. both eyes and the nose of five dogs) and each
//! chosen layer: every image's feature change when the part is covered with the preset's mean
//! colour, and how similar the signs of those changes are across image pairs. The baseline
//! covers a random region of the same size in every image instead (a fresh uniform location per
//! image and draw, over all positions where the box fits; seeded), once for each part's size.
//!
//! # Equation
//! `eps_i^l = x_i^l - x~_i^l` (layer-`l` features of image `i` minus those of its occluded copy,
//! flattened), `H(a, b) = #{k : a_k != b_k} / D` (Hamming distance normalised by the dimension
//! `D`), and `Delta_l = sum_{i != j} H(sign(eps_i^l), sign(eps_j^l))`. Reported per part and
//! layer: the mean and standard deviation of `H` over the unordered image pairs (over all draws'
//! pairs for the random baseline), and `Delta_l` itself (the ordered sum; mean over draws for the
//! baseline). `sign(0) = 0`, so a feature the occlusion leaves unchanged in both images agrees,
//! and one unchanged in only one image disagrees.
//!
//! # Paper
//! Zeiler & Fergus, "Visualizing and Understanding Convolutional Networks", ECCV 2014, section
//! 4.3, table 1: five frontal dog images, right eye, left eye, nose and random occlusions, layers
//! 5 and 7; mean +- std 0.067-0.079 for the parts against 0.107 random at layer 5, all about
//! 0.07 at layer 7. Lower means a more consistent change, i.e. an implicit correspondence.
//!
//! # Deviations
//! - Boxes are given in the pixels of the image file and mapped through the preset's resize
//!   (and crop) to the model input, rounded to whole pixels; the occluder is painted in the
//!   model's input space (0 after normalisation = the mean colour, as occlusion's `mean` fill),
//!   so resampling never blurs its edges.
//! - The paper does not say how the random regions were drawn nor how the standard deviation was
//!   taken; here it is the population standard deviation over the pairs, and each part gets
//!   its own same-size baseline.

use crate::error::{Result, VisualizeError, invalid};
use crate::flat_features::{checked_input, chosen_layers, forward_flat};
use deepsight_models::preprocess::Resize;
use deepsight_models::{Preprocess, RgbImage};
use deepsight_render::{Canvas, Panel, montage};
use deepsight_runtime::LayeredClassifier;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// A box `[x0, y0, x1, y1]` in pixels, `x0, y0` inclusive, `x1, y1` exclusive.
pub type PartBox = [usize; 4];

/// One image of a parts file: its path (resolved against the file's folder) and named boxes in
/// the image file's pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct PartsEntry {
    pub file: PathBuf,
    pub parts: BTreeMap<String, PartBox>,
}

#[derive(Deserialize)]
struct RawEntry {
    file: PathBuf,
    parts: BTreeMap<String, [f64; 4]>,
}

/// Reads a parts file: a JSON list of `{"file": PATH, "parts": {NAME: [x0, y0, x1, y1]}}`, paths
/// relative to the file, boxes whole non-negative pixels with `x0 < x1` and `y0 < y1`.
pub fn read_parts(path: &Path) -> Result<Vec<PartsEntry>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| invalid("parts file", format!("{}: {e}", path.display())))?;
    let raw: Vec<RawEntry> =
        serde_json::from_str(&text).map_err(|e| invalid("parts file", format!("{}: {e}", path.display())))?;
    let dir = path.parent().unwrap_or(Path::new(""));
    raw.into_iter()
        .enumerate()
        .map(|(i, e)| {
            let mut parts = BTreeMap::new();
            for (name, b) in e.parts {
                let whole = b.iter().all(|v| v.is_finite() && *v >= 0.0 && v.fract() == 0.0);
                if !whole || b[0] >= b[2] || b[1] >= b[3] {
                    return Err(invalid(
                        "parts file",
                        format!(
                            "{}: entry {i} ('{}') part '{name}': {b:?} is not a box [x0, y0, x1, y1] of whole \
                             pixels with x0 < x1 and y0 < y1",
                            path.display(),
                            e.file.display()
                        ),
                    ));
                }
                parts.insert(name, b.map(|v| v as usize));
            }
            Ok(PartsEntry {
                file: dir.join(e.file),
                parts,
            })
        })
        .collect()
}

/// One image to occlude: its name, the decoded picture and its boxes in that picture's pixels.
#[derive(Debug, Clone)]
pub struct PartsImage {
    pub name: String,
    pub image: RgbImage,
    pub parts: BTreeMap<String, PartBox>,
}

/// The analysis' options.
#[derive(Debug, Clone)]
pub struct Correspondence {
    /// Layers to compare (the paper's 5 and 7); empty: the default CAM layer (the last spatial
    /// map) and the input of the last linear layer.
    pub layers: Vec<String>,
    /// Parts to occlude; empty: every part of the first image (all images must have them).
    pub parts: Vec<String>,
    /// Random-baseline draws per part (0: no baseline).
    pub draws: usize,
    pub seed: u64,
    /// Images per forward pass.
    pub batch: usize,
}

impl Default for Correspondence {
    fn default() -> Self {
        Correspondence {
            layers: Vec::new(),
            parts: Vec::new(),
            draws: 10,
            seed: 0,
            batch: 16,
        }
    }
}

/// The statistics of one (occlusion, layer) cell.
#[derive(Debug, Clone, Serialize)]
pub struct PairStats {
    pub layer: String,
    /// Feature dimension `D`.
    pub dim: usize,
    /// Mean of `H` over the image pairs.
    pub mean: f32,
    /// Population standard deviation of `H` over the same pairs.
    pub std: f32,
    /// `Delta_l`: `H` summed over the ordered pairs `i != j` (random: mean over the draws).
    pub delta: f32,
    /// Number of pairs the mean is over (all draws together for the baseline).
    pub pairs: usize,
    /// `H` of every unordered pair `(i, j), i < j` in order (random: draw after draw).
    pub values: Vec<f32>,
    /// Mean fraction of features the occlusion changes (`sign(eps) != 0`), over the images.
    pub changed: f32,
    /// Mean over the same pairs of the `H` two independent sign vectors with those images' sign
    /// frequencies would have, `1 - sum_s f_i(s) f_j(s)`: what `mean` is to be read against,
    /// since a sparse change (many zeros in both) agrees by itself.
    pub chance: f32,
}

/// One row of the table: a part, or the random baseline sized as a part.
#[derive(Debug, Clone, Serialize)]
pub struct OcclusionRow {
    /// `left_eye`, or `random (left_eye size)`.
    pub occlusion: String,
    pub part: String,
    pub random: bool,
    pub layers: Vec<PairStats>,
}

/// The paper's table 1 for one model.
#[derive(Debug, Clone, Serialize)]
pub struct CorrespondenceReport {
    pub layers: Vec<String>,
    pub images: Vec<String>,
    /// Model input `[height, width]` the boxes are mapped to.
    pub input_size: [usize; 2],
    /// Every image's boxes in model input pixels.
    pub input_boxes: Vec<BTreeMap<String, PartBox>>,
    /// Every image's random-baseline boxes per part, draw after draw, in model input pixels.
    pub random_boxes: Vec<BTreeMap<String, Vec<PartBox>>>,
    pub draws: usize,
    pub seed: u64,
    pub rows: Vec<OcclusionRow>,
}

/// Maps a box in the pixels of a `width x height` image through the preset's resize (and centre
/// crop) to model input pixels: edges scaled and rounded, clipped to the crop, at least 1 pixel.
pub fn map_box(pipeline: &Preprocess, width: usize, height: usize, b: PartBox) -> Result<PartBox> {
    if b[2] > width || b[3] > height || b[0] >= b[2] || b[1] >= b[3] {
        return Err(invalid(
            "part box",
            format!("{b:?} does not lie inside the {width}x{height} image"),
        ));
    }
    let (sx, sy, left, top, [ch, cw]) = match pipeline.resize {
        Resize::Exact { size: [h, w], .. } => (
            w as f64 / width as f64,
            h as f64 / height as f64,
            0.0,
            0.0,
            [h, w],
        ),
        Resize::ShorterThenCrop { shorter, crop, .. } => {
            // The same integer sizes and offsets as `Preprocess::resize`.
            let (nw, nh) = if width <= height {
                (shorter, shorter * height / width)
            } else {
                (shorter * width / height, shorter)
            };
            let top = (nh.saturating_sub(crop[0]) as f64 / 2.0).round();
            let left = (nw.saturating_sub(crop[1]) as f64 / 2.0).round();
            (
                nw as f64 / width as f64,
                nh as f64 / height as f64,
                left,
                top,
                [crop[0].min(nh), crop[1].min(nw)],
            )
        }
    };
    let edge =
        |v: usize, s: f64, off: f64, max: usize| ((v as f64 * s - off).round().max(0.0) as usize).min(max);
    let (x0, x1) = (edge(b[0], sx, left, cw), edge(b[2], sx, left, cw));
    let (y0, y1) = (edge(b[1], sy, top, ch), edge(b[3], sy, top, ch));
    let outside = (b[2] as f64 * sx <= left || b[0] as f64 * sx >= left + cw as f64)
        || (b[3] as f64 * sy <= top || b[1] as f64 * sy >= top + ch as f64);
    if outside {
        return Err(invalid(
            "part box",
            format!("{b:?} falls outside the model's {ch}x{cw} centre crop"),
        ));
    }
    // A box thinner than one input pixel still covers one.
    let grow = |a: usize, b: usize, max: usize| {
        if b > a {
            (a, b)
        } else {
            (a.min(max - 1), a.min(max - 1) + 1)
        }
    };
    let ((x0, x1), (y0, y1)) = (grow(x0, x1, cw), grow(y0, y1, ch));
    Ok([x0, y0, x1, y1])
}

/// `H(a, b)`: the fraction of positions where two sign vectors differ.
pub fn hamming(a: &[i8], b: &[i8]) -> f32 {
    let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
    differ as f32 / a.len().max(1) as f32
}

/// `sign(x - y)` elementwise, with `sign(0) = 0`.
pub fn sign_of_change(x: &[f32], y: &[f32]) -> Vec<i8> {
    x.iter()
        .zip(y)
        .map(|(a, b)| {
            let d = a - b;
            if d > 0.0 {
                1
            } else if d < 0.0 {
                -1
            } else {
                0
            }
        })
        .collect()
}

/// `H` over every unordered pair of the images' sign vectors, `(0, 1), (0, 2), ..., (1, 2), ...`.
pub fn pair_distances(signs: &[&[i8]]) -> Vec<f32> {
    let mut out = Vec::new();
    for i in 0..signs.len() {
        for j in i + 1..signs.len() {
            out.push(hamming(signs[i], signs[j]));
        }
    }
    out
}

/// SplitMix64: the random baseline's locations stay the same for a seed across `rand` versions.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..=max`.
    fn upto(&mut self, max: usize) -> usize {
        (self.next() % (max as u64 + 1)) as usize
    }
}

/// Where one occluded copy's box lies, per image: the part's own box or a random one of its size.
fn random_box(rng: &mut SplitMix, b: PartBox, [h, w]: [usize; 2]) -> PartBox {
    let (bw, bh) = (b[2] - b[0], b[3] - b[1]);
    let (x0, y0) = (rng.upto(w - bw), rng.upto(h - bh));
    [x0, y0, x0 + bw, y0 + bh]
}

/// The normalised `[3, H, W]` input with `b` set to 0 (the preset's mean colour).
fn occlude(input: &[f32], [h, w]: [usize; 2], b: PartBox) -> Vec<f32> {
    let mut out = input.to_vec();
    for c in 0..3 {
        for y in b[1]..b[3] {
            out[c * h * w + y * w + b[0]..c * h * w + y * w + b[2]].fill(0.0);
        }
    }
    out
}

/// The default layers: the model's last spatial map (its CAM layer) for the paper's layer 5 and
/// the input of the last linear layer (the pooled features) for layer 7.
pub fn default_layers(model: &dyn LayeredClassifier) -> Result<Vec<String>> {
    let head = crate::invariance::default_layers(model)?.pop();
    let mut out: Vec<String> = model.default_cam_layer().into_iter().collect();
    if let Some(h) = head.filter(|h| !out.contains(h)) {
        out.push(h);
    }
    if out.is_empty() {
        return Err(invalid("layers", "the model has no default layers: name them"));
    }
    Ok(out)
}

/// Fractions of `-1`, `0` and `+1` in a sign vector.
fn sign_frequencies(v: &[i8]) -> [f64; 3] {
    let mut f = [0f64; 3];
    for &s in v {
        f[(s + 1) as usize] += 1.0;
    }
    f.map(|c| c / v.len().max(1) as f64)
}

/// The fraction changed and the chance-level `H` of a set of images' sign vectors.
fn changed_and_chance(signs: &[&[i8]]) -> (f64, f64) {
    let f: Vec<[f64; 3]> = signs.iter().map(|s| sign_frequencies(s)).collect();
    let changed = f.iter().map(|f| 1.0 - f[1]).sum::<f64>() / f.len().max(1) as f64;
    let mut chance = Vec::new();
    for i in 0..f.len() {
        for j in i + 1..f.len() {
            chance.push(1.0 - (0..3).map(|s| f[i][s] * f[j][s]).sum::<f64>());
        }
    }
    (changed, chance.iter().sum::<f64>() / chance.len().max(1) as f64)
}

fn stats(layer: &str, dim: usize, values: Vec<f32>, delta: f32, changed: f64, chance: f64) -> PairStats {
    let n = values.len().max(1) as f64;
    let mean = values.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = values.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    PairStats {
        layer: layer.to_string(),
        dim,
        mean: mean as f32,
        std: var.sqrt() as f32,
        delta,
        pairs: values.len(),
        values,
        changed: changed as f32,
        chance: chance as f32,
    }
}

/// Runs the analysis: one batched pass per image over its original, its occluded parts and its
/// random-baseline copies.
pub fn correspondence(
    model: &dyn LayeredClassifier,
    pipeline: &Preprocess,
    images: &[PartsImage],
    options: &Correspondence,
) -> Result<CorrespondenceReport> {
    let size = checked_input(model, pipeline)?;
    if images.len() < 2 {
        return Err(invalid(
            "parts file",
            format!("{} image(s): pairs need at least two", images.len()),
        ));
    }
    let parts: Vec<String> = if options.parts.is_empty() {
        images[0].parts.keys().cloned().collect()
    } else {
        options.parts.clone()
    };
    if parts.is_empty() {
        return Err(invalid("parts", "the first image has no parts"));
    }
    let layers = chosen_layers(model, &options.layers, default_layers)?;
    let mut input_boxes = Vec::with_capacity(images.len());
    for img in images {
        let mut boxes = BTreeMap::new();
        for p in &parts {
            let b = img.parts.get(p).ok_or_else(|| {
                invalid(
                    "parts",
                    format!(
                        "image '{}' has no part '{p}' (it has: {})",
                        img.name,
                        img.parts.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                )
            })?;
            let mapped = map_box(pipeline, img.image.width, img.image.height, *b).map_err(|e| match e {
                VisualizeError::Invalid { what, reason } => VisualizeError::Invalid {
                    what,
                    reason: format!("image '{}' part '{p}': {reason}", img.name),
                },
                other => other,
            })?;
            boxes.insert(p.clone(), mapped);
        }
        input_boxes.push(boxes);
    }
    // Every random box is drawn up front, image-major within each draw, so that a seed names the
    // same locations whatever the batch size.
    let mut rng = SplitMix(options.seed);
    let mut random: Vec<Vec<Vec<PartBox>>> = vec![vec![Vec::new(); parts.len()]; images.len()];
    for _ in 0..options.draws {
        for (p, part) in parts.iter().enumerate() {
            for (i, boxes) in input_boxes.iter().enumerate() {
                random[i][p].push(random_box(&mut rng, boxes[part], size));
            }
        }
    }
    // signs[layer][image][occlusion], occlusions: the parts, then part-major draws.
    let per_image = parts.len() * (1 + options.draws);
    let mut signs: Vec<Vec<Vec<Vec<i8>>>> =
        vec![vec![Vec::with_capacity(per_image); images.len()]; layers.len()];
    let mut dims = vec![0; layers.len()];
    for (i, img) in images.iter().enumerate() {
        let input = pipeline.normalise(&pipeline.resize(&img.image)?);
        let mut inputs = vec![input.clone()];
        inputs.extend(parts.iter().map(|p| occlude(&input, size, input_boxes[i][p])));
        inputs.extend(random[i].iter().flatten().map(|&b| occlude(&input, size, b)));
        let mut original: Option<Vec<Vec<f32>>> = None;
        forward_flat(model, &inputs, size, &layers, options.batch, |k, out| {
            if k == 0 {
                original = Some(out.features);
                return Ok(());
            }
            let base = original.as_ref().expect("the original runs first");
            for (l, f) in out.features.iter().enumerate() {
                dims[l] = f.len();
                signs[l][i].push(sign_of_change(&base[l], f));
            }
            Ok(())
        })?;
    }
    let n = images.len();
    let mut rows = Vec::new();
    for (p, part) in parts.iter().enumerate() {
        let cell = |l: usize, occlusion: usize| -> (Vec<f32>, (f64, f64)) {
            let s: Vec<&[i8]> = (0..n).map(|i| &signs[l][i][occlusion][..]).collect();
            (pair_distances(&s), changed_and_chance(&s))
        };
        rows.push(OcclusionRow {
            occlusion: part.clone(),
            part: part.clone(),
            random: false,
            layers: (0..layers.len())
                .map(|l| {
                    let (v, (changed, chance)) = cell(l, p);
                    let delta = 2.0 * v.iter().sum::<f32>();
                    stats(&layers[l], dims[l], v, delta, changed, chance)
                })
                .collect(),
        });
        if options.draws > 0 {
            rows.push(OcclusionRow {
                occlusion: format!("random ({part} size)"),
                part: part.clone(),
                random: true,
                layers: (0..layers.len())
                    .map(|l| {
                        let (mut v, mut changed, mut chance) = (Vec::new(), 0.0, 0.0);
                        for d in 0..options.draws {
                            let (h, (c, k)) = cell(l, parts.len() + p * options.draws + d);
                            v.extend(h);
                            changed += c / options.draws as f64;
                            chance += k / options.draws as f64;
                        }
                        let delta = 2.0 * v.iter().sum::<f32>() / options.draws as f32;
                        stats(&layers[l], dims[l], v, delta, changed, chance)
                    })
                    .collect(),
            });
        }
    }
    Ok(CorrespondenceReport {
        layers,
        images: images.iter().map(|i| i.name.clone()).collect(),
        input_size: size,
        random_boxes: random
            .iter()
            .map(|per_part| parts.iter().cloned().zip(per_part.iter().cloned()).collect())
            .collect(),
        input_boxes,
        draws: options.draws,
        seed: options.seed,
        rows,
    })
}

impl CorrespondenceReport {
    /// The table as Markdown: one row per occlusion, `mean ± std` of `H` per layer (the
    /// paper's table 1); then the fraction of features changed and the chance-level `H`.
    pub fn markdown(&self) -> String {
        let header = |s: &mut String, first: &str| {
            s.push_str(&format!("| {first} |"));
            for l in &self.layers {
                s.push_str(&format!(" {l} |"));
            }
            s.push_str("\n|---|");
            s.push_str(&"---|".repeat(self.layers.len()));
            s.push('\n');
        };
        let mut s = String::new();
        header(&mut s, "occlusion");
        for r in &self.rows {
            s.push_str(&format!("| {} |", r.occlusion));
            for c in &r.layers {
                s.push_str(&format!(" {:.3} ± {:.3} |", c.mean, c.std));
            }
            s.push('\n');
        }
        s.push_str("\nFraction of features changed / chance-level H of independent signs:\n\n");
        header(&mut s, "occlusion");
        for r in &self.rows {
            s.push_str(&format!("| {} |", r.occlusion));
            for c in &r.layers {
                s.push_str(&format!(" {:.3} / {:.3} |", c.changed, c.chance));
            }
            s.push('\n');
        }
        s
    }

    /// Each image as the model sees it with its part boxes outlined (2 pixels, one colour per
    /// part) and the first random draw's boxes in the same colours (1 pixel), `columns` a row.
    /// `images` are the ones the report was made from.
    pub fn figure(&self, pipeline: &Preprocess, images: &[PartsImage], columns: usize) -> Result<Canvas> {
        if images.len() != self.input_boxes.len() {
            return Err(invalid(
                "figure",
                format!(
                    "{} images for a report on {}",
                    images.len(),
                    self.input_boxes.len()
                ),
            ));
        }
        const COLOURS: [[u8; 3]; 6] = [
            [255, 40, 40],
            [40, 220, 40],
            [60, 120, 255],
            [255, 220, 0],
            [255, 0, 255],
            [0, 230, 230],
        ];
        let outline = |c: &mut Canvas, b: PartBox, colour: [u8; 3], t: usize| {
            let (w, h) = (b[2] - b[0], b[3] - b[1]);
            c.paste(&Canvas::new(w, t, colour), b[0], b[1]);
            c.paste(&Canvas::new(w, t, colour), b[0], b[3].saturating_sub(t));
            c.paste(&Canvas::new(t, h, colour), b[0], b[1]);
            c.paste(&Canvas::new(t, h, colour), b[2].saturating_sub(t), b[1]);
        };
        let panels = images
            .iter()
            .enumerate()
            .map(|(i, img)| {
                let r = pipeline.resize(&img.image)?;
                let mut c = Canvas {
                    width: r.width,
                    height: r.height,
                    pixels: r.pixels,
                };
                for (k, (part, b)) in self.input_boxes[i].iter().enumerate() {
                    let colour = COLOURS[k % COLOURS.len()];
                    if let Some(first) = self.random_boxes[i].get(part).and_then(|v| v.first()) {
                        outline(&mut c, *first, colour, 1);
                    }
                    outline(&mut c, *b, colour, 2);
                }
                Ok(Panel {
                    canvas: c,
                    title: vec![img.name.clone()],
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut legend = Canvas::new(panels.len().min(columns.max(1)) * 230, 14, [255, 255, 255]);
        let mut x = 4;
        for (k, part) in self.input_boxes[0].keys().enumerate() {
            legend.paste(&Canvas::new(12, 8, COLOURS[k % COLOURS.len()]), x, 3);
            legend.text(x + 16, 3, part, 1, [0, 0, 0]);
            x += 24 + 8 * part.len();
        }
        let grid = montage(&panels, columns);
        let mut out = Canvas::new(
            grid.width.max(legend.width),
            grid.height + legend.height,
            [255, 255, 255],
        );
        out.paste(&legend, 0, 0);
        out.paste(&grid, 0, legend.height);
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
