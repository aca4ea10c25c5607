//! Top-9 per feature map: what each feature map of a layer responds to across a dataset.
//!
//! # Computes
//! One streaming pass over a set of images (batched; memory bounded by the batch and by
//! `channels x k` kept hits) finds, for every channel of each chosen layer, the `k` images whose
//! map reaches the highest value, one location per image ([`TopK`]). Then, for each kept hit of
//! the chosen channels, the deconvnet projection of that single activation to pixel space, cut
//! to the unit's receptive field ([`ReceptiveFields`]), beside the image patch of the same box.
//! [`grid`] draws a layer as the paper's figure: per channel a block of the `k` projections and a
//! block of the `k` patches.
//!
//! # Equation
//! Hits: `v(n, c) = max_ij A^l(x_n)_{c,ij}`, the `k` largest over `n` (see [`crate::top_k`]).
//! Projection of hit `(n, c, i*, j*)`: `R = d A^l_{c,i*j*} / d x` at `x = x_n` under the
//! deconvnet rule (every rectifier passes `max(R, 0)` back; max pools route through the forward
//! switches), shown on the box of [`ReceptiveField::pixels`] as `0.5 + 0.5 R / q`, clipped, `q`
//! the 99.5th percentile of `|R|` there.
//!
//! # Paper
//! Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks*, ECCV 2014, section 4
//! and Fig. 2 (layers 2-5: "the top 9 activations in a random subset of feature maps across the
//! validation data, projected down to pixel space using our deconvolutional network approach",
//! beside "the corresponding image patches"); one argmax per image and the receptive-field crop as
//! the deep-visualization-toolbox's `find_maxes` (`max_tracker.py`, `crop_max_patches.py`).
//!
//! # Deviations
//! The projection is the input gradient under the deconvnet rule of the runtime (identical to
//! Zeiler & Fergus's deconvnet on ReLU/max-pool networks; BatchNorm and depthwise convolutions are
//! transposed like any linear layer; local contrast normalisation, where a model has it, is
//! differentiated, which ZF skip). Default channels are the first 16 of the layer, not a random
//! subset ([`Channels::Random`] gives the paper's choice, seeded). The projection is scaled per
//! hit, to a percentile rather than the maximum (the paper does not say how it scaled its
//! reconstructions for display). Where a network has no max pools (Lite0 downsamples by strided
//! convolutions), nothing of the image reaches the deconvnet's backward pass, so a channel's
//! projections are one pattern at different positions; [`Top9Options::rule`] offers guided
//! backpropagation, which keeps the forward pass's rectifier masks, for such networks.

use crate::error::{Result, invalid};
use crate::receptive_field::{PixelBox, ReceptiveField, ReceptiveFields};
use crate::top_k::{Hit, TopK};
use deepsight_models::preprocess::load_rgb;
use deepsight_models::resample::{Filter, resize_rgb8};
use deepsight_models::{Preprocess, RgbImage};
use deepsight_render::Canvas;
use deepsight_runtime::{
    Classifier, GradientRequest, GraphModel, LayeredClassifier, Objective, RectifierRule, Tensor, TensorData,
    to_vec,
};
use std::path::{Path, PathBuf};

/// Which channels of a layer get projected and drawn (all channels are tracked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Channels {
    /// The first `n` (fewer where the layer has fewer).
    First(usize),
    /// These, in this order.
    List(Vec<usize>),
    /// `count` distinct channels drawn at random with `seed`, in increasing order (the paper's
    /// "random subset of feature maps").
    Random { count: usize, seed: u64 },
}

impl Channels {
    /// The channels of a layer of `available` channels.
    pub fn resolve(&self, layer: &str, available: usize) -> Result<Vec<usize>> {
        let out = match self {
            Channels::First(n) => (0..(*n).min(available)).collect(),
            Channels::List(list) => {
                if let Some(bad) = list.iter().find(|&&c| c >= available) {
                    return Err(invalid(
                        "channels",
                        format!("layer '{layer}' has {available} channels, not channel {bad}"),
                    ));
                }
                list.clone()
            }
            Channels::Random { count, seed } => {
                use rand::SeedableRng;
                let mut rng = rand::rngs::StdRng::seed_from_u64(*seed);
                let mut picked =
                    rand::seq::index::sample(&mut rng, available, (*count).min(available)).into_vec();
                picked.sort_unstable();
                picked
            }
        };
        if out.is_empty() {
            return Err(invalid(
                "channels",
                format!("no channel of layer '{layer}' chosen"),
            ));
        }
        Ok(out)
    }
}

/// Options of [`top9`].
#[derive(Debug, Clone, PartialEq)]
pub struct Top9Options {
    /// Layers to analyse, all in the one pass; empty: [`default_layer`].
    pub layers: Vec<String>,
    pub channels: Channels,
    /// Images kept per channel (the paper's 9).
    pub k: usize,
    /// Images per forward pass of the streaming pass.
    pub batch: usize,
    /// How rectifiers pass the projection back: [`RectifierRule::Deconv`] is the paper's;
    /// [`RectifierRule::Guided`] (Springenberg et al. 2015) also depends on the image where a
    /// network has no max-pool switches to carry it.
    pub rule: RectifierRule,
}

impl Default for Top9Options {
    fn default() -> Self {
        Top9Options {
            layers: Vec::new(),
            channels: Channels::First(16),
            k: 9,
            batch: 16,
            rule: RectifierRule::Deconv,
        }
    }
}

/// Images at the model's input size, as RGB8 (the model's view before normalisation).
pub trait ImageSource {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Image `index`, already resized to the model's input.
    fn image(&self, index: usize) -> Result<RgbImage>;
}

/// Image files, read and resized by a preprocessing pipeline when asked for.
#[derive(Debug, Clone)]
pub struct ImageFiles {
    pub paths: Vec<PathBuf>,
    pub pipeline: Preprocess,
}

impl ImageSource for ImageFiles {
    fn len(&self) -> usize {
        self.paths.len()
    }

    fn image(&self, index: usize) -> Result<RgbImage> {
        Ok(self.pipeline.resize(&load_rgb(&self.paths[index])?)?)
    }
}

/// Images already at the model's input size.
impl ImageSource for Vec<RgbImage> {
    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn image(&self, index: usize) -> Result<RgbImage> {
        Ok(self[index].clone())
    }
}

const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff"];

/// The images of a dataset folder: those listed in its `dataset.txt` (`./FILE, LABEL` lines, as
/// `imagenet-val-1300`) in that order, else its image files sorted by name. `limit` keeps the first.
pub fn list_images(dir: &Path, limit: Option<usize>) -> Result<Vec<PathBuf>> {
    let list = dir.join("dataset.txt");
    let io = |e: std::io::Error| invalid("data", format!("'{}': {e}", dir.display()));
    let mut paths: Vec<PathBuf> = if list.is_file() {
        std::fs::read_to_string(&list)
            .map_err(io)?
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| {
                dir.join(
                    l.rsplit_once(',')
                        .map_or(l, |(f, _)| f)
                        .trim()
                        .trim_start_matches("./"),
                )
            })
            .collect()
    } else {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.is_file()
                    && p.extension().is_some_and(|e| {
                        IMAGE_EXTENSIONS.contains(&e.to_string_lossy().to_lowercase().as_str())
                    })
            })
            .collect();
        files.sort();
        files
    };
    if let Some(l) = limit {
        paths.truncate(l);
    }
    if paths.is_empty() {
        return Err(invalid("data", format!("'{}' holds no images", dir.display())));
    }
    Ok(paths)
}

/// A layer halfway down the network: the middle one of the spatial feature maps that end a
/// stage of computation (rectifiers, residual sums, pools, block outputs).
pub fn default_layer(model: &dyn LayeredClassifier) -> Option<String> {
    let spatial: Vec<_> = model
        .layers()
        .into_iter()
        .filter(|l| l.shape.len() == 4 && l.shape[2] * l.shape[3] > 1 && l.op != "Input")
        .collect();
    let ends: Vec<_> = spatial
        .iter()
        .filter(|l| {
            matches!(
                l.op,
                "ReLU" | "ReLU6" | "Clip" | "Add" | "MaxPool" | "Identity" | "Concat"
            )
        })
        .collect();
    let pick = |v: &[&deepsight_runtime::LayerInfo]| v.get(v.len() / 2).map(|l| l.name.clone());
    pick(&ends).or_else(|| pick(&spatial.iter().collect::<Vec<_>>()))
}

/// What [`top9`] is busy with, for progress reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The streaming pass, in images.
    Scan,
    /// The deconvnet projections, in hits.
    Project,
}

/// One kept activation, projected.
#[derive(Debug, Clone)]
pub struct Projected {
    pub hit: Hit,
    pub field: ReceptiveField,
    /// The deconvnet projection on `field.pixels`, `[C_in, h, w]` row-major.
    pub projection: Vec<f32>,
    /// The image on `field.pixels`.
    pub patch: RgbImage,
    /// The largest `|R|` outside `field.pixels`: 0 when the projection lies inside the receptive
    /// field, as it must (a check on both, reported rather than assumed).
    pub outside_peak: f32,
}

/// One channel's kept hits, strongest first.
#[derive(Debug, Clone)]
pub struct ChannelTop {
    pub channel: usize,
    pub hits: Vec<Projected>,
}

/// One layer's result.
#[derive(Debug, Clone)]
pub struct LayerTop {
    pub layer: String,
    /// `[channels, height, width]` of the layer.
    pub shape: [usize; 3],
    pub channels: Vec<ChannelTop>,
    /// The streaming tracker, every channel of the layer.
    pub tracker: TopK,
    /// The backward rule of the projections.
    pub rule: RectifierRule,
}

/// The result of [`top9`].
#[derive(Debug, Clone)]
pub struct Top9 {
    /// Images scanned.
    pub images: usize,
    /// `[height, width]` of the model's input.
    pub input_size: [usize; 2],
    pub layers: Vec<LayerTop>,
}

/// The model input of one image: normalised, averaged to grey for a one-channel model.
fn input_tensor(model: &GraphModel, pipeline: &Preprocess, images: &[RgbImage]) -> Tensor<4> {
    let [h, w] = model.input_size();
    let channels = model.graph().input_channels();
    let mut data = Vec::with_capacity(images.len() * channels * h * w);
    for img in images {
        let v = pipeline.normalise(img);
        if channels == 1 {
            data.extend((0..h * w).map(|p| (v[p] + v[h * w + p] + v[2 * h * w + p]) / 3.0));
        } else {
            data.extend(v);
        }
    }
    Tensor::from_data(
        TensorData::new(data, [images.len(), channels, h, w]),
        &model.device(),
    )
}

fn crop_rgb(img: &RgbImage, b: &PixelBox) -> RgbImage {
    let mut pixels = Vec::with_capacity(b.height() * b.width() * 3);
    for y in b.top..b.bottom {
        pixels.extend_from_slice(&img.pixels[(y * img.width + b.left) * 3..(y * img.width + b.right) * 3]);
    }
    RgbImage {
        width: b.width(),
        height: b.height(),
        pixels,
    }
}

/// Runs the analysis: the streaming pass over `images`, then the projections. `pipeline`
/// normalises the images (its resize is not used: `images` come at the model's input size).
pub fn top9(
    model: &GraphModel,
    pipeline: &Preprocess,
    images: &dyn ImageSource,
    options: &Top9Options,
    progress: &mut dyn FnMut(Stage, usize, usize),
) -> Result<Top9> {
    if options.k == 0 || options.batch == 0 {
        return Err(invalid("top9", "k and the batch size must be at least 1"));
    }
    let n = images.len();
    if n == 0 {
        return Err(invalid("top9", "no images"));
    }
    let input_size = model.input_size();
    let fields = ReceptiveFields::new(model.graph(), input_size)?;
    let layers = if options.layers.is_empty() {
        vec![default_layer(model).ok_or_else(|| invalid("layer", "the model has no spatial layer"))?]
    } else {
        options.layers.clone()
    };
    let mut trackers = Vec::with_capacity(layers.len());
    let mut chosen = Vec::with_capacity(layers.len());
    for layer in &layers {
        let [c, _, _] = fields.layer_shape(layer)?;
        chosen.push(options.channels.resolve(layer, c)?);
        trackers.push(TopK::new(c, options.k)?);
    }
    let names: Vec<&str> = layers.iter().map(String::as_str).collect();
    progress(Stage::Scan, 0, n);
    for start in (0..n).step_by(options.batch) {
        let end = (start + options.batch).min(n);
        let batch = (start..end)
            .map(|i| images.image(i))
            .collect::<Result<Vec<_>>>()?;
        if let Some(bad) = batch.iter().position(|b| [b.height, b.width] != input_size) {
            return Err(invalid(
                "images",
                format!(
                    "image {} is {}x{}, the model takes {}x{}",
                    start + bad,
                    batch[bad].height,
                    batch[bad].width,
                    input_size[0],
                    input_size[1]
                ),
            ));
        }
        let cap = model.capture(input_tensor(model, pipeline, &batch), &names, false)?;
        let indices: Vec<usize> = (start..end).collect();
        for (tracker, layer) in trackers.iter_mut().zip(&layers) {
            let act = cap.activations[layer].clone();
            let dims = act.dims();
            tracker.push_batch(&to_vec(act), dims, &indices)?;
        }
        progress(Stage::Scan, end, n);
    }

    // Projections image by image, so that each image is read once and none is held.
    let mut work: Vec<(usize, usize, usize)> = Vec::new();
    for (l, channels) in chosen.iter().enumerate() {
        for (ci, &c) in channels.iter().enumerate() {
            work.extend(trackers[l].entries(c).iter().map(|h| (h.image, l, ci)));
        }
    }
    work.sort_unstable();
    work.dedup();
    let mut results: Vec<Vec<Vec<Projected>>> = chosen.iter().map(|c| vec![Vec::new(); c.len()]).collect();
    let total: usize = chosen
        .iter()
        .enumerate()
        .map(|(l, cs)| cs.iter().map(|&c| trackers[l].entries(c).len()).sum::<usize>())
        .sum();
    let mut done = 0;
    progress(Stage::Project, 0, total);
    let mut current: Option<(usize, RgbImage, Tensor<4>)> = None;
    for (image, l, ci) in work {
        if current.as_ref().is_none_or(|(i, _, _)| *i != image) {
            let rgb = images.image(image)?;
            let x = input_tensor(model, pipeline, std::slice::from_ref(&rgb));
            current = Some((image, rgb, x));
        }
        let (_, rgb, x) = current.as_ref().expect("set above");
        let c = chosen[l][ci];
        for hit in trackers[l].entries(c).iter().filter(|h| h.image == image) {
            let field = fields.of(&layers[l], [hit.row, hit.col])?;
            let request = GradientRequest::input(
                Objective::Activation {
                    layer: layers[l].clone(),
                    channel: c,
                    position: Some([hit.row, hit.col]),
                },
                options.rule,
            );
            let g = model.gradients(x.clone(), &request)?;
            let grad = to_vec(
                g.input
                    .ok_or_else(|| invalid("top9", "the model gave no input gradient"))?,
            );
            let [h, w] = input_size;
            let b = field.pixels;
            let mut projection = Vec::with_capacity(grad.len() / (h * w) * b.height() * b.width());
            let mut outside_peak = 0f32;
            for plane in grad.chunks(h * w) {
                for (p, v) in plane.iter().enumerate() {
                    if !b.contains(p / w, p % w) {
                        outside_peak = outside_peak.max(v.abs());
                    }
                }
                for y in b.top..b.bottom {
                    projection.extend_from_slice(&plane[y * w + b.left..y * w + b.right]);
                }
            }
            results[l][ci].push(Projected {
                hit: *hit,
                field,
                projection,
                patch: crop_rgb(rgb, &b),
                outside_peak,
            });
            done += 1;
            progress(Stage::Project, done, total);
        }
    }
    let mut out = Vec::with_capacity(layers.len());
    for (((layer, tracker), channels), mut res) in layers.into_iter().zip(trackers).zip(chosen).zip(results) {
        let shape = fields.layer_shape(&layer)?;
        let channels = channels
            .into_iter()
            .zip(res.iter_mut())
            .map(|(channel, hits)| {
                let mut hits = std::mem::take(hits);
                // Back to the tracker's order (strongest first), lost when grouping by image.
                let rank = |p: &Projected| {
                    tracker
                        .entries(channel)
                        .iter()
                        .position(|h| h == &p.hit)
                        .unwrap_or(usize::MAX)
                };
                hits.sort_by_key(rank);
                ChannelTop { channel, hits }
            })
            .collect();
        out.push(LayerTop {
            layer,
            shape,
            channels,
            tracker,
            rule: options.rule,
        });
    }
    Ok(Top9 {
        images: n,
        input_size,
        layers: out,
    })
}

/// How [`grid`] lays a layer out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GridStyle {
    /// Side of one projection or patch cell, in pixels.
    pub cell: usize,
    /// Channel blocks per row.
    pub columns: usize,
}

impl Default for GridStyle {
    fn default() -> Self {
        GridStyle { cell: 64, columns: 4 }
    }
}

const GREY: [u8; 3] = [128, 128, 128];

/// The window a cell shows on one axis: the nominal receptive field where it fits in the image
/// (parts in the padding stay grey, as the toolbox pads them), else the whole axis.
fn window(lo: i64, hi: i64, size: usize) -> [i64; 2] {
    if hi - lo >= size as i64 {
        [0, size as i64]
    } else {
        [lo, hi]
    }
}

/// A picture of `b` inside the window `win` (`[top, left, bottom, right]`), grey elsewhere.
fn framed(win: [i64; 4], b: &PixelBox, pixel: impl Fn(usize, usize) -> [u8; 3]) -> Canvas {
    let (wh, ww) = ((win[2] - win[0]) as usize, (win[3] - win[1]) as usize);
    let mut c = Canvas::new(ww, wh, GREY);
    for y in b.top..b.bottom {
        for x in b.left..b.right {
            let (cy, cx) = (y as i64 - win[0], x as i64 - win[1]);
            if (0..wh as i64).contains(&cy) && (0..ww as i64).contains(&cx) {
                let i = (cy as usize * ww + cx as usize) * 3;
                c.pixels[i..i + 3].copy_from_slice(&pixel(y, x));
            }
        }
    }
    c
}

/// `c` scaled to fit a `side x side` square, keeping its aspect: nearest-neighbour when enlarging
/// (pixels stay visible), antialiased bilinear when shrinking.
fn fit(c: &Canvas, side: usize) -> Canvas {
    let scale = side as f64 / c.width.max(c.height) as f64;
    let (w, h) = (
        ((c.width as f64 * scale).round() as usize).max(1),
        ((c.height as f64 * scale).round() as usize).max(1),
    );
    if scale <= 1.0 {
        return Canvas {
            width: w,
            height: h,
            pixels: resize_rgb8(&c.pixels, c.width, c.height, w, h, Filter::Bilinear),
        };
    }
    let mut out = Canvas::new(w, h, GREY);
    for y in 0..h {
        for x in 0..w {
            let (sy, sx) = (
                (y * c.height / h).min(c.height - 1),
                (x * c.width / w).min(c.width - 1),
            );
            let (i, o) = ((sy * c.width + sx) * 3, (y * w + x) * 3);
            out.pixels[o..o + 3].copy_from_slice(&c.pixels[i..i + 3]);
        }
    }
    out
}

/// The 99.5th percentile of `|R|`: a few extreme pixels would otherwise leave the rest grey.
fn display_scale(r: &[f32]) -> f32 {
    let mut mags: Vec<f32> = r.iter().map(|v| v.abs()).filter(|v| *v > 0.0).collect();
    if mags.is_empty() {
        return 1.0;
    }
    let at = ((mags.len() - 1) as f64 * 0.995).round() as usize;
    *mags.select_nth_unstable_by(at, f32::total_cmp).1
}

/// The projection and the patch of one hit, each framed in its window.
pub fn hit_pictures(p: &Projected, input_size: [usize; 2]) -> (Canvas, Canvas) {
    let nom = p.field.nominal;
    let [r, c] = [
        window(nom[0], nom[2], input_size[0]),
        window(nom[1], nom[3], input_size[1]),
    ];
    let win = [r[0], c[0], r[1], c[1]];
    let b = p.field.pixels;
    let (bh, bw) = (b.height(), b.width());
    let planes = p.projection.len() / (bh * bw).max(1);
    let scale = display_scale(&p.projection);
    let to8 = |v: f32| (127.5 + 127.5 * v / scale).round().clamp(0.0, 255.0) as u8;
    let projection = framed(win, &b, |y, x| {
        let at = (y - b.top) * bw + (x - b.left);
        let v = |ch: usize| to8(p.projection[ch.min(planes - 1) * bh * bw + at]);
        [v(0), v(1), v(2)]
    });
    let patch = framed(win, &b, |y, x| {
        let i = ((y - b.top) * bw + (x - b.left)) * 3;
        [p.patch.pixels[i], p.patch.pixels[i + 1], p.patch.pixels[i + 2]]
    });
    (projection, patch)
}

/// One layer as Zeiler & Fergus's Fig. 2: per channel a square block of the projections and,
/// right of it, the block of the patches, strongest hit top left; channels in `style.columns`
/// columns, each under a `channel N` title; the layer's name on top.
pub fn grid(layer: &LayerTop, input_size: [usize; 2], images: usize, style: GridStyle) -> Canvas {
    let k = layer
        .channels
        .iter()
        .map(|c| c.hits.len())
        .max()
        .unwrap_or(1)
        .max(1);
    let side = (k as f64).sqrt().ceil() as usize;
    let (gap, between, margin, title) = (2, 6, 14, 12);
    let cell = style.cell.max(8);
    let block = side * cell + (side - 1) * gap;
    let block_w = 2 * block + between;
    let columns = style.columns.clamp(1, layer.channels.len().max(1));
    let rows = layer.channels.len().div_ceil(columns);
    let header = 20;
    let mut out = Canvas::new(
        margin + columns * (block_w + margin),
        header + rows * (title + block + margin) + margin / 2,
        [255, 255, 255],
    );
    let rule = match layer.rule {
        RectifierRule::Deconv => "deconvnet",
        RectifierRule::Guided => "guided backprop",
        RectifierRule::Plain => "gradient",
    };
    let head = format!(
        "{}: top {k} of {images} images, {rule} projection | receptive field",
        layer.layer
    );
    out.text(margin, 6, &head, 1, [20, 20, 20]);
    for (i, ch) in layer.channels.iter().enumerate() {
        let (x0, y0) = (
            margin + (i % columns) * (block_w + margin),
            header + (i / columns) * (title + block + margin),
        );
        out.text(x0, y0, &format!("channel {}", ch.channel), 1, [20, 20, 20]);
        for (j, p) in ch.hits.iter().enumerate() {
            let (proj, patch) = hit_pictures(p, input_size);
            let (cx, cy) = ((j % side) * (cell + gap), y0 + title + (j / side) * (cell + gap));
            for (pic, bx) in [(proj, x0), (patch, x0 + block + between)] {
                let f = fit(&pic, cell);
                out.paste(&f, bx + cx + (cell - f.width) / 2, cy + (cell - f.height) / 2);
            }
        }
    }
    out
}
