//! How discriminative each layer is: linear softmax probes on frozen features.
//!
//! # Computes
//! For each chosen layer of a frozen network, the layer's activations on a labelled training set
//! and a held-out test set, average-pooled to at most `pool x pool` per channel and flattened,
//! then a linear softmax classifier trained on the training features (burn autodiff, Adam), and
//! its top-1 accuracy on both sets: accuracy against depth. [`Probes::figure`] draws it as a bar
//! chart; [`Probes::json`] and [`Probes::csv`] give the numbers.
//!
//! # Equation
//! `f_l(x) = vec(AdaptiveAvgPool_{s x s}(A^l(x)))`, standardised per dimension by the training
//! set's mean and deviation, `z = W f + b`, minimising
//! `-1/N sum_n log softmax(z_n)_{y_n} + lambda/2 ||W||^2`; accuracy `1/M sum_m [argmax z_m = y_m]`.
//!
//! # Paper
//! Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks*, ECCV 2014, section 5.3
//! ("Feature analysis"): "we train either a linear SVM or softmax classifier on features from
//! different layers (as opposed to the full network)"; accuracy rises with depth (their table 7 on
//! Caltech-101 and -256).
//!
//! # Deviations
//! Softmax only (no SVM). The paper's features are the full layer outputs; here spatial maps are
//! average-pooled to at most `pool x pool` (PyTorch's `adaptive_avg_pool2d` bins; a smaller map
//! keeps its size), so a probe's size stays bounded. The features are standardised (not in the
//! paper) so that one learning rate suits every layer. Adam (Kingma & Ba 2015, their defaults
//! beta 0.9, 0.999, eps 1e-8) with mini-batches in a seeded order, a fixed number of epochs, no
//! early stopping: the test split is touched once per layer, after training.

use crate::error::{Result, invalid};
use crate::top9::ImageSource;
use deepsight_models::Preprocess;
use deepsight_render::Canvas;
use deepsight_runtime::{Classifier, Device, GraphModel, LayeredClassifier, Tensor, TensorData, to_vec};
use rand::SeedableRng;
use rand::seq::SliceRandom;

/// Options of [`probes`] and [`fit_softmax`].
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeOptions {
    /// Layers in order of depth; empty: [`default_layers`].
    pub layers: Vec<String>,
    /// Spatial maps are pooled to at most `pool x pool`.
    pub pool: usize,
    pub epochs: usize,
    pub batch: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// `lambda`, the L2 penalty on the weights.
    pub weight_decay: f64,
    pub seed: u64,
    /// Images per forward pass of the feature extraction.
    pub extract_batch: usize,
}

impl Default for ProbeOptions {
    fn default() -> Self {
        ProbeOptions {
            layers: Vec::new(),
            pool: 4,
            epochs: 20,
            batch: 256,
            lr: 1e-3,
            weight_decay: 1e-4,
            seed: 0,
            extract_batch: 250,
        }
    }
}

/// Images with one label each.
pub struct Labelled<'a> {
    pub images: &'a dyn ImageSource,
    pub labels: &'a [usize],
}

/// Features `[n, dims]` row-major with their labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub values: Vec<f32>,
    pub dims: usize,
    pub labels: Vec<usize>,
}

/// One layer's probe.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct LayerProbe {
    pub layer: String,
    /// `[channels, height, width]` after pooling.
    pub pooled: [usize; 3],
    pub dims: usize,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    /// Mean training cross-entropy of the last epoch.
    pub final_loss: f64,
}

/// The result of [`probes`].
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Probes {
    pub layers: Vec<LayerProbe>,
    pub classes: usize,
    pub train_images: usize,
    pub test_images: usize,
    pub pool: usize,
    /// The accuracy of always answering the most frequent test class.
    pub majority_baseline: f64,
}

/// A trained linear probe with its standardisation.
#[derive(Debug, Clone)]
pub struct SoftmaxProbe {
    /// `[dims, classes]` row-major.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub mean: Vec<f32>,
    pub std: Vec<f32>,
    pub classes: usize,
    pub final_loss: f64,
}

/// The rectified outputs of the network in order of depth (ReLU, ReLU6, clips; the last one is
/// often the head's hidden layer), at most 8, evenly spread; the flattened or pooled outputs
/// where the network has no rectifier.
pub fn default_layers(model: &dyn LayeredClassifier) -> Vec<String> {
    let layers = model.layers();
    let mut picked: Vec<String> = layers
        .iter()
        .filter(|l| matches!(l.op, "ReLU" | "ReLU6" | "Clip"))
        .map(|l| l.name.clone())
        .collect();
    if picked.is_empty() {
        picked = layers
            .iter()
            .filter(|l| matches!(l.op, "MaxPool" | "AvgPool" | "GlobalAvgPool" | "Flatten"))
            .map(|l| l.name.clone())
            .collect();
    }
    if picked.len() > 8 {
        let n = picked.len();
        picked = (0..8).map(|i| picked[(i * (n - 1)) / 7].clone()).collect();
    }
    picked
}

/// PyTorch's `adaptive_avg_pool2d` of one `[h, w]` plane to `[oh, ow]`: bin `i` covers rows
/// `floor(i h / oh)` to `ceil((i + 1) h / oh)`.
pub fn adaptive_avg(plane: &[f32], [h, w]: [usize; 2], [oh, ow]: [usize; 2]) -> Vec<f32> {
    let mut out = Vec::with_capacity(oh * ow);
    for i in 0..oh {
        let (r0, r1) = (i * h / oh, ((i + 1) * h).div_ceil(oh));
        for j in 0..ow {
            let (c0, c1) = (j * w / ow, ((j + 1) * w).div_ceil(ow));
            let mut s = 0f64;
            for r in r0..r1 {
                for c in c0..c1 {
                    s += plane[r * w + c] as f64;
                }
            }
            out.push((s / ((r1 - r0) * (c1 - c0)) as f64) as f32);
        }
    }
    out
}

fn input_tensor(
    model: &GraphModel,
    pipeline: &Preprocess,
    images: &dyn ImageSource,
    idx: std::ops::Range<usize>,
) -> Result<Tensor<4>> {
    let [h, w] = model.input_size();
    let channels = model.graph().input_channels();
    let mut data = Vec::with_capacity(idx.len() * channels * h * w);
    let n = idx.len();
    for i in idx {
        let img = images.image(i)?;
        if [img.height, img.width] != [h, w] {
            return Err(invalid(
                "images",
                format!(
                    "image {i} is {}x{}, the model takes {h}x{w}",
                    img.height, img.width
                ),
            ));
        }
        let v = pipeline.normalise(&img);
        if channels == 1 {
            data.extend((0..h * w).map(|p| (v[p] + v[h * w + p] + v[2 * h * w + p]) / 3.0));
        } else {
            data.extend(v);
        }
    }
    Ok(Tensor::from_data(
        TensorData::new(data, [n, channels, h, w]),
        &model.device(),
    ))
}

/// The pooled, flattened features of every layer in `layers` for all of `set`, in one pass;
/// `progress(done, total)` in images. Also the pooled `[C, h, w]` of each layer.
pub fn features(
    model: &GraphModel,
    pipeline: &Preprocess,
    set: &Labelled,
    layers: &[String],
    pool: usize,
    batch: usize,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<(Vec<Features>, Vec<[usize; 3]>)> {
    let n = set.images.len();
    if n == 0 || n != set.labels.len() {
        return Err(invalid(
            "data",
            format!(
                "{n} images but {} labels (need at least one of each, as many)",
                set.labels.len()
            ),
        ));
    }
    if pool == 0 || batch == 0 {
        return Err(invalid(
            "probes",
            "the pooled size and the batch must be at least 1",
        ));
    }
    let names: Vec<&str> = layers.iter().map(String::as_str).collect();
    let mut out: Vec<Features> = layers
        .iter()
        .map(|_| Features {
            values: Vec::new(),
            dims: 0,
            labels: set.labels.to_vec(),
        })
        .collect();
    let mut pooled = vec![[0usize; 3]; layers.len()];
    for start in (0..n).step_by(batch) {
        let end = (start + batch).min(n);
        let cap = model.capture(
            input_tensor(model, pipeline, set.images, start..end)?,
            &names,
            false,
        )?;
        for (l, layer) in layers.iter().enumerate() {
            let act = &cap.activations[layer];
            let [b, c, h, w] = act.dims();
            let (oh, ow) = (h.min(pool), w.min(pool));
            let v = to_vec(act.clone());
            for plane in v.chunks_exact(h * w) {
                if (oh, ow) == (h, w) {
                    out[l].values.extend_from_slice(plane);
                } else {
                    out[l].values.extend(adaptive_avg(plane, [h, w], [oh, ow]));
                }
            }
            pooled[l] = [c, oh, ow];
            out[l].dims = c * oh * ow;
            debug_assert_eq!(out[l].values.len(), end * out[l].dims, "batch {b}");
        }
        progress(end, n);
    }
    Ok((out, pooled))
}

/// Trains a linear softmax probe on `train` (labels below `classes`) with burn autodiff on
/// `device` (its autodiff form is used).
pub fn fit_softmax(
    train: &Features,
    classes: usize,
    options: &ProbeOptions,
    device: &Device,
) -> Result<SoftmaxProbe> {
    let (d, n) = (train.dims, train.labels.len());
    if d == 0 || n == 0 || train.values.len() != n * d {
        return Err(invalid(
            "probes",
            format!(
                "{} values are not {n} features of {d} dimensions",
                train.values.len()
            ),
        ));
    }
    if classes < 2 {
        return Err(invalid(
            "probes",
            format!("a softmax needs at least 2 classes, not {classes}"),
        ));
    }
    if let Some(bad) = train.labels.iter().find(|&&y| y >= classes) {
        return Err(invalid("probes", format!("label {bad} is not below {classes}")));
    }
    if options.epochs == 0
        || options.batch == 0
        || options.lr.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)
    {
        return Err(invalid(
            "probes",
            "epochs, batch and learning rate must be positive",
        ));
    }
    let (mut mean, mut var) = (vec![0f64; d], vec![0f64; d]);
    for row in train.values.chunks_exact(d) {
        for (j, &v) in row.iter().enumerate() {
            mean[j] += v as f64;
        }
    }
    mean.iter_mut().for_each(|m| *m /= n as f64);
    for row in train.values.chunks_exact(d) {
        for (j, &v) in row.iter().enumerate() {
            var[j] += (v as f64 - mean[j]).powi(2);
        }
    }
    // A constant dimension (a dead unit) would divide by zero: it stays 0 after centring.
    let std: Vec<f32> = var
        .iter()
        .map(|v| ((v / n as f64).sqrt().max(1e-6)) as f32)
        .collect();
    let mean: Vec<f32> = mean.iter().map(|&m| m as f32).collect();
    let z: Vec<f32> = train
        .values
        .chunks_exact(d)
        .flat_map(|row| {
            row.iter()
                .enumerate()
                .map(|(j, &v)| (v - mean[j]) / std[j])
                .collect::<Vec<_>>()
        })
        .collect();
    let ad = device.clone().autodiff();
    let mut w = Tensor::<2>::zeros([d, classes], &ad);
    let mut b = Tensor::<1>::zeros([classes], &ad);
    let (mut mw, mut vw) = (
        Tensor::<2>::zeros([d, classes], device),
        Tensor::<2>::zeros([d, classes], device),
    );
    let (mut mb, mut vb) = (
        Tensor::<1>::zeros([classes], device),
        Tensor::<1>::zeros([classes], device),
    );
    let (b1, b2, eps) = (0.9f64, 0.999f64, 1e-8f64);
    let mut rng = rand::rngs::StdRng::seed_from_u64(options.seed);
    let mut order: Vec<usize> = (0..n).collect();
    let mut t = 0i32;
    let mut last = 0f64;
    for _ in 0..options.epochs {
        order.shuffle(&mut rng);
        let (mut sum, mut seen) = (0f64, 0usize);
        for chunk in order.chunks(options.batch) {
            let m = chunk.len();
            let mut x = Vec::with_capacity(m * d);
            let mut y = vec![0f32; m * classes];
            for (r, &i) in chunk.iter().enumerate() {
                x.extend_from_slice(&z[i * d..(i + 1) * d]);
                y[r * classes + train.labels[i]] = 1.0;
            }
            let x = Tensor::<2>::from_data(TensorData::new(x, [m, d]), &ad);
            let y = Tensor::<2>::from_data(TensorData::new(y, [m, classes]), &ad);
            let wr = w.clone().require_grad();
            let br = b.clone().require_grad();
            let logits = x.matmul(wr.clone()) + br.clone().unsqueeze_dim(0);
            let ce = (burn::tensor::activation::log_softmax(logits, 1) * y)
                .sum()
                .neg()
                .div_scalar(m as f32);
            let loss = ce.clone()
                + wr.clone()
                    .powi_scalar(2)
                    .sum()
                    .mul_scalar(options.weight_decay as f32 / 2.0);
            sum += to_vec(ce.clone().inner())[0] as f64 * m as f64;
            seen += m;
            let grads = loss.backward();
            let gw = wr
                .grad(&grads)
                .ok_or_else(|| invalid("probes", "no gradient for the weights"))?;
            let gb = br
                .grad(&grads)
                .ok_or_else(|| invalid("probes", "no gradient for the bias"))?;
            t += 1;
            let (c1, c2) = (1.0 - b1.powi(t), 1.0 - b2.powi(t));
            let step = (options.lr * c2.sqrt() / c1) as f32;
            mw = mw.mul_scalar(b1 as f32) + gw.clone().mul_scalar((1.0 - b1) as f32);
            vw = vw.mul_scalar(b2 as f32) + gw.powi_scalar(2).mul_scalar((1.0 - b2) as f32);
            mb = mb.mul_scalar(b1 as f32) + gb.clone().mul_scalar((1.0 - b1) as f32);
            vb = vb.mul_scalar(b2 as f32) + gb.powi_scalar(2).mul_scalar((1.0 - b2) as f32);
            let nw = w.inner() - mw.clone().mul_scalar(step) / (vw.clone().sqrt().add_scalar(eps as f32));
            let nb = b.inner() - mb.clone().mul_scalar(step) / (vb.clone().sqrt().add_scalar(eps as f32));
            w = Tensor::from_inner(nw);
            b = Tensor::from_inner(nb);
        }
        last = sum / seen.max(1) as f64;
    }
    Ok(SoftmaxProbe {
        weight: to_vec(w.inner()),
        bias: to_vec(b.inner()),
        mean,
        std,
        classes,
        final_loss: last,
    })
}

impl SoftmaxProbe {
    /// The top-1 class of every feature row.
    pub fn predict(&self, set: &Features) -> Vec<usize> {
        let (d, k) = (set.dims, self.classes);
        set.values
            .chunks_exact(d.max(1))
            .map(|row| {
                let mut z = self.bias.clone();
                for (j, &v) in row.iter().enumerate() {
                    let x = (v - self.mean[j]) / self.std[j];
                    for (c, zc) in z.iter_mut().enumerate() {
                        *zc += x * self.weight[j * k + c];
                    }
                }
                (0..k).fold(0, |b, c| if z[c] > z[b] { c } else { b })
            })
            .collect()
    }

    /// The fraction of rows of `set` whose top-1 is their label.
    pub fn accuracy(&self, set: &Features) -> f64 {
        let right = self
            .predict(set)
            .iter()
            .zip(&set.labels)
            .filter(|(p, y)| p == y)
            .count();
        right as f64 / set.labels.len().max(1) as f64
    }
}

/// Runs the analysis: features of `train` and `test` at every layer, one probe per layer;
/// `progress(stage, done, total)` with stage `"train features"`, `"test features"` or the layer
/// being fitted.
pub fn probes(
    model: &GraphModel,
    pipeline: &Preprocess,
    train: &Labelled,
    test: &Labelled,
    options: &ProbeOptions,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<Probes> {
    let layers = if options.layers.is_empty() {
        default_layers(model)
    } else {
        options.layers.clone()
    };
    if layers.is_empty() {
        return Err(invalid(
            "layers",
            "none chosen and the model has no rectifier or pool",
        ));
    }
    let classes = model.num_classes();
    let (tr, pooled) = features(
        model,
        pipeline,
        train,
        &layers,
        options.pool,
        options.extract_batch,
        &mut |d, n| progress("train features", d, n),
    )?;
    let (te, _) = features(
        model,
        pipeline,
        test,
        &layers,
        options.pool,
        options.extract_batch,
        &mut |d, n| progress("test features", d, n),
    )?;
    let device = model.device();
    let mut out = Vec::with_capacity(layers.len());
    for (l, layer) in layers.iter().enumerate() {
        progress(layer, l, layers.len());
        let probe = fit_softmax(&tr[l], classes, options, &device)?;
        out.push(LayerProbe {
            layer: layer.clone(),
            pooled: pooled[l],
            dims: tr[l].dims,
            train_accuracy: probe.accuracy(&tr[l]),
            test_accuracy: probe.accuracy(&te[l]),
            final_loss: probe.final_loss,
        });
        progress(layer, l + 1, layers.len());
    }
    let mut counts = vec![0usize; classes];
    for &y in test.labels {
        if y < classes {
            counts[y] += 1;
        }
    }
    Ok(Probes {
        layers: out,
        classes,
        train_images: train.labels.len(),
        test_images: test.labels.len(),
        pool: options.pool,
        majority_baseline: *counts.iter().max().unwrap_or(&0) as f64 / test.labels.len().max(1) as f64,
    })
}

impl Probes {
    /// One line per layer: `layer,depth,channels,height,width,dims,train_accuracy,test_accuracy`.
    pub fn csv(&self) -> String {
        let mut s =
            String::from("layer,depth,channels,height,width,dims,train_accuracy,test_accuracy,final_loss\n");
        for (i, p) in self.layers.iter().enumerate() {
            s.push_str(&format!(
                "{},{},{},{},{},{},{:.4},{:.4},{:.4}\n",
                p.layer,
                i + 1,
                p.pooled[0],
                p.pooled[1],
                p.pooled[2],
                p.dims,
                p.train_accuracy,
                p.test_accuracy,
                p.final_loss
            ));
        }
        s
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("plain data")
    }

    /// Test (dark) and training (light) accuracy per layer as bars, in order of depth, the test
    /// value printed above each pair, the majority baseline as a dashed line.
    pub fn figure(&self, title: &str) -> Canvas {
        let n = self.layers.len().max(1);
        let (left, top, bottom, bar, gap) = (48usize, 40usize, 44usize, 28usize, 24usize);
        let ph = 260usize;
        let subtitle = "linear softmax probe accuracy per layer (dark: test, light: train)";
        let width = (left + n * (2 * bar + gap) + gap).max(8 * subtitle.len().max(title.len()) + 12);
        let height = top + ph + bottom;
        let mut c = Canvas::new(width, height, [255, 255, 255]);
        let (black, grey) = ([0, 0, 0], [200, 200, 200]);
        c.text(4, 4, title, 1, black);
        c.text(4, 18, subtitle, 1, [80, 80, 80]);
        let y_of = |a: f64| top + ph - ((a.clamp(0.0, 1.0) * ph as f64).round() as usize);
        let rect = |c: &mut Canvas, x0: usize, y0: usize, x1: usize, y1: usize, col: [u8; 3]| {
            for y in y0.min(height)..y1.min(height) {
                for x in x0.min(width)..x1.min(width) {
                    let i = (y * width + x) * 3;
                    c.pixels[i..i + 3].copy_from_slice(&col);
                }
            }
        };
        for t in 0..=10 {
            let y = y_of(t as f64 / 10.0);
            rect(
                &mut c,
                left - 4,
                y,
                width - 4,
                y + 1,
                if t % 5 == 0 { grey } else { [235, 235, 235] },
            );
            if t % 2 == 0 {
                c.text(
                    4,
                    y.saturating_sub(4),
                    &format!("{:.1}", t as f64 / 10.0),
                    1,
                    black,
                );
            }
        }
        let base = y_of(self.majority_baseline);
        for x in (left..width - 4).step_by(8) {
            rect(&mut c, x, base, x + 4, base + 1, [200, 60, 60]);
        }
        for (i, p) in self.layers.iter().enumerate() {
            let x = left + gap / 2 + i * (2 * bar + gap);
            rect(&mut c, x, y_of(p.test_accuracy), x + bar, top + ph, [40, 90, 160]);
            rect(
                &mut c,
                x + bar,
                y_of(p.train_accuracy),
                x + 2 * bar,
                top + ph,
                [150, 190, 230],
            );
            let label = format!("{:.1}", 100.0 * p.test_accuracy);
            c.text(x, y_of(p.test_accuracy).saturating_sub(10), &label, 1, black);
            let name: String = p.layer.chars().take((2 * bar + gap) / 8).collect();
            c.text(x, top + ph + 6, &name, 1, black);
            c.text(x, top + ph + 18, &format!("{}d", p.dims), 1, [90, 90, 90]);
        }
        c
    }
}

#[cfg(test)]
mod tests;
