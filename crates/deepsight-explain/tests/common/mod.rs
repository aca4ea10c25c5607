//! Shared by the test files: the reference fixtures of `../shared/fixtures` and their models.
#![allow(dead_code)] // each test file uses its own subset

use deepsight_explain::{Request, Score};
use deepsight_models::{Arch, LoadedModel, ModelSource, Weights};
use deepsight_runtime::{Tensor, TensorData, default_device};
use std::path::PathBuf;

pub fn shared() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

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
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(shared().join("manifest.json")).unwrap()).unwrap();
    let classes = manifest[name]["target_classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let fx = Weights::from_safetensors(&shared().join(format!("{name}.safetensors"))).unwrap();
    (source.load(&device).unwrap(), fx, classes)
}

pub fn request(fx: &Weights, classes: &[usize]) -> Request {
    let t = &fx.tensors["input"];
    let s: [usize; 4] = t.shape.clone().try_into().unwrap();
    Request {
        images: Tensor::from_data(TensorData::new(t.data.clone(), s), &default_device()),
        classes: classes.to_vec(),
        score: Score::Logit,
        layer: None,
    }
}

pub fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (
        a.iter().map(|&v| v as f64).sum::<f64>() / n,
        b.iter().map(|&v| v as f64).sum::<f64>() / n,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    if saa == 0.0 && sbb == 0.0 {
        1.0
    } else {
        sab / (saa * sbb).sqrt()
    }
}
