//! Fuzz targets for every parser that a user's file reaches, as plain functions of the input
//! bytes: each returns normally on any input (an error is a fine answer) and must neither panic
//! nor allocate beyond the process budget ([`deepsight_runtime::limits`]).
//!
//! The same functions back three drivers: the bolero tests in `tests/fuzz_targets.rs` (a short
//! bounded run inside `cargo test`, replaying the committed corpus under
//! `tests/__fuzz__/<target>/corpus` first), the libFuzzer targets in `/fuzz` (`cargo fuzz`, the
//! long runs), and the corpus replay of `tests/corpus_rss.rs`, which measures each case's peak
//! resident memory.

pub mod onnx_mutate;
pub mod rss;

use deepsight_models::Preset;
use deepsight_runtime::{Classifier, Device, GraphModel, Tensor};

/// A fuzz target: any bytes in, no panic out.
pub type Target = fn(&[u8]);

/// Every target by its name (the name of its corpus folder), for the replay drivers.
pub const TARGETS: &[(&str, Target)] = &[
    ("image", image),
    ("pth", pth),
    ("onnx", onnx),
    ("onnx_structured", onnx_structured),
    ("safetensors", safetensors),
];

/// The target called `name`.
pub fn target(name: &str) -> Option<Target> {
    TARGETS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
}

/// An image file: decoded as `deepsight classify` decodes it, then resized and normalised by
/// the default model's preset (EfficientNet-Lite's exact 224x224) and by torchvision's
/// shorter-side-then-crop, which is the one a long thin image makes huge.
pub fn image(data: &[u8]) {
    let Ok(img) = deepsight_models::preprocess::decode_rgb(data) else {
        return;
    };
    assert_eq!(
        img.pixels.len(),
        img.width * img.height * 3,
        "decoded buffer size"
    );
    for preset in [Preset::EfficientNetLite, Preset::TorchvisionImagenet] {
        let p = preset.pipeline();
        if let Ok(r) = p.resize(&img) {
            assert_eq!([r.height, r.width], p.size(), "{preset:?} resize size");
            assert_eq!(p.normalise(&r).len(), 3 * r.width * r.height);
        }
    }
}

/// A PyTorch `.pth` file (legacy stream or zip archive) through the restricted unpickler.
pub fn pth(data: &[u8]) {
    if let Ok(w) = deepsight_models::pth::parse_pth(data) {
        for t in w.tensors.values() {
            assert_eq!(t.data.len(), t.shape.iter().product::<usize>(), "tensor size");
        }
    }
}

/// A `.safetensors` file, through each reader that takes one: model weights, and the learned
/// explainers' weight files (NN-Explainer, L-CAM).
pub fn safetensors(data: &[u8]) {
    if let Ok(w) = deepsight_models::Weights::from_safetensors_bytes(data) {
        for t in w.tensors.values() {
            assert_eq!(t.data.len(), t.shape.iter().product::<usize>(), "tensor size");
        }
    }
    let _ = deepsight_explain::learned::ExplainerWeights::from_bytes(data, "fuzz input");
    let _ = deepsight_explain::learned::LcamWeights::from_bytes(data, "fuzz input");
}

/// An ONNX file, imported as `--model file.onnx` imports it; when that succeeds, the model is
/// wrapped as `deepsight` wraps it and, when cheap, run once on a zero image.
pub fn onnx(data: &[u8]) {
    import_and_run(data, None);
}

/// A valid seed model mutated by the input ([`onnx_mutate`]), re-serialised, then as [`onnx`].
pub fn onnx_structured(data: &[u8]) {
    let (bytes, input_size) = onnx_mutate::mutated(data);
    import_and_run(&bytes, input_size);
}

/// The most multiply-adds (estimated) of a forward pass the ONNX targets run.
const MAX_FORWARD_COST: u64 = 50_000_000;

/// Imports `bytes`; when that succeeds and the model is small, runs it once.
pub fn import_and_run(bytes: &[u8], input_size: Option<[usize; 2]>) {
    let device = deepsight_runtime::default_device();
    let Ok(imported) = deepsight_onnx::import_bytes(bytes, &device, input_size) else {
        return;
    };
    let [h, w] = imported.input_size;
    let graph = imported.graph;
    let c = graph.input_channels();
    let Ok(shapes) = graph.infer_shapes([1, c, h, w]) else {
        return;
    };
    if forward_cost(&graph, &shapes).is_none_or(|cost| cost > MAX_FORWARD_COST) {
        return;
    }
    let Ok(model) = GraphModel::new(graph, [h, w], device.clone()) else {
        return;
    };
    run_once(&model, c, [h, w], &device);
}

/// A rough multiply-add count: each node's output size times its parameters per output
/// channel (a convolution's kernel volume, a linear layer's inputs), at least 1.
fn forward_cost(graph: &deepsight_runtime::Graph, shapes: &[[usize; 4]]) -> Option<u64> {
    let mut total = 0u64;
    for (node, s) in graph.nodes().iter().zip(shapes) {
        let out = s.iter().try_fold(1u64, |a, &d| a.checked_mul(d as u64))?;
        let per = (node.op.params() as u64 / (s[1] as u64).max(1)).max(1);
        total = total.checked_add(out.checked_mul(per)?)?;
    }
    Some(total)
}

fn run_once(model: &GraphModel, c: usize, [h, w]: [usize; 2], device: &Device) {
    let x = Tensor::<4>::zeros([1, c, h, w], device);
    if let Ok(logits) = model.logits(x) {
        assert_eq!(logits.dims(), [1, model.num_classes()], "logits shape");
    }
}
