//! Test support: the reference fixtures in `../shared/fixtures` and the tiny reference networks.
#![allow(dead_code)]

use deepsight_models::{WeightSource, Weights};
use deepsight_runtime::{
    Bounds, Conv2d, Device, Graph, Linear, NodeId, Op, Padding, Pool, Tensor, TensorData,
};
use std::path::PathBuf;

pub fn shared() -> PathBuf {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared");
    assert!(
        p.join("fixtures").is_dir(),
        "the reference fixtures are missing: expected {}",
        p.display()
    );
    p
}

pub fn fixture(name: &str) -> Weights {
    Weights::from_safetensors(&shared().join("fixtures").join(name)).expect("fixture readable")
}

pub fn manifest() -> serde_json::Value {
    let text = std::fs::read_to_string(shared().join("fixtures/manifest.json")).expect("manifest");
    serde_json::from_str(&text).expect("manifest is JSON")
}

pub fn target_classes(model: &str) -> Vec<usize> {
    manifest()[model]["target_classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

pub fn tensor4(w: &Weights, name: &str, device: &Device) -> Tensor<4> {
    let t = &w.tensors[name];
    let s: [usize; 4] = t.shape.clone().try_into().expect("rank 4");
    Tensor::from_data(TensorData::new(t.data.clone(), s), device)
}

pub fn values(w: &Weights, name: &str) -> Vec<f32> {
    w.tensors[name].data.clone()
}

/// Largest absolute difference, asserting equal lengths.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn max_abs(a: &[f32]) -> f32 {
    a.iter().map(|x| x.abs()).fold(0.0, f32::max)
}

#[allow(clippy::too_many_arguments)] // mirrors nn.Conv2d's own argument list
fn conv<W: WeightSource>(
    w: &W,
    name: &str,
    io: [usize; 2],
    k: usize,
    stride: usize,
    pad: usize,
    bias: bool,
    d: &Device,
) -> Op {
    Op::Conv2d(Conv2d {
        weight: w
            .tensor(&format!("{name}.weight"), [io[1], io[0], k, k], d)
            .unwrap(),
        bias: bias.then(|| w.tensor(&format!("{name}.bias"), [io[1]], d).unwrap()),
        stride: [stride; 2],
        dilation: [1, 1],
        groups: 1,
        padding: Padding::symmetric(pad),
    })
}

fn bn<W: WeightSource>(w: &W, name: &str, c: usize, d: &Device) -> Op {
    let t = |s: &str| w.tensor(&format!("{name}.{s}"), [c], d).unwrap();
    Op::BatchNorm(deepsight_runtime::BatchNorm {
        gamma: t("weight"),
        beta: t("bias"),
        mean: t("running_mean"),
        var: t("running_var"),
        eps: 1e-5,
    })
}

fn linear<W: WeightSource>(w: &W, name: &str, io: [usize; 2], d: &Device) -> Op {
    Op::Linear(Linear {
        weight: w.tensor(&format!("{name}.weight"), [io[1], io[0]], d).unwrap(),
        bias: Some(w.tensor(&format!("{name}.bias"), [io[1]], d).unwrap()),
    })
}

pub fn pool(k: usize, s: usize, p: usize) -> Op {
    Op::MaxPool(Pool::square(k, s, p))
}

/// `generate_fixtures.py`'s TinyVGG, named like its PyTorch modules.
pub fn tiny_vgg<W: WeightSource>(w: &W, d: &Device) -> Graph {
    let mut g = Graph::new("input", 3);
    let mut x: NodeId = 0;
    let push = |g: &mut Graph, name: &str, op: Op, x: NodeId| g.push(name, op, &[x]).unwrap();
    x = push(
        &mut g,
        "features.0",
        conv(w, "features.0", [3, 8], 3, 1, 1, true, d),
        x,
    );
    x = push(&mut g, "features.1", Op::Rectifier(Bounds::RELU), x);
    x = push(&mut g, "features.2", pool(2, 2, 0), x);
    x = push(
        &mut g,
        "features.3",
        conv(w, "features.3", [8, 16], 3, 1, 1, true, d),
        x,
    );
    x = push(&mut g, "features.4", Op::Rectifier(Bounds::RELU), x);
    x = push(&mut g, "features.5", pool(2, 2, 0), x);
    x = push(
        &mut g,
        "features.6",
        conv(w, "features.6", [16, 32], 3, 1, 1, true, d),
        x,
    );
    x = push(&mut g, "features.7", Op::Rectifier(Bounds::RELU), x);
    x = push(&mut g, "pool", Op::GlobalAvgPool, x);
    push(&mut g, "fc", linear(w, "fc", [32, 10], d), x);
    g
}

/// `generate_fixtures.py`'s TinyResNet. `block_relu_name` suffixes the rectifier after each
/// residual add, which PyTorch computes with `F.relu` rather than a module.
pub fn tiny_resnet<W: WeightSource>(w: &W, d: &Device) -> Graph {
    let mut g = Graph::new("input", 3);
    let mut x = g
        .push("conv1", conv(w, "conv1", [3, 16], 7, 2, 3, false, d), &[0])
        .unwrap();
    x = g.push("bn1", bn(w, "bn1", 16, d), &[x]).unwrap();
    x = g.push("relu", Op::Rectifier(Bounds::RELU), &[x]).unwrap();
    x = g.push("maxpool", pool(3, 2, 1), &[x]).unwrap();
    for (name, cin, cout, stride) in [("layer1", 16, 16, 1), ("layer2", 16, 32, 2)] {
        let n = |s: &str| format!("{name}.{s}");
        let mut y = g
            .push(
                n("conv1"),
                conv(w, &n("conv1"), [cin, cout], 3, stride, 1, false, d),
                &[x],
            )
            .unwrap();
        y = g.push(n("bn1"), bn(w, &n("bn1"), cout, d), &[y]).unwrap();
        y = g.push(n("relu"), Op::Rectifier(Bounds::RELU), &[y]).unwrap();
        y = g
            .push(
                n("conv2"),
                conv(w, &n("conv2"), [cout, cout], 3, 1, 1, false, d),
                &[y],
            )
            .unwrap();
        y = g.push(n("bn2"), bn(w, &n("bn2"), cout, d), &[y]).unwrap();
        let skip = if stride != 1 || cin != cout {
            let s = g
                .push(
                    n("downsample.0"),
                    conv(w, &n("downsample.0"), [cin, cout], 1, stride, 0, false, d),
                    &[x],
                )
                .unwrap();
            g.push(n("downsample.1"), bn(w, &n("downsample.1"), cout, d), &[s])
                .unwrap()
        } else {
            x
        };
        let sum = g.push(n("add"), Op::Add, &[y, skip]).unwrap();
        x = g.push(name, Op::Rectifier(Bounds::RELU), &[sum]).unwrap();
    }
    x = g.push("avgpool", Op::GlobalAvgPool, &[x]).unwrap();
    g.push("fc", linear(w, "fc", [32, 10], d), &[x]).unwrap();
    g
}
