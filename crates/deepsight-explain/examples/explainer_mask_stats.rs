//! The size of the explainer's masks on photos: for each image of a `dataset.txt` list, the mean
//! over the image of the explainer's mask `sigmoid(up(S_c))` of the embedded Lite0's top-1 class
//! (unnormalised: the mask itself), and its distribution over the images, with the time per
//! explainer pass. `cargo run --release -p deepsight-explain --example explainer_mask_stats --
//! WEIGHTS LIST [LIMIT]` (WEIGHTS `-`: the shipped ones).

use deepsight_explain::learned::{ExplainerWeights, NnExplainer};
use deepsight_explain::{Explainer, Request, Score};
use deepsight_runtime::{Classifier, default_device, to_vec};
use std::sync::Arc;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (weights, list) = match &args[..] {
        [_, w, l, ..] => (w.clone(), std::path::PathBuf::from(l)),
        _ => return Err("usage: explainer_mask_stats WEIGHTS|- LIST [LIMIT]".into()),
    };
    let limit: usize = args.get(3).map_or(Ok(usize::MAX), |s| s.parse())?;
    let w = if weights == "-" {
        deepsight_explain::learned::explainer_weights::shipped().ok_or("no shipped weights")?
    } else {
        Arc::new(ExplainerWeights::from_bytes(&std::fs::read(&weights)?, &weights)?)
    };
    let loaded = deepsight_models::ModelSource::Builtin {
        arch: deepsight_models::Arch::Lite0,
        random_seed: None,
    }
    .load(&default_device())?;
    let root = list.parent().unwrap_or(std::path::Path::new("."));
    let text = std::fs::read_to_string(&list)?;
    let paths: Vec<std::path::PathBuf> = text
        .lines()
        .filter_map(|l| l.rsplit_once(','))
        .map(|(f, _)| root.join(f.trim().trim_start_matches("./")))
        .take(limit)
        .collect();
    let explainer = NnExplainer::new(Some(w));
    let (mut means, mut seconds) = (Vec::new(), 0f64);
    for chunk in paths.chunks(16) {
        let refs: Vec<&std::path::Path> = chunk.iter().map(|p| p.as_path()).collect();
        let x = loaded.pipeline.load_batch(&refs, &default_device())?;
        let logits = to_vec(loaded.model.logits(x.clone())?);
        let k = loaded.model.num_classes();
        let classes: Vec<usize> = (0..chunk.len())
            .map(|i| {
                (0..k)
                    .max_by(|&a, &b| logits[i * k + a].total_cmp(&logits[i * k + b]))
                    .unwrap_or(0)
            })
            .collect();
        let t = std::time::Instant::now();
        let e = explainer.explain(
            &loaded.model,
            &Request {
                images: x,
                classes,
                score: Score::Logit,
                layer: None,
            },
        )?;
        seconds += t.elapsed().as_secs_f64();
        means.extend(
            e.maps
                .iter()
                .map(|m| m.data.iter().sum::<f32>() / m.data.len() as f32),
        );
    }
    let mut sorted = means.clone();
    sorted.sort_by(f32::total_cmp);
    let q = |p: f64| sorted[((sorted.len() - 1) as f64 * p).round() as usize];
    let inside = means.iter().filter(|&&m| (0.05..=0.5).contains(&m)).count();
    println!(
        "{} images: mean mask min {:.3}, 5% {:.3}, median {:.3}, 95% {:.3}, max {:.3}; {} of {} ({:.1}%) in [0.05, 0.5]; mean {:.3}; explainer {:.1} ms per image (batches of 16)",
        means.len(),
        sorted[0],
        q(0.05),
        q(0.5),
        q(0.95),
        sorted[sorted.len() - 1],
        inside,
        means.len(),
        100.0 * inside as f64 / means.len() as f64,
        means.iter().sum::<f32>() / means.len() as f32,
        1000.0 * seconds / means.len() as f64
    );
    Ok(())
}
