//! `deepsight explain`'s options of the perturbation methods, and the progress bars of their long
//! runs.

use deepsight_explain::Progress;
use deepsight_pipeline::settings::{OcclusionConvention, OcclusionFill, Settings};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::sync::{Arc, Mutex};

/// What replaces the occluded square.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum FillArg {
    /// The preprocessing preset's mean colour (0 in the model's input space; Captum's baselines=0).
    Mean,
    /// Black pixels.
    Black,
    /// The image blurred by a Gaussian (--occlusion-blur-sigma).
    Blur,
}

/// Which reference occlusion follows.
#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ProfileArg {
    /// Zeiler & Fergus: the drop of the class probability.
    ZeilerFergus,
    /// Captum's Occlusion: the drop of the explained score (the logit unless --probability).
    Captum,
}

#[derive(clap::Args)]
pub struct PerturbationArgs {
    /// Occlusion: side of the occluding square, in input pixels.
    #[arg(long, default_value_t = 32)]
    occlusion_window: usize,
    /// Occlusion: step between square positions, in input pixels.
    #[arg(long, default_value_t = 16)]
    occlusion_stride: usize,
    /// Occlusion: what replaces the square.
    #[arg(long, value_enum, default_value_t = FillArg::Mean)]
    occlusion_fill: FillArg,
    /// Occlusion: standard deviation of the blur fill, in pixels.
    #[arg(long, default_value_t = 8.0)]
    occlusion_blur_sigma: f32,
    /// Occlusion: the reference whose score and conventions to follow.
    #[arg(long, value_enum, default_value_t = ProfileArg::ZeilerFergus)]
    occlusion_profile: ProfileArg,
    /// Occlusion: re-run the whole network on every occluded image instead of recomputing only
    /// the square's projective field (same result; for comparison and benchmarks).
    #[arg(long)]
    full_inference: bool,
    /// RISE: random masks.
    #[arg(long, default_value_t = 4000)]
    rise_masks: usize,
    /// RISE: cells per side of each mask's low-resolution grid.
    #[arg(long, default_value_t = 7)]
    rise_cell: usize,
    /// RISE: probability that a cell is kept.
    #[arg(long, default_value_t = 0.5)]
    rise_p: f32,
}

impl PerturbationArgs {
    /// The flags into the pipeline's settings.
    pub fn apply(&self, s: Settings) -> Settings {
        Settings {
            occlusion_window: self.occlusion_window,
            occlusion_stride: self.occlusion_stride,
            occlusion_fill: match self.occlusion_fill {
                FillArg::Mean => OcclusionFill::Mean,
                FillArg::Black => OcclusionFill::Black,
                FillArg::Blur => OcclusionFill::Blur,
            },
            occlusion_blur_sigma: self.occlusion_blur_sigma,
            occlusion_profile: match self.occlusion_profile {
                ProfileArg::ZeilerFergus => OcclusionConvention::ZeilerFergus,
                ProfileArg::Captum => OcclusionConvention::Captum,
            },
            full_inference: self.full_inference,
            rise_masks: self.rise_masks,
            rise_cell: self.rise_cell,
            rise_p: self.rise_p,
            ..s
        }
    }
}

/// A second bar under the main one, with an ETA, for the current long method run; hidden like
/// the main bar when stderr is not a terminal.
pub fn progress_hook(bars: &MultiProgress, method: &'static str) -> Progress {
    let bars = bars.clone();
    let current: Arc<Mutex<Option<ProgressBar>>> = Arc::default();
    Progress::new(move |done, total| {
        let mut slot = current.lock().unwrap_or_else(|e| e.into_inner());
        let bar = slot.get_or_insert_with(|| {
            let b = bars.add(ProgressBar::new(total as u64));
            b.set_style(
                ProgressStyle::with_template("  {bar:30} {pos}/{len} {msg}, {elapsed} (ETA {eta})")
                    .expect("valid template"),
            );
            b.set_message(format!("{method} forward passes"));
            b
        });
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        if done >= total {
            bar.finish_and_clear();
            *slot = None;
        }
    })
}
