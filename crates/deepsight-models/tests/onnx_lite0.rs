//! PyTorch's ONNX export of EfficientNet-Lite0 (`../shared/fixtures/lite0.onnx`, made by
//! `../shared/fixtures/export_lite0_onnx.py`) against the built-in Lite0 and the fixture logits.
//! Its TF-SAME padding arrives as a Shape/Gather/Slice/Cast/ConstantOfShape/Concat/Pad subgraph
//! per convolution, which the importer folds into the convolutions' own padding.

mod common;

use common::*;
use deepsight_models::{Arch, ModelSource};
use deepsight_runtime::{Classifier, LayeredClassifier, default_device, to_vec};

#[test]
fn onnx_export_matches_builtin_lite0() {
    let device = default_device();
    let onnx = ModelSource::Onnx {
        path: shared().join("fixtures/lite0.onnx"),
        input_size: None,
    }
    .load(&device)
    .unwrap();
    let builtin = ModelSource::Builtin {
        arch: Arch::Lite0,
        random_seed: None,
    }
    .load(&device)
    .unwrap();
    let fx = fixture("lite0.safetensors");
    let x = tensor4(&fx, "input", &device);
    let a = to_vec(onnx.model.logits(x.clone()).unwrap());
    let b = to_vec(builtin.model.logits(x).unwrap());
    let vs_builtin = max_abs_diff(&a, &b);
    let vs_fixture = max_abs_diff(&a, &values(&fx, "logits"));
    println!("lite0.onnx: max abs diff {vs_builtin:e} vs built-in, {vs_fixture:e} vs PyTorch fixture");
    assert!(vs_builtin <= 1e-4 && vs_fixture <= 1e-4);

    // No shape arithmetic or Pad node survives: the graph is the built-in's, BatchNorm pre-folded.
    let layers = onnx.model.layers();
    assert!(
        layers
            .iter()
            .all(|l| !["Pad", "Shape", "Gather"].iter().any(|k| l.name.contains(k)))
    );
    assert_eq!(layers.iter().filter(|l| l.op.contains("Conv")).count(), 49);
    assert_eq!(
        onnx.model.default_cam_layer().as_deref(),
        Some("/_swish_1/Clip_output_0")
    );
    assert!(onnx.description.contains("ONNX"));
}
