//! `deepsight visualize invariance`: feature distance and class probability under vertical
//! translation, scale and rotation (Zeiler & Fergus 2014 fig. 5).

use crate::model_arg::ModelArgs;
use anyhow::{Context, Result, bail};
use deepsight_models::preprocess::load_rgb;
use deepsight_models::write_atomic;
use deepsight_render::{Canvas, Panel, montage};
use deepsight_visualize::invariance::{Invariance, SweepImage, Transform, examples, invariance};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum TransformArg {
    /// Vertical shift in input pixels (default -60..60 in steps of 10 at 224; positive: down).
    Translate,
    /// Scale factor about the centre (default 0.6..1.4 in steps of 0.1).
    Scale,
    /// Rotation in degrees, counter-clockwise (default 0..350 in steps of 10).
    Rotate,
}

impl From<TransformArg> for Transform {
    fn from(t: TransformArg) -> Self {
        match t {
            TransformArg::Translate => Transform::Translate,
            TransformArg::Scale => Transform::Scale,
            TransformArg::Rotate => Transform::Rotate,
        }
    }
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Images to sweep (one line per image in every plot).
    #[arg(required = true)]
    images: Vec<PathBuf>,
    /// Transforms to sweep, comma-separated (default: all three).
    #[arg(long, value_enum, value_delimiter = ',')]
    transform: Vec<TransformArg>,
    /// Layers whose feature vectors are compared, comma-separated (default: the first
    /// convolution's output and the input of the last linear layer).
    #[arg(long, value_delimiter = ',')]
    layers: Vec<String>,
    /// Amounts to sweep, comma-separated (with a single --transform; default: its sweep).
    #[arg(long, value_delimiter = ',', allow_negative_numbers = true)]
    amounts: Vec<f32>,
    /// True class index of each image (comma-separated; one value for all images); default:
    /// each original's top-1.
    #[arg(long, value_delimiter = ',')]
    class: Vec<usize>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[command(flatten)]
    model: ModelArgs,
    /// Output folder.
    #[arg(long, default_value = "invariance")]
    out: PathBuf,
}

/// A legend-sized name: the file stem, or its last 8 characters when long (ImageNet's
/// `ILSVRC2012_val_00006815` becomes `00006815`).
fn short_name(path: &std::path::Path) -> String {
    let stem = path
        .file_stem()
        .map_or_else(|| path.display().to_string(), |s| s.to_string_lossy().into());
    let n = stem.chars().count();
    if n > 10 {
        stem.chars().skip(n - 8).collect()
    } else {
        stem
    }
}

pub fn run(a: Args) -> Result<()> {
    let transforms: Vec<Transform> = if a.transform.is_empty() {
        Transform::ALL.to_vec()
    } else {
        a.transform.iter().map(|&t| t.into()).collect()
    };
    if !a.amounts.is_empty() && transforms.len() != 1 {
        bail!(
            "--amounts needs exactly one --transform (got {})",
            transforms.len()
        );
    }
    if !(a.class.is_empty() || a.class.len() == 1 || a.class.len() == a.images.len()) {
        bail!(
            "--class: give one class for all images or one per image ({} images, {} classes)",
            a.images.len(),
            a.class.len()
        );
    }
    let loaded = a.model.load()?;
    let images = a
        .images
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(SweepImage {
                name: short_name(p),
                image: load_rgb(p)?,
                class: a.class.get(if a.class.len() == 1 { 0 } else { i }).copied(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    for transform in transforms {
        let start = Instant::now();
        let options = Invariance {
            transform,
            amounts: a.amounts.clone(),
            layers: a.layers.clone(),
            batch: a.batch,
        };
        let report = invariance(&loaded.model, &loaded.pipeline, &images, &options)?;
        let seconds = start.elapsed().as_secs_f64();
        let mut written = Vec::new();
        let plots = report.plots(&loaded.class_names);
        for (stem, canvas) in &plots {
            let file = a.out.join(format!("{stem}.png"));
            write_atomic(&file, &canvas.png())?;
            written.push(file);
        }
        // The paper's row for this transform: example images above the plots side by side.
        let panels: Vec<Panel> = plots
            .into_iter()
            .map(|(_, canvas)| Panel {
                canvas,
                title: vec![],
            })
            .collect();
        let row = montage(&panels, panels.len());
        let n = report.amounts.len();
        let picks: Vec<f32> = (0..5.min(n)).map(|k| report.amounts[k * (n - 1) / 4]).collect();
        let strip = examples(&images[0].image, &loaded.pipeline, transform, &picks)?;
        let mut fig = Canvas::new(
            row.width.max(strip.width),
            row.height + strip.height,
            [255, 255, 255],
        );
        fig.paste(&strip, 0, 0);
        fig.paste(&row, 0, strip.height);
        let file = a.out.join(format!("invariance-{}.png", transform.name()));
        write_atomic(&file, &fig.png())?;
        written.push(file);
        let csv = a.out.join(format!("invariance-{}.csv", transform.name()));
        write_atomic(&csv, report.csv().as_bytes())?;
        let json = a.out.join(format!("invariance-{}.json", transform.name()));
        // The report is serialised as itself rather than through `json!`, whose `Value` would widen
        // every f32 (0.6 to 0.6000000238418579).
        let files: Vec<String> = a.images.iter().map(|p| p.display().to_string()).collect();
        let names: Vec<Option<&String>> = report
            .images
            .iter()
            .map(|c| loaded.class_names.get(c.class))
            .collect();
        let text = format!(
            "{{\n\"model\": {},\n\"files\": {},\n\"class_names\": {},\n\"seconds\": {seconds},\n\"report\": {}\n}}\n",
            serde_json::to_string(&loaded.description)?,
            serde_json::to_string(&files)?,
            serde_json::to_string(&names)?,
            serde_json::to_string_pretty(&report)?
        );
        write_atomic(&json, text.as_bytes())?;
        written.extend([csv, json]);
        println!(
            "{}: {} images x {} amounts, layers {} in {seconds:.1} s",
            transform.name(),
            images.len(),
            report.amounts.len(),
            report.layers.join(", ")
        );
        for f in written {
            println!("  {}", f.display());
        }
    }
    Ok(())
}
