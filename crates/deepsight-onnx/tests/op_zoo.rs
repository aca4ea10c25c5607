//! Imported ONNX graphs against the values their makers computed (`tests/data/make_op_zoo.py`):
//! a PyTorch export using most supported operators (logits and input gradients from PyTorch), and
//! a hand-written graph (LRN, SAME auto-pads, GlobalMaxPool, Squeeze) run by onnx's reference
//! evaluator.

mod common;

use common::*;
use deepsight_runtime::{
    Classifier, GradientRequest, GraphModel, LayeredClassifier, Objective, RectifierRule, Tensor, TensorData,
    default_device, to_vec,
};

struct Reference {
    input: Tensor<4>,
    logits: Vec<f32>,
    json: serde_json::Value,
}

fn reference(name: &str) -> Reference {
    let json: serde_json::Value = serde_json::from_slice(&std::fs::read(data(name)).unwrap()).unwrap();
    let shape: Vec<usize> = json["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let input = Tensor::from_data(
        TensorData::new(floats(&json["input"]), [shape[0], shape[1], shape[2], shape[3]]),
        &default_device(),
    );
    Reference {
        input,
        logits: floats(&json["logits"]),
        json,
    }
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn model(file: &str) -> (GraphModel, Vec<String>) {
    let imported = deepsight_onnx::import_file(&data(file), &default_device(), None).unwrap();
    let model = GraphModel::new(imported.graph, imported.input_size, default_device()).unwrap();
    (model, imported.notes)
}

#[test]
fn pytorch_export_matches_pytorch_logits_and_gradients() {
    let (model, notes) = model("op_zoo.onnx");
    assert!(
        notes.iter().any(|n| n.contains("removed the trailing Softmax")),
        "{notes:?}"
    );
    let r = reference("op_zoo.json");
    let logits = to_vec(model.logits(r.input.clone()).unwrap());
    let d = max_diff(&logits, &r.logits);
    println!("op zoo logits: max abs diff {d:e}");
    assert!(d <= 1e-5, "logits differ by {d}");

    let targets: Vec<usize> = r.json["target"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let req = GradientRequest::input(Objective::Logit(targets), RectifierRule::Plain);
    let grad = to_vec(model.gradients(r.input, &req).unwrap().input.unwrap());
    let reference = floats(&r.json["input_grad"]);
    let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let d = max_diff(&grad, &reference);
    println!("op zoo input gradient: max abs diff {d:e} (max |grad| {scale:e})");
    assert!(d <= 1e-5, "gradients differ by {d}");
}

#[test]
fn layer_names_are_onnx_output_names() {
    let (model, _) = model("op_zoo.onnx");
    let layers = model.layers();
    let names: Vec<&str> = layers.iter().map(|l| l.name.as_str()).collect();
    for expected in [
        "/c1/Conv_output_0",
        "/bn/BatchNormalization_output_0",
        "/ct/ConvTranspose_output_0",
        "/Concat_output_0",
    ] {
        assert!(names.contains(&expected), "{expected} missing from {names:?}");
    }
    // The zero Pad before c3 became c3's own padding; the shape arithmetic left no node behind.
    assert!(
        !names
            .iter()
            .any(|n| n.contains("Pad") || n.contains("Shape") || n.contains("Gather")),
        "{names:?}"
    );
    assert_eq!(
        model.default_cam_layer().as_deref(),
        Some("/avg/AveragePool_output_0")
    );
}

#[test]
fn handwritten_graph_matches_onnx_reference_evaluator() {
    let (model, _) = model("handmade.onnx");
    let r = reference("handmade.json");
    let logits = to_vec(model.logits(r.input).unwrap());
    let d = max_diff(&logits, &r.logits);
    println!("handmade logits: max abs diff {d:e}");
    assert!(d <= 1e-5, "logits differ by {d}");
}

#[test]
fn tf2onnx_style_graph_with_nhwc_input_matches_onnx_reference_evaluator() {
    let (model, notes) = model("tf2onnx_like.onnx");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("NHWC input 'image' is fed as NCHW")),
        "{notes:?}"
    );
    assert!(
        notes.iter().any(|n| n.contains("removed the trailing Softmax")),
        "{notes:?}"
    );
    let r = reference("tf2onnx_like.json");
    let logits = to_vec(model.logits(r.input).unwrap());
    let d = max_diff(&logits, &r.logits);
    println!("tf2onnx-like logits: max abs diff {d:e}");
    assert!(d <= 1e-5, "logits differ by {d}");
    assert_eq!(model.default_cam_layer().as_deref(), Some("relu6"));
}
