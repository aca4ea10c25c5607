//! The built-in classic architectures against PyTorch: each is built from
//! `RandomWeights { seed }`, whose tensors `tests/data/make_torchvision_refs.py` regenerates in
//! numpy and loads into the torchvision model (`load_state_dict(strict=True)`, so every name and
//! shape must be torchvision's), and run on the seeded input; the logits PyTorch computed are in
//! `tests/data/torchvision_refs.json`.

mod common;

use common::{max_abs, max_abs_diff};
use deepsight_models::{
    Arch, ModelError, ModelSource, RandomWeights, WeightSource, WeightTensor, Weights, uniform_stream,
};
use deepsight_runtime::{Classifier, Device, GraphModel, Tensor, TensorData, default_device, to_vec};
use serde::Deserialize;
use std::cell::RefCell;
use std::time::Instant;

/// Absolute tolerance on float32 logits of magnitude up to ~25 (float32 rounding alone is
/// ~1e-5 there).
const TOLERANCE: f32 = 1e-4;

#[derive(Deserialize)]
struct Refs {
    cases: Vec<Case>,
}

#[derive(Deserialize)]
struct Case {
    arch: String,
    seed: u64,
    input: [usize; 4],
    logits: Vec<f32>,
}

fn refs() -> Refs {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/torchvision_refs.json");
    let text = std::fs::read_to_string(path).expect("reference logits readable");
    serde_json::from_str(&text).expect("reference logits parse")
}

fn case(arch: &str) -> Case {
    refs()
        .cases
        .into_iter()
        .find(|c| c.arch == arch)
        .expect("arch in the references")
}

/// The script's input: the stream `input` of the case's seed, `2u - 1`, NCHW.
fn input(seed: u64, shape: [usize; 4], device: &Device) -> Tensor<4> {
    let n = shape.iter().product();
    let data: Vec<f32> = uniform_stream(seed, "input")
        .take(n)
        .map(|u| (2.0 * u - 1.0) as f32)
        .collect();
    Tensor::from_data(TensorData::new(data, shape), device)
}

fn model(arch: Arch, source: &impl WeightSource, size: [usize; 2], device: &Device) -> GraphModel {
    let graph = arch.graph(source, device).expect("graph builds");
    GraphModel::new(graph, size, device.clone()).expect("model")
}

fn run_case(c: &Case, device: &Device) -> Vec<f32> {
    let arch = Arch::from_name(&c.arch).expect("a built-in name");
    let [_, _, h, w] = c.input;
    let m = model(arch, &RandomWeights { seed: c.seed }, [h, w], device);
    to_vec(m.logits(input(c.seed, c.input, device)).expect("forward"))
}

/// Checks every reference case of `arch`, printing the max differences.
fn check_arch(arch: &str) {
    let device = default_device();
    let cases: Vec<Case> = refs().cases.into_iter().filter(|c| c.arch == arch).collect();
    assert!(!cases.is_empty(), "{arch} has no reference case");
    let mut failed = Vec::new();
    for c in &cases {
        let start = Instant::now();
        let ours = run_case(c, &device);
        let diff = max_abs_diff(&ours, &c.logits);
        println!(
            "{:9} seed {:2} {:?}: max abs diff {diff:.2e}, max |logit| {:.3}, {:.2} s",
            c.arch,
            c.seed,
            c.input,
            max_abs(&c.logits),
            start.elapsed().as_secs_f32()
        );
        if diff > TOLERANCE {
            failed.push(format!("{} {:?}: {diff:e}", c.arch, c.input));
        }
    }
    assert!(
        failed.is_empty(),
        "logits differ by more than {TOLERANCE}: {failed:?}"
    );
}

// One test per architecture, so that the harness runs them side by side.
macro_rules! reference_tests {
    ($($test:ident => $arch:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check_arch($arch);
            }
        )*

        #[test]
        fn every_torchvision_builtin_is_checked() {
            let checked = [$($arch),*];
            for (arch, name) in Arch::ALL {
                assert!(
                    matches!(
                        arch,
                        Arch::Lite0 | Arch::Lite2 | Arch::MosaicCnn | Arch::FmnistZf | Arch::FmnistAlex
                    ) || checked.contains(&name),
                    "{name} is not checked"
                );
            }
        }
    };
}

reference_tests! {
    alexnet_matches_pytorch => "alexnet",
    zfnet_matches_pytorch => "zfnet",
    vgg11_matches_pytorch => "vgg11",
    vgg11_bn_matches_pytorch => "vgg11_bn",
    vgg16_matches_pytorch => "vgg16",
    vgg16_bn_matches_pytorch => "vgg16_bn",
    resnet18_matches_pytorch => "resnet18",
    resnet50_matches_pytorch => "resnet50",
}

/// Records every tensor an architecture asks for, as `RandomWeights` gives it: the state dict a
/// torchvision model with these weights would save.
struct Recorder {
    random: RandomWeights,
    seen: RefCell<Weights>,
}

impl WeightSource for Recorder {
    fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &Device,
    ) -> deepsight_models::Result<Tensor<D>> {
        let tensor = WeightTensor {
            shape: shape.to_vec(),
            data: self.random.values(name, &shape),
        };
        self.seen.borrow_mut().tensors.insert(name.into(), tensor);
        self.random.tensor(name, shape, device)
    }
}

fn state_dict(arch: Arch, seed: u64, device: &Device) -> Weights {
    let recorder = Recorder {
        random: RandomWeights { seed },
        seen: RefCell::default(),
    };
    arch.graph(&recorder, device).expect("graph builds");
    recorder.seen.into_inner()
}

#[test]
fn resnet18_from_a_safetensors_file_gives_the_same_logits() {
    let device = default_device();
    let c = case("resnet18");
    let path = std::env::temp_dir().join(format!("deepsight-resnet18-{}.safetensors", std::process::id()));
    let weights = state_dict(Arch::Resnet18, c.seed, &device);
    assert_eq!(
        weights.tensors.len(),
        102,
        "torchvision's resnet18 state dict without num_batches_tracked"
    );
    weights.save_safetensors(&path).unwrap();
    let loaded = ModelSource::File {
        arch: Arch::Resnet18,
        path: path.clone(),
    }
    .load(&device);
    std::fs::remove_file(&path).ok();
    let loaded = loaded.unwrap();
    let from_file = to_vec(loaded.model.logits(input(c.seed, c.input, &device)).unwrap());
    let random = run_case(&c, &device);
    assert_eq!(from_file, random, "the same weights through a file");
    let diff = max_abs_diff(&from_file, &c.logits);
    println!("resnet18 from safetensors: max abs diff to PyTorch {diff:.2e}");
    assert!(diff <= TOLERANCE);
}

#[test]
fn a_missing_or_misshapen_tensor_is_an_error_naming_it() {
    let device = default_device();
    let weights = state_dict(Arch::Resnet18, 1, &device);

    let mut missing = weights.clone();
    missing.tensors.remove("layer3.1.bn2.running_mean");
    let err = Arch::Resnet18.graph(&missing, &device).unwrap_err();
    assert!(
        matches!(&err, ModelError::Weight { name, .. } if name == "layer3.1.bn2.running_mean"),
        "{err}"
    );
    assert!(err.to_string().contains("missing"), "{err}");

    let mut misshapen = weights;
    misshapen.tensors.insert(
        "fc.weight".into(),
        WeightTensor {
            shape: vec![10, 512],
            data: vec![0.0; 5120],
        },
    );
    let err = Arch::Resnet18.graph(&misshapen, &device).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("fc.weight") && text.contains("[10, 512]") && text.contains("[1000, 512]"),
        "{text}"
    );

    // Through a file, the message also names the file.
    let path = std::env::temp_dir().join(format!("deepsight-misshapen-{}.safetensors", std::process::id()));
    misshapen.save_safetensors(&path).unwrap();
    let err = ModelSource::File {
        arch: Arch::Resnet18,
        path: path.clone(),
    }
    .load(&device)
    .unwrap_err();
    std::fs::remove_file(&path).ok();
    let text = err.to_string();
    assert!(
        text.contains("fc.weight") && text.contains(&path.display().to_string()),
        "{text}"
    );
}

#[test]
fn every_builtin_name_round_trips() {
    for (arch, name) in Arch::ALL {
        assert_eq!(Arch::from_name(name), Some(arch));
        assert_eq!(arch.name(), name);
    }
    assert_eq!(Arch::from_name("resnet34"), None);
}
