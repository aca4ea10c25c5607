//! Every refusal of the importer names the node, its operator and what is missing, and no
//! malformed file panics. The graphs are written here with the ONNX protobuf types.

use deepsight_onnx::import_bytes;
use deepsight_runtime::{Classifier, GraphModel, Tensor, TensorData, default_device, to_vec};
use onnx_protobuf::tensor_proto::{DataLocation, DataType};
use onnx_protobuf::tensor_shape_proto::{Dimension, dimension};
use onnx_protobuf::type_proto::{self, Tensor as TensorType};
use onnx_protobuf::{
    AttributeProto, GraphProto, Message, ModelProto, NodeProto, OperatorSetIdProto, StringStringEntryProto,
    TensorProto, TensorShapeProto, TypeProto, ValueInfoProto, attribute_proto::AttributeType,
};

fn tensor(name: &str, dims: &[i64], v: f32) -> TensorProto {
    let n: i64 = dims.iter().product();
    TensorProto {
        name: name.into(),
        dims: dims.to_vec(),
        data_type: DataType::FLOAT as i32,
        float_data: vec![v; n as usize],
        ..Default::default()
    }
}

fn ints_tensor(name: &str, v: &[i64]) -> TensorProto {
    TensorProto {
        name: name.into(),
        dims: vec![v.len() as i64],
        data_type: DataType::INT64 as i32,
        int64_data: v.to_vec(),
        ..Default::default()
    }
}

fn node(op: &str, inputs: &[&str], output: &str, attrs: Vec<AttributeProto>) -> NodeProto {
    NodeProto {
        op_type: op.into(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: vec![output.into()],
        attribute: attrs,
        ..Default::default()
    }
}

fn ints(name: &str, v: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INTS.into(),
        ints: v.to_vec(),
        ..Default::default()
    }
}

fn int(name: &str, v: i64) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::INT.into(),
        i: v,
        ..Default::default()
    }
}

fn string(name: &str, v: &str) -> AttributeProto {
    AttributeProto {
        name: name.into(),
        type_: AttributeType::STRING.into(),
        s: v.as_bytes().to_vec(),
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[i64]) -> ValueInfoProto {
    let dim = dims
        .iter()
        .map(|&d| Dimension {
            value: Some(if d > 0 {
                dimension::Value::DimValue(d)
            } else {
                dimension::Value::DimParam("N".into())
            }),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.into(),
        type_: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(TensorType {
                elem_type: DataType::FLOAT as i32,
                shape: Some(TensorShapeProto {
                    dim,
                    ..Default::default()
                })
                .into(),
                ..Default::default()
            })),
            ..Default::default()
        })
        .into(),
        ..Default::default()
    }
}

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
        tensor("w", &[4, 3, 3, 3], 0.1),
        tensor("b", &[4], 0.0),
        tensor("fc", &[2, 4], 0.5),
        tensor("fcb", &[2], 0.0),
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
fn layout_changes_of_activations_are_refused() {
    let (mut n, mut i) = base();
    i.push(ints_tensor("shape", &[1, 32, 8]));
    n.insert(1, node("Reshape", &["conv", "shape"], "odd", vec![]));
    n[2].input[0] = "odd".into();
    assert_mentions(
        &error(&bytes(n, i)),
        &["'odd'", "(Reshape)", "flattening to [N, features] only"],
    );

    let (mut n, i) = base();
    n.insert(
        1,
        node("Transpose", &["conv"], "nhwc", vec![ints("perm", &[0, 2, 3, 1])]),
    );
    n[2].input[0] = "nhwc".into();
    assert_mentions(&error(&bytes(n, i)), &["'nhwc'", "(Transpose)", "reorders"]);
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
    i[2] = tensor("fc", &[2, 5], 0.5);
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
