//! `deepsight visualize top9`: per feature map the images that drive it hardest across a
//! dataset, each hit's deconvnet projection beside its receptive-field patch (Zeiler & Fergus 2014
//! Fig. 2). One grid PNG per layer and `top9.json` with every hit.

use crate::model_arg::ModelArgs;
use anyhow::{Context, Result};
use deepsight_models::write_atomic;
use deepsight_runtime::RectifierRule;
use deepsight_visualize::top9::{self, Channels, GridStyle, ImageFiles, Stage, Top9Options};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum RuleArg {
    /// Zeiler & Fergus's deconvnet (the paper's).
    Deconvnet,
    /// Guided backpropagation (Springenberg et al. 2015): keeps the image's rectifier masks,
    /// for networks without max pools (Lite0), whose deconvnet projections ignore the image.
    Guided,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A folder of images: those its `dataset.txt` lists (as `imagenet-val-1300`), else every
    /// image file in it.
    #[arg(long)]
    data: PathBuf,
    /// Layers to analyse, all in one pass over the data (comma-separated or repeated; default: a
    /// middle feature map of the model).
    #[arg(long = "layer", value_delimiter = ',')]
    layers: Vec<String>,
    /// Channels to draw (comma-separated); every channel is tracked, these are projected.
    #[arg(long, value_delimiter = ',', conflicts_with = "channels_count")]
    channels: Vec<usize>,
    /// Draw this many channels: the first ones, or a random subset with --channel-seed (the
    /// paper's choice). Default 16.
    #[arg(long)]
    channels_count: Option<usize>,
    /// Seed of a random subset of --channels-count channels.
    #[arg(long)]
    channel_seed: Option<u64>,
    /// The backward rule of the projections.
    #[arg(long, value_enum, default_value = "deconvnet")]
    rule: RuleArg,
    /// Images kept per channel.
    #[arg(long, default_value_t = 9)]
    k: usize,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Use only the first N images.
    #[arg(long)]
    limit: Option<usize>,
    /// Side of one projection or patch in the grid, in pixels.
    #[arg(long, default_value_t = 64)]
    cell: usize,
    /// Channel blocks per row of the grid.
    #[arg(long, default_value_t = 4)]
    columns: usize,
    #[command(flatten)]
    model: ModelArgs,
    /// Output folder.
    #[arg(long, default_value = "deepsight-out/top9")]
    out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let loaded = a.model.load()?;
    let paths = top9::list_images(&a.data, a.limit)?;
    let count = a.channels_count.unwrap_or(16);
    let channels = match (&a.channels[..], a.channel_seed) {
        ([], Some(seed)) => Channels::Random { count, seed },
        ([], None) => Channels::First(count),
        (list, _) => Channels::List(list.to_vec()),
    };
    let options = Top9Options {
        layers: a.layers.clone(),
        channels,
        k: a.k,
        batch: a.batch,
        rule: match a.rule {
            RuleArg::Deconvnet => RectifierRule::Deconv,
            RuleArg::Guided => RectifierRule::Guided,
        },
    };
    let source = ImageFiles {
        paths: paths.clone(),
        pipeline: loaded.pipeline,
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create '{}'", a.out.display()))?;
    let bar = indicatif::ProgressBar::new(paths.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg:12} {bar:30} {pos}/{len}, {elapsed} (ETA {eta})")
            .expect("valid template"),
    );
    let started = Instant::now();
    let mut scan_seconds = 0.0;
    let mut stage = Stage::Scan;
    bar.set_message("scan images");
    let result = top9::top9(
        &loaded.model,
        &loaded.pipeline,
        &source,
        &options,
        &mut |s, done, total| {
            if s != stage {
                stage = s;
                scan_seconds = started.elapsed().as_secs_f64();
                bar.reset();
                bar.set_message("project hits");
            }
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
    )?;
    bar.finish_and_clear();
    let total_seconds = started.elapsed().as_secs_f64();
    let style = GridStyle {
        cell: a.cell,
        columns: a.columns,
    };
    let mut layers_json = Vec::new();
    for layer in &result.layers {
        let png = a
            .out
            .join(format!("top9.{}.png", super::layer_file_stem(&layer.layer)));
        let canvas = top9::grid(layer, result.input_size, result.images, style);
        write_atomic(&png, &canvas.png())?;
        eprintln!("wrote {}", png.display());
        let channels: Vec<_> = layer
            .channels
            .iter()
            .map(|c| {
                let hits: Vec<_> = c
                    .hits
                    .iter()
                    .map(|p| {
                        let b = p.field.pixels;
                        serde_json::json!({
                            "file": paths[p.hit.image].display().to_string(),
                            "image": p.hit.image,
                            "value": p.hit.value,
                            "row": p.hit.row,
                            "col": p.hit.col,
                            "box": [b.top, b.left, b.bottom, b.right],
                            "nominal_box": p.field.nominal,
                            "outside_peak": p.outside_peak,
                        })
                    })
                    .collect();
                serde_json::json!({ "channel": c.channel, "hits": hits })
            })
            .collect();
        layers_json.push(serde_json::json!({
            "layer": layer.layer,
            "shape": layer.shape,
            "figure": png.file_name().map(|f| f.to_string_lossy().to_string()),
            "channels": channels,
        }));
    }
    let json = serde_json::json!({
        "model": loaded.description,
        "data": a.data.display().to_string(),
        "images": result.images,
        "k": a.k,
        "batch": a.batch,
        "rule": format!("{:?}", a.rule).to_lowercase(),
        "scan_seconds": scan_seconds,
        "project_seconds": total_seconds - scan_seconds,
        "images_per_second": result.images as f64 / scan_seconds.max(1e-9),
        "box_format": "[top, left, bottom, right], half-open, in model-input pixels",
        "layers": layers_json,
    });
    let path = a.out.join("top9.json");
    write_atomic(&path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    eprintln!(
        "{} images scanned in {scan_seconds:.1} s ({:.1} images/s), {} hits projected in {:.1} s; wrote {}",
        result.images,
        result.images as f64 / scan_seconds.max(1e-9),
        result
            .layers
            .iter()
            .map(|l| l.channels.iter().map(|c| c.hits.len()).sum::<usize>())
            .sum::<usize>(),
        total_seconds - scan_seconds,
        path.display()
    );
    Ok(())
}
