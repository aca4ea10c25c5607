use crate::model_arg::ModelArgs;
use anyhow::{Context, Result, bail};
use deepsight_models::{WeightTensor, Weights};
use deepsight_runtime::{Classifier, Tensor, TensorData};
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// Image files (any format the `image` crate reads).
    images: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// How many classes to print per image.
    #[arg(long, default_value_t = 5)]
    top: usize,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Classify a preprocessed NCHW input (tensor `input` of a .safetensors file) instead of images.
    #[arg(long, value_name = "FILE", conflicts_with = "images")]
    tensor: Option<PathBuf>,
    /// Write the raw logits (tensor `logits`, [N, classes]) to this .safetensors file.
    #[arg(long, value_name = "FILE")]
    logits_out: Option<PathBuf>,
    /// Classify every image of a labels file (`./FILE, label` lines, paths relative to the file)
    /// and report top-1 / top-5 accuracy.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["images", "tensor"])]
    labels: Option<PathBuf>,
    /// Images per forward pass.
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
}

/// Reads the `input` tensor of a safetensors file as `[N, C, H, W]`: float values, all finite,
/// at least one image.
pub fn read_input_tensor(path: &Path, device: &deepsight_runtime::Device) -> Result<Tensor<4>> {
    let w = Weights::from_safetensors(path)?;
    let Some(t) = w.tensors.get("input") else {
        if let Some(dtype) = w.skipped.get("input") {
            bail!(
                "'{}': tensor 'input' is of type {dtype}; it must hold floats (F32, F64, F16 or BF16)",
                path.display()
            );
        }
        bail!(
            "'{}': no tensor named 'input' (found: {:?})",
            path.display(),
            w.tensors.keys().chain(w.skipped.keys()).collect::<Vec<_>>()
        );
    };
    let [n, c, h, wd] = t.shape[..] else {
        bail!(
            "'{}': tensor 'input' has shape {:?}, expected [N, C, H, W]",
            path.display(),
            t.shape
        );
    };
    if n == 0 {
        bail!(
            "'{}': tensor 'input' holds no image (shape {:?})",
            path.display(),
            t.shape
        );
    }
    if let Some(i) = t.data.iter().position(|v| !v.is_finite()) {
        let bad = t.data.iter().filter(|v| !v.is_finite()).count();
        bail!(
            "'{}': tensor 'input' holds {bad} values that are not finite numbers (the first, {}, at index {i})",
            path.display(),
            t.data[i]
        );
    }
    Ok(Tensor::from_data(
        TensorData::new(t.data.clone(), [n, c, h, wd]),
        device,
    ))
}

/// `(image path, label, line number)` of a labels file.
fn read_labels(path: &Path) -> Result<Vec<(PathBuf, usize, usize)>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read '{}'", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let bad = || {
                anyhow::anyhow!(
                    "'{}' line {}: expected 'FILE, label', got '{l}'",
                    path.display(),
                    i + 1
                )
            };
            let (file, label) = l.rsplit_once(',').ok_or_else(bad)?;
            Ok((
                dir.join(file.trim()),
                label.trim().parse().map_err(|_| bad())?,
                i + 1,
            ))
        })
        .collect()
}

pub fn run(mut a: Args) -> Result<()> {
    let (labels, lines) = match &a.labels {
        Some(path) => {
            let rows = read_labels(path)?;
            a.images = rows.iter().map(|p| p.0.clone()).collect();
            (
                Some(rows.iter().map(|p| p.1).collect::<Vec<_>>()),
                rows.iter().map(|p| p.2).collect(),
            )
        }
        None => (None, Vec::new()),
    };
    if a.images.is_empty() && a.tensor.is_none() {
        bail!("nothing to classify: give image files or --tensor FILE");
    }
    if a.top == 0 || a.batch_size == 0 {
        bail!("--top and --batch-size must be at least 1");
    }
    let loaded = a.model.load()?;
    let model = &loaded.model;
    let k = model.num_classes();
    if a.top > k {
        bail!("--top {}: the model has {k} classes", a.top);
    }
    if let (Some(labels), Some(path)) = (&labels, &a.labels)
        && let Some(i) = labels.iter().position(|&l| l >= k)
    {
        bail!(
            "'{}' line {}: label {} is out of range: the model has {k} classes (0..={})",
            path.display(),
            lines[i],
            labels[i],
            k - 1
        );
    }
    let device = model.device();
    let (inputs, logits): (Vec<String>, Vec<Vec<f32>>) = if let Some(path) = &a.tensor {
        let x = read_input_tensor(path, &device)?;
        let n = x.dims()[0];
        let logits = model.logits(x).with_context(|| format!("'{}'", path.display()))?;
        let names = (0..n).map(|i| format!("{}[{i}]", path.display())).collect();
        (names, rows(logits)?)
    } else {
        let pipeline = loaded.pipeline;
        let mut all = Vec::new();
        for chunk in a.images.chunks(a.batch_size) {
            let paths: Vec<&Path> = chunk.iter().map(|p| p.as_path()).collect();
            let x = pipeline.load_batch(&paths, &device)?;
            all.extend(rows(model.logits(x)?)?);
        }
        (a.images.iter().map(|p| p.display().to_string()).collect(), all)
    };
    if let Some(out) = &a.logits_out {
        let k = logits.first().map_or(0, |r| r.len());
        let mut w = Weights::default();
        w.tensors.insert(
            "logits".into(),
            WeightTensor {
                shape: vec![logits.len(), k],
                data: logits.iter().flatten().copied().collect(),
            },
        );
        w.save_safetensors(out)?;
    }
    let top = a.top.max(if labels.is_some() { 5 } else { 0 });
    let results: Vec<_> = inputs
        .iter()
        .zip(&logits)
        .map(|(l, row)| (l, deepsight_pipeline::top_k(row, top)))
        .collect();
    if let Some(labels) = labels {
        let hit = |k: usize| {
            let hits = results
                .iter()
                .zip(&labels)
                .filter(|((_, t), y)| t.iter().take(k).any(|c| c.0 == **y));
            hits.count() as f64 / labels.len() as f64 * 100.0
        };
        let (top1, top5) = (hit(1), hit(5));
        if a.json {
            let v = serde_json::json!({"model": loaded.description, "images": labels.len(), "top1": top1, "top5": top5});
            println!("{}", serde_json::to_string_pretty(&v)?);
        } else {
            println!(
                "{}: top-1 {top1:.2}%, top-5 {top5:.2}% over {} images",
                loaded.description,
                labels.len()
            );
        }
        return Ok(());
    }
    if a.json {
        let v: Vec<_> = results
            .iter()
            .map(|(label, top)| {
                let top: Vec<_> = top
                    .iter()
                    .take(a.top)
                    .map(|&(c, p, s)| serde_json::json!({"class": c, "name": loaded.class_names.get(c), "probability": p, "logit": s}))
                    .collect();
                serde_json::json!({"input": label, "top": top})
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({"model": loaded.description, "results": v}))?
        );
    } else {
        for (label, top) in results {
            println!("{label}");
            for (rank, (c, p, _)) in top.iter().take(a.top).enumerate() {
                let name = loaded.class_names.get(*c).map_or("?", |s| s.as_str());
                println!("  {}. {:6.2}%  {name} ({c})", rank + 1, p * 100.0);
            }
        }
    }
    Ok(())
}

fn rows(logits: Tensor<2>) -> Result<Vec<Vec<f32>>> {
    let [n, k] = logits.dims();
    let v = deepsight_runtime::to_vec(logits);
    deepsight_pipeline::finite_scores(&v, k)?;
    Ok((0..n).map(|i| v[i * k..(i + 1) * k].to_vec()).collect())
}
