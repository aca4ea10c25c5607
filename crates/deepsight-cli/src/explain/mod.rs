//! `deepsight explain`: where the model looks, by every requested method, as pictures (a montage
//! and one overlay per method), optionally raw maps (safetensors) and a JSON summary. A thin front
//! end: the work is `deepsight_pipeline`'s; this file reads the inputs and writes the files.

mod args;

pub use args::Args;

use crate::classify::read_input_tensor;
use crate::perturbation_args::progress_hook;
use anyhow::{Context, Result, anyhow};
use deepsight_models::write_atomic;
use deepsight_pipeline::{Hooks, ImageReport, Pipeline, PipelineError};
use deepsight_runtime::{Classifier, Tensor};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// A pipeline error in the CLI's words: an invalid option is named by its flag.
pub fn flag_error(e: PipelineError) -> anyhow::Error {
    match e {
        PipelineError::Invalid { option, reason } => anyhow!("--{}{reason}", option.replace('_', "-")),
        e => e.into(),
    }
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned())
}

/// `(label, file stem)` of one input.
type Named = (String, String);

/// `(label, file stem)` per input and the batches of model inputs.
fn inputs(a: &Args, pipeline: &Pipeline) -> Result<(Vec<Named>, Vec<Tensor<4>>)> {
    let (mut names, mut batches) = (Vec::new(), Vec::new());
    let device = pipeline.model().device();
    if let Some(path) = &a.tensor {
        let x = read_input_tensor(path, &device)?;
        let n = x.dims()[0];
        for i in 0..n {
            let s = if n == 1 {
                stem(path)
            } else {
                format!("{}_{i}", stem(path))
            };
            names.push((format!("{}[{i}]", path.display()), s));
        }
        for start in (0..n).step_by(a.batch_size) {
            batches.push(x.clone().narrow(0, start, a.batch_size.min(n - start)));
        }
    } else {
        for chunk in a.images.chunks(a.batch_size) {
            let paths: Vec<&Path> = chunk.iter().map(|p| p.as_path()).collect();
            batches.push(pipeline.preprocess().load_batch(&paths, &device)?);
            names.extend(chunk.iter().map(|p| (p.display().to_string(), stem(p))));
        }
    }
    Ok((names, batches))
}

/// Writes one image's overlays, extra pictures, montage and raw maps; its JSON summary.
fn write_image(a: &Args, label: &str, stem: &str, r: &ImageReport) -> Result<serde_json::Value> {
    let mut files = Vec::new();
    let mut write = |name: String, bytes: Vec<u8>| -> Result<String> {
        let file = a.out.join(name);
        write_atomic(&file, &bytes)?;
        files.push(file.display().to_string());
        Ok(file.display().to_string())
    };
    for m in &r.results {
        let suffix = r.class_suffix(m.class).replace('@', ".");
        write(format!("{stem}.{}{suffix}.png", m.method), m.overlay.png())?;
        for x in &m.extras {
            write(
                format!("{stem}.{}.{}{suffix}.png", m.method, x.name),
                x.picture.png(),
            )?;
        }
    }
    let montage = a.out.join(format!("{stem}.montage.png"));
    write_atomic(&montage, &r.montage().png())?;
    let raw = if a.raw {
        let p = a.out.join(format!("{stem}.maps.safetensors"));
        r.raw_tensors().save_safetensors(&p)?;
        Some(p.display().to_string())
    } else {
        None
    };
    let classes: Vec<_> = r
        .classes
        .iter()
        .map(|c| serde_json::json!({"class": c.index, "name": c.name, "probability": c.probability}))
        .collect();
    Ok(serde_json::json!({
        "input": label, "classes": classes, "montage": montage.display().to_string(),
        "overlays": files, "raw": raw,
    }))
}

pub fn run(a: Args) -> Result<()> {
    let request = a.request()?;
    let pipeline = Pipeline::new(a.model.load()?);
    let bars = indicatif::MultiProgress::new();
    let main = bars.add(indicatif::ProgressBar::hidden());
    let offset = Arc::new(AtomicU64::new(0));
    let (batch_start, shown) = (offset.clone(), main.clone());
    let bars_of = bars.clone();
    let hooks = Hooks {
        progress_of: Some(Arc::new(move |m| progress_hook(&bars_of, m))),
        explained: Some(Arc::new(move |done, _| {
            shown.set_position(batch_start.load(Ordering::Relaxed) + done as u64)
        })),
        cancel: None,
    };
    let prepared = pipeline.prepare(&request, &hooks).map_err(flag_error)?;
    for note in &prepared.notes {
        eprintln!("note: {note}");
    }
    let (names, batches) = inputs(&a, &pipeline)?;
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create '{}'", a.out.display()))?;
    main.set_length((names.len() * prepared.per_image()) as u64);
    main.set_draw_target(indicatif::ProgressDrawTarget::stderr());
    main.set_style(
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} explanations, {elapsed} (ETA {eta})")
            .expect("valid template"),
    );
    let (mut summary, mut done) = (Vec::new(), 0);
    for x in batches {
        let reports = pipeline.explain(&prepared, x, &hooks).map_err(flag_error)?;
        for (r, (label, stem)) in reports.iter().zip(&names[done..]) {
            let written = write_image(&a, label, stem, r)?;
            if !a.json {
                main.suspend(|| println!("{label}: {}", written["montage"].as_str().unwrap_or_default()));
            }
            summary.push(written);
        }
        done += reports.len();
        offset.store((done * prepared.per_image()) as u64, Ordering::Relaxed);
    }
    main.finish_and_clear();
    if a.json {
        let (timings, shared) = prepared.timings();
        let per = (names.len() * prepared.per_image() / timings.len().max(1)).max(1) as f64;
        let methods: Vec<_> = timings
            .iter()
            .map(|t| serde_json::json!({"method": t.method, "seconds": t.seconds, "ms_per_image": t.seconds * 1e3 / per, "forward_passes": t.forward_passes, "backward_passes": t.backward_passes}))
            .collect();
        // Methods' seconds are their own work; the passes they share are timed once here, and
        // their `*_passes` say what each would cost alone.
        let shared = serde_json::json!({"seconds": shared.seconds, "forward_passes": shared.forward_passes, "backward_passes": shared.backward_passes});
        let v = serde_json::json!({"model": pipeline.description(), "images": summary, "methods": methods, "shared_passes": shared});
        println!("{}", serde_json::to_string_pretty(&v)?);
    }
    Ok(())
}
