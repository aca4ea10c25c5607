//! EfficientNet-Lite0 against the PyTorch reference logits (`../shared/fixtures/lite0.safetensors`).

mod common;

use common::*;
use deepsight_models::{Arch, ModelSource};
use deepsight_runtime::{Classifier, LayeredClassifier, default_device, to_vec};

#[test]
fn lite0_logits_match_pytorch_to_1e4() {
    let device = default_device();
    let loaded = ModelSource::Builtin {
        arch: Arch::Lite0,
        random_seed: None,
    }
    .load(&device)
    .unwrap();
    let fx = fixture("lite0.safetensors");
    let x = tensor4(&fx, "input", &device);
    let ours = to_vec(loaded.model.logits(x).unwrap());
    let reference = values(&fx, "logits");
    let diff = max_abs_diff(&ours, &reference);
    println!(
        "lite0 logits: max abs diff {diff:e} (max |logit| {})",
        max_abs(&reference)
    );
    assert!(diff <= 1e-4, "max abs diff {diff}");
}

#[test]
fn lite0_default_cam_layer_is_the_last_feature_map() {
    let loaded = ModelSource::Builtin {
        arch: Arch::Lite0,
        random_seed: None,
    }
    .load(&default_device())
    .unwrap();
    assert_eq!(loaded.model.default_cam_layer().as_deref(), Some("features"));
    let layers = loaded.model.layers();
    let features = layers.iter().find(|l| l.name == "features").unwrap();
    assert_eq!(features.shape, vec![1, 1280, 7, 7]);
    let params: usize = layers.iter().map(|l| l.params).sum();
    assert_eq!(
        params, 4_652_008,
        "conv + linear weights and BN gamma/beta of Lite0"
    );
}
