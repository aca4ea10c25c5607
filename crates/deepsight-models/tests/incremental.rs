//! Incremental inference under patch edits equals full re-inference of the edited images, on
//! every kind of layer the built-ins have: Lite0 (TF-SAME strided depthwise convolutions, ReLU6,
//! residual adds), ResNet-18 (overlapping padded max-pool, downsampling shortcuts), AlexNet
//! (unpadded overlapping max-pools, adaptive pooling head), VGG-11 with BatchNorm.

use deepsight_models::{Arch, ModelSource, RandomWeights};
use deepsight_runtime::{
    Classifier, GraphModel, LayeredClassifier, PatchBatch, Tensor, TensorData, default_device, to_vec,
};

fn image(seed: u64, h: usize, w: usize) -> Tensor<4> {
    let mut s = seed;
    let data: Vec<f32> = (0..3 * h * w)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect();
    Tensor::from_data(TensorData::new(data, [1, 3, h, w]), &default_device())
}

/// The edited images, materialised.
fn edited(img: &[f32], h: usize, w: usize, origins: &[[usize; 2]], p: usize, fill: f32) -> Tensor<4> {
    let mut out = Vec::new();
    for o in origins {
        let mut x = img.to_vec();
        for c in 0..3 {
            for y in o[0]..o[0] + p {
                for xx in o[1]..o[1] + p {
                    x[(c * h + y) * w + xx] = fill;
                }
            }
        }
        out.extend(x);
    }
    Tensor::from_data(TensorData::new(out, [origins.len(), 3, h, w]), &default_device())
}

fn check(arch: Arch, random_seed: Option<u64>, size: usize, tap: &str) {
    let device = default_device();
    let m = match random_seed {
        Some(seed) => GraphModel::new(
            arch.graph(&RandomWeights { seed }, &device).unwrap(),
            [size, size],
            device.clone(),
        )
        .unwrap(),
        None => {
            let src = ModelSource::Builtin {
                arch,
                random_seed: None,
            };
            src.load(&device).unwrap().model
        }
    };
    let img = image(7, size, size);
    let inc = m.incremental(img.clone(), &[tap]).unwrap();
    let p = 32;
    let last = size - p;
    let origins = vec![
        [0, 0],
        [last, last],
        [8, last / 2],
        [last / 2, 16],
        [last / 2 + 3, last / 2 - 5],
    ];
    let fill = 0.25;
    let values = Tensor::from_data(
        TensorData::new(vec![fill; origins.len() * 3 * p * p], [origins.len(), 3, p, p]),
        &device,
    );
    let out = inc
        .run(&PatchBatch {
            origins: origins.clone(),
            values,
        })
        .unwrap();
    let full_in = edited(&to_vec(img), size, size, &origins, p, fill);
    let cap = m.capture(full_in, &[tap], false).unwrap();
    let ours = to_vec(out.logits);
    let reference = to_vec(cap.logits);
    let scale = reference.iter().fold(1.0f32, |a, v| a.max(v.abs()));
    let diff = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let act = &cap.activations[tap];
    let [n, c, h, w] = act.dims();
    let a = to_vec(act.clone());
    let sums: Vec<f32> = (0..n * c)
        .map(|i| a[i * h * w..(i + 1) * h * w].iter().sum())
        .collect();
    let tscale = sums.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    let tdiff = out.tap_sums[0]
        .iter()
        .zip(&sums)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let saved = (origins.len() as u64 * inc.full_macs()) as f64 / out.macs as f64;
    println!(
        "{arch:?} at {size}: logits max diff {diff:e} (scale {scale:e}), tap '{tap}' sums {tdiff:e} (scale {tscale:e}); \
         MACs {:.1}M per edit vs {:.1}M full ({saved:.2}x fewer)",
        out.macs as f64 / origins.len() as f64 / 1e6,
        inc.full_macs() as f64 / 1e6
    );
    assert!(diff <= 1e-4 * scale, "{arch:?}: logits differ by {diff}");
    assert!(tdiff <= 1e-4 * tscale, "{arch:?}: tap sums differ by {tdiff}");
    assert!(
        saved > 1.2,
        "{arch:?}: incremental inference saved nothing ({saved:.2}x)"
    );
    let base = to_vec(m.logits(image(7, size, size)).unwrap());
    let bdiff = inc
        .base_logits()
        .iter()
        .zip(&base)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(bdiff <= 1e-5 * scale, "{arch:?}: base logits differ by {bdiff}");
}

#[test]
fn lite0_incremental_equals_full_reinference() {
    check(Arch::Lite0, None, 224, "_blocks.5");
}

#[test]
fn torchvision_archs_incremental_equal_full_reinference() {
    check(Arch::Resnet18, Some(3), 160, "layer2.0.conv1");
    check(Arch::Alexnet, Some(4), 160, "features.3");
    check(Arch::Vgg11Bn, Some(5), 96, "features.8");
}
