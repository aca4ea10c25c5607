//! `deepsight train zf`: trains one of the small Fashion-MNIST CNNs (`fmnist-zf`, `fmnist-alex`)
//! from scratch with Zeiler & Fergus's recipe, writing the evolution snapshots, the final weights
//! (`--model OUT --arch fmnist-zf`) and the run's log, loss curve and summary.

use anyhow::{Context, Result, bail};
use deepsight_models::Arch;
use deepsight_models::fmnist_cnn::FirstLayer;
use deepsight_train::fmnist::{self, FmnistTask, Init, Recipe, Renorm, RunConfig, Snapshots};
use deepsight_train::mosaic::read_items;
use serde_json::json;
use std::path::PathBuf;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum InitArg {
    Zf,
    Kaiming,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// fmnist-zf (first layer 7x7 stride 2) or fmnist-alex (11x11 stride 4).
    #[arg(long, default_value = "fmnist-zf")]
    arch: String,
    /// The Fashion-MNIST folder (train-*-ubyte.gz for training, t10k-* to monitor).
    #[arg(long, default_value = "../shared/data/fashion-mnist")]
    data: PathBuf,
    #[arg(long, default_value_t = 8)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// SGD learning rate (weights and biases).
    #[arg(long, default_value_t = 1e-2)]
    lr: f64,
    #[arg(long, default_value_t = 0.9)]
    momentum: f64,
    /// Initial weights (biases start at 0): the authors' Gaussian of --init-std, or He et al.'s
    /// N(0, 2 / fan_in).
    #[arg(long, value_enum, default_value = "zf")]
    init: InitArg,
    /// Standard deviation of the authors' Gaussian initial weights.
    #[arg(long, default_value_t = 0.01)]
    init_std: f64,
    /// Cap on every convolution filter's RMS after each step (the authors' 0.1); 0 turns it off.
    #[arg(long, default_value_t = 0.1)]
    max_filter_rms: f32,
    /// Snapshot marks, read as fractions of the run: mark m at m / --marks-of of its iterations.
    #[arg(long, value_delimiter = ',', default_values_t = fmnist::AUTHORS_MARKS.to_vec())]
    marks: Vec<f64>,
    #[arg(long, default_value_t = fmnist::AUTHORS_OF)]
    marks_of: f64,
    /// Write the snapshots and the final weights as F16.
    #[arg(long)]
    half: bool,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The final weights (default: ARCH.safetensors).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Checkpoint, train.jsonl, loss.png, snapshots/ and summary.json (default: OUT without
    /// extension + .run).
    #[arg(long)]
    run_dir: Option<PathBuf>,
    #[arg(long)]
    resume: bool,
    /// Stop after this many iterations (to time a run; writes no final weights).
    #[arg(long)]
    max_steps: Option<usize>,
}

pub fn run(a: Args) -> Result<()> {
    let first = match Arch::from_name(&a.arch) {
        Some(Arch::FmnistZf) => FirstLayer::Zf,
        Some(Arch::FmnistAlex) => FirstLayer::Alex,
        _ => bail!("--arch must be fmnist-zf or fmnist-alex, not '{}'", a.arch),
    };
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}.safetensors", a.arch)));
    let run_dir = a.run_dir.clone().unwrap_or_else(|| out.with_extension("run"));
    let train = read_items(&a.data, "train").context("reading the training split")?;
    let test = read_items(&a.data, "t10k").context("reading the test split")?;
    let mut recipe = Recipe::zeiler_fergus();
    recipe.batch_size = a.batch_size;
    recipe.init = match a.init {
        InitArg::Zf => Init::Gaussian { std: a.init_std },
        InitArg::Kaiming => Init::Kaiming,
    };
    recipe.renorm = if a.max_filter_rms > 0.0 {
        Renorm::MaxRms(a.max_filter_rms)
    } else {
        Renorm::Off
    };
    recipe.optim.weight_lr = a.lr;
    recipe.optim.bias_lr = a.lr;
    recipe.optim.kind = deepsight_train::OptimizerKind::Sgd {
        momentum: a.momentum,
        nesterov: false,
    };
    let config = RunConfig {
        first,
        recipe,
        epochs: a.epochs,
        seed: a.seed,
        snapshots: Snapshots {
            marks: a.marks.clone(),
            of: a.marks_of,
        },
        out: out.clone(),
        run_dir: run_dir.clone(),
        resume: a.resume,
        max_steps: a.max_steps,
    };
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let task = FmnistTask {
        first,
        half: a.half,
        info: [
            ("command".to_string(), command.clone()),
            (
                "images".to_string(),
                format!("{} train, {} test", train.len(), test.len()),
            ),
        ]
        .into(),
    };
    let device = deepsight_runtime::Device::default();
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} it, loss {msg}, ETA {eta}")
            .expect("a valid template")
            .progress_chars("=> "),
    );
    let s = fmnist::train(&task, &train, &test, &config, &device, &|step, total, loss| {
        bar.set_length(total as u64);
        bar.set_position(step as u64);
        bar.set_message(format!("{loss:.4}"));
    })?;
    bar.finish_and_clear();
    for (e, (t, v, acc)) in s.history.iter().enumerate() {
        println!(
            "epoch {}: train loss {t:.4}, test loss {v:.4}, test accuracy {:.2}%",
            e + 1,
            100.0 * acc
        );
    }
    for f in &s.snapshots {
        println!(
            "snapshot {} of {} (step {}, epoch {:.2}): test accuracy {:.2}% -> {}",
            f.mark,
            a.marks_of,
            f.step,
            f.epoch,
            100.0 * f.test_accuracy,
            f.file.display()
        );
    }
    println!(
        "{} of {} iterations in {:.1} s; weights {}",
        s.steps_done,
        s.steps_total,
        s.seconds,
        if s.steps_done == s.steps_total {
            out.display().to_string()
        } else {
            "not written (run incomplete)".into()
        }
    );
    let summary = json!({
        "command": command,
        "arch": a.arch,
        "steps_done": s.steps_done,
        "steps_total": s.steps_total,
        "seconds": s.seconds,
        "epochs": s.history.iter().map(|(t, v, acc)| json!({"train_loss": t, "test_loss": v, "test_accuracy": acc})).collect::<Vec<_>>(),
        "snapshots": s.snapshots.iter().map(|f| json!({"mark": f.mark, "of": a.marks_of, "step": f.step, "epoch": f.epoch, "test_accuracy": f.test_accuracy, "file": f.file.display().to_string()})).collect::<Vec<_>>(),
    });
    std::fs::write(
        run_dir.join("summary.json"),
        serde_json::to_string_pretty(&summary)?,
    )
    .with_context(|| format!("writing {}", run_dir.join("summary.json").display()))?;
    Ok(())
}
