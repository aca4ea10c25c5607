//! `deepsight visualize feature`: images that maximise a channel, one unit, or a whole layer
//! (Lucent's channel, neuron and DeepDream objectives), optionally starting from an image.

use super::optimise::{self, RecipeArgs};
use crate::model_arg::ModelArgs;
use anyhow::{Context, Result, bail};
use deepsight_models::write_atomic;
use deepsight_render::Panel;
use deepsight_visualize::optvis::Target;
use std::path::PathBuf;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum ObjectiveArg {
    /// The channel's mean activation.
    Channel,
    /// One unit of the channel: --position, or the map's centre.
    Neuron,
    /// The layer's mean squared activation (--channel is ignored).
    Deepdream,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The layer (see `deepsight layers`).
    #[arg(long)]
    layer: String,
    /// Channels of the layer (comma-separated), one image each, all in one batch.
    #[arg(long, value_delimiter = ',')]
    channel: Vec<usize>,
    #[arg(long, value_enum, default_value = "channel")]
    objective: ObjectiveArg,
    /// The unit's position ROW,COL for --objective neuron (default: the map's centre).
    #[arg(long, value_delimiter = ',', num_args = 2)]
    position: Option<Vec<usize>>,
    /// Start from this image instead of the recipe's initial one.
    #[arg(long)]
    start: Option<PathBuf>,
    #[command(flatten)]
    recipe: RecipeArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// Output folder.
    #[arg(long, default_value = "features")]
    out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let recipe = a.recipe.recipe()?;
    let loaded = a.model.load()?;
    if a.position.is_some() && a.objective != ObjectiveArg::Neuron {
        bail!("--position applies to --objective neuron only");
    }
    let position = a.position.as_ref().map(|p| [p[0], p[1]]);
    let targets: Vec<Target> = match a.objective {
        ObjectiveArg::Deepdream => vec![Target::DeepDream {
            layer: a.layer.clone(),
        }],
        _ if a.channel.is_empty() => bail!("--channel is required for --objective channel and neuron"),
        ObjectiveArg::Channel => a
            .channel
            .iter()
            .map(|&channel| Target::Channel {
                layer: a.layer.clone(),
                channel,
            })
            .collect(),
        ObjectiveArg::Neuron => a
            .channel
            .iter()
            .map(|&channel| Target::Neuron {
                layer: a.layer.clone(),
                channel,
                position,
            })
            .collect(),
    };
    let start = match &a.start {
        Some(p) => {
            let img = deepsight_models::preprocess::load_rgb(p)?;
            Some(vec![loaded.pipeline.resize(&img)?; targets.len()])
        }
        None => None,
    };
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create '{}'", a.out.display()))?;
    let (rendered, seconds) = optimise::render(&loaded, &targets, &recipe, start.as_deref(), a.recipe.seed)?;
    let safe = a.layer.replace(['/', '.', ':'], "_");
    let labels: Vec<String> = targets
        .iter()
        .map(|t| match t {
            Target::Channel { channel, .. } => format!("{}:{channel}", a.layer),
            Target::Neuron { channel, .. } => format!("{}:{channel} unit", a.layer),
            _ => format!("{} deepdream", a.layer),
        })
        .collect();
    let stems: Vec<String> = targets
        .iter()
        .map(|t| match t {
            Target::Channel { channel, .. } => format!("{safe}-channel-{channel:04}"),
            Target::Neuron { channel, .. } => format!("{safe}-neuron-{channel:04}"),
            _ => format!("{safe}-deepdream"),
        })
        .collect();
    let (paths, decoded) = optimise::write_images(&a.out, &stems, &rendered.images)?;
    let panels = decoded
        .iter()
        .zip(&labels)
        .map(|(img, l)| Panel {
            canvas: optimise::canvas(img),
            title: vec![l.clone()],
        })
        .collect();
    optimise::write_montage(&a.out, panels)?;
    optimise::write_curves(&a.out, &labels, &rendered.curves, "activation")?;
    let rows: Vec<serde_json::Value> = labels
        .iter()
        .zip(&paths)
        .zip(&rendered.curves)
        .map(|((l, p), c)| {
            serde_json::json!({
                "target": l,
                "file": p.file_name().map(|f| f.to_string_lossy().to_string()),
                "start": c.first(), "final": c.last(),
            })
        })
        .collect();
    let json = serde_json::json!({
        "model": loaded.description,
        "settings": optimise::recipe_json(&recipe),
        "objective": format!("{:?}", a.objective).to_lowercase(),
        "start_image": a.start.as_ref().map(|p| p.display().to_string()),
        "seed": a.recipe.seed,
        "seconds": seconds,
        "targets": rows,
    });
    write_atomic(
        &a.out.join("results.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    println!(
        "{} images in {seconds:.1} s; wrote {}",
        targets.len(),
        a.out.display()
    );
    Ok(())
}
