//! The training loop: epochs of seeded, augmented batches through a [`Task`] on burn's autodiff,
//! burn's optimisers with per-group rates, validation, checkpoints after every epoch, resume,
//! `train.jsonl` and the loss curve.

use crate::augment::Augmentation;
use crate::checkpoint::{self, OPTIMIZER_TENSOR, RunState, STATE_KEY};
use crate::error::{Result, TrainError};
use crate::loader::{self, Batch, Source};
use crate::log::Log;
use crate::optim::OptimConfig;
use crate::rng::{mix, shuffle};
use burn::module::Module;
use burn::optim::{GradientsParams, ModuleOptimizer};
use burn::tensor::Bytes;
use deepsight_runtime::{Device, Tensor, TensorData, to_vec};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// What is trained: a module and its loss on a batch.
pub trait Task: Sync {
    type Module: Module;
    /// Names of the unweighted loss terms, in the order [`Task::loss`] returns them.
    fn terms(&self) -> &'static [&'static str];
    /// The coefficient of each term in the total (the loss curve plots weighted terms, so that
    /// they can be compared).
    fn term_weights(&self) -> Vec<f32> {
        vec![1.0; self.terms().len()]
    }
    /// The weighted total and the unweighted terms of one batch (`images01` `[B, 3, H, W]` in
    /// `[0, 1]`, each image's labels: one or more), on the tape when the module is.
    fn loss(
        &self,
        module: &Self::Module,
        images01: Tensor<4>,
        labels: &[Vec<usize>],
    ) -> Result<(Tensor<1>, Vec<Tensor<1>>)>;
    /// The module's weight file, with extra byte tensors and metadata (a checkpoint's).
    fn encode(&self, module: &Self::Module, extra: &[(&str, &[u8])], meta: &[(&str, String)]) -> Vec<u8>;
    /// The module from a weight file written by [`Task::encode`], on `device`.
    fn decode(&self, bytes: &[u8], source: &str, device: &Device) -> Result<Self::Module>;
}

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct TrainConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub seed: u64,
    pub augmentation: Augmentation,
    pub optim: OptimConfig,
    /// Where the final weights go.
    pub out: PathBuf,
    /// Where the checkpoint, `train.jsonl` and `loss.png` go.
    pub run_dir: PathBuf,
    /// Continue from the checkpoint in `run_dir`.
    pub resume: bool,
    /// Stop after this many epochs of this invocation (to test resuming; `None`: run them all).
    pub stop_after: Option<usize>,
    /// Stop when the validation loss has not improved for a while; the output is then the best
    /// epoch's weights (PyTorch Lightning's `EarlyStopping`, mode min).
    pub early_stop: Option<EarlyStop>,
}

/// Early stopping on the validation loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EarlyStop {
    /// Epochs without an improvement of at least `min_delta` before stopping.
    pub patience: usize,
    pub min_delta: f32,
}

impl EarlyStop {
    /// The best epoch (0-based) of `val` and whether the run should stop after its last epoch:
    /// an epoch improves when its loss is below the best so far minus `min_delta`.
    pub fn judge(&self, val: &[f32]) -> (usize, bool) {
        let (mut best, mut best_at, mut waited) = (f32::INFINITY, 0, 0);
        for (i, &v) in val.iter().enumerate() {
            if v < best - self.min_delta {
                (best, best_at, waited) = (v, i, 0);
            } else {
                waited += 1;
            }
        }
        (best_at, waited >= self.patience)
    }
}

/// Images with their labels, split into training and validation.
pub struct Data {
    pub source: Source,
    pub train: Vec<usize>,
    pub val: Vec<usize>,
}

/// What the caller is told as the run goes.
#[derive(Debug, Clone)]
pub struct Progress {
    pub epoch: usize,
    pub epochs: usize,
    /// Iterations done in the whole run, and their total.
    pub step: usize,
    pub steps: usize,
    pub loss: f32,
    pub images_per_s: f32,
    /// `"train"` or `"val"`.
    pub phase: &'static str,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct Summary {
    pub epochs_done: usize,
    /// Early stopping ended the run before its last epoch.
    pub stopped_early: bool,
    /// Per epoch: mean training loss and validation loss (NaN without a validation split).
    pub history: Vec<(f32, f32)>,
    pub seconds: f64,
}

impl TrainConfig {
    /// The checkpoint's path.
    pub fn checkpoint(&self) -> PathBuf {
        self.run_dir.join("checkpoint.safetensors")
    }

    fn fingerprint(&self, data: &Data) -> String {
        format!(
            "epochs={} batch={} seed={} aug={:?} optim={:?} early_stop={:?} train={} val={}",
            self.epochs,
            self.batch_size,
            self.seed,
            self.augmentation,
            self.optim,
            self.early_stop,
            data.train.len(),
            data.val.len()
        )
    }
}

fn to_tensor(b: &Batch, device: &Device) -> Tensor<4> {
    Tensor::from_data(TensorData::new(b.images01.clone(), b.dims), device)
}

fn scalar(t: Tensor<1>) -> f32 {
    to_vec(t).first().copied().unwrap_or(f32::NAN)
}

/// Trains `initial` (on the autodiff device) on `data`.
pub fn train<T: Task>(
    task: &T,
    initial: T::Module,
    data: &Data,
    config: &TrainConfig,
    device: &Device,
    progress: &dyn Fn(&Progress),
) -> Result<(T::Module, Summary)> {
    if config.epochs == 0 || config.batch_size == 0 {
        return Err(TrainError::Config(
            "--epochs and --batch-size must be at least 1".into(),
        ));
    }
    if data.train.is_empty() {
        return Err(TrainError::Config("no training images".into()));
    }
    std::fs::create_dir_all(&config.run_dir).map_err(|source| TrainError::Io {
        path: config.run_dir.clone(),
        source,
    })?;
    let ad = device.clone().autodiff();
    let fingerprint = config.fingerprint(data);
    let steps_per_epoch = data.train.len().div_ceil(config.batch_size);
    let total = steps_per_epoch * config.epochs;
    let mut module = initial;
    let mut optim = config.optim.build();
    let mut start_epoch = 0;
    if config.resume {
        let path = config.checkpoint();
        let (bytes, state, optimizer) = checkpoint::read(&path)?;
        if state.fingerprint != fingerprint {
            return Err(TrainError::Checkpoint {
                path,
                reason: format!(
                    "was written by a run with other settings ({}); this run has {fingerprint}",
                    state.fingerprint
                ),
            });
        }
        module = task.decode(&bytes, &path.display().to_string(), &ad)?;
        let record =
            burn::optim::OptimizerRecord::from_bytes(Bytes::from_bytes_vec(optimizer)).map_err(|e| {
                TrainError::Checkpoint {
                    path: path.clone(),
                    reason: format!("unreadable optimiser state ({e:?})"),
                }
            })?;
        optim = optim.load_record(record);
        start_epoch = state.epochs_done;
    }
    let mut log = Log::open(&config.run_dir.join("train.jsonl"), start_epoch)?;
    let mut history = read_history(&config.run_dir.join("train.jsonl"));
    let started = Instant::now();
    let mut last = match config.stop_after {
        Some(n) => (start_epoch + n).min(config.epochs),
        None => config.epochs,
    };
    let mut stopped_early = config.early_stop.is_some_and(|e| {
        let val: Vec<f32> = history.iter().map(|h| h.1).collect();
        !val.is_empty() && e.judge(&val).1
    });
    if stopped_early {
        last = start_epoch;
    }
    for epoch in start_epoch..last {
        let epoch_started = Instant::now();
        let mut order = data.train.clone();
        shuffle(&mut order, mix(&[config.seed, epoch as u64, 0x0dde_0f00]));
        let rx = loader::batches(
            data.source.clone(),
            order,
            config.batch_size,
            config.augmentation,
            config.seed,
            epoch as u64,
        );
        let (mut sum, mut seen) = (0f64, 0usize);
        for (i, batch) in rx.into_iter().enumerate() {
            let batch = batch?;
            let t0 = Instant::now();
            let step = epoch * steps_per_epoch + i;
            let rates = config.optim.rates(step, steps_per_epoch, total);
            let images = to_tensor(&batch, device);
            let (next, step_out) = train_step(task, module, &mut optim, rates, images, &batch.labels)?;
            module = next;
            let StepOutput {
                loss: loss_v,
                terms,
                forward_s,
                backward_s,
                optimizer_s,
            } = step_out;
            let secs = t0.elapsed().as_secs_f64();
            let n = batch.labels.len();
            sum += loss_v as f64 * n as f64;
            seen += n;
            let mut line = json!({
                "kind": "step", "epoch": epoch, "step": step, "images": n, "loss": loss_v,
                "lr_weight": rates.0, "lr_bias": rates.1, "seconds": secs,
                "images_per_s": n as f64 / secs, "forward_s": forward_s,
                "backward_s": backward_s, "optimizer_s": optimizer_s,
            });
            for (name, t) in task.terms().iter().zip(terms) {
                line[*name] = json!(t);
            }
            log.write(&line)?;
            progress(&Progress {
                epoch,
                epochs: config.epochs,
                step: step + 1,
                steps: total,
                loss: loss_v,
                images_per_s: (n as f64 / secs) as f32,
                phase: "train",
            });
        }
        let train_loss = (sum / seen.max(1) as f64) as f32;
        let val = validate(task, &module, data, config, device, progress, epoch, total)?;
        let val_loss = val.first().map_or(f32::NAN, |v| v.1);
        history.push((train_loss, val_loss));
        let mut val_json = json!({});
        for (name, v) in &val {
            val_json[*name] = json!(v);
        }
        log.write(&json!({
            "kind": "epoch", "epoch": epoch, "train_loss": train_loss, "val": val_json,
            "seconds": epoch_started.elapsed().as_secs_f64(),
        }))?;
        save_checkpoint(
            task,
            &module,
            &optim,
            config,
            &fingerprint,
            epoch + 1,
            (epoch + 1) * steps_per_epoch,
        )?;
        let png = log.curve_png(task.terms(), &task.term_weights())?;
        deepsight_models::write_atomic(&config.run_dir.join("loss.png"), &png)?;
        if let Some(e) = config.early_stop
            && !data.val.is_empty()
        {
            let val: Vec<f32> = history.iter().map(|h| h.1).collect();
            if e.judge(&val).1 {
                stopped_early = true;
                last = epoch + 1;
                break;
            }
        }
    }
    match config.early_stop {
        Some(e) if (stopped_early || last == config.epochs) && !data.val.is_empty() => {
            let val: Vec<f32> = history.iter().map(|h| h.1).collect();
            let best = e.judge(&val).0 + 1;
            let file = config.run_dir.join(format!("epoch-{best}.safetensors"));
            let bytes = std::fs::read(&file).map_err(|source| TrainError::Io { path: file, source })?;
            deepsight_models::write_atomic(&config.out, &bytes)?;
        }
        _ if last == config.epochs => {
            deepsight_models::write_atomic(&config.out, &task.encode(&module, &[], &[]))?;
        }
        _ => {}
    }
    // Also after a resume of a finished run (no epoch left): the curve with this code's plot.
    let png = log.curve_png(task.terms(), &task.term_weights())?;
    deepsight_models::write_atomic(&config.run_dir.join("loss.png"), &png)?;
    Ok((
        module,
        Summary {
            epochs_done: last,
            stopped_early,
            history,
            seconds: started.elapsed().as_secs_f64(),
        },
    ))
}

/// What one training step reports.
pub struct StepOutput {
    pub loss: f32,
    /// The unweighted terms, in [`Task::terms`] order.
    pub terms: Vec<f32>,
    pub forward_s: f64,
    pub backward_s: f64,
    pub optimizer_s: f64,
}

/// One step: the task's loss on a batch, its backward pass, and the optimiser's update at
/// `rates` (weights, biases).
pub fn train_step<T: Task>(
    task: &T,
    module: T::Module,
    optim: &mut ModuleOptimizer,
    rates: (f64, f64),
    images01: Tensor<4>,
    labels: &[Vec<usize>],
) -> Result<(T::Module, StepOutput)> {
    let t0 = Instant::now();
    let (loss, terms) = task.loss(&module, images01, labels)?;
    let t1 = Instant::now();
    let grads = GradientsParams::from_grads(loss.backward(), &module);
    let t2 = Instant::now();
    let module = optim.step(OptimConfig::module_rate(rates), module, grads);
    let out = StepOutput {
        loss: scalar(loss.detach().inner()),
        terms: terms.into_iter().map(|t| scalar(t.detach().inner())).collect(),
        forward_s: (t1 - t0).as_secs_f64(),
        backward_s: (t2 - t1).as_secs_f64(),
        optimizer_s: t2.elapsed().as_secs_f64(),
    };
    Ok((module, out))
}

fn read_history(path: &Path) -> Vec<(f32, f32)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["kind"] == "epoch")
        .map(|v| {
            (
                v["train_loss"].as_f64().unwrap_or(f64::NAN) as f32,
                v["val"]["loss"].as_f64().unwrap_or(f64::NAN) as f32,
            )
        })
        .collect()
}

fn save_checkpoint<T: Task>(
    task: &T,
    module: &T::Module,
    optim: &ModuleOptimizer,
    config: &TrainConfig,
    fingerprint: &str,
    epochs_done: usize,
    steps_done: usize,
) -> Result<()> {
    let optimizer = optim
        .to_record()
        .into_bytes()
        .map_err(|e| TrainError::Config(format!("cannot serialise the optimiser state: {e:?}")))?;
    let state = RunState {
        epochs_done,
        steps_done,
        fingerprint: fingerprint.to_string(),
    };
    let state = serde_json::to_string(&state).expect("plain data");
    let bytes = task.encode(
        module,
        &[(OPTIMIZER_TENSOR, &optimizer[..])],
        &[(STATE_KEY, state)],
    );
    let path = config.checkpoint();
    deepsight_models::write_atomic(&path, &bytes)?;
    // Each epoch's weights too (no optimiser state), for looking at how the module evolved.
    let epoch_file = config.run_dir.join(format!("epoch-{epochs_done}.safetensors"));
    deepsight_models::write_atomic(&epoch_file, &task.encode(module, &[], &[]))?;
    Ok(())
}

/// Mean loss terms over the validation split (eval preprocessing, off the tape): `("loss", total)`
/// first, then each term.
#[allow(clippy::too_many_arguments)]
fn validate<T: Task>(
    task: &T,
    module: &T::Module,
    data: &Data,
    config: &TrainConfig,
    device: &Device,
    progress: &dyn Fn(&Progress),
    epoch: usize,
    total: usize,
) -> Result<Vec<(&'static str, f32)>> {
    if data.val.is_empty() {
        return Ok(Vec::new());
    }
    let frozen = module.valid();
    let rx = loader::batches(
        data.source.clone(),
        data.val.clone(),
        config.batch_size,
        Augmentation::Eval,
        config.seed,
        epoch as u64,
    );
    let mut sums = vec![0f64; task.terms().len() + 1];
    let mut seen = 0usize;
    for batch in rx {
        let batch = batch?;
        let n = batch.labels.len();
        let (loss, terms) = task.loss(&frozen, to_tensor(&batch, device), &batch.labels)?;
        sums[0] += scalar(loss.inner()) as f64 * n as f64;
        for (s, t) in sums[1..].iter_mut().zip(terms) {
            *s += scalar(t.inner()) as f64 * n as f64;
        }
        seen += n;
        progress(&Progress {
            epoch,
            epochs: config.epochs,
            step: (epoch + 1) * total / config.epochs.max(1),
            steps: total,
            loss: (sums[0] / seen as f64) as f32,
            images_per_s: 0.0,
            phase: "val",
        });
    }
    let names = std::iter::once("loss").chain(task.terms().iter().copied());
    Ok(names
        .zip(sums)
        .map(|(k, s)| (k, (s / seen.max(1) as f64) as f32))
        .collect())
}
