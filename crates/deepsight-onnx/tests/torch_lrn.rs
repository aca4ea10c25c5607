//! PyTorch's `nn.LocalResponseNorm`, which the exporters write as Mul -> Reshape -> Pad ->
//! AveragePool -> Squeeze -> Mul -> Add -> Pow -> Div, imported as one LRN: the exports of
//! `tests/data/make_torch_lrn.py` against PyTorch's logits, hand-written variants of the chain
//! against a direct computation, and near misses that must be refused.

mod common;

use common::*;
use deepsight_onnx::import_bytes;
use deepsight_runtime::{
    Classifier, ExtOp, GraphModel, LayeredClassifier, Op, Tensor, TensorData, default_device, to_vec,
};
use onnx_protobuf::{GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, TensorProto};

/// (size, front, alpha, beta, bias) of an LRN.
type LrnParams = (usize, usize, f32, f32, f32);

/// Every LRN in the graph, in order.
fn lrns(graph: &deepsight_runtime::Graph) -> Vec<LrnParams> {
    graph
        .nodes()
        .iter()
        .filter_map(|n| match &n.op {
            Op::Ext(ExtOp::Lrn(l)) => Some((l.size, l.front, l.alpha, l.beta, l.bias)),
            _ => None,
        })
        .collect()
}

fn check_export(file: &str) {
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data("torch_lrn.json")).unwrap()).unwrap();
    let imported = deepsight_onnx::import_file(&data(file), &default_device(), None).unwrap();
    // PyTorch's windows: size / 2 channels before c (2 for size 4, where ONNX's LRN has 1).
    assert_eq!(
        lrns(&imported.graph),
        [
            (5, 2, 1e-4, 0.75, 2.0),
            (4, 2, 2.0, 0.75, 1.0),
            (3, 1, 1.5, 0.6, 1.5)
        ],
        "{file}"
    );
    let model = GraphModel::new(imported.graph, imported.input_size, default_device()).unwrap();
    let layers = model.layers();
    let lrn_layers: Vec<&str> = layers
        .iter()
        .filter(|l| l.op == "LRN")
        .map(|l| l.name.as_str())
        .collect();
    assert_eq!(lrn_layers.len(), 3, "{file}: {lrn_layers:?}");
    // Nothing of the chains is left: the layers are the network's own.
    let ops: Vec<&str> = layers.iter().map(|l| l.op).collect();
    let (conv, relu, lrn, pool) = ("Conv2d", "ReLU", "LRN", "MaxPool");
    assert_eq!(
        ops,
        [
            "Input", conv, relu, lrn, pool, conv, relu, lrn, pool, conv, relu, lrn, "Flatten", "Linear",
            relu, "Linear"
        ],
        "{file}"
    );
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
    let reference = floats(&json["logits"]);
    let logits = to_vec(model.logits(input).unwrap());
    assert_eq!(logits.len(), reference.len());
    let scale = reference.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let abs = logits
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let rel = logits
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs() / b.abs().max(1e-3 * scale))
        .fold(0.0, f32::max);
    println!(
        "{file}: max abs diff {abs:e}, max rel diff {rel:e} (max |logit| {scale:e}, torch {})",
        json["torch"]
    );
    assert!(
        abs <= 1e-4 * scale && rel <= 1e-4,
        "{file}: logits differ by {abs:e} ({rel:e} relative)"
    );
    // The ONNX window in the size-4 layer would be this far off: the test would see it.
    let gap = json["onnx_window_logit_gap"].as_f64().unwrap() as f32;
    assert!(
        gap > 100.0 * abs,
        "{file}: the reference does not tell the windows apart ({gap:e})"
    );
}

#[test]
fn torchscript_export_opset13_dynamic_batch_matches_pytorch() {
    check_export("torch_lrn_opset13.onnx");
}

#[test]
fn torchscript_export_opset17_fixed_batch_matches_pytorch() {
    check_export("torch_lrn_opset17.onnx");
}

#[test]
fn torchscript_export_opset18_matches_pytorch() {
    check_export("torch_lrn_opset18.onnx");
}

#[test]
fn dynamo_export_matches_pytorch() {
    check_export("torch_lrn_dynamo.onnx");
}

// Hand-written chains: input [N, 6, 3, 3] -> LRN chain -> Flatten -> scores [N, 54].

const C: usize = 6;

/// PyTorch's chain for an LRN of `size` with the pads `[before, after]`, by Unsqueeze/Squeeze.
fn chain(size: i64, pads: [i64; 2]) -> (Vec<NodeProto>, Vec<TensorProto>) {
    let nodes = vec![
        node("Mul", &["input", "input"], "sq", vec![]),
        node("Unsqueeze", &["sq", "axis1"], "sq5", vec![]),
        node("Pad", &["sq5", "pads"], "padded", vec![]),
        node(
            "AveragePool",
            &["padded"],
            "avg",
            vec![
                ints("kernel_shape", &[size, 1, 1]),
                ints("strides", &[1, 1, 1]),
                int("count_include_pad", 1),
            ],
        ),
        node("Squeeze", &["avg", "axis1"], "avg4", vec![]),
        node("Mul", &["avg4", "alpha"], "scaled", vec![]),
        node("Add", &["scaled", "k"], "biased", vec![]),
        node("Pow", &["biased", "beta"], "denom", vec![]),
        node("Div", &["input", "denom"], "lrn", vec![]),
        node("Flatten", &["lrn"], "scores", vec![]),
    ];
    let inits = vec![
        ints_tensor("axis1", &[1]),
        ints_tensor("pads", &[0, 0, pads[0], 0, 0, 0, 0, pads[1], 0, 0]),
        tensor("alpha", &[], &[0.8]),
        tensor("k", &[], &[1.25]),
        tensor("beta", &[], &[0.75]),
    ];
    (nodes, inits)
}

fn bytes(nodes: Vec<NodeProto>, inits: Vec<TensorProto>) -> Vec<u8> {
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            version: 17,
            ..Default::default()
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: inits,
            input: vec![value_info("input", &[0, C as i64, 3, 3])],
            output: vec![value_info("scores", &[0, (C * 9) as i64])],
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    model.write_to_bytes().unwrap()
}

fn input() -> Vec<f32> {
    (0..2 * C * 9)
        .map(|i| ((i * 37 % 23) as f32) / 7.0 - 1.5)
        .collect()
}

/// `x / (k + alpha / size * sum x^2)^beta` over channels `c - front ..= c - front + size - 1`.
fn lrn_ref(x: &[f32], size: usize, front: usize, [alpha, k, beta]: [f32; 3]) -> Vec<f32> {
    let hw = 9;
    let mut y = vec![0.0; x.len()];
    for (i, out) in y.iter_mut().enumerate() {
        let (n, c, p) = (i / (C * hw), i / hw % C, i % hw);
        let lo = c as i64 - front as i64;
        let sum: f32 = (lo..lo + size as i64)
            .filter(|&j| (0..C as i64).contains(&j))
            .map(|j| x[(n * C + j as usize) * hw + p].powi(2))
            .sum();
        *out = x[i] / (k + alpha / size as f32 * sum).powf(beta);
    }
    y
}

fn run(nodes: Vec<NodeProto>, inits: Vec<TensorProto>) -> (Vec<f32>, Vec<LrnParams>) {
    let imported = import_bytes(&bytes(nodes, inits), &default_device(), Some([3, 3])).unwrap();
    let found = lrns(&imported.graph);
    let names: Vec<String> = imported.graph.nodes().iter().map(|n| n.name.clone()).collect();
    assert_eq!(names, ["input", "lrn", "scores"], "the chain leaves one LRN node");
    let model = GraphModel::new(imported.graph, [3, 3], default_device()).unwrap();
    let x = Tensor::from_data(TensorData::new(input(), [2, C, 3, 3]), &default_device());
    (to_vec(model.logits(x).unwrap()), found)
}

fn assert_close(got: &[f32], want: &[f32]) {
    let d = got
        .iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(d < 1e-5, "differs by {d}");
}

const PARAMS: [f32; 3] = [0.8, 1.25, 0.75];

#[test]
fn hand_written_chains_import_as_the_window_they_compute() {
    for size in 1..=6usize {
        for front in [size / 2, (size - 1) / 2] {
            let (n, i) = chain(size as i64, [front as i64, (size - 1 - front) as i64]);
            let (y, found) = run(n, i);
            assert_eq!(found, [(size, front, 0.8, 0.75, 1.25)]);
            assert_close(&y, &lrn_ref(&input(), size, front, PARAMS));
        }
    }
}

#[test]
fn equivalent_spellings_are_accepted() {
    // The pool's own pads count as zeros with count_include_pad = 1 (no Pad node).
    let (mut n, i) = chain(4, [0, 0]);
    n.remove(2);
    n[1].output[0] = "padded".into();
    n[2].attribute.push(ints("pads", &[2, 0, 0, 1, 0, 0]));
    let (y, found) = run(n, i);
    assert_eq!(found, [(4, 2, 0.8, 0.75, 1.25)]);
    assert_close(&y, &lrn_ref(&input(), 4, 2, PARAMS));

    // Without pads of its own, count_include_pad does not matter: the Pad's zeros are values.
    let (mut n, i) = chain(5, [2, 2]);
    n[3].attribute[2] = int("count_include_pad", 0);
    // Constants first, Pow(x, 2) for the square, Reshape for the view.
    n[0] = node("Pow", &["input", "two"], "sq", vec![]);
    n[1] = node("Reshape", &["sq", "shape5"], "sq5", vec![]);
    n[5].input = vec!["alpha".into(), "avg4".into()];
    n[6].input = vec!["k".into(), "scaled".into()];
    let mut i = i;
    i.push(tensor("two", &[1], &[2.0]));
    i.push(ints_tensor("shape5", &[-1, 1, C as i64, 3, 3]));
    let (y, _) = run(n, i);
    assert_close(&y, &lrn_ref(&input(), 5, 2, PARAMS));
}

fn refusal(nodes: Vec<NodeProto>, inits: Vec<TensorProto>) -> String {
    match import_bytes(&bytes(nodes, inits), &default_device(), Some([3, 3])) {
        Ok(_) => panic!("a near miss was imported"),
        Err(e) => e.to_string(),
    }
}

fn assert_refused(msg: &str, parts: &[&str]) {
    for p in ["LocalResponseNorm"].iter().chain(parts) {
        assert!(msg.contains(p), "'{msg}' should mention '{p}'");
    }
}

#[test]
fn near_misses_are_refused_with_the_reason() {
    // The pool's own pads left out of the mean: the divisor shrinks at the first/last channels.
    let (mut n, i) = chain(4, [0, 0]);
    n.remove(2);
    n[1].output[0] = "padded".into();
    n[2].attribute[2] = int("count_include_pad", 0);
    n[2].attribute.push(ints("pads", &[2, 0, 0, 1, 0, 0]));
    assert_refused(&refusal(n, i), &["'avg'", "count_include_pad = 0"]);

    let (mut n, i) = chain(3, [1, 1]);
    n[3].attribute[0] = ints("kernel_shape", &[3, 1, 2]);
    assert_refused(&refusal(n, i), &["'avg'", "kernel"]);

    let (mut n, i) = chain(3, [1, 1]);
    n[3].attribute[1] = ints("strides", &[2, 1, 1]);
    assert_refused(&refusal(n, i), &["strides"]);

    // Pads that do not add up to size - 1 change the channel count.
    let (n, i) = chain(4, [2, 2]);
    assert_refused(&refusal(n, i), &["'avg'", "channel count"]);

    // Padding a spatial axis, or with a nonzero value.
    let (n, mut i) = chain(3, [1, 1]);
    i[1] = ints_tensor("pads", &[0, 0, 1, 1, 0, 0, 0, 1, 0, 0]);
    assert_refused(&refusal(n, i), &["'padded'", "pads"]);
    let (mut n, mut i) = chain(3, [1, 1]);
    n[2].input.push("one".into());
    i.push(tensor("one", &[], &[1.0]));
    assert_refused(&refusal(n, i), &["'padded'", "constant 1"]);

    // A scale that is not one number.
    let (n, mut i) = chain(3, [1, 1]);
    i[2] = tensor("alpha", &[1, C as i64, 1, 1], &[0.5; C]);
    assert_refused(&refusal(n, i), &["'scaled'", "one value"]);

    // An intermediate read elsewhere would be left half-imported.
    let (mut n, i) = chain(3, [1, 1]);
    n[8] = node("Div", &["input", "denom"], "lrn0", vec![]);
    n.insert(9, node("Add", &["lrn0", "scaled"], "lrn", vec![]));
    assert_refused(&refusal(n, i), &["'sq'", "'scaled' is also read by 'lrn'"]);

    // Dividing something other than the squared activation.
    let (mut n, i) = chain(3, [1, 1]);
    n.insert(0, node("Relu", &["input"], "other", vec![]));
    n[9].input[0] = "other".into();
    assert_refused(&refusal(n, i), &["'sq'"]);

    // Steps out of order: the bias before the scale.
    let (mut n, i) = chain(3, [1, 1]);
    n[5] = node("Add", &["avg4", "k"], "scaled", vec![]);
    n[6] = node("Mul", &["scaled", "alpha"], "biased", vec![]);
    assert_refused(&refusal(n, i), &["'scaled'", "after the Pooled step"]);
}

#[test]
fn a_square_without_the_pattern_imports_as_before() {
    let nodes = vec![
        node("Mul", &["input", "input"], "sq", vec![]),
        node("Flatten", &["sq"], "scores", vec![]),
    ];
    let imported = import_bytes(&bytes(nodes, vec![]), &default_device(), Some([3, 3])).unwrap();
    let names: Vec<&str> = imported.graph.nodes().iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["input", "sq", "scores"]);
}
