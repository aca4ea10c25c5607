//! Training the small ZF-style Fashion-MNIST CNNs ([`deepsight_models::fmnist_cnn`]) from scratch
//! with Zeiler & Fergus's recipe, saving snapshots at their evolution epochs.
//!
//! # Computes
//! The network as a burn [`Module`] (one grey input channel), its [`Task`] (softmax cross-entropy
//! over the ten classes), and a training loop over the in-memory IDX items that applies, after
//! every SGD step, the authors' filter renormalisation, and writes weight files at chosen
//! fractions of the run (the evolution snapshots) as well as a resumable checkpoint per epoch.
//!
//! # Equation
//! Loss `L = -1/B sum_b log softmax(z_b)_{y_b}`; SGD with momentum `v <- mu v + g`,
//! `w <- w - lr v` (PyTorch's form); then for every convolution filter `f` (one output channel,
//! all its inputs and taps): `rms(f) = sqrt(mean(f^2))`, `f <- f * min(1, r / rms(f))`, `r = 0.1`.
//!
//! # Paper
//! Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks*, ECCV 2014, section 3
//! (training details: SGD, batch 128, lr 1e-2, momentum 0.9, weights initialised to 1e-2 and
//! biases to 0, "renormalize each filter in the convolutional layers whose RMS value exceeds a
//! fixed radius of 1e-1 to this fixed radius. This is crucial"), section 4.1 and fig. 4 (the
//! strongest activation of a feature map at epochs 1, 2, 5, 10, 20, 30, 40, 64).
//!
//! # Deviations
//! - Fashion-MNIST 28x28 grey instead of ImageNet 224x224 colour; the network is scaled down (see
//!   [`deepsight_models::fmnist_cnn`]): no contrast normalisation, no dropout.
//! - The authors' "initialised to 1e-2" is read as `N(0, 0.01^2)` (AlexNet's Gaussian, which
//!   ZF-Net follows); [`Init::Gaussian`] takes the deviation.
//! - No augmentation (the authors used 10 crops and flips) and a constant learning rate (they
//!   annealed it by hand when the validation error plateaued).
//! - The snapshots are taken at fractions of the run, `marks / of` of its iterations (the
//!   authors' epochs out of 64 by default), since this run is much shorter than their 70 epochs.
//! - The test split monitors the run (loss and accuracy per epoch and per snapshot); nothing is
//!   selected on it.

use crate::checkpoint::{self, OPTIMIZER_TENSOR, RunState, STATE_KEY};
use crate::engine::{Task, train_step};
use crate::error::{Result, TrainError};
use crate::log::Log;
use crate::mosaic::Items;
use crate::optim::{OptimConfig, OptimizerKind, Schedule};
use crate::rng::{mix, shuffle};
use crate::weight_file::{self, Encoded, bad_weights, param};
use burn::module::Module;
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{Linear, PaddingConfig2d};
use burn::tensor::activation::{log_softmax, relu};
use burn::tensor::{Bytes, f16};
use deepsight_models::fmnist_cnn::{self, CLASSES, FirstLayer, HIDDEN};
use deepsight_models::{Weights, uniform_stream};
use deepsight_runtime::{Device, Tensor, TensorData, to_vec};
use safetensors::Dtype;
use serde_json::json;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

/// The authors' evolution epochs (fig. 4), out of [`AUTHORS_OF`].
pub const AUTHORS_MARKS: [f64; 8] = [1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 40.0, 64.0];
/// The last epoch of fig. 4: the authors' marks are read as fractions of it.
pub const AUTHORS_OF: f64 = 64.0;

/// How the weights start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// Weights `N(0, std^2)`, biases 0 (Zeiler & Fergus: `std = 0.01`).
    Gaussian { std: f64 },
    /// Weights `N(0, 2 / fan_in)` (He et al. 2015), biases 0: what trains this small network in
    /// minutes, where `N(0, 0.01^2)` leaves the loss at `ln 10` for hundreds of iterations (each
    /// layer scales the signal by about `0.01 sqrt(fan_in) / sqrt 2`, 1e-4 over five layers).
    Kaiming,
}

/// What happens to the convolution filters after each step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Renorm {
    Off,
    /// Filters whose RMS exceeds `max_rms` are scaled back to it (the authors: 0.1).
    MaxRms(f32),
}

/// Zeiler & Fergus's training recipe, as typed options.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recipe {
    pub init: Init,
    pub renorm: Renorm,
    pub optim: OptimConfig,
    pub batch_size: usize,
}

impl Recipe {
    /// The authors' settings: `N(0, 0.01^2)` weights, zero biases, filter RMS capped at 0.1, SGD
    /// with momentum 0.9 (not Nesterov), lr 1e-2 for weights and biases, no weight decay, constant
    /// rate, batch 128.
    pub fn zeiler_fergus() -> Self {
        Recipe {
            init: Init::Gaussian { std: 0.01 },
            renorm: Renorm::MaxRms(0.1),
            optim: OptimConfig {
                kind: OptimizerKind::Sgd {
                    momentum: 0.9,
                    nesterov: false,
                },
                weight_lr: 1e-2,
                bias_lr: 1e-2,
                weight_decay: 0.0,
                bias_weight_decay: 0.0,
                schedule: Schedule::Constant,
            },
            batch_size: 128,
        }
    }
}

/// When the evolution snapshots are written: mark `m` at iteration `round(total * m / of)` of a
/// run of `total` iterations (at least the first).
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshots {
    pub marks: Vec<f64>,
    pub of: f64,
}

impl Default for Snapshots {
    fn default() -> Self {
        Snapshots {
            marks: AUTHORS_MARKS.to_vec(),
            of: AUTHORS_OF,
        }
    }
}

impl Snapshots {
    /// `(mark, iteration)` pairs, in the order given; an error for a mark outside `(0, of]`.
    pub fn steps(&self, total: usize) -> Result<Vec<(f64, usize)>> {
        self.marks
            .iter()
            .map(|&m| {
                // Written so that NaN marks fail too.
                if !(m > 0.0 && m <= self.of && self.of.is_finite()) {
                    return Err(TrainError::Config(format!(
                        "snapshot mark {m} is not in (0, {}]",
                        self.of
                    )));
                }
                let s = ((total as f64) * m / self.of).round() as usize;
                Ok((m, s.clamp(1, total)))
            })
            .collect()
    }

    /// The file name of mark `m` (`at-5-of-64.safetensors`).
    pub fn file_name(&self, m: f64) -> String {
        format!("at-{m}-of-{}.safetensors", self.of)
    }
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct RunConfig {
    pub first: FirstLayer,
    pub recipe: Recipe,
    pub epochs: usize,
    pub seed: u64,
    pub snapshots: Snapshots,
    /// The final weights.
    pub out: PathBuf,
    /// Checkpoint, `train.jsonl`, `loss.png`, `snapshots/`.
    pub run_dir: PathBuf,
    pub resume: bool,
    /// Stop after this many iterations of this invocation (to time a run; no final file).
    pub max_steps: Option<usize>,
}

/// One snapshot's facts.
#[derive(Debug, Clone, PartialEq)]
pub struct SnapshotFact {
    pub mark: f64,
    pub step: usize,
    pub epoch: f64,
    pub file: PathBuf,
    pub test_accuracy: f64,
}

/// What a run reports.
#[derive(Debug, Clone)]
pub struct RunSummary {
    pub steps_done: usize,
    pub steps_total: usize,
    /// Per epoch: mean training loss, test loss, test accuracy.
    pub history: Vec<(f32, f32, f64)>,
    pub snapshots: Vec<SnapshotFact>,
    pub seconds: f64,
}

/// The network as a trainable module (see [`deepsight_models::fmnist_cnn`]).
#[derive(Module, Debug)]
pub struct FmnistCnn {
    pub conv1: Conv2d,
    pub conv2: Conv2d,
    pub conv3: Conv2d,
    pub fc1: Linear,
    pub fc2: Linear,
}

fn renorm_conv(conv: Conv2d, max_rms: f32) -> Conv2d {
    let weight = conv.weight.map(|w| {
        let [c, ci, kh, kw] = w.dims();
        // Off the tape: the rescaling is a projection after the step, not part of the loss.
        let w = w.detach();
        let rms = w
            .clone()
            .powi_scalar(2)
            .reshape([c, ci * kh * kw])
            .mean_dim(1)
            .sqrt();
        let scale = rms.clamp_min(1e-12).recip().mul_scalar(max_rms).clamp_max(1.0);
        let out = (w * scale.reshape([c, 1, 1, 1])).detach();
        // A fresh leaf that is trained on (the autodiff device only tracks gradients).
        if out.device().is_autodiff() {
            out.require_grad()
        } else {
            out
        }
    });
    Conv2d { weight, ..conv }
}

impl FmnistCnn {
    /// The first layer, told by `conv1`'s kernel.
    pub fn first_layer(&self) -> FirstLayer {
        if self.conv1.kernel_size[0] == FirstLayer::Alex.conv1().0 {
            FirstLayer::Alex
        } else {
            FirstLayer::Zf
        }
    }

    /// The network with the values of a state dict (PyTorch names and layouts); the first layer
    /// is told by `conv1.weight`'s kernel (7 or 11).
    pub fn from_weights(w: &Weights, device: &Device) -> deepsight_models::Result<Self> {
        let first = match w.tensors.get("conv1.weight").map(|t| t.shape.clone()) {
            Some(s) if s.len() == 4 && s[3] == FirstLayer::Alex.conv1().0 => FirstLayer::Alex,
            _ => FirstLayer::Zf,
        };
        let t = |name: &str, shape: &[usize]| -> deepsight_models::Result<TensorData> {
            Ok(TensorData::new(w.get(name, shape)?.data.clone(), shape.to_vec()))
        };
        let shapes: BTreeMap<String, Vec<usize>> = fmnist_cnn::tensor_shapes(first).into_iter().collect();
        let conv = |n: usize, stride: usize, pad: usize| -> deepsight_models::Result<Conv2d> {
            let (wn, bn) = (format!("conv{n}.weight"), format!("conv{n}.bias"));
            let ws = &shapes[&wn];
            Ok(Conv2d {
                weight: param(&wn, Tensor::from_data(t(&wn, ws)?, device)),
                bias: Some(param(&bn, Tensor::from_data(t(&bn, &[ws[0]])?, device))),
                stride: [stride; 2],
                kernel_size: [ws[2], ws[3]],
                dilation: [1, 1],
                groups: 1,
                padding: PaddingConfig2d::Explicit(pad, pad, pad, pad),
            })
        };
        let linear = |name: &str, io: [usize; 2]| -> deepsight_models::Result<Linear> {
            let (wn, bn) = (format!("{name}.weight"), format!("{name}.bias"));
            // burn's layout is `[in, out]`: PyTorch's `[out, in]` transposed.
            let weight = Tensor::<2>::from_data(t(&wn, &[io[1], io[0]])?, device).transpose();
            Ok(Linear {
                weight: param(&wn, weight),
                bias: Some(param(&bn, Tensor::from_data(t(&bn, &[io[1]])?, device))),
            })
        };
        let (_, s1, p1) = first.conv1();
        Ok(FmnistCnn {
            conv1: conv(1, s1, p1)?,
            conv2: conv(2, 1, 1)?,
            conv3: conv(3, 1, 1)?,
            fc1: linear("fc1", [first.features(), HIDDEN])?,
            fc2: linear("fc2", [HIDDEN, CLASSES])?,
        })
    }

    /// Fresh weights: each weight tensor from its own seeded stream ([`uniform_stream`] of the
    /// seed and its name, Box-Muller), biases 0.
    pub fn init(first: FirstLayer, init: Init, seed: u64, device: &Device) -> Self {
        let mut w = Weights::default();
        for (name, shape) in fmnist_cnn::tensor_shapes(first) {
            let n: usize = shape.iter().product();
            let std = match init {
                Init::Gaussian { std } => std,
                Init::Kaiming => (2.0 / shape[1..].iter().product::<usize>().max(1) as f64).sqrt(),
            };
            let data: Vec<f32> = if name.ends_with(".bias") {
                vec![0.0; n]
            } else {
                let u: Vec<f64> = uniform_stream(seed, &name).take(2 * n).collect();
                u.chunks_exact(2)
                    .map(|p| {
                        let r = (-2.0 * (1.0 - p[0]).ln()).sqrt();
                        (std * r * (std::f64::consts::TAU * p[1]).cos()) as f32
                    })
                    .collect()
            };
            w.tensors
                .insert(name, deepsight_models::WeightTensor { shape, data });
        }
        Self::from_weights(&w, device).expect("the shapes are the architecture's by construction")
    }

    /// The logits `[N, 10]` of normalised grey images `[N, 1, 28, 28]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let pool = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        let x = pool.forward(relu(self.conv1.forward(x)));
        let x = pool.forward(relu(self.conv2.forward(x)));
        let x = pool.forward(relu(self.conv3.forward(x)));
        let [n, c, h, w] = x.dims();
        let x = relu(self.fc1.forward(x.reshape([n, c * h * w])));
        self.fc2.forward(x)
    }

    /// The module with every convolution filter's RMS capped at `max_rms`.
    pub fn renormalised(self, max_rms: f32) -> Self {
        FmnistCnn {
            conv1: renorm_conv(self.conv1, max_rms),
            conv2: renorm_conv(self.conv2, max_rms),
            conv3: renorm_conv(self.conv3, max_rms),
            ..self
        }
    }

    /// The state dict (PyTorch names, shapes and layouts), as the graph builder reads it.
    pub fn to_weights(&self) -> Weights {
        let mut w = Weights::default();
        let mut put = |name: String, t: Vec<usize>, data: Vec<f32>| {
            w.tensors
                .insert(name, deepsight_models::WeightTensor { shape: t, data });
        };
        for (n, conv) in [(1, &self.conv1), (2, &self.conv2), (3, &self.conv3)] {
            let wt = conv.weight.val();
            put(format!("conv{n}.weight"), wt.dims().to_vec(), to_vec(wt.inner()));
            if let Some(b) = &conv.bias {
                put(
                    format!("conv{n}.bias"),
                    b.val().dims().to_vec(),
                    to_vec(b.val().inner()),
                );
            }
        }
        for (name, fc) in [("fc1", &self.fc1), ("fc2", &self.fc2)] {
            let wt = fc.weight.val().transpose();
            put(format!("{name}.weight"), wt.dims().to_vec(), to_vec(wt.inner()));
            if let Some(b) = &fc.bias {
                put(
                    format!("{name}.bias"),
                    b.val().dims().to_vec(),
                    to_vec(b.val().inner()),
                );
            }
        }
        w
    }
}

/// The mean over channels of `[N, C, H, W]` images in `[0, 1]`, normalised as the preset does,
/// `(255 x - 127) / 128`: the network's grey input.
pub fn normalise(images01: Tensor<4>) -> Tensor<4> {
    let grey = if images01.dims()[1] == 1 {
        images01
    } else {
        images01.mean_dim(1)
    };
    grey.mul_scalar(255.0 / 128.0).sub_scalar(127.0 / 128.0)
}

/// Softmax cross-entropy (mean over the batch) of logits `[B, K]` and one label per image.
pub fn cross_entropy(logits: Tensor<2>, labels: &[usize], device: &Device) -> Result<Tensor<1>> {
    let [b, k] = logits.dims();
    let mut onehot = vec![0f32; b * k];
    for (i, &l) in labels.iter().enumerate() {
        if l >= k {
            return Err(TrainError::Config(format!(
                "label {l} is out of range: the classifier has {k} classes"
            )));
        }
        onehot[i * k + l] = 1.0;
    }
    let y = Tensor::<2>::from_data(TensorData::new(onehot, [b, k]), device);
    Ok((log_softmax(logits, 1) * y).sum().neg().div_scalar(b as f32))
}

/// Training one of the Fashion-MNIST CNNs.
pub struct FmnistTask {
    pub first: FirstLayer,
    /// F16 tensors in [`Task::encode`]'s output (weights; a checkpoint's optimiser state is
    /// bytes either way).
    pub half: bool,
    /// Facts recorded in the weight file's metadata (command, data).
    pub info: BTreeMap<String, String>,
}

impl Task for FmnistTask {
    type Module = FmnistCnn;

    fn terms(&self) -> &'static [&'static str] {
        &["ce"]
    }

    /// `images01` `[B, 1 or 3, 28, 28]` in `[0, 1]` (three channels are averaged), one label per
    /// image (the first of each list).
    fn loss(
        &self,
        module: &FmnistCnn,
        images01: Tensor<4>,
        labels: &[Vec<usize>],
    ) -> Result<(Tensor<1>, Vec<Tensor<1>>)> {
        let device = module.fc2.weight.val().device();
        let logits = module.forward(normalise(images01.to_device(&device)));
        let first: Vec<usize> = labels
            .iter()
            .map(|l| l.first().copied().unwrap_or(usize::MAX))
            .collect();
        let loss = cross_entropy(logits, &first, &device)?;
        Ok((loss.clone(), vec![loss]))
    }

    fn encode(&self, module: &FmnistCnn, extra: &[(&str, &[u8])], meta: &[(&str, String)]) -> Vec<u8> {
        let w = module.to_weights();
        let (dtype, bytes): (Dtype, Vec<Encoded>) = if self.half {
            let b = w.tensors.into_iter().map(|(k, t)| {
                let b = t
                    .data
                    .iter()
                    .flat_map(|v| f16::from_f32(*v).to_le_bytes())
                    .collect();
                (k, t.shape, b)
            });
            (Dtype::F16, b.collect())
        } else {
            let b = w.tensors.into_iter().map(|(k, t)| {
                let b = t.data.iter().flat_map(|v| v.to_le_bytes()).collect();
                (k, t.shape, b)
            });
            (Dtype::F32, b.collect())
        };
        let arch = match self.first {
            FirstLayer::Zf => deepsight_models::Arch::FmnistZf,
            FirstLayer::Alex => deepsight_models::Arch::FmnistAlex,
        };
        weight_file::encode(
            dtype,
            &bytes,
            extra,
            "deepsight.fmnist-cnn",
            arch,
            &self.info,
            meta,
        )
    }

    fn decode(&self, bytes: &[u8], source: &str, device: &Device) -> Result<FmnistCnn> {
        let m = weight_file::decode(bytes, source, |w| FmnistCnn::from_weights(w, device))?;
        if m.first_layer() != self.first {
            return Err(bad_weights(
                source,
                format!(
                    "the weights have a {:?} first layer, the run {:?}",
                    m.first_layer(),
                    self.first
                ),
            ));
        }
        Ok(m)
    }
}

/// The items `idx` as a `[B, 1, 28, 28]` batch in `[0, 1]` and their labels.
fn batch(items: &Items, idx: &[usize], device: &Device) -> (Tensor<4>, Vec<Vec<usize>>) {
    let side = fmnist_cnn::INPUT_SIZE[0];
    let mut v = Vec::with_capacity(idx.len() * side * side);
    for &i in idx {
        v.extend(items.item(i).iter().map(|&p| p as f32 / 255.0));
    }
    let t = Tensor::from_data(TensorData::new(v, [idx.len(), 1, side, side]), device);
    let labels = idx.iter().map(|&i| vec![items.labels[i] as usize]).collect();
    (t, labels)
}

/// Mean cross-entropy and top-1 accuracy of `module` (off the tape) on all of `items`.
pub fn evaluate(module: &FmnistCnn, items: &Items, device: &Device) -> Result<(f32, f64)> {
    let (mut loss, mut right) = (0f64, 0usize);
    let all: Vec<usize> = (0..items.len()).collect();
    for chunk in all.chunks(500) {
        let (x, labels) = batch(items, chunk, device);
        let logits = module.forward(normalise(x));
        let flat: Vec<usize> = labels.iter().map(|l| l[0]).collect();
        let ce = cross_entropy(logits.clone(), &flat, device)?;
        loss += to_vec(ce)[0] as f64 * chunk.len() as f64;
        let z = to_vec(logits);
        for (row, &y) in z.chunks_exact(CLASSES).zip(&flat) {
            let top = (0..CLASSES).fold(0, |b, k| if row[k] > row[b] { k } else { b });
            right += (top == y) as usize;
        }
    }
    let n = items.len().max(1) as f64;
    Ok(((loss / n) as f32, right as f64 / n))
}

fn fingerprint(config: &RunConfig, train: usize) -> String {
    format!(
        "first={:?} recipe={:?} epochs={} seed={} snapshots={:?} train={train}",
        config.first, config.recipe, config.epochs, config.seed, config.snapshots
    )
}

fn write(path: PathBuf, bytes: &[u8]) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|source| TrainError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    Ok(deepsight_models::write_atomic(&path, bytes)?)
}

/// Trains a fresh network (or resumes the run in `config.run_dir`) on `train`, monitoring `test`;
/// `progress(step, total, loss)` after every iteration.
pub fn train(
    task: &FmnistTask,
    train: &Items,
    test: &Items,
    config: &RunConfig,
    device: &Device,
    progress: &dyn Fn(usize, usize, f32),
) -> Result<RunSummary> {
    let bs = config.recipe.batch_size;
    if config.epochs == 0 || bs == 0 || train.is_empty() {
        return Err(TrainError::Config(
            "the run needs at least one epoch, a batch size of at least 1 and training items".into(),
        ));
    }
    std::fs::create_dir_all(&config.run_dir).map_err(|source| TrainError::Io {
        path: config.run_dir.clone(),
        source,
    })?;
    let ad = device.clone().autodiff();
    let per_epoch = train.len().div_ceil(bs);
    let total = per_epoch * config.epochs;
    let marks = config.snapshots.steps(total)?;
    let print = fingerprint(config, train.len());
    let mut module = FmnistCnn::init(config.first, config.recipe.init, config.seed, &ad);
    let mut optim = config.recipe.optim.build();
    let mut start_epoch = 0;
    let ckpt = config.run_dir.join("checkpoint.safetensors");
    if config.resume {
        let (bytes, state, opt) = checkpoint::read(&ckpt)?;
        if state.fingerprint != print {
            return Err(TrainError::Checkpoint {
                path: ckpt,
                reason: format!(
                    "was written by a run with other settings ({}); this run has {print}",
                    state.fingerprint
                ),
            });
        }
        let full = FmnistTask {
            first: task.first,
            half: false,
            info: BTreeMap::new(),
        };
        module = full.decode(&bytes, &ckpt.display().to_string(), &ad)?;
        let record = burn::optim::OptimizerRecord::from_bytes(Bytes::from_bytes_vec(opt)).map_err(|e| {
            TrainError::Checkpoint {
                path: ckpt.clone(),
                reason: format!("unreadable optimiser state ({e:?})"),
            }
        })?;
        optim = optim.load_record(record);
        start_epoch = state.epochs_done;
    }
    let log_path = config.run_dir.join("train.jsonl");
    let mut log = Log::open(&log_path, start_epoch)?;
    let started = Instant::now();
    let mut summary = RunSummary {
        steps_done: start_epoch * per_epoch,
        steps_total: total,
        history: Vec::new(),
        snapshots: Vec::new(),
        seconds: 0.0,
    };
    let checkpoint_task = FmnistTask {
        first: task.first,
        half: false,
        info: task.info.clone(),
    };
    'epochs: for epoch in start_epoch..config.epochs {
        let epoch_started = Instant::now();
        let mut order: Vec<usize> = (0..train.len()).collect();
        shuffle(&mut order, mix(&[config.seed, epoch as u64, 0x2f_0e11]));
        let (mut sum, mut seen) = (0f64, 0usize);
        for chunk in order.chunks(bs) {
            let t0 = Instant::now();
            let step = summary.steps_done;
            let rates = config.recipe.optim.rates(step, per_epoch, total);
            let (images, labels) = batch(train, chunk, device);
            let (next, out) = train_step(task, module, &mut optim, rates, images, &labels)?;
            module = match config.recipe.renorm {
                Renorm::Off => next,
                Renorm::MaxRms(r) => next.renormalised(r),
            };
            summary.steps_done += 1;
            sum += out.loss as f64 * chunk.len() as f64;
            seen += chunk.len();
            let secs = t0.elapsed().as_secs_f64();
            log.write(&json!({
                "kind": "step", "epoch": epoch, "step": step, "images": chunk.len(), "loss": out.loss,
                "ce": out.loss, "lr_weight": rates.0, "seconds": secs,
                "images_per_s": chunk.len() as f64 / secs,
            }))?;
            progress(summary.steps_done, total, out.loss);
            for &(m, s) in &marks {
                if s == summary.steps_done {
                    let file = config
                        .run_dir
                        .join("snapshots")
                        .join(config.snapshots.file_name(m));
                    let meta = [(
                        "deepsight.snapshot",
                        format!("mark {m} of {}, step {s} of {total}", config.snapshots.of),
                    )];
                    write(file.clone(), &task.encode(&module, &[], &meta))?;
                    let (_, acc) = evaluate(&module.valid(), test, device)?;
                    log.write(&json!({
                        "kind": "snapshot", "epoch": epoch, "mark": m, "step": s,
                        "test_accuracy": acc, "file": file.display().to_string(),
                    }))?;
                    summary.snapshots.push(SnapshotFact {
                        mark: m,
                        step: s,
                        epoch: s as f64 / per_epoch as f64,
                        file,
                        test_accuracy: acc,
                    });
                }
            }
            if config
                .max_steps
                .is_some_and(|n| summary.steps_done - start_epoch * per_epoch >= n)
            {
                break 'epochs;
            }
        }
        let train_loss = (sum / seen.max(1) as f64) as f32;
        let (test_loss, test_acc) = evaluate(&module.valid(), test, device)?;
        summary.history.push((train_loss, test_loss, test_acc));
        log.write(&json!({
            "kind": "epoch", "epoch": epoch, "train_loss": train_loss,
            "val": {"loss": test_loss, "accuracy": test_acc},
            "seconds": epoch_started.elapsed().as_secs_f64(),
        }))?;
        let state = RunState {
            epochs_done: epoch + 1,
            steps_done: summary.steps_done,
            fingerprint: print.clone(),
        };
        let opt = optim
            .to_record()
            .into_bytes()
            .map_err(|e| TrainError::Config(format!("cannot serialise the optimiser state: {e:?}")))?;
        let state = serde_json::to_string(&state).expect("plain data");
        write(
            ckpt.clone(),
            &checkpoint_task.encode(&module, &[(OPTIMIZER_TENSOR, &opt[..])], &[(STATE_KEY, state)]),
        )?;
        let png = log.curve_png(&[], &[])?;
        write(config.run_dir.join("loss.png"), &png)?;
    }
    if summary.steps_done == total {
        write(config.out.clone(), &task.encode(&module, &[], &[]))?;
    }
    let png = log.curve_png(&[], &[])?;
    write(config.run_dir.join("loss.png"), &png)?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

#[cfg(test)]
mod tests;
