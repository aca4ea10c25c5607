//! Every refusal of the importer names the node, its operator and what is missing, and no
//! malformed file panics. The graphs are written here with the ONNX protobuf types.

mod common;

use common::*;
use deepsight_onnx::import_bytes;
use deepsight_runtime::{Classifier, GraphModel, Tensor, TensorData, default_device, to_vec};
use onnx_protobuf::tensor_proto::DataLocation;
use onnx_protobuf::{
    GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto, TensorProto,
    ValueInfoProto,
};

/// input [N,3,8,8] -> conv -> relu -> GAP -> flatten -> gemm -> scores [N,2].
fn base() -> (Vec<NodeProto>, Vec<TensorProto>) {
    let nodes = vec![
        node(
            "Conv",
            &["input", "w", "b"],
            "conv",
            vec![ints("pads", &[1, 1, 1, 1])],
        ),
        node("Relu", &["conv"], "relu", vec![]),
        node("GlobalAveragePool", &["relu"], "gap", vec![]),
        node("Flatten", &["gap"], "flat", vec![]),
        node("Gemm", &["flat", "fc", "fcb"], "scores", vec![int("transB", 1)]),
    ];
    let inits = vec![
        filled("w", &[4, 3, 3, 3], 0.1),
        filled("b", &[4], 0.0),
        filled("fc", &[2, 4], 0.5),
        filled("fcb", &[2], 0.0),
    ];
    (nodes, inits)
}

fn bytes_with(nodes: Vec<NodeProto>, inits: Vec<TensorProto>, inputs: Vec<ValueInfoProto>) -> Vec<u8> {
    let model = ModelProto {
        ir_version: 8,
        opset_import: vec![OperatorSetIdProto {
            version: 17,
            ..Default::default()
        }],
        graph: Some(GraphProto {
            node: nodes,
            initializer: inits,
            input: inputs,
            output: vec![value_info("scores", &[0, 2])],
            ..Default::default()
        })
        .into(),
        ..Default::default()
    };
    model.write_to_bytes().unwrap()
}

fn bytes(nodes: Vec<NodeProto>, inits: Vec<TensorProto>) -> Vec<u8> {
    bytes_with(nodes, inits, vec![value_info("input", &[0, 3, 8, 8])])
}

fn error(b: &[u8]) -> String {
    match import_bytes(b, &default_device(), None) {
        Ok(_) => panic!("import should fail"),
        Err(e) => e.to_string(),
    }
}

/// A tensor of `dims` whose every value is `v`.
fn filled(name: &str, dims: &[i64], v: f32) -> TensorProto {
    let n: i64 = dims.iter().product();
    tensor(name, dims, &vec![v; n as usize])
}

fn assert_mentions(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "'{msg}' should mention '{p}'");
    }
    assert!(!msg.contains('\n'), "one line: {msg}");
}

#[test]
fn the_base_graph_imports() {
    let (n, i) = base();
    let imported = import_bytes(&bytes(n, i), &default_device(), Some([8, 8])).unwrap();
    assert_eq!(imported.input_size, [8, 8]);
    let names: Vec<&str> = imported.graph.nodes().iter().map(|n| n.name.as_str()).collect();
    assert_eq!(names, ["input", "conv", "relu", "gap", "flat", "scores"]);
}

#[test]
fn unsupported_operator_names_node_and_op() {
    let (mut n, i) = base();
    n[1] = node("Einsum", &["conv"], "relu", vec![string("equation", "ij->ij")]);
    assert_mentions(
        &error(&bytes(n, i)),
        &["'relu'", "(Einsum)", "not supported", "Conv"],
    );
}

#[test]
fn unsupported_attributes_are_named() {
    let (mut n, mut i) = base();
    i.push(ints_tensor("pads", &[0, 0, 1, 1, 0, 0, 1, 1]));
    n.insert(
        0,
        node(
            "Pad",
            &["input", "pads"],
            "padded",
            vec![string("mode", "reflect")],
        ),
    );
    n[1].input[0] = "padded".into();
    assert_mentions(&error(&bytes(n, i)), &["'padded'", "(Pad)", "mode 'reflect'"]);

    let (mut n, i) = base();
    n.insert(
        1,
        node(
            "MaxPool",
            &["conv"],
            "pool",
            vec![ints("kernel_shape", &[2, 2]), int("storage_order", 1)],
        ),
    );
    n[2].input[0] = "pool".into();
    assert_mentions(&error(&bytes(n, i)), &["'pool'", "(MaxPool)", "storage_order"]);

    let (mut n, i) = base();
    n[0].attribute.push(string("auto_pad", "SAME_SIDEWAYS"));
    assert_mentions(
        &error(&bytes(n, i)),
        &["'conv'", "(Conv)", "auto_pad = 'SAME_SIDEWAYS'"],
    );

    let (mut n, i) = base();
    n[4].attribute.push(int("transA", 1));
    assert_mentions(&error(&bytes(n, i)), &["'scores'", "(Gemm)", "transA"]);
}

#[test]
fn layout_changes_that_move_the_batch_are_refused() {
    let (mut n, mut i) = base();
    i.push(ints_tensor("shape", &[2, 2, 8, 8]));
    n.insert(1, node("Reshape", &["conv", "shape"], "odd", vec![]));
    n[2].input[0] = "odd".into();
    assert_mentions(
        &error(&bytes(n, i)),
        &["'odd'", "(Reshape)", "moves values between the batch"],
    );

    let (mut n, i) = base();
    n.insert(
        1,
        node("Transpose", &["conv"], "swap", vec![ints("perm", &[1, 0, 2, 3])]),
    );
    n[2].input[0] = "swap".into();
    assert_mentions(
        &error(&bytes(n, i)),
        &["'swap'", "(Transpose)", "keeping the batch first"],
    );
}

#[test]
fn missing_and_non_constant_weights_are_named() {
    let (n, mut i) = base();
    i.retain(|t| t.name != "w");
    assert_mentions(
        &error(&bytes(n, i)),
        &["'conv'", "(Conv)", "input 'w' is not produced"],
    );

    let (mut n, i) = base();
    n[0].input[1] = "input".into();
    assert_mentions(
        &error(&bytes(n, i)),
        &["'conv'", "(Conv)", "needs it to be a constant"],
    );
}

#[test]
fn model_level_problems_are_explained() {
    let (n, i) = base();
    let two = vec![
        value_info("input", &[0, 3, 8, 8]),
        value_info("mask", &[0, 1, 8, 8]),
    ];
    assert_mentions(
        &error(&bytes_with(n, i, two)),
        &["one image input", "2 inputs", "mask"],
    );

    let (n, i) = base();
    let flat = vec![value_info("input", &[0, 192])];
    assert_mentions(&error(&bytes_with(n, i, flat)), &["[N, C, H, W]"]);

    let (n, mut i) = base();
    i[0].float_data.clear();
    i[0].data_location = DataLocation::EXTERNAL.into();
    i[0].external_data = vec![StringStringEntryProto {
        key: "location".into(),
        value: "weights.bin".into(),
        ..Default::default()
    }];
    assert_mentions(&error(&bytes(n, i)), &["'w'", "external file"]);

    let (n, mut i) = base();
    i[2].float_data.pop();
    assert_mentions(&error(&bytes(n, i)), &["'fc'", "7 values for shape [2, 4]"]);

    let (n, mut i) = base();
    i[2] = filled("fc", &[2, 5], 0.5);
    assert_mentions(&error(&bytes(n, i)), &["scores", "expects 5 features"]);
}

#[test]
fn truncated_and_garbage_files_never_panic_nor_change_the_model() {
    let (n, i) = base();
    let good = bytes(n, i);
    let x = Tensor::<4>::from_data(
        TensorData::new(
            (0..192).map(|k| (k as f32 * 0.37).sin()).collect::<Vec<f32>>(),
            [1, 3, 8, 8],
        ),
        &default_device(),
    );
    let logits = |b: &[u8]| -> Option<Vec<f32>> {
        let imported = import_bytes(b, &default_device(), None).ok()?;
        let model = GraphModel::new(imported.graph, imported.input_size, default_device()).ok()?;
        Some(to_vec(model.logits(x.clone()).ok()?))
    };
    let expected = logits(&good).unwrap();
    let mut refused = 0;
    for len in (0..good.len()).step_by(3) {
        match std::panic::catch_unwind(|| logits(&good[..len])) {
            // A cut that only loses metadata (the output's declared type) still describes the
            // same network; anything else must be refused.
            Ok(Some(l)) => assert_eq!(l, expected, "a file cut at {len} bytes gave another model"),
            Ok(None) => refused += 1,
            Err(_) => panic!("a file cut at {len} bytes panicked"),
        }
    }
    assert!(refused > good.len() / 3 - 10, "only {refused} cuts refused");
    let garbage: Vec<u8> = (0..4096u32)
        .map(|k| (k.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    assert!(import_bytes(&garbage, &default_device(), None).is_err());
    assert_mentions(&error(&good[..good.len() / 2]), &["ONNX"]);
}

/// The base graph with a max pool between the ReLU and the global pool.
fn with_pool() -> (Vec<NodeProto>, Vec<TensorProto>) {
    let (mut n, i) = base();
    n.insert(
        2,
        node("MaxPool", &["relu"], "pool", vec![ints("kernel_shape", &[2, 2])]),
    );
    n[3].input[0] = "pool".into();
    (n, i)
}

/// Imports (and, if that succeeds, runs) a mutated file; a refusal must be one line naming the
/// node. Returns whether it was refused.
fn refused_cleanly(b: &[u8], node: &str, what: &str) -> bool {
    let run = || -> Result<(), String> {
        let imported = import_bytes(b, &default_device(), None).map_err(|e| e.to_string())?;
        let model = GraphModel::new(imported.graph, imported.input_size, default_device())
            .map_err(|e| e.to_string())?;
        let x = Tensor::<4>::zeros(
            [1, 3, imported.input_size[0], imported.input_size[1]],
            &default_device(),
        );
        model.logits(x).map(|_| ()).map_err(|e| e.to_string())
    };
    match std::panic::catch_unwind(run) {
        Ok(Ok(())) => false,
        Ok(Err(msg)) => {
            assert!(!msg.contains('\n'), "{what}: more than one line: {msg}");
            // The node itself, or the later layer that its output no longer fits.
            let named = msg.contains(&format!("'{node}'")) || msg.contains("layer '");
            assert!(named, "{what}: '{msg}' should name the node '{node}' or a layer");
            true
        }
        Err(_) => panic!("{what}: panicked"),
    }
}

#[test]
fn every_attribute_is_checked_against_its_domain_before_use() {
    let extreme = [0, -1, -7, 100_000, 1 << 40, i64::MAX];
    let mut refusals = 0;
    for (node_index, node_name, attr) in [
        (0, "conv", "strides"),
        (0, "conv", "dilations"),
        (0, "conv", "kernel_shape"),
        (0, "conv", "pads"),
        (2, "pool", "kernel_shape"),
        (2, "pool", "strides"),
        (2, "pool", "dilations"),
        (2, "pool", "pads"),
    ] {
        for v in extreme {
            let (mut n, i) = with_pool();
            let len = if attr == "pads" { 4 } else { 2 };
            n[node_index].attribute.retain(|a| a.name != attr);
            n[node_index].attribute.push(ints(attr, &vec![v; len]));
            refusals +=
                refused_cleanly(&bytes(n, i), node_name, &format!("{node_name}.{attr} = {v}")) as usize;
        }
    }
    for (node_index, node_name, attr) in [
        (0, "conv", "group"),
        (2, "pool", "ceil_mode"),
        (5, "scores", "transB"),
    ] {
        for v in extreme {
            let (mut n, i) = with_pool();
            n[node_index].attribute.retain(|a| a.name != attr);
            n[node_index].attribute.push(int(attr, v));
            refusals +=
                refused_cleanly(&bytes(n, i), node_name, &format!("{node_name}.{attr} = {v}")) as usize;
        }
    }
    for v in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let (mut n, i) = with_pool();
        n[5].attribute.push(float("alpha", v));
        assert!(refused_cleanly(&bytes(n, i), "scores", &format!("alpha = {v}")));
    }
    // Every value above but a pad of 0/100000 on the convolution (100000 is refused by the tensor
    // budget) and a few that are legal (ceil_mode 0, transB ... ) is refused.
    assert!(
        refusals >= 60,
        "only {refusals} of the extreme attributes were refused"
    );

    // The ones that once crashed, by name: stride 0 (division by zero in shape inference),
    // kernel 0 and dilation 0 (burn's asserts), a pad of 100000 (a 1.3 TB allocation).
    let cases: [(&str, Vec<i64>, &str); 4] = [
        ("strides", vec![0, 0], "strides = [0, 0]: each must be at least 1"),
        (
            "dilations",
            vec![0, 1],
            "dilations = [0, 1]: each must be at least 1",
        ),
        (
            "kernel_shape",
            vec![0, 0],
            "kernel_shape [0, 0] does not match the weight",
        ),
        ("pads", vec![100_000; 4], "more than the limit of 2.0 GiB"),
    ];
    for (attr, v, says) in cases {
        let (mut n, i) = base();
        n[0].attribute.retain(|a| a.name != attr);
        n[0].attribute.push(ints(attr, &v));
        assert_mentions(&error(&bytes(n, i)), &["conv", says]);
    }
    let (mut n, i) = base();
    n[0].attribute.push(float("group", 2.0));
    assert_mentions(
        &error(&bytes(n, i)),
        &["'conv'", "attribute 'group' must be of type INT, got FLOAT"],
    );
}

#[test]
fn an_unknown_opset_is_refused() {
    let (n, i) = base();
    let mut model = ModelProto::parse_from_bytes(&bytes(n, i)).unwrap();
    model.opset_import[0].version = 99;
    let b = model.write_to_bytes().unwrap();
    assert_mentions(&error(&b), &["opset 99", "7 to 23"]);
}

#[test]
fn squeeze_without_axes_keeps_the_batch() {
    // `x.squeeze()` after a global pool, as torch exports it: no axes, every axis of size 1.
    let (mut n, i) = base();
    n[3] = node("Squeeze", &["gap"], "flat", vec![]);
    let b = bytes(n, i);
    let (n0, i0) = base();
    let flat = import_bytes(&bytes(n0, i0), &default_device(), None).unwrap();
    let squeezed = import_bytes(&b, &default_device(), None).unwrap();
    let x = Tensor::<4>::ones([2, 3, 8, 8], &default_device());
    let run = |g: deepsight_onnx::Imported| {
        let m = GraphModel::new(g.graph, g.input_size, default_device()).unwrap();
        to_vec(m.logits(x.clone()).unwrap())
    };
    assert_eq!(run(squeezed), run(flat));
}

/// What the general operators still refuse: each one line naming the node, its operator and
/// what is missing.
#[test]
fn unsupported_patterns_of_the_general_operators_are_named() {
    let insert =
        |n: &mut Vec<NodeProto>, i: &mut Vec<TensorProto>, op: NodeProto, extra: Vec<TensorProto>| {
            n.insert(1, op);
            n[2].input[0] = "odd".into();
            i.extend(extra);
        };
    let cases: Vec<(NodeProto, Vec<TensorProto>, &[&str])> = vec![
        (
            node("MatMul", &["conv", "conv"], "odd", vec![]),
            vec![],
            &["'odd'", "(MatMul)", "product of two activations"],
        ),
        (
            node(
                "Resize",
                &["conv", "", "scales"],
                "odd",
                vec![string("mode", "cubic")],
            ),
            vec![tensor("scales", &[4], &[1.0, 1.0, 2.0, 2.0])],
            &["'odd'", "(Resize)", "mode 'cubic'"],
        ),
        (
            node("Slice", &["conv", "s", "e", "a", "st"], "odd", vec![]),
            vec![
                ints_tensor("s", &[7]),
                ints_tensor("e", &[0]),
                ints_tensor("a", &[2]),
                ints_tensor("st", &[-1]),
            ],
            &["'odd'", "(Slice)", "step -1"],
        ),
        (
            node("ReduceMean", &["conv"], "odd", vec![ints("axes", &[0, 1])]),
            vec![],
            &["'odd'", "(ReduceMean)", "include the batch"],
        ),
        (
            node("Gelu", &["conv"], "odd", vec![string("approximate", "tanh")]),
            vec![],
            &["'odd'", "(Gelu)", "approximate = 'tanh'"],
        ),
    ];
    for (op, extra, parts) in cases {
        let (mut n, mut i) = base();
        insert(&mut n, &mut i, op, extra);
        assert_mentions(&error(&bytes(n, i)), parts);
    }
}
