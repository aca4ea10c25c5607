//! `deepsight train lcam`: fits an L-CAM attention module on a frozen classifier.

use crate::model_arg::ModelArgs;
use anyhow::{Context, Result, bail};
use deepsight_explain::learned::{LcamLoss, LcamVariant, MaskPairing, ModelIdentity};
use deepsight_train::lcam::{Init, LcamTask, predicted_labels};
use deepsight_train::loader::Source;
use deepsight_train::{Augmentation, Data, Labels, OptimConfig, OptimizerKind, Schedule, TrainConfig};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// L-CAM-Img or L-CAM-Fm (Gkartzonika et al. 2022): an attention module on one layer of the
    /// frozen classifier, so that a class map costs one forward pass.
    Lcam(LcamArgs),
    /// The explainer network of Stalder et al. 2022: a segmenter trained on the frozen classifier
    /// to output every class's mask in one forward pass.
    Explainer(crate::train_explainer::Args),
    /// A small multi-label CNN classifier (BCE), e.g. for the mosaic benchmark.
    Classifier(crate::train_classifier::Args),
    /// A small Zeiler & Fergus-style CNN on Fashion-MNIST from scratch (their recipe: SGD,
    /// N(0, 0.01^2) weights, filter RMS capped at 0.1), with snapshots at their evolution epochs.
    Zf(crate::train_zf::Args),
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum VariantArg {
    Img,
    Fm,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LabelsArg {
    /// The frozen classifier's top-1 (the authors'), computed once and cached.
    Predicted,
    /// The labels of each folder's dataset.txt.
    Dataset,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum OptimArg {
    Sgd,
    Adam,
    Adamw,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ScheduleArg {
    /// Multiply the rates by --gamma at every epoch (L-CAM's reduce_lr).
    Step,
    /// PyTorch's OneCycleLR per iteration (TAME's), peaking at the given rates.
    OneCycle,
    Constant,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum InitArg {
    /// PyTorch's default Conv2d initialisation (the authors'), seeded by --seed.
    Default,
    /// The classifier's own GAP + linear head: training starts from CAM.
    Cam,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum AugArg {
    /// Resize shorter side 256, random crop 224, horizontal flip (the authors'; scaled to the
    /// model's input size).
    CropFlip,
    /// The model's own evaluation preprocessing, no randomness.
    None,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum PairingArg {
    /// The area and TV terms see each image's own label map (B x 1, the paper's text).
    Own,
    /// The reference code's B x B maps: every label of the batch on every image (default).
    Batch,
}

#[derive(clap::Args, Debug)]
pub struct LcamArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Where the mask is applied while training.
    #[arg(long, value_enum, default_value = "img")]
    variant: VariantArg,
    /// The layer (default: the model's CAM layer).
    #[arg(long)]
    layer: Option<String>,
    /// Image folders (with dataset.txt, or plain folders of images); repeatable.
    #[arg(long, required = true, num_args = 1..)]
    data: Vec<PathBuf>,
    #[arg(long, value_enum, default_value = "predicted")]
    labels: LabelsArg,
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Learning rate of the weights (the biases get twice it unless --bias-lr is given).
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    #[arg(long)]
    bias_lr: Option<f64>,
    #[arg(long, value_enum, default_value = "sgd")]
    optimizer: OptimArg,
    #[arg(long, default_value_t = 5e-4)]
    weight_decay: f64,
    #[arg(long, value_enum, default_value = "step")]
    schedule: ScheduleArg,
    /// The per-epoch factor of --schedule step.
    #[arg(long, default_value_t = 0.95)]
    gamma: f64,
    #[arg(long, value_enum, default_value = "default")]
    init: InitArg,
    #[arg(long, value_enum, default_value = "crop-flip")]
    augment: AugArg,
    #[arg(long, value_enum, default_value = "batch")]
    mask_pairing: PairingArg,
    /// Loss coefficients (the authors': 1.5, 2, 0.01).
    #[arg(long, default_value_t = 1.5)]
    ce_weight: f32,
    #[arg(long, default_value_t = 2.0)]
    area_weight: f32,
    #[arg(long, default_value_t = 0.01)]
    tv_weight: f32,
    /// Fraction of the images held out for validation (seeded).
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Train on at most this many of the training images (a seeded subset; for learning curves).
    #[arg(long)]
    max_train: Option<usize>,
    /// The trained weights.
    #[arg(long, default_value = "lcam.safetensors")]
    out: PathBuf,
    /// Checkpoint, train.jsonl, loss.png and the label cache (default: OUT without extension + .run).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Continue the run in --run-dir from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Stop after this many epochs (the run can be resumed).
    #[arg(long, hide = true)]
    stop_after: Option<usize>,
}

pub fn run(a: Args) -> Result<()> {
    match a.what {
        What::Lcam(a) => lcam(a),
        What::Explainer(a) => crate::train_explainer::run(a),
        What::Classifier(a) => crate::train_classifier::run(a),
        What::Zf(a) => crate::train_zf::run(a),
    }
}

fn lcam(a: LcamArgs) -> Result<()> {
    if !(0.0..1.0).contains(&a.val_fraction) {
        bail!("--val-fraction {}: must be in [0, 1)", a.val_fraction);
    }
    for (name, v) in [
        ("--lr", a.lr),
        ("--gamma", a.gamma),
        ("--bias-lr", a.bias_lr.unwrap_or(1.0)),
    ] {
        if !(v.is_finite() && v > 0.0) {
            bail!("{name} {v}: must be a positive number");
        }
    }
    if !(a.weight_decay.is_finite() && a.weight_decay >= 0.0) {
        bail!("--weight-decay {}: must be a non-negative number", a.weight_decay);
    }
    let loaded = a.model.load()?;
    let model = &loaded.model;
    let layer = match &a.layer {
        Some(l) => l.clone(),
        None => deepsight_runtime::LayeredClassifier::default_cam_layer(model)
            .context("the model has no spatial layer: name one with --layer")?,
    };
    let variant = match a.variant {
        VariantArg::Img => LcamVariant::Img,
        VariantArg::Fm => LcamVariant::Fm,
    };
    let run_dir = a.run_dir.clone().unwrap_or_else(|| a.out.with_extension("run"));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("cannot create '{}'", run_dir.display()))?;
    let items = deepsight_train::data::read_folders(&a.data)?;
    let identity = ModelIdentity::of(model, &a.model.model);
    let which = match a.labels {
        LabelsArg::Predicted => Labels::Predicted,
        LabelsArg::Dataset => Labels::Dataset,
    };
    let labels = match which {
        Labels::Dataset => items
            .iter()
            .map(|i| {
                i.dataset_labels.clone().with_context(|| {
                    format!(
                        "--labels dataset: '{}' has no label (no dataset.txt)",
                        i.path.display()
                    )
                })
            })
            .collect::<Result<Vec<_>>>()?,
        Labels::Predicted => {
            let bar = indicatif::ProgressBar::new(items.len() as u64);
            bar.set_message("labels (the classifier's top-1)");
            let l = predicted_labels(
                model,
                &identity,
                &loaded.pipeline,
                &items,
                &run_dir.join("labels.json"),
                &|done, _| bar.set_position(done as u64),
            )?;
            bar.finish_and_clear();
            l.into_iter().map(|l| vec![l]).collect()
        }
    };
    if let Some(&l) = labels.iter().flatten().find(|&&l| l >= model_classes(model)) {
        bail!(
            "label {l} is out of range: the model has {} classes",
            model_classes(model)
        );
    }
    let (mut train, val) = deepsight_train::data::split(items.len(), a.val_fraction, a.seed);
    if let Some(n) = a.max_train {
        if n == 0 {
            bail!("--max-train must be at least 1");
        }
        deepsight_train::rng::shuffle(&mut train, a.seed ^ 0x7a11);
        train.truncate(n);
        train.sort_unstable();
    }
    let data = Data {
        source: Source {
            paths: Arc::new(items.iter().map(|i| i.path.clone()).collect()),
            labels: Arc::new(labels),
            eval: loaded.pipeline,
        },
        train,
        val,
    };
    let info = crate::train::run_facts(&data);
    let task = LcamTask {
        model,
        variant,
        layer: layer.clone(),
        loss: LcamLoss {
            ce: a.ce_weight,
            area: a.area_weight,
            tv: a.tv_weight,
            pairing: match a.mask_pairing {
                PairingArg::Own => MaskPairing::OwnLabel,
                PairingArg::Batch => MaskPairing::BatchLabels,
            },
            ..Default::default()
        },
        mean: loaded.pipeline.mean,
        std: loaded.pipeline.std,
        identity,
        info,
    };
    let device = deepsight_runtime::Classifier::device(model);
    let init = match a.init {
        InitArg::Default => Init::PyTorchDefault { seed: a.seed },
        InitArg::Cam => Init::Cam,
    };
    // The CAM initialisation's scale comes from (up to) 64 training images.
    let sample: Vec<&std::path::Path> = data
        .train
        .iter()
        .take(64)
        .map(|&i| data.source.paths[i].as_path())
        .collect();
    let sample = loaded.pipeline.load_batch(&sample, &device)?;
    let initial = task.initial(init, sample, &device.clone().autodiff())?;
    let config = TrainConfig {
        epochs: a.epochs,
        batch_size: a.batch_size,
        seed: a.seed,
        augmentation: match a.augment {
            AugArg::CropFlip => Augmentation::lcam_reference(loaded.pipeline.size()),
            AugArg::None => Augmentation::Eval,
        },
        optim: OptimConfig {
            kind: match a.optimizer {
                OptimArg::Sgd => OptimizerKind::Sgd {
                    momentum: 0.9,
                    nesterov: true,
                },
                OptimArg::Adam => OptimizerKind::Adam {
                    beta1: 0.9,
                    beta2: 0.999,
                    epsilon: 1e-8,
                },
                OptimArg::Adamw => OptimizerKind::AdamW {
                    beta1: 0.9,
                    beta2: 0.999,
                    epsilon: 1e-8,
                },
            },
            weight_lr: a.lr,
            bias_lr: a.bias_lr.unwrap_or(2.0 * a.lr),
            weight_decay: a.weight_decay,
            bias_weight_decay: a.weight_decay,
            schedule: match a.schedule {
                ScheduleArg::Step => Schedule::StepDecay { gamma: a.gamma },
                ScheduleArg::OneCycle => Schedule::OneCycle {
                    pct_start: 0.3,
                    div: 25.0,
                    final_div: 1e4,
                },
                ScheduleArg::Constant => Schedule::Constant,
            },
        },
        out: a.out.clone(),
        run_dir: run_dir.clone(),
        resume: a.resume,
        stop_after: a.stop_after,
        early_stop: None,
    };
    let (_, summary) = crate::train::run_with_bar(&task, initial, &data, &config, &device)?;
    if summary.epochs_done == a.epochs {
        println!(
            "{} weights for layer '{layer}': {} ({:.0} s; log and curve in {})",
            variant.name(),
            a.out.display(),
            summary.seconds,
            run_dir.display()
        );
    } else {
        println!(
            "stopped after epoch {} of {}; continue with --resume (checkpoint in {})",
            summary.epochs_done,
            a.epochs,
            run_dir.display()
        );
    }
    Ok(())
}

/// The facts a weight file records about its run: the command line and the image counts.
pub(crate) fn run_facts(data: &Data) -> BTreeMap<String, String> {
    BTreeMap::from([
        (
            "command".to_string(),
            std::env::args().collect::<Vec<_>>().join(" "),
        ),
        (
            "images".to_string(),
            format!("{} train, {} validation", data.train.len(), data.val.len()),
        ),
    ])
}

/// Runs the engine with a progress bar (epoch, phase, loss, images/s, ETA), then prints each
/// epoch's training and validation loss: what every `deepsight train` command shows.
pub(crate) fn run_with_bar<T: deepsight_train::Task>(
    task: &T,
    initial: T::Module,
    data: &Data,
    config: &TrainConfig,
    device: &deepsight_runtime::Device,
) -> Result<(T::Module, deepsight_train::Summary)> {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} epoch {msg} [{bar:30}] {pos}/{len} it, ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let out = deepsight_train::train(task, initial, data, config, device, &|p| {
        bar.set_length(p.steps as u64);
        bar.set_position(p.step as u64);
        bar.set_message(format!(
            "{}/{} {} loss {:.4}, {:.1} images/s",
            p.epoch + 1,
            p.epochs,
            p.phase,
            p.loss,
            p.images_per_s
        ));
    })?;
    bar.finish_and_clear();
    for (e, (t, v)) in out.1.history.iter().enumerate() {
        println!("epoch {}: train loss {t:.4}, validation loss {v:.4}", e + 1);
    }
    Ok(out)
}

fn model_classes(model: &deepsight_runtime::GraphModel) -> usize {
    deepsight_runtime::Classifier::num_classes(model)
}
