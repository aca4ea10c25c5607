//! Tests of [`super`]: known answers on hand-made inputs.

use super::*;
use deepsight_runtime::{Classifier, GraphModel};

#[test]
fn renormalisation_caps_only_large_filters() {
    let device = Device::default();
    let m = FmnistCnn::init(FirstLayer::Zf, Init::Gaussian { std: 0.01 }, 3, &device);
    // Filter 0 scaled to RMS ~1 (capped), the others stay at ~0.01 (untouched).
    let m = FmnistCnn {
        conv1: Conv2d {
            weight: m.conv1.weight.map(|w| {
                let [c, ..] = w.dims();
                let mut s = vec![1f32; c];
                s[0] = 100.0;
                w * Tensor::<1>::from_data(TensorData::new(s, [c]), &device).reshape([c, 1, 1, 1])
            }),
            ..m.conv1
        },
        ..m
    };
    let before = to_vec(m.conv1.weight.val());
    let after = to_vec(m.renormalised(0.1).conv1.weight.val());
    let rms = |v: &[f32]| (v.iter().map(|x| x * x).sum::<f32>() / v.len() as f32).sqrt();
    assert!((rms(&after[..49]) - 0.1).abs() < 1e-5, "{}", rms(&after[..49]));
    assert_eq!(&before[49..], &after[49..]);
}

#[test]
fn snapshots_scale_the_authors_epochs() {
    let s = Snapshots::default().steps(640).unwrap();
    let steps: Vec<usize> = s.iter().map(|p| p.1).collect();
    assert_eq!(steps, vec![10, 20, 50, 100, 200, 300, 400, 640]);
    assert!(
        Snapshots {
            marks: vec![65.0],
            of: 64.0
        }
        .steps(10)
        .is_err()
    );
}

/// The graph built from the trained module's weight file computes the module's logits on a
/// grey image given as three equal channels (the `w / 3` replication of `conv1`).
#[test]
fn graph_matches_module() {
    let device = Device::default();
    for first in [FirstLayer::Zf, FirstLayer::Alex] {
        let m = FmnistCnn::init(first, Init::Gaussian { std: 0.2 }, 5, &device);
        let u: Vec<f32> = uniform_stream(9, "x").take(2 * 784).map(|v| v as f32).collect();
        let x1 = Tensor::<4>::from_data(TensorData::new(u.clone(), [2, 1, 28, 28]), &device);
        let want = to_vec(m.forward(normalise(x1.clone())));
        let arch = match first {
            FirstLayer::Zf => deepsight_models::Arch::FmnistZf,
            FirstLayer::Alex => deepsight_models::Arch::FmnistAlex,
        };
        let g = arch.graph_from(&m.to_weights(), &device).unwrap();
        let model = GraphModel::new(g, [28, 28], device.clone()).unwrap();
        let x3 = normalise(x1).repeat_dim(1, 3);
        let got = to_vec(model.logits(x3).unwrap());
        for (a, b) in want.iter().zip(&got) {
            assert!((a - b).abs() < 1e-4 * (1.0 + a.abs()), "{a} vs {b}");
        }
    }
}

#[test]
fn a_few_steps_lower_the_loss_on_a_tiny_set() {
    let device = Device::default();
    // Two classes: bright top half vs bright bottom half.
    let mut pixels = Vec::new();
    let mut labels = Vec::new();
    for i in 0..64 {
        let top = i % 2 == 0;
        for y in 0..28 {
            for _ in 0..28 {
                pixels.push(if (y < 14) == top { 220u8 } else { 10 });
            }
        }
        labels.push(if top { 0 } else { 1 });
    }
    let items = Items { pixels, labels };
    let dir = std::env::temp_dir().join(format!("fmnist-train-{}", std::process::id()));
    let mut recipe = Recipe::zeiler_fergus();
    recipe.batch_size = 16;
    recipe.init = Init::Gaussian { std: 0.1 };
    let config = RunConfig {
        first: FirstLayer::Zf,
        recipe,
        epochs: 4,
        seed: 1,
        snapshots: Snapshots::default(),
        out: dir.join("out.safetensors"),
        run_dir: dir.clone(),
        resume: false,
        max_steps: None,
    };
    let task = FmnistTask {
        first: FirstLayer::Zf,
        half: true,
        info: BTreeMap::new(),
    };
    let s = train(&task, &items, &items, &config, &device, &|_, _, _| {}).unwrap();
    assert_eq!(s.snapshots.len(), 8);
    assert!(s.history.last().unwrap().2 > 0.99, "{:?}", s.history);
    let w = Weights::from_safetensors(&config.out).unwrap();
    assert!(FmnistCnn::from_weights(&w, &device).is_ok());
    std::fs::remove_dir_all(&dir).ok();
}
