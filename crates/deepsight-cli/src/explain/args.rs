//! `deepsight explain`'s arguments, and their translation into the pipeline's typed request.

use anyhow::{Result, bail};
use deepsight_explain::gradient::DeconvnetFeature;
use deepsight_explain::registry::MethodOptions;
use deepsight_pipeline::settings::{Settings, Sign, SmoothGradOf};
use deepsight_pipeline::{Classes, Drawing, ExplainRequest, LearnedWeights};
use deepsight_render::Colormap;
use std::path::PathBuf;

/// Colour maps for unsigned maps (jet as in the papers; turbo and viridis are perceptually ordered).
#[derive(Clone, Copy, clap::ValueEnum)]
enum ColormapArg {
    Jet,
    Turbo,
    Viridis,
}

/// The CLI names of [`GradientSign`].
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum GradientSignArg {
    /// `|gradient|` (Simonyan et al.).
    Absolute,
    /// Positive gradients only (the seed's code snippet: `clamp(min=0)`).
    Positive,
}

/// The CLI names of [`SmoothGradBase`] (the method names of `deepsight methods`).
#[derive(Clone, Copy, clap::ValueEnum)]
enum SmoothGradBaseArg {
    Saliency,
    InputXGradient,
    GuidedBackprop,
    IntegratedGradients,
}

#[derive(clap::Args)]
pub struct Args {
    /// Image files (any format the `image` crate reads).
    pub images: Vec<PathBuf>,
    #[command(flatten)]
    pub model: crate::model_arg::ModelArgs,
    /// Methods, comma-separated (`deepsight methods` lists them), or `all`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "gradcam,gradcam++,saliency,guided-backprop"
    )]
    method: Vec<String>,
    /// A class index to explain; repeat for several classes in one run (the cat and the dog).
    #[arg(long, conflicts_with = "top")]
    class: Vec<usize>,
    /// Explain each image's K most probable classes (default 1).
    #[arg(long, value_name = "K")]
    top: Option<usize>,
    /// The layer of CAM methods (default: the model's last spatial feature map).
    #[arg(long)]
    layer: Option<String>,
    /// Output folder (created if missing).
    #[arg(long, default_value = "deepsight-out")]
    pub out: PathBuf,
    /// Also write `<stem>.maps.safetensors`: the raw maps, one tensor per method.
    #[arg(long)]
    pub raw: bool,
    /// Print a JSON summary (classes, probabilities, timings, output paths).
    #[arg(long)]
    pub json: bool,
    /// Explain a preprocessed NCHW input (tensor `input` of a .safetensors file).
    #[arg(long, value_name = "FILE", conflicts_with = "images")]
    pub tensor: Option<PathBuf>,
    /// Colour map of unsigned maps (signed maps use a diverging blue-white-red map).
    #[arg(long, value_enum, default_value_t = ColormapArg::Jet)]
    colormap: ColormapArg,
    /// Opacity of the heatmap over the image, 0..1.
    #[arg(long, default_value_t = 0.5)]
    alpha: f32,
    /// Explain the softmax probability instead of the logit.
    #[arg(long)]
    probability: bool,
    /// Images per batch (also the batch of Integrated Gradients' path points and SmoothGrad's samples).
    #[arg(long, default_value_t = 16)]
    pub batch_size: usize,
    /// Integrated Gradients: path points (trapezoid rule).
    #[arg(long, default_value_t = 50)]
    ig_steps: usize,
    /// Integrated Gradients: baseline value in the model's input space.
    #[arg(long, default_value_t = 0.0)]
    ig_baseline: f32,
    /// SmoothGrad: the gradient method it averages over noisy copies of the image.
    #[arg(long, value_enum, default_value_t = SmoothGradBaseArg::Saliency)]
    smoothgrad_base: SmoothGradBaseArg,
    /// SmoothGrad: noisy samples.
    #[arg(long, default_value_t = 25)]
    smoothgrad_samples: usize,
    /// SmoothGrad: noise sigma as a fraction of the image's value range.
    #[arg(long, default_value_t = 0.15)]
    smoothgrad_sigma: f32,
    /// Saliency and SmoothGrad: keep the absolute value of the gradient, or its positive part
    /// only (SmoothGrad: the positive part of the mean gradient).
    #[arg(long, value_enum, default_value_t = GradientSignArg::Absolute)]
    gradient_sign: GradientSignArg,
    /// Seed of SmoothGrad's noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Make `deconvnet` project one feature map's strongest activation (Zeiler & Fergus) instead of
    /// the class score: LAYER:CHANNEL, e.g. `features.10:42`.
    /// Occlusion tracks this channel instead of the strongest one.
    #[arg(long, value_name = "LAYER:CHANNEL")]
    feature: Option<String>,
    /// Occlusion's feature map: the channel of LAYER with the strongest summed activation on the
    /// unoccluded image, whose grid and deconvnet projection are drawn beside the occlusion maps
    /// (Zeiler & Fergus Fig. 7 b-c; default layer: --layer, else the model's CAM layer).
    #[arg(long, value_name = "LAYER", conflicts_with = "feature")]
    feature_layer: Option<String>,
    #[command(flatten)]
    perturbation: crate::perturbation_args::PerturbationArgs,
    #[command(flatten)]
    lcam: crate::lcam_args::LcamArgs,
}

impl Args {
    /// The request these arguments make (the checks that need the model come in the pipeline).
    pub fn request(&self) -> Result<ExplainRequest> {
        if self.images.is_empty() && self.tensor.is_none() {
            bail!("nothing to explain: give image files or --tensor FILE");
        }
        if self.batch_size == 0 || self.top == Some(0) {
            bail!("--batch-size and --top must be at least 1");
        }
        let feature = match &self.feature {
            None => None,
            Some(f) => match f.rsplit_once(':').map(|(l, c)| (l, c.parse::<usize>())) {
                Some((layer, Ok(channel))) if !layer.is_empty() => Some(DeconvnetFeature {
                    layer: layer.to_string(),
                    channel,
                }),
                _ => bail!("--feature '{f}': expected LAYER:CHANNEL (e.g. features.10:42)"),
            },
        };
        let settings = Settings {
            ig_steps: self.ig_steps,
            ig_baseline: self.ig_baseline,
            smoothgrad_base: match self.smoothgrad_base {
                SmoothGradBaseArg::Saliency => SmoothGradOf::Saliency,
                SmoothGradBaseArg::InputXGradient => SmoothGradOf::InputXGradient,
                SmoothGradBaseArg::GuidedBackprop => SmoothGradOf::GuidedBackprop,
                SmoothGradBaseArg::IntegratedGradients => SmoothGradOf::IntegratedGradients,
            },
            smoothgrad_samples: self.smoothgrad_samples,
            smoothgrad_sigma: self.smoothgrad_sigma,
            gradient_sign: match self.gradient_sign {
                GradientSignArg::Absolute => Sign::Absolute,
                GradientSignArg::Positive => Sign::Positive,
            },
            seed: self.seed,
            batch_size: self.batch_size,
            ..self.perturbation.apply(Settings::default())
        };
        let learned = self.lcam.apply(MethodOptions::default())?;
        Ok(ExplainRequest {
            methods: self.method.clone(),
            classes: if self.class.is_empty() {
                Classes::Top(self.top.unwrap_or(1))
            } else {
                Classes::Given(self.class.clone())
            },
            layer: self.layer.clone(),
            probability: self.probability,
            settings,
            drawing: Drawing {
                colormap: match self.colormap {
                    ColormapArg::Jet => Colormap::Jet,
                    ColormapArg::Turbo => Colormap::Turbo,
                    ColormapArg::Viridis => Colormap::Viridis,
                },
                alpha: self.alpha,
            },
            feature,
            feature_layer: self.feature_layer.clone(),
            learned: LearnedWeights {
                lcam_img: learned.lcam_img,
                lcam_fm: learned.lcam_fm,
                explainer: learned.explainer,
            },
        })
    }
}
