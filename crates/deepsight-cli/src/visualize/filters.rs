//! `deepsight visualize filters`: a convolution's filters as an image grid with their RMS
//! (Zeiler & Fergus 2014 Fig. 6 and their 0.1 renormalisation), and optionally one image's
//! activations of a layer as a grid of heatmaps.

use crate::model_arg::ModelArgs;
use anyhow::{Context, Result};
use deepsight_models::write_atomic;
use deepsight_render::Colormap;
use deepsight_runtime::Classifier;
use deepsight_visualize::filters::{self, FilterStyle, MapScale, ZF_RMS_LIMIT};
use deepsight_visualize::top9::default_layer;
use std::path::PathBuf;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum MapScaleArg {
    /// One colour scale for the whole layer: weak channels look weak.
    Layer,
    /// Each channel on its own scale.
    Channel,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ColormapArg {
    Viridis,
    Jet,
    Turbo,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The convolution whose filters to draw (default: the first).
    #[arg(long)]
    layer: Option<String>,
    /// Screen pixels per weight (default: a filter at least 32 pixels wide).
    #[arg(long)]
    scale: Option<usize>,
    /// Filters per row (default: a near-square grid).
    #[arg(long)]
    columns: Option<usize>,
    /// Also draw this image's activations of --maps-layer.
    #[arg(long)]
    image: Option<PathBuf>,
    /// The layer whose maps to draw for --image (default: a middle feature map).
    #[arg(long, requires = "image")]
    maps_layer: Option<String>,
    #[arg(long, value_enum, default_value = "layer")]
    map_scale: MapScaleArg,
    #[arg(long, value_enum, default_value = "viridis")]
    colormap: ColormapArg,
    /// Smallest side of one heatmap, in pixels.
    #[arg(long, default_value_t = 42)]
    map_side: usize,
    #[command(flatten)]
    model: ModelArgs,
    /// Output folder.
    #[arg(long, default_value = "deepsight-out/filters")]
    out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let loaded = a.model.load()?;
    let graph = loaded.model.graph();
    let layer = match &a.layer {
        Some(l) => l.clone(),
        None => filters::first_conv(graph)
            .context("the model has no convolution")?
            .to_string(),
    };
    let (weights, dims) = filters::conv_weights(graph, &layer)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create '{}'", a.out.display()))?;
    let canvas = filters::filter_grid(
        &weights,
        dims,
        FilterStyle {
            scale: a.scale,
            columns: a.columns,
        },
    )?;
    let stem = super::layer_file_stem(&layer);
    let png = a.out.join(format!("filters.{stem}.png"));
    write_atomic(&png, &canvas.png())?;
    let rms = filters::filter_rms(&weights, dims);
    let above = rms.iter().filter(|r| **r > ZF_RMS_LIMIT).count();
    let max = rms.iter().copied().fold(0f32, f32::max);
    let mean = rms.iter().sum::<f32>() / rms.len().max(1) as f32;
    eprintln!(
        "wrote {} ({} filters {}x{} over {} inputs; RMS mean {mean:.3}, max {max:.3}; {above} above Zeiler & Fergus's {ZF_RMS_LIMIT})",
        png.display(),
        dims[0],
        dims[2],
        dims[3],
        dims[1]
    );
    let mut json = serde_json::json!({
        "model": loaded.description,
        "layer": layer,
        "shape": dims,
        "figure": png.file_name().map(|f| f.to_string_lossy().to_string()),
        "rms": rms,
        "rms_mean": mean,
        "rms_max": max,
        "zf_rms_limit": ZF_RMS_LIMIT,
        "above_limit": above,
    });
    if let Some(image) = &a.image {
        let maps_layer = match &a.maps_layer {
            Some(l) => l.clone(),
            None => default_layer(&loaded.model).context("the model has no spatial layer")?,
        };
        let x = loaded
            .pipeline
            .load_batch(&[image.as_path()], &loaded.model.device())
            .with_context(|| format!("'{}'", image.display()))?;
        let maps = filters::feature_maps(&loaded.model, x, &maps_layer)?;
        let scale = match a.map_scale {
            MapScaleArg::Layer => MapScale::Layer,
            MapScaleArg::Channel => MapScale::Channel,
        };
        let cmap = match a.colormap {
            ColormapArg::Viridis => Colormap::Viridis,
            ColormapArg::Jet => Colormap::Jet,
            ColormapArg::Turbo => Colormap::Turbo,
        };
        let canvas = filters::maps_grid(&maps, scale, cmap, a.map_side);
        let image_stem = image
            .file_stem()
            .map_or("image".into(), |s| s.to_string_lossy().to_string());
        let png = a.out.join(format!(
            "maps.{image_stem}.{}.png",
            super::layer_file_stem(&maps_layer)
        ));
        write_atomic(&png, &canvas.png())?;
        let peaks = maps.peaks();
        let silent = peaks.iter().filter(|p| **p <= 0.0).count();
        eprintln!(
            "wrote {} ({} maps {}x{}; {silent} never positive)",
            png.display(),
            maps.shape[0],
            maps.shape[1],
            maps.shape[2]
        );
        json["maps"] = serde_json::json!({
            "image": image.display().to_string(),
            "layer": maps_layer,
            "shape": maps.shape,
            "figure": png.file_name().map(|f| f.to_string_lossy().to_string()),
            "peaks": peaks,
            "never_positive": silent,
        });
    }
    let path = a.out.join(format!("filters.{stem}.json"));
    write_atomic(&path, serde_json::to_string_pretty(&json)?.as_bytes())?;
    eprintln!("wrote {}", path.display());
    Ok(())
}
