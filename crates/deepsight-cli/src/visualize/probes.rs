//! `deepsight visualize probes`: how discriminative each layer is (Zeiler & Fergus 2014 section
//! 5.3): a linear softmax probe per layer on the frozen, pooled features of the training split,
//! its accuracy on the test split. Writes `probes.png`, `probes.json` and `probes.csv`.

use crate::model_arg::ModelArgs;
use anyhow::{Context, Result, bail};
use deepsight_models::write_atomic;
use deepsight_visualize::probes::{self, Labelled, ProbeOptions};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A Fashion-MNIST (IDX) folder: probes fit on its train split, are scored on t10k.
    #[arg(long)]
    data: PathBuf,
    /// Training images used (the first N of the train split).
    #[arg(long, default_value_t = 10000)]
    train_limit: usize,
    /// Test images used (default: all).
    #[arg(long)]
    test_limit: Option<usize>,
    /// Layers in order of depth (comma-separated; default: the rectified outputs).
    #[arg(long = "layers", value_delimiter = ',')]
    layers: Vec<String>,
    /// Spatial maps are average-pooled to at most POOL x POOL.
    #[arg(long, default_value_t = 4)]
    pool: usize,
    #[arg(long, default_value_t = 20)]
    epochs: usize,
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Adam's learning rate.
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 1e-4)]
    weight_decay: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// The figure's title (default: the model).
    #[arg(long)]
    title: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
    /// Output folder.
    #[arg(long, default_value = "deepsight-out/probes")]
    out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let loaded = a.model.load()?;
    let (train, train_labels) =
        super::evolution::dataset(&a.data, "train", Some(a.train_limit), loaded.pipeline)?;
    let (test, test_labels) = super::evolution::dataset(&a.data, "t10k", a.test_limit, loaded.pipeline)?;
    let (Some(train_labels), Some(test_labels)) = (train_labels, test_labels) else {
        bail!("--data must be an IDX folder with train and t10k splits (labels are needed)");
    };
    let options = ProbeOptions {
        layers: a.layers.clone(),
        pool: a.pool,
        epochs: a.epochs,
        batch: a.batch,
        lr: a.lr,
        weight_decay: a.weight_decay,
        seed: a.seed,
        ..ProbeOptions::default()
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:16} {bar:30} {pos}/{len}, {elapsed}")
            .expect("valid template"),
    );
    let started = Instant::now();
    let result = probes::probes(
        &loaded.model,
        &loaded.pipeline,
        &Labelled {
            images: train.as_ref(),
            labels: &train_labels,
        },
        &Labelled {
            images: test.as_ref(),
            labels: &test_labels,
        },
        &options,
        &mut |stage, d, n| {
            bar.set_message(stage.to_string());
            bar.set_length(n as u64);
            bar.set_position(d as u64);
        },
    )?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create '{}'", a.out.display()))?;
    let title = a.title.clone().unwrap_or_else(|| loaded.description.clone());
    write_atomic(&a.out.join("probes.png"), &result.figure(&title).png())?;
    write_atomic(&a.out.join("probes.csv"), result.csv().as_bytes())?;
    let mut json = result.json();
    json["model"] = loaded.description.clone().into();
    json["seconds"] = seconds.into();
    json["options"] = serde_json::json!({
        "pool": a.pool, "epochs": a.epochs, "batch": a.batch, "lr": a.lr,
        "weight_decay": a.weight_decay, "seed": a.seed, "optimizer": "adam",
    });
    write_atomic(
        &a.out.join("probes.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    for p in &result.layers {
        println!(
            "{:>8}: {:>5} dims, train {:.2}%, test {:.2}%",
            p.layer,
            p.dims,
            100.0 * p.train_accuracy,
            100.0 * p.test_accuracy
        );
    }
    eprintln!("{seconds:.1} s; wrote {}", a.out.join("probes.png").display());
    Ok(())
}
