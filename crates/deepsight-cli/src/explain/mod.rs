//! `deepsight explain`: where the model looks, by every requested method, as pictures (a montage
//! and one overlay per method), optionally raw maps (safetensors) and a JSON summary. A thin front
//! end: the work is `deepsight_pipeline`'s; this file reads the inputs and writes the files.

mod args;

pub use args::Args;

use crate::classify::read_input_tensor;
use crate::perturbation_args::progress_hook;
use anyhow::{Result, anyhow};
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

/// One output stem per image, never shared: images of the same name in different folders
/// (`a/dog.jpg b/dog.jpg`) are told apart by their folders (`a_dog`, `b_dog`), so that no
/// output overwrites another. The same file given twice is refused.
fn unique_stems(paths: &[std::path::PathBuf]) -> Result<Vec<String>> {
    let mut seen = std::collections::HashSet::new();
    for p in paths {
        if !seen.insert(std::fs::canonicalize(p).unwrap_or_else(|_| p.clone())) {
            anyhow::bail!("'{}' is given twice", p.display());
        }
    }
    // The last `k` parts of the path (the file without its extension), joined by '_'.
    let named = |p: &Path, k: usize| -> String {
        let mut parts: Vec<String> = p
            .parent()
            .into_iter()
            .flat_map(|d| d.components())
            .filter_map(|c| match c {
                std::path::Component::Normal(s) => Some(s.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        parts.push(stem(p));
        parts[parts.len().saturating_sub(k)..].join("_")
    };
    let mut depth = vec![1; paths.len()];
    loop {
        let names: Vec<String> = paths.iter().zip(&depth).map(|(p, &k)| named(p, k)).collect();
        let mut grew = false;
        for i in 0..paths.len() {
            if names.iter().filter(|n| **n == names[i]).count() > 1
                && named(&paths[i], depth[i] + 1) != names[i]
            {
                depth[i] += 1;
                grew = true;
            }
        }
        if !grew {
            let mut taken = std::collections::HashMap::new();
            // Paths that no folder tells apart (`./x.png` and `x.jpg`) get a counter.
            return Ok(names
                .into_iter()
                .map(|n| {
                    let count = taken.entry(n.clone()).or_insert(0);
                    *count += 1;
                    if *count == 1 { n } else { format!("{n}-{count}") }
                })
                .collect());
        }
    }
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
        let stems = unique_stems(&a.images)?;
        for chunk in a.images.chunks(a.batch_size) {
            let paths: Vec<&Path> = chunk.iter().map(|p| p.as_path()).collect();
            batches.push(pipeline.preprocess().load_batch(&paths, &device)?);
        }
        names.extend(
            a.images
                .iter()
                .zip(stems)
                .map(|(p, s)| (p.display().to_string(), s)),
        );
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

#[cfg(test)]
mod tests {
    use super::unique_stems;
    use std::path::PathBuf;

    fn stems(paths: &[&str]) -> Vec<String> {
        unique_stems(&paths.iter().map(PathBuf::from).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn images_of_one_name_in_two_folders_get_two_stems() {
        assert_eq!(
            stems(&["a/dog.jpg", "b/dog.jpg", "cat.png"]),
            ["a_dog", "b_dog", "cat"]
        );
        assert_eq!(stems(&["x/a/dog.jpg", "y/a/dog.jpg"]), ["x_a_dog", "y_a_dog"]);
        assert_eq!(stems(&["dog.jpg", "dog.png"]), ["dog", "dog-2"]);
        let twice = unique_stems(&[PathBuf::from("q/z.png"), PathBuf::from("q/z.png")]).unwrap_err();
        assert_eq!(twice.to_string(), "'q/z.png' is given twice");
    }
}
