//! `deepsight mosaic`: the Fashion-MNIST mosaic set with pixel masks (`deepsight_train::mosaic`
//! documents the images and the mask annotation format).

use anyhow::{Context, Result};
use deepsight_train::mosaic::{MosaicConfig, Split, generate};
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Folder with Fashion-MNIST's {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
    #[arg(long, value_name = "DIR")]
    fashion_mnist: PathBuf,
    /// Output folder: classes.txt, README.md and train/, val/, test/ (dataset.txt, images/, masks/).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Images in train/ (items from the training file, disjoint from val's).
    #[arg(long, default_value_t = 8000)]
    train: usize,
    /// Images in val/ (from the training file).
    #[arg(long, default_value_t = 1000)]
    val: usize,
    /// Images in test/ (from t10k).
    #[arg(long, default_value_t = 1000)]
    test: usize,
    /// Seed: the same seed and counts give identical files.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

pub fn run(a: Args) -> Result<()> {
    let cfg = MosaicConfig {
        train: a.train,
        val: a.val,
        test: a.test,
        seed: a.seed,
    };
    let bar = indicatif::ProgressBar::new((a.train + a.val + a.test) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} images, {elapsed} (ETA {eta}) {msg}")
            .expect("valid template"),
    );
    let result = generate(&a.fashion_mnist, &a.out, &cfg, &mut |split: Split, _, _| {
        bar.set_message(split.name());
        bar.inc(1);
    });
    bar.finish_and_clear();
    result.with_context(|| format!("mosaic into '{}'", a.out.display()))?;
    eprintln!(
        "wrote {} train, {} val, {} test images with masks to '{}' (seed {})",
        a.train,
        a.val,
        a.test,
        a.out.display(),
        a.seed
    );
    Ok(())
}
