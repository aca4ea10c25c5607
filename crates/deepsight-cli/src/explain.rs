//! `deepsight explain`: where the model looks, by every requested method, as pictures (a montage
//! and one overlay per method), optionally raw maps (safetensors) and a JSON summary.

use crate::classify::{read_input_tensor, top_k};
use crate::model_arg::ModelArgs;
use crate::perturbation_args::{PerturbationArgs, progress_hook};
use anyhow::{Context, Result, bail};
use deepsight_explain::gradient::{DeconvnetFeature, GradientSign};
use deepsight_explain::localisation::GraphCutLocalisation;
use deepsight_explain::perturbation::occlusion::{FeatureChoice, FeatureTap};
use deepsight_explain::registry::{MethodOptions, SmoothGradBase, by_name_with, methods};
use deepsight_explain::{
    Explainer, Explanation, ExtraKind, Map, Normalisation, Request, Score, SharedPasses,
};
use deepsight_models::{WeightTensor, Weights, write_atomic};
use deepsight_render::{Canvas, Colormap, Panel, montage};
use deepsight_runtime::{Classifier, Tensor, to_vec};
use std::path::{Path, PathBuf};
use std::time::Instant;

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
    images: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
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
    out: PathBuf,
    /// Also write `<stem>.maps.safetensors`: the raw maps, one tensor per method.
    #[arg(long)]
    raw: bool,
    /// Print a JSON summary (classes, probabilities, timings, output paths).
    #[arg(long)]
    json: bool,
    /// Explain a preprocessed NCHW input (tensor `input` of a .safetensors file).
    #[arg(long, value_name = "FILE", conflicts_with = "images")]
    tensor: Option<PathBuf>,
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
    batch_size: usize,
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
    perturbation: PerturbationArgs,
    #[command(flatten)]
    lcam: crate::lcam_args::LcamArgs,
}

/// One explained (image, class) by one method.
struct Result1 {
    method: &'static str,
    signed: bool,
    class: usize,
    map: Map,
    raw: Option<Map>,
    /// (name, map, kind, caption)
    extra: Vec<(&'static str, Map, ExtraKind, Option<String>)>,
}

fn display_values(map: &Map, signed: bool) -> Vec<f32> {
    let plane = map.height * map.width;
    let one = if map.channels == 1 {
        map.clone()
    } else if signed {
        let data = (0..plane)
            .map(|p| (0..map.channels).map(|c| map.data[c * plane + p]).sum())
            .collect();
        Map {
            channels: 1,
            data,
            ..map.clone()
        }
    } else {
        map.max_abs_over_channels()
    };
    let how = if signed {
        Normalisation::MaxAbs
    } else {
        Normalisation::MinMax
    };
    one.normalise(how).data
}

/// `map` drawn over `base` as every method's map is: a diverging colour map for signed maps
/// (near-zero attribution transparent), `cmap` for unsigned ones.
fn overlay_of(base: &Canvas, map: &Map, signed: bool, cmap: Colormap, alpha: f32) -> Canvas {
    let values = display_values(map, signed);
    let heat = Canvas::heatmap(
        &values,
        map.width,
        map.height,
        if signed { Colormap::Diverging } else { cmap },
    );
    if signed {
        // Neutral (near-zero) attribution stays transparent; sqrt lifts the faint tails.
        let weights: Vec<f32> = values.iter().map(|v| v.abs().sqrt()).collect();
        base.blend_weighted(&heat, (alpha * 1.6).min(1.0), &weights)
    } else {
        base.blend(&heat, alpha)
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned())
}

pub fn run(a: Args) -> Result<()> {
    if a.images.is_empty() && a.tensor.is_none() {
        bail!("nothing to explain: give image files or --tensor FILE");
    }
    if a.batch_size == 0 || a.top == Some(0) {
        bail!("--batch-size and --top must be at least 1");
    }
    if !(0.0..=1.0).contains(&a.alpha) {
        bail!("--alpha {}: must be between 0 and 1", a.alpha);
    }
    let cmap = match a.colormap {
        ColormapArg::Jet => Colormap::Jet,
        ColormapArg::Turbo => Colormap::Turbo,
        ColormapArg::Viridis => Colormap::Viridis,
    };
    let names: Vec<String> = if a.method.iter().any(|m| m == "all") {
        methods().iter().map(|m| m.name.to_string()).collect()
    } else {
        a.method.clone()
    };
    let options = MethodOptions {
        ig_steps: a.ig_steps,
        ig_baseline: a.ig_baseline,
        smoothgrad_base: match a.smoothgrad_base {
            SmoothGradBaseArg::Saliency => SmoothGradBase::Saliency,
            SmoothGradBaseArg::InputXGradient => SmoothGradBase::InputXGradient,
            SmoothGradBaseArg::GuidedBackprop => SmoothGradBase::GuidedBackprop,
            SmoothGradBaseArg::IntegratedGradients => SmoothGradBase::IntegratedGradients,
        },
        smoothgrad_samples: a.smoothgrad_samples,
        smoothgrad_sigma: a.smoothgrad_sigma,
        gradient_sign: match a.gradient_sign {
            GradientSignArg::Absolute => GradientSign::Absolute,
            GradientSignArg::Positive => GradientSign::Positive,
        },
        seed: a.seed,
        batch_size: a.batch_size,
        ..a.lcam.apply(MethodOptions::default())?
    };
    let feature = match &a.feature {
        None => None,
        Some(f) => match f.rsplit_once(':').map(|(l, c)| (l, c.parse::<usize>())) {
            Some((layer, Ok(channel))) if !layer.is_empty() => Some(DeconvnetFeature {
                layer: layer.to_string(),
                channel,
            }),
            _ => bail!("--feature '{f}': expected LAYER:CHANNEL (e.g. features.10:42)"),
        },
    };
    if feature.is_some() && !names.iter().any(|n| n == "deconvnet" || n == "occlusion") {
        bail!("--feature applies to the deconvnet and occlusion methods: add one to --method");
    }
    if a.feature_layer.is_some() && !names.iter().any(|n| n == "occlusion") {
        bail!("--feature-layer applies to the occlusion method: add it to --method");
    }
    let occlusion_feature = match (&feature, &a.feature_layer) {
        (Some(f), _) => FeatureChoice::Channel(FeatureTap {
            layer: f.layer.clone(),
            channel: f.channel,
        }),
        (None, layer) => FeatureChoice::Strongest {
            layer: layer.clone().or_else(|| a.layer.clone()),
        },
    };
    if a.gradient_sign == GradientSignArg::Positive
        && !names.iter().any(|n| n == "saliency" || n == "smoothgrad")
    {
        bail!("--gradient-sign applies to the saliency and smoothgrad methods: add one to --method");
    }
    let loaded = a.model.load()?;
    let bars = indicatif::MultiProgress::new();
    let options = MethodOptions {
        occlusion: a.perturbation.occlusion(&loaded.pipeline, occlusion_feature),
        rise: a.perturbation.rise(),
        graphcut: GraphCutLocalisation {
            colour: GraphCutLocalisation::colour_of_normalisation(loaded.pipeline.mean, loaded.pipeline.std),
            ..Default::default()
        },
        ..options
    };
    let explainers: Vec<Box<dyn Explainer>> = names
        .iter()
        .map(|n| {
            if let (Some(f), "deconvnet") = (&feature, n.as_str()) {
                return Ok(Box::new(f.clone()) as Box<dyn Explainer>);
            }
            let options = MethodOptions {
                progress: progress_hook(
                    &bars,
                    methods().iter().find(|m| m.name == n).map_or("", |m| m.name),
                ),
                ..options.clone()
            };
            by_name_with(n, &options).with_context(|| {
                let known: Vec<&str> = methods().iter().map(|m| m.name).collect();
                format!(
                    "--method '{n}': unknown method (known: {}, or all)",
                    known.join(", ")
                )
            })
        })
        .collect::<Result<_>>()?;
    let model = &loaded.model;
    let explainers = if a.method.iter().any(|m| m == "all") {
        skip_unfitted_lcam(explainers, &options, model)
    } else {
        explainers
    };
    let k = model.num_classes();
    if let Some(&bad) = a.class.iter().find(|&&c| c >= k) {
        bail!("--class {bad}: the model has {k} classes (0..={})", k - 1);
    }
    let device = model.device();
    // (label, stem) per image and the batches of inputs.
    let mut inputs: Vec<(String, String)> = Vec::new();
    let mut batches: Vec<Tensor<4>> = Vec::new();
    if let Some(path) = &a.tensor {
        let x = read_input_tensor(path, &device)?;
        let n = x.dims()[0];
        for i in 0..n {
            let s = if n == 1 {
                stem(path)
            } else {
                format!("{}_{i}", stem(path))
            };
            inputs.push((format!("{}[{i}]", path.display()), s));
        }
        for start in (0..n).step_by(a.batch_size) {
            batches.push(x.clone().narrow(0, start, a.batch_size.min(n - start)));
        }
    } else {
        for chunk in a.images.chunks(a.batch_size) {
            let paths: Vec<&Path> = chunk.iter().map(|p| p.as_path()).collect();
            batches.push(loaded.pipeline.load_batch(&paths, &device)?);
            inputs.extend(chunk.iter().map(|p| (p.display().to_string(), stem(p))));
        }
    }
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create '{}'", a.out.display()))?;
    let ranks = if a.class.is_empty() {
        a.top.unwrap_or(1)
    } else {
        a.class.len()
    };
    let progress = bars.add(indicatif::ProgressBar::new(
        (inputs.len() * explainers.len() * ranks) as u64,
    ));
    progress.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:30} {pos}/{len} explanations, {elapsed} (ETA {eta}) {msg}",
        )
        .expect("valid template"),
    );
    let mut summary = Vec::new();
    let mut timings: Vec<(String, f64, usize, usize)> =
        names.iter().map(|n| (n.clone(), 0.0, 0, 0)).collect();
    let mut done = 0;
    let (mut shared_time, mut shared_passes) = (0.0f64, deepsight_explain::Passes::default());
    for x in batches {
        let n = x.dims()[0];
        let [_, _, h, w] = x.dims();
        let logits = to_vec(model.logits(x.clone())?);
        let tops: Vec<Vec<(usize, f32, f32)>> =
            (0..n).map(|i| top_k(&logits[i * k..(i + 1) * k], k)).collect();
        let classes_of = |i: usize| -> Vec<usize> {
            if a.class.is_empty() {
                tops[i].iter().take(ranks).map(|t| t.0).collect()
            } else {
                a.class.clone()
            }
        };
        let mut results: Vec<Vec<Result1>> = (0..n).map(|_| Vec::new()).collect();
        for r in 0..ranks {
            let request = Request {
                images: x.clone(),
                classes: (0..n).map(|i| classes_of(i)[r]).collect(),
                score: if a.probability {
                    Score::Probability
                } else {
                    Score::Logit
                },
                layer: a.layer.clone(),
            };
            // The gradient and CAM methods share one forward+backward per backward rule.
            let started = Instant::now();
            let mut needs = Vec::new();
            for e in &explainers {
                needs.extend(e.needs(model, &request)?);
            }
            let shared = SharedPasses::run(model, &request, &needs)?;
            shared_time += started.elapsed().as_secs_f64();
            shared_passes.forward += shared.passes.forward;
            shared_passes.backward += shared.passes.backward;
            for (m, e) in explainers.iter().enumerate() {
                progress.set_message(e.name());
                let started = Instant::now();
                let Explanation {
                    maps,
                    raw,
                    passes,
                    extra,
                } = e.explain_shared(model, &request, &shared)?;
                timings[m].1 += started.elapsed().as_secs_f64();
                timings[m].2 += passes.forward;
                timings[m].3 += passes.backward;
                let mut raw = raw.map(|r| r.into_iter());
                for (i, map) in maps.into_iter().enumerate() {
                    results[i].push(Result1 {
                        method: e.name(),
                        signed: e.signed(),
                        class: request.classes[i],
                        map,
                        raw: raw.as_mut().and_then(|r| r.next()),
                        extra: extra
                            .iter()
                            .filter_map(|x| {
                                let caption = x.captions.get(i).cloned();
                                Some((x.name, x.maps.get(i)?.clone(), x.kind, caption))
                            })
                            .collect(),
                    });
                }
                progress.inc(n as u64);
            }
        }
        let x_all = to_vec(x);
        for (i, res) in results.into_iter().enumerate() {
            let (label, stem) = &inputs[done + i];
            let prob = |c: usize| tops[i].iter().find(|t| t.0 == c).map_or(0.0, |t| t.1);
            let class_name = |c: usize| {
                loaded
                    .class_names
                    .get(c)
                    .cloned()
                    .unwrap_or_else(|| format!("class {c}"))
            };
            // The model's view of the image, back in 0..255 RGB.
            let view = loaded
                .pipeline
                .denormalise(&x_all[i * 3 * h * w..(i + 1) * 3 * h * w], [h, w]);
            let base = Canvas {
                width: view.width,
                height: view.height,
                pixels: view.pixels,
            };
            let mut panels = vec![Panel {
                canvas: base.clone(),
                title: vec![
                    "input".into(),
                    format!("top: {}", class_name(tops[i][0].0)),
                    format!("p = {:.3}", tops[i][0].1),
                ],
            }];
            let suffix = |c: usize| if ranks > 1 { format!("@{c}") } else { String::new() };
            let mut files = Vec::new();
            let mut raw_out = Weights::default();
            for r in &res {
                let overlay = overlay_of(&base, &r.map, r.signed, cmap, a.alpha);
                let file = a.out.join(format!(
                    "{stem}.{}{}.png",
                    r.method,
                    suffix(r.class).replace('@', ".")
                ));
                write_atomic(&file, &overlay.png())?;
                files.push(file.display().to_string());
                let title = match (&feature, r.method) {
                    (Some(f), "deconvnet") => {
                        vec![
                            r.method.into(),
                            format!("{}:{}", f.layer, f.channel),
                            "top activation".into(),
                        ]
                    }
                    _ => vec![
                        r.method.into(),
                        class_name(r.class),
                        format!("p = {:.3}", prob(r.class)),
                    ],
                };
                panels.push(Panel {
                    canvas: overlay,
                    title,
                });
                for (name, grid, kind, caption) in &r.extra {
                    let (pic, range) = match kind {
                        ExtraKind::Attribution => {
                            (overlay_of(&base, grid, true, cmap, a.alpha), String::new())
                        }
                        _ => crate::extras::picture(&base, grid, *kind, cmap, a.alpha, &class_name),
                    };
                    let file = a.out.join(format!(
                        "{stem}.{}.{name}{}.png",
                        r.method,
                        suffix(r.class).replace('@', ".")
                    ));
                    write_atomic(&file, &pic.png())?;
                    files.push(file.display().to_string());
                    // A caption (occlusion's feature map) says more than the class name.
                    let what = caption.clone().unwrap_or_else(|| class_name(r.class));
                    let title = match kind {
                        ExtraKind::Attribution => {
                            vec![format!("{} {name}", r.method), what, "deconvnet".into()]
                        }
                        _ => vec![format!("{} {name}", r.method), what, range],
                    };
                    panels.push(Panel { canvas: pic, title });
                    if a.raw {
                        let shape = if grid.channels == 1 {
                            vec![grid.height, grid.width]
                        } else {
                            vec![grid.channels, grid.height, grid.width]
                        };
                        let t = WeightTensor {
                            shape,
                            data: grid.data.clone(),
                        };
                        raw_out
                            .tensors
                            .insert(format!("{}.{name}{}", r.method, suffix(r.class)), t);
                    }
                }
                if a.raw {
                    let name = format!("{}{}", r.method, suffix(r.class));
                    let shape = if r.map.channels == 1 {
                        vec![r.map.height, r.map.width]
                    } else {
                        vec![r.map.channels, r.map.height, r.map.width]
                    };
                    raw_out.tensors.insert(
                        name.clone(),
                        WeightTensor {
                            shape,
                            data: r.map.data.clone(),
                        },
                    );
                    if let Some(m) = &r.raw {
                        let t = WeightTensor {
                            shape: vec![m.height, m.width],
                            data: m.data.clone(),
                        };
                        raw_out.tensors.insert(format!("{name}.raw"), t);
                    }
                }
            }
            let montage_path = a.out.join(format!("{stem}.montage.png"));
            write_atomic(&montage_path, &montage(&panels, 5).png())?;
            let mut raw_path = None;
            if a.raw {
                let p = a.out.join(format!("{stem}.maps.safetensors"));
                raw_out.save_safetensors(&p)?;
                raw_path = Some(p.display().to_string());
            }
            let classes: Vec<_> = classes_of(i)
                .iter()
                .map(|&c| serde_json::json!({"class": c, "name": class_name(c), "probability": prob(c)}))
                .collect();
            summary.push(serde_json::json!({
                "input": label, "classes": classes, "montage": montage_path.display().to_string(),
                "overlays": files, "raw": raw_path,
            }));
            if !a.json {
                progress.suspend(|| println!("{label}: {}", montage_path.display()));
            }
        }
        done += n;
    }
    progress.finish_and_clear();
    if a.json {
        let methods: Vec<_> = timings
            .iter()
            .map(|(name, secs, f, b)| {
                serde_json::json!({"method": name, "seconds": secs, "ms_per_image": secs * 1e3 / inputs.len() as f64 / ranks as f64, "forward_passes": f, "backward_passes": b})
            })
            .collect();
        // Methods' seconds are their own work; the passes they share are timed once here, and
        // their `*_passes` say what each would cost alone.
        let shared = serde_json::json!({"seconds": shared_time, "forward_passes": shared_passes.forward, "backward_passes": shared_passes.backward});
        let v = serde_json::json!({"model": loaded.description, "images": summary, "methods": methods, "shared_passes": shared});
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}

/// `--method all` leaves out the learned methods (L-CAM, the explainer network) whose weights were trained for another model
/// (the shipped ones fit the embedded lite0 only), saying so; naming them explicitly refuses.
fn skip_unfitted_lcam(
    explainers: Vec<Box<dyn Explainer>>,
    options: &MethodOptions,
    model: &deepsight_runtime::GraphModel,
) -> Vec<Box<dyn Explainer>> {
    use deepsight_explain::learned::LcamVariant;
    explainers
        .into_iter()
        .filter(|e| {
            let lcam =
                |variant, weights: &Option<std::sync::Arc<deepsight_explain::learned::LcamWeights>>| {
                    weights
                        .as_ref()
                        .is_some_and(|w| w.check_fits(model, variant, &w.layer).is_ok())
                };
            let (fits, flag) = match e.name() {
                "l-cam-img" => (lcam(LcamVariant::Img, &options.lcam_img), "--lcam-weights"),
                "l-cam-fm" => (lcam(LcamVariant::Fm, &options.lcam_fm), "--lcam-weights"),
                "explainer" => (
                    options
                        .explainer
                        .as_ref()
                        .is_some_and(|w| w.check_fits(model).is_ok()),
                    "--explainer-weights",
                ),
                _ => return true,
            };
            if !fits {
                eprintln!(
                    "note: --method all leaves out {}: no weights for this model ({flag})",
                    e.name()
                );
            }
            fits
        })
        .collect()
}
