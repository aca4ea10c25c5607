//! `deepsight train explainer`: fits the explainer network (Stalder et al. 2022) on a frozen
//! classifier, with early stopping on a validation split.

use crate::model_arg::ModelArgs;
use anyhow::{Context, Result, bail};
use deepsight_explain::learned::explainer_net::deeplab_spec;
use deepsight_explain::learned::explainer_train::Objective;
use deepsight_explain::learned::{
    Architecture, ClassifierKind, DeepLabV3, ExplainerNet, ExplainerProfile, ModelIdentity, TapDecoder,
};
use deepsight_runtime::{Classifier, to_vec};
use deepsight_train::explainer::{ExplainerTask, cam_start, default_taps, predicted_targets, tap_spec};
use deepsight_train::lcam::predicted_labels;
use deepsight_train::loader::Source;
use deepsight_train::{Augmentation, Data, EarlyStop, OptimConfig, OptimizerKind, Schedule, TrainConfig};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum LabelsArg {
    /// The frozen classifier's own top-1 (plus --target-threshold), computed once and cached.
    Predicted,
    /// The labels of each folder's dataset.txt (the authors' ground truth; several per image).
    Dataset,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum AugArg {
    /// The model's own evaluation preprocessing (the authors': Resize to the input, no augmentation).
    None,
    /// Resize shorter side, random crop, horizontal flip (L-CAM's preset, scaled to the input).
    CropFlip,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ArchArg {
    /// A small decoder on the frozen classifier's own layers (the shipped light explainer).
    Taps,
    /// The authors' explainer: torchvision's DeepLabv3 with a ResNet-50 encoder (output stride
    /// 8), trained whole; about 40 M parameters, slow on a CPU.
    #[value(name = "deeplabv3-resnet50")]
    DeepLabV3ResNet50,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum InitArg {
    Cam,
    Random,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    model: ModelArgs,
    /// Training image folders (with dataset.txt, or plain folders of images); repeatable.
    #[arg(long, required = true, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Validation folders for early stopping (default: --val-fraction of --data, seeded).
    #[arg(long, num_args = 1..)]
    val_data: Vec<PathBuf>,
    #[arg(long, default_value_t = 0.1)]
    val_fraction: f64,
    #[arg(long, value_enum, default_value = "predicted")]
    labels: LabelsArg,
    /// With --labels predicted: also every class whose probability is at least this (softmax
    /// classifiers; default: the top-1 only).
    #[arg(long)]
    target_threshold: Option<f32>,
    /// The classifier is multi-label (sigmoid outputs, BCE): the VOC/COCO setting. Default: a
    /// single-label softmax classifier.
    #[arg(long)]
    multi_label: bool,
    /// Loss coefficients and learning rate: voc-vgg16, voc-resnet50, coco-vgg16, coco-resnet50,
    /// imagenet-lite0 (tuned here), or rtis (Dabkowski & Gal's loss, the authors' baseline).
    #[arg(long, default_value = "imagenet-lite0")]
    profile: String,
    /// The explainer network.
    #[arg(long, value_enum, default_value = "taps")]
    architecture: ArchArg,
    /// With --architecture deeplabv3-resnet50: a torchvision ImageNet ResNet-50 state dict
    /// (`resnet50-*.pth`, or .safetensors; `fc.*` is skipped) to start the encoder from, as the
    /// authors do. Without it the encoder starts from PyTorch's random initialisation.
    #[arg(long)]
    encoder_weights: Option<PathBuf>,
    /// Layers of the frozen classifier the decoder reads (comma-separated; the first sets the
    /// output resolution). Default: the last block outputs at strides 8, 16 and 32.
    #[arg(long, value_delimiter = ',')]
    taps: Vec<String>,
    /// The decoder's width.
    #[arg(long, default_value_t = 96)]
    width: usize,
    /// How the decoder starts: `cam` adds a skip from the last tap initialised from the
    /// classifier's GAP + linear head (training starts from CAM's maps), `random` does not.
    /// Default: cam where the last tap feeds such a head.
    #[arg(long, value_enum)]
    init: Option<InitArg>,
    /// The most epochs (early stopping usually ends the run before).
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Adam's constant learning rate (default: the profile's).
    #[arg(long)]
    lr: Option<f64>,
    /// Early-stopping patience in epochs (default: the profile's); 0 turns early stopping off.
    #[arg(long)]
    patience: Option<usize>,
    #[arg(long, default_value_t = 1e-3)]
    min_delta: f32,
    #[arg(long, value_enum, default_value = "none")]
    augment: AugArg,
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// The trained weights (the best validation epoch's).
    #[arg(long, default_value = "explainer.safetensors")]
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
    let profile = ExplainerProfile::from_name(&a.profile).with_context(|| {
        let names: Vec<&str> = ExplainerProfile::ALL.iter().map(|p| p.1).collect();
        format!("--profile '{}': not one of {}", a.profile, names.join(", "))
    })?;
    if !(0.0..1.0).contains(&a.val_fraction) {
        bail!("--val-fraction {}: must be in [0, 1)", a.val_fraction);
    }
    if a.width == 0 || a.batch_size == 0 {
        bail!("--width and --batch-size must be at least 1");
    }
    let lr = a.lr.unwrap_or(profile.learning_rate());
    if !(lr.is_finite() && lr > 0.0) {
        bail!("--lr {lr}: must be a positive number");
    }
    let deeplab = a.architecture == ArchArg::DeepLabV3ResNet50;
    if deeplab && (!a.taps.is_empty() || a.init.is_some()) {
        bail!("--taps and --init are for --architecture taps");
    }
    if !deeplab && a.encoder_weights.is_some() {
        bail!("--encoder-weights is for --architecture deeplabv3-resnet50");
    }
    let loaded = a.model.load()?;
    let model = &loaded.model;
    let (spec, init) = if deeplab {
        (deeplab_spec(model.num_classes()), InitArg::Random)
    } else {
        let taps = if a.taps.is_empty() {
            default_taps(model)?
        } else {
            a.taps.clone()
        };
        let last = taps.last().context("--taps: name at least one layer")?;
        let cam_fits = deepsight_explain::cam::CamVariant::check(
            &deepsight_explain::cam::ClassActivationMap,
            model,
            last,
        )
        .is_ok();
        let init = match a.init {
            Some(InitArg::Cam) if !cam_fits => {
                bail!("--init cam: the last tap '{last}' does not feed a GAP + linear head")
            }
            Some(i) => i,
            None if cam_fits => InitArg::Cam,
            None => InitArg::Random,
        };
        (tap_spec(model, &taps, a.width, init == InitArg::Cam)?, init)
    };
    let run_dir = a.run_dir.clone().unwrap_or_else(|| a.out.with_extension("run"));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("cannot create '{}'", run_dir.display()))?;
    let mut items = deepsight_train::data::read_folders(&a.data)?;
    let n_train = items.len();
    if !a.val_data.is_empty() {
        items.extend(deepsight_train::data::read_folders(&a.val_data)?);
    }
    let identity = ModelIdentity::of(model, &a.model.model);
    let k = model.num_classes();
    let labels: Vec<Vec<usize>> = match a.labels {
        LabelsArg::Dataset => items
            .iter()
            .map(|i| {
                i.dataset_labels.clone().with_context(|| {
                    format!(
                        "--labels dataset: '{}' has no label (no dataset.txt)",
                        i.path.display()
                    )
                })
            })
            .collect::<Result<_>>()?,
        LabelsArg::Predicted => match a.target_threshold {
            None => predicted_labels(
                model,
                &identity,
                &loaded.pipeline,
                &items,
                &run_dir.join("labels.json"),
                &|_, _| {},
            )?
            .into_iter()
            .map(|l| vec![l])
            .collect(),
            Some(t) => {
                if !(0.0..=1.0).contains(&t) {
                    bail!("--target-threshold {t}: must be a probability");
                }
                let device = model.device();
                let mut out = Vec::new();
                for chunk in items.chunks(16) {
                    let paths: Vec<&std::path::Path> = chunk.iter().map(|i| i.path.as_path()).collect();
                    let logits = model.logits(loaded.pipeline.load_batch(&paths, &device)?)?;
                    let p = to_vec(burn::tensor::activation::softmax(logits, 1));
                    out.extend(predicted_targets(&p, k, Some(t)));
                }
                out
            }
        },
    };
    if let Some(&l) = labels.iter().flatten().find(|&&l| l >= k) {
        bail!("label {l} is out of range: the model has {k} classes");
    }
    let (train, val) = if a.val_data.is_empty() {
        deepsight_train::data::split(items.len(), a.val_fraction, a.seed)
    } else {
        ((0..n_train).collect(), (n_train..items.len()).collect())
    };
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
    let kind = if a.multi_label {
        ClassifierKind::MultiLabel
    } else {
        ClassifierKind::Softmax
    };
    let objective = match profile {
        ExplainerProfile::Rtis => Objective::Rtis,
        p => Objective::Explainer(p.coefficients()),
    };
    let task = ExplainerTask {
        model,
        architecture: if deeplab {
            Architecture::DeepLabV3ResNet50
        } else {
            Architecture::Taps
        },
        spec: spec.clone(),
        kind,
        profile,
        objective,
        mean: loaded.pipeline.mean,
        std: loaded.pipeline.std,
        identity,
        info,
    };
    let device = model.device();
    let initial: ExplainerNet = if deeplab {
        deeplab_start(
            k,
            a.seed,
            a.encoder_weights.as_deref(),
            &device.clone().autodiff(),
        )?
        .into()
    } else {
        match init {
            InitArg::Random => TapDecoder::init(&spec, a.seed, &device.clone().autodiff()),
            InitArg::Cam => {
                // The CAM scale comes from (up to) 64 training images, as L-CAM's.
                let sample: Vec<&std::path::Path> = data
                    .train
                    .iter()
                    .take(64)
                    .map(|&i| data.source.paths[i].as_path())
                    .collect();
                let sample = loaded.pipeline.load_batch(&sample, &device)?;
                cam_start(model, &spec, a.seed, sample, &device.clone().autodiff())?
            }
        }
        .into()
    };
    let patience = a.patience.unwrap_or(profile.patience());
    let config = TrainConfig {
        epochs: a.epochs,
        batch_size: a.batch_size,
        seed: a.seed,
        augmentation: match a.augment {
            AugArg::CropFlip => Augmentation::lcam_reference(loaded.pipeline.size()),
            AugArg::None => Augmentation::Eval,
        },
        optim: OptimConfig {
            kind: OptimizerKind::Adam {
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
            },
            weight_lr: lr,
            bias_lr: lr,
            weight_decay: 0.0,
            bias_weight_decay: 0.0,
            schedule: Schedule::Constant,
        },
        out: a.out.clone(),
        run_dir: run_dir.clone(),
        resume: a.resume,
        stop_after: a.stop_after,
        early_stop: (patience > 0).then_some(EarlyStop {
            patience,
            min_delta: a.min_delta,
        }),
    };
    println!(
        "explainer on {} ({} classes, {}): {}, profile {}, {} train / {} validation images",
        a.model.model,
        k,
        if a.multi_label { "multi-label" } else { "softmax" },
        if deeplab {
            format!(
                "DeepLabv3-ResNet-50, encoder {}",
                a.encoder_weights
                    .as_ref()
                    .map_or("random".to_string(), |p| format!("from '{}'", p.display()))
            )
        } else {
            format!("taps {} at width {}", spec.taps.join(","), spec.width)
        },
        profile.name(),
        data.train.len(),
        data.val.len()
    );
    let (_, summary) = crate::train::run_with_bar(&task, initial, &data, &config, &device)?;
    if summary.stopped_early || summary.epochs_done == a.epochs {
        println!(
            "explainer weights{}: {} ({:.0} s; log and curve in {})",
            if summary.stopped_early {
                " (early stop: the best validation epoch)"
            } else {
                ""
            },
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

/// The authors' explainer at its start: PyTorch's initialisation, the encoder from a torchvision
/// ResNet-50 state dict where one is given (the authors' `pretrained_backbone=True`).
fn deeplab_start(
    classes: usize,
    seed: u64,
    encoder: Option<&std::path::Path>,
    device: &deepsight_runtime::Device,
) -> Result<DeepLabV3> {
    let net = DeepLabV3::init(classes, seed, device);
    let Some(path) = encoder else {
        eprintln!(
            "note: the DeepLabv3 encoder starts random; the authors start it from ImageNet (--encoder-weights resnet50.pth)"
        );
        return Ok(net);
    };
    let weights = deepsight_models::zoo::read_weights(path)
        .with_context(|| format!("--encoder-weights '{}'", path.display()))?;
    let named = weights
        .tensors
        .into_iter()
        .map(|(n, t)| (n, t.shape, t.data))
        .collect();
    net.with_backbone(named)
        .with_context(|| format!("--encoder-weights '{}'", path.display()))
}
