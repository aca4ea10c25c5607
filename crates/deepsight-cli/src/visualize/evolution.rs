//! `deepsight visualize evolution`: the strongest activation of chosen feature maps across a
//! dataset at each training checkpoint, projected by the deconvnet (Zeiler & Fergus 2014 fig. 4).
//! Writes `evolution.LAYER.png` and `evolution.json`.

use anyhow::{Context, Result, bail};
use deepsight_models::{Arch, ModelSource, write_atomic};
use deepsight_runtime::{GraphModel, RectifierRule};
use deepsight_visualize::evolution::{self, EvolutionOptions, GreyImages};
use deepsight_visualize::top9::{self, Channels, ImageFiles, ImageSource};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Weight files of one architecture, in training order (comma-separated), e.g. the
    /// `snapshots/at-M-of-64.safetensors` of `deepsight train zf`.
    #[arg(long, value_delimiter = ',', required = true)]
    checkpoints: Vec<PathBuf>,
    /// Column labels (comma-separated; default: `M/64` for snapshot files, else the file stem).
    #[arg(long, value_delimiter = ',')]
    labels: Vec<String>,
    /// The architecture of the checkpoints.
    #[arg(long, default_value = "fmnist-zf")]
    arch: String,
    /// A Fashion-MNIST (IDX) folder, or a folder of images (its dataset.txt, else every image).
    #[arg(long)]
    data: PathBuf,
    /// The IDX split to scan: train (the paper's "across all training examples") or t10k.
    #[arg(long, default_value = "train")]
    split: String,
    /// Use only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// The layer (default: a middle feature map of the network).
    #[arg(long)]
    layer: Option<String>,
    /// Channels to show (comma-separated; default: the first --channels-count).
    #[arg(long, value_delimiter = ',')]
    channels: Vec<usize>,
    #[arg(long, default_value_t = 8)]
    channels_count: usize,
    /// Images per forward pass.
    #[arg(long, default_value_t = 250)]
    batch: usize,
    /// Side of one projection or patch in the figure, in pixels.
    #[arg(long, default_value_t = 40)]
    cell: usize,
    /// Output folder.
    #[arg(long, default_value = "deepsight-out/evolution")]
    out: PathBuf,
}

/// `at-5-of-64.safetensors` -> `5/64`; other files: their stem.
fn label_of(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    match stem.strip_prefix("at-").and_then(|r| r.split_once("-of-")) {
        Some((m, of)) => format!("{m}/{of}"),
        None => stem,
    }
}

/// A dataset's images, with their labels where it has them (IDX).
pub(crate) type Dataset = (Box<dyn ImageSource>, Option<Vec<usize>>);

/// The images of `data`: an IDX split where the folder has one, else image files.
pub(crate) fn dataset(
    data: &Path,
    split: &str,
    limit: Option<usize>,
    pipeline: deepsight_models::Preprocess,
) -> Result<Dataset> {
    let idx = ["", ".gz"]
        .iter()
        .any(|ext| data.join(format!("{split}-images-idx3-ubyte{ext}")).exists());
    if idx {
        let items = deepsight_train::mosaic::read_items(data, split)
            .with_context(|| format!("reading the '{split}' split of {}", data.display()))?;
        let mut labels: Vec<usize> = items.labels.iter().map(|&l| l as usize).collect();
        let mut grey = GreyImages::new(items.pixels, [28, 28])?;
        if let Some(n) = limit {
            grey = grey.truncated(n);
            labels.truncate(n);
        }
        Ok((Box::new(grey), Some(labels)))
    } else {
        let paths = top9::list_images(data, limit)?;
        Ok((Box::new(ImageFiles { paths, pipeline }), None))
    }
}

pub fn run(a: Args) -> Result<()> {
    let Some(arch) = Arch::from_name(&a.arch) else {
        bail!("unknown --arch '{}'", a.arch);
    };
    if !a.labels.is_empty() && a.labels.len() != a.checkpoints.len() {
        bail!(
            "{} labels for {} checkpoints",
            a.labels.len(),
            a.checkpoints.len()
        );
    }
    let device = deepsight_runtime::default_device();
    let mut models: Vec<(String, GraphModel)> = Vec::new();
    let mut pipeline = None;
    for (i, path) in a.checkpoints.iter().enumerate() {
        let loaded = ModelSource::File {
            arch,
            path: path.clone(),
        }
        .load(&device)
        .with_context(|| format!("loading checkpoint {}", path.display()))?;
        pipeline = Some(loaded.pipeline);
        let label = a.labels.get(i).cloned().unwrap_or_else(|| label_of(path));
        models.push((label, loaded.model));
    }
    let pipeline = pipeline.expect("at least one checkpoint (clap requires it)");
    let layer = match &a.layer {
        Some(l) => l.clone(),
        None => top9::default_layer(&models[0].1).context("the model has no spatial layer")?,
    };
    let (images, _) = dataset(&a.data, &a.split, a.limit, pipeline)?;
    let options = EvolutionOptions {
        layer: layer.clone(),
        channels: if a.channels.is_empty() {
            Channels::First(a.channels_count)
        } else {
            Channels::List(a.channels.clone())
        },
        batch: a.batch,
        rule: RectifierRule::Deconv,
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:22} {bar:30} {pos}/{len}, {elapsed} (ETA {eta})")
            .expect("valid template"),
    );
    let started = Instant::now();
    let n = models.len();
    let result = evolution::evolution(
        &models,
        &pipeline,
        images.as_ref(),
        &options,
        &mut |t, s, d, total| {
            bar.set_message(format!("checkpoint {}/{n} {s:?}", t + 1));
            bar.set_length(total as u64);
            bar.set_position(d as u64);
        },
    )?;
    bar.finish_and_clear();
    let seconds = started.elapsed().as_secs_f64();
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create '{}'", a.out.display()))?;
    let png = a.out.join(format!("evolution.{layer}.png"));
    write_atomic(&png, &result.figure(a.cell).png())?;
    let mut json = result.json();
    json["arch"] = a.arch.clone().into();
    json["data"] = a.data.display().to_string().into();
    json["split"] = a.split.clone().into();
    json["seconds"] = seconds.into();
    json["files"] = a
        .checkpoints
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .into();
    let path = a.out.join("evolution.json");
    write_atomic(&path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    eprintln!(
        "{} checkpoints x {} images scanned and projected in {seconds:.1} s; wrote {} and {}",
        n,
        result.images,
        png.display(),
        path.display()
    );
    Ok(())
}
