//! Modern CNN blocks exported by PyTorch (`tests/data/make_modern_zoo.py`): ConvNeXt (NHWC
//! LayerNorm, Linear and exact GELU between transposes, layer scale), ShuffleNet V2 (channel
//! chunks, concat, channel shuffle through a rank-5 reshape and transpose), and a CSP-style net
//! (channel split, Mish, Softplus, ELU, SELU, PReLU, GroupNorm, bilinear and nearest Resize,
//! channel mean/max attention, `view(N, C, -1)` pooling), each from the TorchScript exporter
//! (opset 17) and the dynamo exporter (opset 18). Every tensor of the nets is random.
//!
//! Against PyTorch's own numbers: logits, the input gradient (saliency), and at each CAM layer
//! the activation, its gradient and the Grad-CAM map, in `[N, C, H, W]` even where the layer is
//! an NHWC value inside a ConvNeXt block.

mod common;

use common::data;

const MODELS: &[&str] = &[
    "convnext_legacy",
    "convnext_dynamo",
    "shuffle_legacy",
    "shuffle_dynamo",
    "csp_legacy",
    "csp_dynamo",
];

#[test]
fn modern_blocks_match_pytorch() {
    let all: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data("modern_zoo.json")).unwrap()).unwrap();
    for name in MODELS {
        let row = common::zoo::check(name, &data(&format!("modern_{name}.onnx")), &all[name]);
        // Saliency on these small nets is exact to float rounding.
        assert!(row.saliency_r >= 0.99999, "{name}: {row:?}");
    }
}

/// A Keras model's Rescaling and Normalization on its NHWC input, before the Transpose that
/// DeepSight used to skip: the image is fed NCHW, transposed back for them, and the logits are
/// onnxruntime's.
#[test]
fn keras_preprocessing_before_the_transpose_runs_in_the_model() {
    use deepsight_runtime::{
        Classifier, GraphModel, LayeredClassifier, Tensor, TensorData, default_device, to_vec,
    };
    let d = default_device();
    let imported = deepsight_onnx::import_file(&data("keras_preprocessed.onnx"), &d, None).unwrap();
    assert!(
        imported.notes.iter().any(|n| n.contains("transposed back")),
        "{:?}",
        imported.notes
    );
    assert_eq!(imported.input_size, [16, 16]);
    let model = GraphModel::new(imported.graph, imported.input_size, d.clone()).unwrap();
    let r: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data("keras_preprocessed.json")).unwrap()).unwrap();
    let x = Tensor::from_data(
        TensorData::new(common::floats(&r["input_nchw"]), [1, 3, 16, 16]),
        &d,
    );
    let got = to_vec(model.logits(x).unwrap());
    let want = common::floats(&r["logits"]);
    let diff = common::zoo::max_diff(&got, &want);
    println!("keras preprocessing: logits max diff {diff:e}");
    assert!(diff < 1e-5, "{got:?} vs {want:?}");
    assert_eq!(model.default_cam_layer().as_deref(), Some("swish"));
}

/// Incremental inference (occlusion's fast path) through NHWC blocks, channel shuffles and
/// resizes: the regions it cannot track fall back to full computation, and the scores of patched
/// images equal a full forward pass of them.
#[test]
fn incremental_inference_falls_back_where_regions_cannot_be_tracked() {
    use deepsight_runtime::{
        Classifier, GraphModel, LayeredClassifier, PatchBatch, Tensor, TensorData, default_device, to_vec,
    };
    let d = default_device();
    let all: serde_json::Value =
        serde_json::from_slice(&std::fs::read(data("modern_zoo.json")).unwrap()).unwrap();
    for name in ["convnext_legacy", "shuffle_dynamo", "csp_dynamo"] {
        let imported = deepsight_onnx::import_file(&data(&format!("modern_{name}.onnx")), &d, None).unwrap();
        let model = GraphModel::new(imported.graph, imported.input_size, d.clone()).unwrap();
        let x = common::floats(&all[name]["input"]);
        let image = Tensor::from_data(TensorData::new(x.clone(), [1, 3, 32, 32]), &d);
        let inc = model.incremental(image, &[]).unwrap();
        let (origins, size) = (vec![[0usize, 0usize], [20, 12]], 8);
        let patch = Tensor::from_data(
            TensorData::new(vec![0.5f32; 2 * 3 * size * size], [2, 3, size, size]),
            &d,
        );
        let got = to_vec(
            inc.run(&PatchBatch {
                origins: origins.clone(),
                values: patch,
            })
            .unwrap()
            .logits,
        );
        let mut full = Vec::new();
        for [r, c] in origins {
            let mut v = x.clone();
            for ch in 0..3 {
                for i in r..r + size {
                    for j in c..c + size {
                        v[ch * 1024 + i * 32 + j] = 0.5;
                    }
                }
            }
            full.extend(to_vec(
                model
                    .logits(Tensor::from_data(TensorData::new(v, [1, 3, 32, 32]), &d))
                    .unwrap(),
            ));
        }
        let diff = common::zoo::max_diff(&got, &full);
        println!("{name}: incremental vs full {diff:e}");
        assert!(diff < 1e-4, "{name}: {diff}");
    }
}
