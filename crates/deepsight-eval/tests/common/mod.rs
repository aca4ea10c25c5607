//! Shared by the test files: the reference fixtures of `../shared/fixtures` and their models.
#![allow(dead_code)] // each test file uses its own subset

use deepsight_eval::Normaliser;
use deepsight_explain::Map;
use deepsight_models::{Arch, LoadedModel, ModelSource, Weights};
use deepsight_runtime::default_device;
use std::path::PathBuf;

pub fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

pub fn manifest() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(shared().join("manifest.json")).unwrap()).unwrap()
}

/// The model (tiny nets from their ONNX export, Lite0 built in), the fixture tensors and the
/// fixture's target classes.
pub fn load(name: &str) -> (LoadedModel, Weights, Vec<usize>) {
    let device = default_device();
    let source = if name == "lite0" {
        ModelSource::Builtin {
            arch: Arch::Lite0,
            random_seed: None,
        }
    } else {
        ModelSource::Onnx {
            path: shared().join(format!("{name}.onnx")),
            input_size: None,
        }
    };
    let classes = manifest()[name]["target_classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let fx = Weights::from_safetensors(&shared().join(format!("{name}.safetensors"))).unwrap();
    (source.load(&device).unwrap(), fx, classes)
}

/// The fixture's input normalisation (`generate_fixtures.py`): identity for the tiny nets
/// (`x * 255 / 255`, within an ulp), `(x * 255 - 127) / 128` for Lite0.
pub fn normaliser(name: &str) -> Normaliser {
    if name == "lite0" {
        Normaliser {
            mean: [127.0; 3],
            std: [128.0; 3],
        }
    } else {
        Normaliser {
            mean: [0.0; 3],
            std: [255.0; 3],
        }
    }
}

/// The `[0, 1]` images the fixture's AD/IC used. The tiny nets' `input` is that image. Lite0's
/// `input` is `(x * 255 - 127) / 128` of `x = u8 / 255`, so rounding `input * 128 + 127` gives the
/// `u8` values back exactly.
pub fn images01(name: &str, fx: &Weights) -> Vec<f32> {
    let input = &fx.tensors["input"].data;
    if name == "lite0" {
        input
            .iter()
            .map(|v| (v * 128.0 + 127.0).round() / 255.0)
            .collect()
    } else {
        input.clone()
    }
}

pub fn dims(fx: &Weights, key: &str) -> Vec<usize> {
    fx.tensors[key].shape.clone()
}

/// `gradcam_raw`, one map per image at the CAM layer's resolution.
pub fn gradcam_raw(fx: &Weights) -> Vec<Map> {
    let t = &fx.tensors["gradcam_raw"];
    let [n, h, w]: [usize; 3] = t.shape.clone().try_into().unwrap();
    (0..n)
        .map(|i| Map {
            channels: 1,
            height: h,
            width: w,
            data: t.data[i * h * w..(i + 1) * h * w].to_vec(),
        })
        .collect()
}
