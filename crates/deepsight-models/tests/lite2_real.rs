//! EfficientNet-Lite2 with its real weights (`../shared/models/efficientnet-lite2-9656183e.pth`):
//! the graph loads by the Lite0 names, has the published parameter count, and classifies the
//! first images of `../shared/data/imagenet-val-1300` about as well as PyTorch does.

mod common;

use common::shared;
use deepsight_models::{Arch, ModelError, ModelSource};
use deepsight_runtime::{Classifier, LayeredClassifier, default_device, to_vec};
use std::path::{Path, PathBuf};

fn lite2_path() -> PathBuf {
    shared().join("models/efficientnet-lite2-9656183e.pth")
}

/// The first `n` (file, label) pairs of `dataset.txt` (`./data/FILE, label`).
fn val_images(n: usize) -> Vec<(PathBuf, usize)> {
    let dir = shared().join("data/imagenet-val-1300");
    let text = std::fs::read_to_string(dir.join("dataset.txt")).expect("dataset.txt");
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .map(|l| {
            let (file, label) = l.split_once(',').expect("FILE, label");
            (dir.join(file.trim()), label.trim().parse().expect("label"))
        })
        .collect()
}

/// Top-1 accuracy of `source` on the first `n` validation images, batched by 10.
fn top1(source: &ModelSource, n: usize) -> f64 {
    let device = default_device();
    let loaded = source.load(&device).unwrap();
    let images = val_images(n);
    let mut correct = 0;
    for chunk in images.chunks(10) {
        let paths: Vec<&Path> = chunk.iter().map(|(p, _)| p.as_path()).collect();
        let x = loaded.pipeline.load_batch(&paths, &device).unwrap();
        let logits = to_vec(loaded.model.logits(x).unwrap());
        for (row, (_, label)) in logits.chunks(1000).zip(chunk) {
            let best = (0..1000).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap();
            correct += usize::from(best == *label);
        }
    }
    correct as f64 / n as f64
}

#[test]
fn lite2_loads_with_its_published_shape() {
    let loaded = ModelSource::File {
        arch: Arch::Lite2,
        path: lite2_path(),
    }
    .load(&default_device())
    .unwrap();
    assert_eq!(loaded.model.input_size(), [260, 260]);
    assert_eq!(loaded.pipeline.size(), [260, 260]);
    assert_eq!(loaded.model.default_cam_layer().as_deref(), Some("features"));
    let layers = loaded.model.layers();
    let features = layers.iter().find(|l| l.name == "features").unwrap();
    // 260 / 32 rounded up by the SAME padding.
    assert_eq!(features.shape, vec![1, 1280, 9, 9]);
    let blocks = layers
        .iter()
        .filter(|l| l.name.starts_with("_blocks.") && !l.name[8..].contains('.'))
        .count();
    assert_eq!(blocks, 21, "1 + 3 + 3 + 4 + 4 + 5 + 1 blocks");
    let params: usize = layers.iter().map(|l| l.params).sum();
    assert_eq!(params, 6_092_072, "the PyTorch parameter count of Lite2");
}

#[test]
fn lite2_without_a_file_says_to_pass_one() {
    let err = ModelSource::Builtin {
        arch: Arch::Lite2,
        random_seed: None,
    }
    .load(&default_device())
    .unwrap_err();
    assert!(matches!(err, ModelError::Weight { .. }), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("--arch lite2") && text.contains(".pth"), "{text}");
}

#[test]
fn lite2_classifies_the_first_50_val_images() {
    let acc = top1(
        &ModelSource::File {
            arch: Arch::Lite2,
            path: lite2_path(),
        },
        50,
    );
    println!("lite2 top-1 on the first 50 images: {acc}");
    assert!(acc >= 0.72, "top-1 {acc}");
}

/// The measurement behind the documented number (81%, as PyTorch; about 30 s on 2 cores);
/// `--include-ignored` runs it.
#[test]
#[ignore]
fn lite2_top1_on_the_first_300_val_images() {
    let start = std::time::Instant::now();
    let acc = top1(
        &ModelSource::File {
            arch: Arch::Lite2,
            path: lite2_path(),
        },
        300,
    );
    println!(
        "lite2 top-1 on the first 300 images: {acc} ({:.1?})",
        start.elapsed()
    );
    assert!((0.78..=0.84).contains(&acc), "top-1 {acc} (PyTorch: 0.81)");
}
