//! `deepsight evaluate`: which explanation is faithful, over a labelled image set. Each metric is
//! the named profile of a reference implementation (`deepsight_eval`), and every report says
//! which. Results are appended per (image, method) to `records.jsonl` in the output folder, each
//! keyed by a hash of everything that determines it (`fingerprint`), so a stopped run continues
//! where it stopped and a run of another configuration never reuses them: `run.json` says what
//! the folder holds, and another configuration is refused. One process writes a folder at a time
//! (`lock`). `--shard I/N` / `--shards N` evaluate every N-th image into `<out>/shard-I-of-N`
//! (`shard`), and `--merge` turns the shards into the report of one run (`merge`).

mod dataset;
mod errors;
mod fingerprint;
mod image;
mod lock;
mod merge;
mod records;
mod report;
mod run_file;
mod saliency;
mod segmentation;
mod shard;

use crate::model_arg::ModelArgs;
use anyhow::{Context, Result, bail};
use deepsight_eval::Normaliser;
use deepsight_eval::adic::AdIcProfile;
use deepsight_explain::Explainer;
use deepsight_explain::localisation::GraphCutLocalisation;
use deepsight_explain::registry::{MethodOptions, by_name_with, methods};
use deepsight_runtime::Classifier;
use run_file::{DatasetInfo, ImageEntry, RunFile};
use serde_json::json;
use shard::Shard;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// The metrics `evaluate` computes.
#[derive(Clone, Copy, PartialEq, Eq, Debug, clap::ValueEnum)]
pub enum Metric {
    /// Average Drop / Increase in Confidence at keep 100%, 50%, 15% (profile lcam or pgc).
    Adic,
    /// Deletion AUC and curve (profile rise).
    Deletion,
    /// Insertion AUC and curve (profile rise).
    Insertion,
    /// Pointing game for the ground-truth class, with the centre baseline (profile torchray).
    Pointing,
    /// Top-1 localisation error: box from the map at 15% of its max, IoU >= 0.5 (ILSVRC).
    Localisation,
    /// ROAD MoRF and LeRF with noisy linear imputation (profile road).
    Road,
    /// Sanity check: Spearman correlation with the maps of cascadingly randomised models (Adebayo et al.).
    Sanity,
    /// Misclassified images: the map of the predicted class beside the map of the true class, their Pearson r and IoU of the top 15%.
    Errors,
    /// Maps of every ground-truth class against the pixel masks (masks/), with constant, intensity and perfect baselines (profile nn-explainer).
    Segmentation,
    /// Mask-free saliency metric of Dabkowski & Gal, log(max(mean m, 0.05)) - log p_c(m * x) for the clean top-1 c, lower is better, with the mean map; soft mask area as Stalder et al., not the tightest rectangular crop (profile stalder).
    Saliency,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum AdIcProfileArg {
    /// L-CAM's evaluation code (relative drop, the map multiplies the [0, 1] image).
    Lcam,
    /// pytorch-grad-cam's (absolute drop, the map multiplies the normalised tensor).
    Pgc,
}

#[derive(clap::Args)]
pub struct Args {
    /// A folder with `dataset.txt` (and optionally `annotations.json` and `masks/`), or the list file.
    #[arg(long, required_unless_present = "merge")]
    data: Option<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    lcam: crate::lcam_args::LcamArgs,
    /// Methods to evaluate (`deepsight methods` lists them).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "gradcam,gradcam++,saliency,guided-backprop"
    )]
    methods: Vec<String>,
    /// Metrics to compute.
    #[arg(long, value_delimiter = ',', value_enum, default_values_t = [Metric::Adic, Metric::Pointing, Metric::Localisation])]
    metrics: Vec<Metric>,
    /// Evaluate only the first N images of the list (N >= 1).
    #[arg(long)]
    limit: Option<usize>,
    /// Output folder: run.json (the configuration), records.jsonl (resumable), results.{md,csv,json},
    /// deletion/insertion plots, errors.md and errors/ (metric errors). With --shard / --shards,
    /// the shard writes its sub-folder shard-I-of-N.
    #[arg(long, default_value = "deepsight-eval")]
    out: PathBuf,
    /// Evaluate only shard I of N (0-based I): image k of the list when k mod N == I.
    #[arg(long, value_name = "I/N", conflicts_with = "shards")]
    shard: Option<String>,
    /// Evaluate one of N shards, its 0-based index read from JOB_COMPLETION_INDEX (Kubernetes
    /// Indexed Job) or else SLURM_ARRAY_TASK_ID (Slurm job array, --array=0-(N-1)).
    #[arg(long, value_name = "N")]
    shards: Option<usize>,
    /// Discard the records of the output folder (of any configuration) and start over.
    #[arg(long)]
    fresh: bool,
    /// Merge the outputs of shards (their folders, or a folder holding shard-I-of-N folders) into
    /// the report of one run in --out. The configuration comes from the shards' run.json.
    #[arg(long, value_name = "DIR", num_args = 1.., conflicts_with_all = ["data", "shard", "shards", "limit", "fresh", "methods", "metrics"])]
    merge: Vec<PathBuf>,
    /// Images per forward pass inside the metrics and the many-pass methods.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// AD/IC profile.
    #[arg(long, value_enum, default_value_t = AdIcProfileArg::Lcam)]
    adic_profile: AdIcProfileArg,
    /// Pixels per deletion / insertion step (the RISE code's 224 at 224x224).
    #[arg(long, default_value_t = 224)]
    causal_step: usize,
    /// Sanity check: how many weighted layers to randomise, from the top, one more per step.
    #[arg(long, default_value_t = 8)]
    sanity_depth: usize,
    /// RISE: random masks per image.
    #[arg(long, default_value_t = 4000)]
    rise_masks: usize,
    /// Seed of the methods' and ROAD's random choices.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

const KEEPS: [f32; 3] = [1.0, 0.5, 0.15];

fn adic_profile(p: AdIcProfileArg) -> AdIcProfile {
    match p {
        AdIcProfileArg::Lcam => AdIcProfile::Lcam,
        AdIcProfileArg::Pgc => AdIcProfile::Pgc,
    }
}

/// The shard of this process, checked before any work.
fn shard_of(a: &Args) -> Result<Option<Shard>> {
    Ok(match (&a.shard, a.shards) {
        (Some(s), _) => Some(Shard::parse(s)?),
        (None, Some(n)) => Some(Shard::from_env(n, |k| std::env::var(k).ok())?),
        (None, None) => None,
    })
}

pub fn run(a: Args) -> Result<()> {
    if !a.merge.is_empty() {
        return merge::run(&a.merge, &a.out);
    }
    if a.batch_size == 0 || a.causal_step == 0 {
        bail!("--batch-size and --causal-step must be at least 1");
    }
    dataset::check_limit(a.limit)?;
    let shard = shard_of(&a)?;
    let Some(data) = &a.data else {
        bail!("--data is required (or --merge DIR...)");
    };
    let set = dataset::load(data, a.limit)?;
    let items = &set.items;
    let known: Vec<&str> = methods().iter().map(|m| m.name).collect();
    let loaded = a.model.load()?;
    dataset::check_labels(&set.list, items, loaded.model.num_classes())?;
    let options = MethodOptions {
        seed: a.seed,
        batch_size: a.batch_size,
        rise: deepsight_explain::perturbation::rise::Rise {
            masks: a.rise_masks,
            ..Default::default()
        },
        graphcut: GraphCutLocalisation {
            colour: GraphCutLocalisation::colour_of_normalisation(loaded.pipeline.mean, loaded.pipeline.std),
            ..Default::default()
        },
        ..a.lcam.apply(MethodOptions::default())?
    };
    let explainers: Vec<Box<dyn Explainer>> = a
        .methods
        .iter()
        .map(|n| {
            by_name_with(n, &options)
                .with_context(|| format!("--methods '{n}': unknown method (known: {})", known.join(", ")))
        })
        .collect::<Result<_>>()?;
    let needs_boxes = a
        .metrics
        .iter()
        .any(|m| matches!(m, Metric::Pointing | Metric::Localisation));
    if needs_boxes && items.iter().all(|i| i.boxes.is_none()) {
        bail!(
            "--metrics pointing/localisation need ground-truth boxes: no annotations.json beside '{}'",
            data.display()
        );
    }
    let segment = a.metrics.contains(&Metric::Segmentation);
    if segment && items.iter().all(|i| i.mask.is_none()) {
        bail!(
            "--metrics segmentation needs ground-truth masks: no masks/<stem>.png beside '{}'",
            data.display()
        );
    }
    let mut rows = a.methods.clone();
    if segment {
        rows.extend(segmentation::BASELINES.map(String::from));
    }
    // What determines the records: hashed before any output is touched.
    let config = fingerprint::config(&a, &loaded)?;
    let mut method_options = BTreeMap::new();
    for m in &rows {
        method_options.insert(m.clone(), fingerprint::method_options(&a, m)?);
    }
    let mine: Vec<(usize, &dataset::Item)> = items
        .iter()
        .enumerate()
        .filter(|(k, _)| shard.is_none_or(|s| s.owns(*k)))
        .collect();
    let images = mine
        .iter()
        .map(|(k, it)| {
            Ok(ImageEntry {
                index: *k,
                name: it.name.clone(),
                fingerprint: fingerprint::image_fingerprint(it)?,
                baselines: segment && it.mask.is_some(),
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut run = RunFile {
        format: run_file::FORMAT.into(),
        fingerprint: fingerprint::hash_value(&config),
        config,
        methods: rows.clone(),
        method_options,
        model_description: loaded.description.clone(),
        dataset: DatasetInfo {
            list: set.list.display().to_string(),
            sha256: set.sha256.clone(),
            limit: a.limit,
            images: items.len(),
        },
        shard,
        images,
        complete: false,
    };
    let out = match shard {
        Some(s) => a.out.join(s.folder()),
        None => a.out.clone(),
    };
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create '{}'", out.display()))?;
    let _lock = lock::OutLock::acquire(&out)?;
    let records_path = out.join(records::RECORDS_FILE);
    if a.fresh {
        discard(&out)?;
    }
    match RunFile::read(&out)? {
        Some(old) => {
            old.check_resumable(&run, &out)?;
            run = run.keeping_options_of(&old);
        }
        None if std::fs::metadata(&records_path).is_ok_and(|m| m.len() > 0) => bail!(
            "'{}' holds records but no run.json (written by an older deepsight evaluate): use a new --out, or \
             --fresh to discard them",
            out.display()
        ),
        None => {}
    }
    let mut records = records::Records::open(&records_path)?;
    check_same_images(&records, &run, &records_path)?;
    run.write(&out)?;
    if let Some(s) = shard {
        eprintln!(
            "shard {} of {} (0-based): {} of {} images -> '{}'",
            s.index,
            s.count,
            run.images.len(),
            items.len(),
            out.display()
        );
    }
    let model = &loaded.model;
    let profile = adic_profile(a.adic_profile);
    let plan: Vec<(&dataset::Item, HashMap<String, String>)> = mine
        .iter()
        .zip(&run.images)
        .map(|((_, it), img)| (*it, run.expected(img).into_iter().collect::<HashMap<_, _>>()))
        .filter(|(_, keys)| keys.values().any(|k| !records.is_done(k)))
        .collect();
    let bar = indicatif::ProgressBar::new(plan.len() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} images, {elapsed} (ETA {eta}) {msg}")
            .expect("valid template"),
    );
    if plan.len() < run.images.len() {
        eprintln!(
            "resuming: {} of {} images already evaluated in '{}'",
            run.images.len() - plan.len(),
            run.images.len(),
            records_path.display()
        );
    }
    let ctx = image::Ctx {
        model,
        graph_model: model,
        sanity_depth: a.sanity_depth,
        normaliser: Normaliser {
            mean: loaded.pipeline.mean,
            std: loaded.pipeline.std,
        },
        profile,
        metrics: &a.metrics,
        batch_size: a.batch_size,
        causal_step: a.causal_step,
        seed: a.seed,
        out: &out,
        class_names: &loaded.class_names,
    };
    for (item, keys) in plan {
        bar.set_message(item.name.clone());
        let pending_key = |name: &str| keys.get(name).filter(|k| !records.is_done(k)).is_some();
        let image = loaded
            .pipeline
            .load_batch(&[item.path.as_path()], &model.device())
            .with_context(|| format!("'{}'", item.path.display()))?;
        let pending: Vec<&dyn Explainer> = explainers
            .iter()
            .map(|e| e.as_ref())
            .filter(|e| pending_key(e.name()))
            .collect();
        let baselines: Vec<&str> = segmentation::BASELINES
            .into_iter()
            .filter(|b| pending_key(b))
            .collect();
        let truths = if segment {
            segmentation::load_truths(item, &loaded.pipeline, model.num_classes())?
        } else {
            None
        };
        for mut r in ctx.evaluate_image(item, image, &pending, truths.as_ref(), &baselines)? {
            let key = r["method"].as_str().and_then(|m| keys.get(m)).cloned();
            r["key"] = json!(key);
            records.push(r)?;
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let ordered: Vec<serde_json::Value> = run
        .images
        .iter()
        .flat_map(|img| run.expected(img))
        .filter_map(|(_, k)| records.get(&k).cloned())
        .collect();
    report::write(
        &out,
        &ordered,
        &a.metrics,
        &rows,
        profile,
        run.images.len(),
        &loaded.description,
    )?;
    run.complete = true;
    run.write(&out)
}

/// `--fresh`: removes what a run leaves in `out` (records, run.json, the error pictures).
fn discard(out: &std::path::Path) -> Result<()> {
    for name in [records::RECORDS_FILE, run_file::RUN_FILE] {
        let p = out.join(name);
        match std::fs::remove_file(&p) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("--fresh: cannot remove '{}'", p.display()));
            }
            _ => {}
        }
    }
    let errors = out.join("errors");
    if errors.is_dir() {
        std::fs::remove_dir_all(&errors)
            .with_context(|| format!("--fresh: cannot remove '{}'", errors.display()))?;
    }
    Ok(())
}

/// Same configuration, but a record of one of this run's (image, method) under another key: the
/// image's bytes or ground truth changed since. Refused rather than mixed.
fn check_same_images(records: &records::Records, run: &RunFile, path: &std::path::Path) -> Result<()> {
    let mut keys: HashMap<(&str, &str), &str> = HashMap::new();
    for r in &records.all {
        if let (Some(i), Some(m), Some(k)) = (r["image"].as_str(), r["method"].as_str(), records::key_of(r)) {
            keys.insert((i, m), k);
        }
    }
    for img in &run.images {
        for (row, key) in run.expected(img) {
            if let Some(old) = keys.get(&(img.name.as_str(), row.as_str()))
                && *old != key
                && !records.is_done(&key)
            {
                bail!(
                    "'{}': the record of '{}' by {row} was computed from other image bytes or ground truth \
                     (labels, boxes, mask): use a new --out, or --fresh to discard them",
                    path.display(),
                    img.name
                );
            }
        }
    }
    Ok(())
}
