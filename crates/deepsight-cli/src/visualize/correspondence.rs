//! `deepsight visualize correspondence`: do occlusions of the same part change the features the
//! same way across images (Zeiler & Fergus 2014 sec. 4.3, table 1)?

use crate::model_arg::ModelArgs;
use anyhow::{Context, Result};
use deepsight_models::preprocess::load_rgb;
use deepsight_models::write_atomic;
use deepsight_visualize::correspondence::{Correspondence, PartsImage, correspondence, read_parts};
use std::path::PathBuf;
use std::time::Instant;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Parts file: a JSON list of {"file": PATH (relative to the JSON file), "parts": {NAME:
    /// [x0, y0, x1, y1]}} with boxes in the image file's pixels.
    #[arg(long)]
    parts: PathBuf,
    /// Layers to compare, comma-separated (default: the model's last spatial map and the input of
    /// its last linear layer, standing for the paper's layers 5 and 7).
    #[arg(long, value_delimiter = ',')]
    layers: Vec<String>,
    /// Parts to occlude, comma-separated (default: every part of the first image).
    #[arg(long = "part", value_delimiter = ',')]
    only: Vec<String>,
    /// Random-baseline draws (each a fresh random location per image).
    #[arg(long, default_value_t = 10)]
    draws: usize,
    /// Seed of the random locations.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    batch: usize,
    #[command(flatten)]
    model: ModelArgs,
    /// Output folder.
    #[arg(long, default_value = "correspondence")]
    out: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    let entries = read_parts(&a.parts)?;
    let loaded = a.model.load()?;
    let images = entries
        .iter()
        .map(|e| {
            Ok(PartsImage {
                name: e
                    .file
                    .file_stem()
                    .map_or_else(String::new, |s| s.to_string_lossy().into()),
                image: load_rgb(&e.file)?,
                parts: e.parts.clone(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let options = Correspondence {
        layers: a.layers.clone(),
        parts: a.only.clone(),
        draws: a.draws,
        seed: a.seed,
        batch: a.batch,
    };
    let start = Instant::now();
    let report = correspondence(&loaded.model, &loaded.pipeline, &images, &options)?;
    let seconds = start.elapsed().as_secs_f64();
    std::fs::create_dir_all(&a.out).with_context(|| format!("creating {}", a.out.display()))?;
    let table = report.markdown();
    let md = a.out.join("correspondence.md");
    let text = format!(
        "Correspondence (Zeiler & Fergus 2014 table 1) for {}: mean ± std of the normalised Hamming \
         distance between sign(eps) over the {} image pairs; random: {} draws, seed {}.\n\n{table}",
        loaded.description,
        images.len() * (images.len() - 1) / 2,
        report.draws,
        report.seed
    );
    write_atomic(&md, text.as_bytes())?;
    let json = a.out.join("correspondence.json");
    // The report is serialised as itself rather than through `json!`, whose `Value` would widen
    // every f32 (0.124 to 0.12399999797344208).
    let text = format!(
        "{{\n\"model\": {},\n\"parts_file\": {},\n\"seconds\": {seconds},\n\"report\": {}\n}}\n",
        serde_json::to_string(&loaded.description)?,
        serde_json::to_string(&a.parts.display().to_string())?,
        serde_json::to_string_pretty(&report)?
    );
    write_atomic(&json, text.as_bytes())?;
    let png = a.out.join("correspondence-boxes.png");
    write_atomic(&png, &report.figure(&loaded.pipeline, &images, 5)?.png())?;
    println!("{table}");
    println!("{} images, {seconds:.1} s", images.len());
    for f in [md, json, png] {
        println!("  {}", f.display());
    }
    Ok(())
}
