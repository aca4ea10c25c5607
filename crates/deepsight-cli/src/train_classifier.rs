//! `deepsight train classifier`: trains the mosaic benchmark's multi-label CNN from scratch
//! (binary cross-entropy on every class, Adam), then reports exact-match accuracy and per-class
//! F1 at logit 0 through the graph runtime, i.e. as `--model OUT --arch mosaic-cnn` will run it.

use anyhow::{Context, Result, bail};
use deepsight_models::{Arch, Preprocess};
use deepsight_train::classifier::{ClassifierTask, MosaicCnn, Report, evaluate};
use deepsight_train::data::Item;
use deepsight_train::loader::Source;
use deepsight_train::{Augmentation, Data, OptimConfig, OptimizerKind, Schedule, TrainConfig};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum AugArg {
    /// The evaluation preprocessing, no randomness (the mosaics are already at the input size).
    None,
    /// A random horizontal flip (garments keep their class when mirrored).
    Flip,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ScheduleArg {
    Constant,
    /// PyTorch's OneCycleLR per iteration, peaking at --lr.
    OneCycle,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The architecture (only mosaic-cnn is trainable here).
    #[arg(long, default_value = "mosaic-cnn")]
    arch: String,
    /// Training folders with a dataset.txt (`./FILE, L1 [L2 ...]` lines); repeatable.
    #[arg(long, required = true, num_args = 1..)]
    data: Vec<PathBuf>,
    /// Validation folders (validation loss every epoch, final report); repeatable.
    #[arg(long, num_args = 1..)]
    val_data: Vec<PathBuf>,
    /// Test folders, reported once at the end; repeatable.
    #[arg(long, num_args = 1..)]
    test_data: Vec<PathBuf>,
    /// Number of classes (default: the lines of classes.txt next to the first --data folder,
    /// else the largest label + 1).
    #[arg(long)]
    classes: Option<usize>,
    #[arg(long, default_value_t = 10)]
    epochs: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// L2 weight decay (added to the gradient, as torch.optim.Adam's).
    #[arg(long, default_value_t = 0.0)]
    weight_decay: f64,
    #[arg(long, value_enum, default_value = "constant")]
    schedule: ScheduleArg,
    #[arg(long, value_enum, default_value = "none")]
    augment: AugArg,
    /// Seeds the initialisation, the batch order and the augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The trained weights (safetensors, loadable with --model OUT --arch mosaic-cnn).
    #[arg(long, default_value = "mosaic-cnn.safetensors")]
    out: PathBuf,
    /// Checkpoint, train.jsonl, loss.png and report.json (default: OUT without extension + .run).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    /// Continue the run in --run-dir from its last checkpoint.
    #[arg(long)]
    resume: bool,
    /// Stop after this many epochs (the run can be resumed).
    #[arg(long, hide = true)]
    stop_after: Option<usize>,
}

/// Images and their labels; every image must have at least one.
fn labelled(folders: &[PathBuf]) -> Result<(Vec<PathBuf>, Vec<Vec<usize>>)> {
    let items: Vec<Item> = deepsight_train::data::read_folders(folders)?;
    let mut paths = Vec::with_capacity(items.len());
    let mut labels = Vec::with_capacity(items.len());
    for i in items {
        let l = i.dataset_labels.with_context(|| {
            format!(
                "'{}' has no labels: the data folders need a dataset.txt",
                i.path.display()
            )
        })?;
        paths.push(i.path);
        labels.push(l);
    }
    Ok((paths, labels))
}

/// `classes.txt` beside the first training folder (the mosaic generator writes one), if any.
fn classes_file(data: &Path) -> Option<usize> {
    let parent = data.parent()?;
    let text = std::fs::read_to_string(parent.join("classes.txt")).ok()?;
    let n = text.lines().filter(|l| !l.trim().is_empty()).count();
    (n > 0).then_some(n)
}

fn print_report(what: &str, r: &Report, names: &[String]) {
    println!(
        "{what}: {} images, exact-match accuracy {:.4}, mean F1 {:.4}",
        r.images, r.exact_match, r.mean_f1
    );
    for (k, name) in names.iter().enumerate() {
        println!(
            "  {k:>2} {name:<12} F1 {:.4}  precision {:.4}  recall {:.4}",
            r.f1[k], r.precision[k], r.recall[k]
        );
    }
}

fn report_json(r: &Report, names: &[String]) -> serde_json::Value {
    serde_json::json!({
        "images": r.images, "exact_match": r.exact_match, "mean_f1": r.mean_f1,
        "classes": names.iter().enumerate().map(|(k, n)| serde_json::json!({
            "class": k, "name": n, "f1": r.f1[k], "precision": r.precision[k], "recall": r.recall[k],
        })).collect::<Vec<_>>(),
    })
}

pub fn run(a: Args) -> Result<()> {
    if Arch::from_name(&a.arch) != Some(Arch::MosaicCnn) {
        bail!(
            "--arch '{}': only mosaic-cnn can be trained as a classifier",
            a.arch
        );
    }
    if !(a.lr.is_finite() && a.lr > 0.0) {
        bail!("--lr {}: must be a positive number", a.lr);
    }
    if a.epochs == 0 || a.batch_size == 0 {
        bail!("--epochs and --batch-size must be at least 1");
    }
    if !(a.weight_decay.is_finite() && a.weight_decay >= 0.0) {
        bail!("--weight-decay {}: must be a non-negative number", a.weight_decay);
    }
    let (mut paths, mut labels) = labelled(&a.data)?;
    let n_train = paths.len();
    if !a.val_data.is_empty() {
        let (p, l) = labelled(&a.val_data)?;
        paths.extend(p);
        labels.extend(l);
    }
    let (test_paths, test_labels) = if a.test_data.is_empty() {
        (Vec::new(), Vec::new())
    } else {
        labelled(&a.test_data)?
    };
    let largest = labels
        .iter()
        .chain(&test_labels)
        .flatten()
        .copied()
        .max()
        .unwrap_or(0);
    let classes = match a.classes.or_else(|| classes_file(&a.data[0])) {
        Some(0) => bail!("--classes must be at least 1"),
        Some(k) => k,
        None => largest + 1,
    };
    if largest >= classes {
        bail!("label {largest} is out of range: there are {classes} classes");
    }
    let names = deepsight_models::mosaic_cnn::class_names(classes);
    let run_dir = a.run_dir.clone().unwrap_or_else(|| a.out.with_extension("run"));
    std::fs::create_dir_all(&run_dir).with_context(|| format!("cannot create '{}'", run_dir.display()))?;
    let pipeline: Preprocess = Arch::MosaicCnn
        .preset()
        .pipeline_for(deepsight_models::mosaic_cnn::INPUT_SIZE);
    let n_all = paths.len();
    let data = Data {
        source: Source {
            paths: Arc::new(paths),
            labels: Arc::new(labels),
            eval: pipeline,
        },
        train: (0..n_train).collect(),
        val: (n_train..n_all).collect(),
    };
    let mut task = ClassifierTask::new(classes);
    task.info.insert(
        "command".to_string(),
        std::env::args().collect::<Vec<_>>().join(" "),
    );
    task.info.insert(
        "images".to_string(),
        format!("{} train, {} validation", data.train.len(), data.val.len()),
    );
    let device = deepsight_runtime::default_device();
    let initial = MosaicCnn::pytorch_default(classes, a.seed, &device.clone().autodiff());
    let [h, w] = pipeline.size();
    let config = TrainConfig {
        epochs: a.epochs,
        batch_size: a.batch_size,
        seed: a.seed,
        augmentation: match a.augment {
            AugArg::None => Augmentation::Eval,
            // A crop of the whole image: only the flip is random.
            AugArg::Flip => Augmentation::ResizeRandomCropFlip {
                shorter: h.min(w),
                crop: [h, w],
            },
        },
        optim: OptimConfig {
            kind: OptimizerKind::Adam {
                beta1: 0.9,
                beta2: 0.999,
                epsilon: 1e-8,
            },
            weight_lr: a.lr,
            bias_lr: a.lr,
            weight_decay: a.weight_decay,
            bias_weight_decay: a.weight_decay,
            schedule: match a.schedule {
                ScheduleArg::Constant => Schedule::Constant,
                ScheduleArg::OneCycle => Schedule::OneCycle {
                    pct_start: 0.3,
                    div: 25.0,
                    final_div: 1e4,
                },
            },
        },
        out: a.out.clone(),
        run_dir: run_dir.clone(),
        resume: a.resume,
        stop_after: a.stop_after,
        early_stop: None,
    };
    let (module, summary) = crate::train::run_with_bar(&task, initial, &data, &config, &device)?;
    if summary.epochs_done < a.epochs {
        println!(
            "stopped after epoch {} of {}; continue with --resume (checkpoint in {})",
            summary.epochs_done,
            a.epochs,
            run_dir.display()
        );
        return Ok(());
    }
    println!(
        "mosaic-cnn weights: {} ({:.0} s; log and curve in {})",
        a.out.display(),
        summary.seconds,
        run_dir.display()
    );
    // The report runs the saved network as the other commands will: through the graph runtime.
    let model = module.graph_model(&device)?;
    let mut json = serde_json::json!({ "weights": a.out.display().to_string() });
    let sets = [
        (
            "validation",
            data.source.paths[n_train..].to_vec(),
            data.source.labels[n_train..].to_vec(),
        ),
        ("test", test_paths, test_labels),
    ];
    for (what, paths, labels) in sets {
        if paths.is_empty() {
            continue;
        }
        let bar = indicatif::ProgressBar::new(paths.len() as u64);
        bar.set_message(what);
        let r = evaluate(&model, &pipeline, &paths, &labels, a.batch_size, &|done, _| {
            bar.set_position(done as u64)
        })?;
        bar.finish_and_clear();
        print_report(what, &r, &names);
        json[what] = report_json(&r, &names);
    }
    let path = run_dir.join("report.json");
    deepsight_models::write_atomic(&path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    Ok(())
}
