//! What `visualize class` and `visualize feature` share: the recipe options, the run with a
//! progress bar, and the files (one PNG per target, a montage, the objective curves, JSON).

use anyhow::{Context, Result, bail};
use deepsight_models::{LoadedModel, RgbImage, write_atomic};
use deepsight_render::{Canvas, Panel, Series, line_plot, montage};
use deepsight_visualize::optvis::{self, Basis, Lucent, Recipe, Rendered, Simonyan, Target, Yosinski};
use std::path::{Path, PathBuf};
use std::time::Instant;

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecipeArg {
    /// Simonyan et al. 2014: plain gradient ascent on S_c - lambda ||I||^2 from the mean image.
    Simonyan,
    /// Yosinski et al. 2015 (table 1, set 3): decay, Gaussian blur every k steps, clipping.
    Yosinski,
    /// Lucent's render_vis: Adam on a decorrelated Fourier image, random jitter, scale, rotation.
    Lucent,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum BasisArg {
    Fourier,
    Pixel,
}

/// Options of the optimisation; unset ones take the recipe's defaults (see `--help` of each).
#[derive(clap::Args, Debug, Clone)]
pub struct RecipeArgs {
    #[arg(long, value_enum, default_value = "simonyan")]
    pub recipe: RecipeArg,
    /// Optimisation steps (defaults: simonyan 200, yosinski 1000, lucent 512).
    #[arg(long)]
    pub steps: Option<usize>,
    /// Step size (simonyan: input space, default 20; yosinski: pixel units, 100; lucent: Adam, 0.05).
    #[arg(long)]
    pub lr: Option<f32>,
    /// Simonyan's lambda of -lambda ||I||^2 (default 1e-3).
    #[arg(long)]
    pub l2: Option<f32>,
    /// Simonyan: clamp the image to the valid pixel range after every step (off in the paper).
    #[arg(long)]
    pub clip: bool,
    /// Yosinski: L2 decay per step (default 1e-4).
    #[arg(long)]
    pub decay: Option<f32>,
    /// Yosinski: blur every N steps (default 4; 0 never).
    #[arg(long)]
    pub blur_every: Option<usize>,
    /// Yosinski: blur sigma in pixels (default 1.0).
    #[arg(long)]
    pub blur_sigma: Option<f32>,
    /// Yosinski: set pixels whose norm is below this percentile to the mean (default off).
    #[arg(long)]
    pub norm_percentile: Option<f32>,
    /// Lucent: side of the parameter image, upsampled to the model's input (default 128).
    #[arg(long)]
    pub size: Option<usize>,
    /// Lucent: the parameterisation (default fourier).
    #[arg(long, value_enum)]
    pub basis: Option<BasisArg>,
    /// Lucent: no colour decorrelation.
    #[arg(long)]
    pub no_decorrelate: bool,
    /// Lucent: no random pad, jitter, scale and rotation.
    #[arg(long)]
    pub no_transforms: bool,
    /// Seed of the initial noise and the random transforms.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

impl RecipeArgs {
    pub fn recipe(&self) -> Result<Recipe> {
        let only = |set: bool, flag: &str, recipe: &str| -> Result<()> {
            if set {
                bail!("{flag} applies to --recipe {recipe} only");
            }
            Ok(())
        };
        let r = self.recipe;
        only(
            r != RecipeArg::Simonyan && (self.l2.is_some() || self.clip),
            "--l2/--clip",
            "simonyan",
        )?;
        only(
            r != RecipeArg::Yosinski
                && (self.decay.is_some()
                    || self.blur_every.is_some()
                    || self.blur_sigma.is_some()
                    || self.norm_percentile.is_some()),
            "--decay/--blur-every/--blur-sigma/--norm-percentile",
            "yosinski",
        )?;
        only(
            r != RecipeArg::Lucent
                && (self.size.is_some() || self.basis.is_some() || self.no_decorrelate || self.no_transforms),
            "--size/--basis/--no-decorrelate/--no-transforms",
            "lucent",
        )?;
        if self.steps == Some(0) {
            bail!("--steps must be at least 1");
        }
        if let Some(p) = self.norm_percentile
            && !(0.0..=100.0).contains(&p)
        {
            bail!("--norm-percentile {p}: expected 0 to 100");
        }
        Ok(match r {
            RecipeArg::Simonyan => {
                let d = Simonyan::default();
                Recipe::Simonyan(Simonyan {
                    steps: self.steps.unwrap_or(d.steps),
                    lr: self.lr.unwrap_or(d.lr),
                    l2: self.l2.unwrap_or(d.l2),
                    clip: self.clip,
                })
            }
            RecipeArg::Yosinski => {
                let d = Yosinski::default();
                Recipe::Yosinski(Yosinski {
                    steps: self.steps.unwrap_or(d.steps),
                    lr: self.lr.unwrap_or(d.lr),
                    decay: self.decay.unwrap_or(d.decay),
                    blur_every: self.blur_every.unwrap_or(d.blur_every),
                    blur_sigma: self.blur_sigma.unwrap_or(d.blur_sigma),
                    norm_percentile: self.norm_percentile.or(d.norm_percentile),
                    init_sd: d.init_sd,
                })
            }
            RecipeArg::Lucent => {
                let d = Lucent::default();
                Recipe::Lucent(Lucent {
                    steps: self.steps.unwrap_or(d.steps),
                    lr: self.lr.unwrap_or(d.lr),
                    size: self.size.unwrap_or(d.size),
                    basis: match self.basis {
                        Some(BasisArg::Pixel) => Basis::Pixel,
                        Some(BasisArg::Fourier) => Basis::Fourier,
                        None => d.basis,
                    },
                    decorrelate: !self.no_decorrelate,
                    transforms: !self.no_transforms,
                })
            }
        })
    }
}

/// Runs the optimisation with a progress bar; returns the result and its wall time in seconds.
pub fn render(
    loaded: &LoadedModel,
    targets: &[Target],
    recipe: &Recipe,
    start: Option<&[RgbImage]>,
    seed: u64,
) -> Result<(Rendered, f64)> {
    let bar = indicatif::ProgressBar::new(recipe.steps() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} steps, {elapsed} (ETA {eta})")
            .expect("valid template"),
    );
    let t0 = Instant::now();
    let rendered = optvis::render(
        &loaded.model,
        &loaded.pipeline,
        targets,
        recipe,
        start,
        seed,
        &mut |step, _| bar.set_position(step as u64),
    )?;
    bar.finish_and_clear();
    Ok((rendered, t0.elapsed().as_secs_f64()))
}

pub fn canvas(img: &RgbImage) -> Canvas {
    Canvas {
        width: img.width,
        height: img.height,
        pixels: img.pixels.clone(),
    }
}

/// Writes one PNG per target (named by `stems`), reads each back as the classifier would, and
/// returns the paths and the decoded images.
pub fn write_images(
    out: &Path,
    stems: &[String],
    images: &[RgbImage],
) -> Result<(Vec<PathBuf>, Vec<RgbImage>)> {
    let mut paths = Vec::new();
    let mut decoded = Vec::new();
    for (stem, img) in stems.iter().zip(images) {
        let path = out.join(format!("{stem}.png"));
        write_atomic(&path, &canvas(img).png())?;
        decoded.push(deepsight_models::preprocess::load_rgb(&path)?);
        paths.push(path);
    }
    Ok((paths, decoded))
}

/// The objective curves as a plot (x: step fraction) and a CSV (one column per target).
pub fn write_curves(out: &Path, labels: &[String], curves: &[Vec<f32>], y_label: &str) -> Result<()> {
    let series: Vec<Series> = labels
        .iter()
        .zip(curves)
        .map(|(l, c)| Series {
            label: l.chars().take(22).collect(),
            values: c.clone(),
        })
        .collect();
    let top = curves.iter().flatten().copied().fold(0f32, f32::max) * 1.05;
    let steps = curves.first().map_or(0, Vec::len);
    let plot = line_plot(
        &series,
        "objective per step",
        &format!("step / {steps}"),
        y_label,
        top,
    );
    write_atomic(&out.join("curve.png"), &plot.png())?;
    let mut csv = String::from("step");
    for l in labels {
        csv.push_str(&format!(",{}", l.replace(',', " ")));
    }
    csv.push('\n');
    for s in 0..steps {
        csv.push_str(&(s + 1).to_string());
        for c in curves {
            csv.push_str(&format!(",{}", c[s]));
        }
        csv.push('\n');
    }
    write_atomic(&out.join("curve.csv"), csv.as_bytes())?;
    Ok(())
}

pub fn write_montage(out: &Path, panels: Vec<Panel>) -> Result<()> {
    let columns = panels.len().clamp(1, 4);
    write_atomic(&out.join("montage.png"), &montage(&panels, columns).png())
        .with_context(|| format!("cannot write the montage in '{}'", out.display()))
}

/// A JSON description of the recipe as run.
pub fn recipe_json(recipe: &Recipe) -> serde_json::Value {
    match recipe {
        Recipe::Simonyan(r) => serde_json::json!({
            "recipe": "simonyan", "steps": r.steps, "lr": r.lr, "l2": r.l2, "clip": r.clip,
        }),
        Recipe::Yosinski(r) => serde_json::json!({
            "recipe": "yosinski", "steps": r.steps, "lr_pixels": r.lr, "decay": r.decay,
            "blur_every": r.blur_every, "blur_sigma": r.blur_sigma,
            "norm_percentile": r.norm_percentile, "init_sd_pixels": r.init_sd,
        }),
        Recipe::Lucent(r) => serde_json::json!({
            "recipe": "lucent", "steps": r.steps, "adam_lr": r.lr, "size": r.size,
            "basis": format!("{:?}", r.basis).to_lowercase(), "decorrelate": r.decorrelate,
            "transforms": r.transforms,
        }),
    }
}
