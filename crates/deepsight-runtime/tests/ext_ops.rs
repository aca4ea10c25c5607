//! The operations imported graphs bring (LRN, adaptive average pooling, transposed convolution,
//! concatenation, broadcasting arithmetic with nodes and constants, padding, smooth activations,
//! softmax): their gradients against central differences on a small graph that uses all of them.

mod common;

use deepsight_runtime::{
    Activation, Arithmetic, Conv2d, ConvTranspose2d, Device, ExtOp, GradientRequest, Graph, GraphModel,
    LayeredClassifier, Linear, Lrn, Objective, Op, Pad, Padding, RectifierRule, Tensor, TensorData,
    default_device, to_vec,
};

use common::values;

fn tensor<const D: usize>(seed: u64, shape: [usize; D], scale: f32, d: &Device) -> Tensor<D> {
    common::seeded(seed, shape, scale, d)
}

/// input 3x9x9 -> conv 6 -> LRN -> [a]; a -> ConvTranspose (s2) -> 4x17x17 -> adaptive avg 9x9 -> [b];
/// concat(a, b) -> * sigmoid gate -> / 2 (constant) -> tanh -> pad -> conv -> hardswish ->
/// adaptive avg 3x3 -> flatten -> linear -> leaky relu -> softmax-weighted features -> linear.
fn net(d: &Device) -> GraphModel {
    let mut g = Graph::new("input", 3);
    let conv = |seed, io: [usize; 2], k: usize, pad: usize| {
        Op::Conv2d(Conv2d {
            weight: tensor(seed, [io[1], io[0], k, k], 0.4, d),
            bias: Some(tensor(seed + 1, [io[1]], 0.1, d)),
            stride: [1, 1],
            dilation: [1, 1],
            groups: 1,
            padding: Padding::symmetric(pad),
        })
    };
    let x = g.push("conv1", conv(1, [3, 6], 3, 1), &[0]).unwrap();
    let lrn = Lrn {
        size: 3,
        front: 1,
        alpha: 0.3,
        beta: 0.75,
        bias: 1.5,
    };
    let a = g.push("lrn", Op::Ext(ExtOp::Lrn(lrn)), &[x]).unwrap();
    let ct = ConvTranspose2d {
        weight: tensor(3, [6, 4, 3, 3], 0.3, d),
        bias: Some(tensor(4, [4], 0.1, d)),
        stride: [2, 2],
        padding: [1, 1],
        output_padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    };
    let up = g.push("up", Op::Ext(ExtOp::ConvTranspose2d(ct)), &[a]).unwrap();
    let b = g.push("down", Op::AdaptiveAvgPool([9, 9]), &[up]).unwrap();
    let cat = g.push("cat", Op::Ext(ExtOp::Concat), &[a, b]).unwrap();
    let gate = g
        .push("gate", Op::Ext(ExtOp::Activation(Activation::Sigmoid)), &[cat])
        .unwrap();
    let gated = g
        .push("gated", Op::Ext(ExtOp::Binary(Arithmetic::Mul)), &[cat, gate])
        .unwrap();
    let half = ExtOp::WithConstant {
        op: Arithmetic::Div,
        constant: tensor(5, [1, 10, 1, 1], 1.0, d).abs() + 1.0,
        constant_first: false,
    };
    let h = g.push("half", Op::Ext(half), &[gated]).unwrap();
    let t = g
        .push("tanh", Op::Ext(ExtOp::Activation(Activation::Tanh)), &[h])
        .unwrap();
    let pad = Pad {
        pads: [1, 0, 2, 1],
        value: 0.5,
    };
    let p = g.push("pad", Op::Ext(ExtOp::Pad(pad)), &[t]).unwrap();
    let c2 = g.push("conv2", conv(6, [10, 5], 3, 0), &[p]).unwrap();
    let hs = g
        .push("hswish", Op::Ext(ExtOp::Activation(Activation::HardSwish)), &[c2])
        .unwrap();
    let pooled = g.push("pool", Op::AdaptiveAvgPool([3, 3]), &[hs]).unwrap();
    let flat = g.push("flat", Op::Flatten, &[pooled]).unwrap();
    let fc = |seed, io: [usize; 2]| {
        Op::Linear(Linear {
            weight: tensor(seed, [io[1], io[0]], 0.3, d),
            bias: Some(tensor(seed + 1, [io[1]], 0.1, d)),
        })
    };
    let f1 = g.push("fc1", fc(8, [45, 8]), &[flat]).unwrap();
    let lr = g
        .push(
            "leaky",
            Op::Ext(ExtOp::Activation(Activation::LeakyRelu { alpha: 0.2 })),
            &[f1],
        )
        .unwrap();
    let sm = g.push("softmax", Op::Ext(ExtOp::Softmax), &[lr]).unwrap();
    let w = g
        .push("weighted", Op::Ext(ExtOp::Binary(Arithmetic::Mul)), &[lr, sm])
        .unwrap();
    g.push("fc2", fc(10, [8, 3]), &[w]).unwrap();
    GraphModel::new(g, [9, 9], d.clone()).unwrap()
}

#[test]
fn extended_ops_gradients_match_central_differences() {
    let d = default_device();
    let model = net(&d);
    let shape = [1, 3, 9, 9];
    let x = values(77, 243, 1.0);
    let t = Tensor::from_data(TensorData::new(x.clone(), shape), &d);
    let req = GradientRequest::input(Objective::Logit(vec![1]), RectifierRule::Plain);
    let grad = to_vec(model.gradients(t, &req).unwrap().input.unwrap());
    let (worst, scale) = common::worst_central_difference(&model, &x, shape, 1, &grad, 1e-2);
    println!("extended ops: worst |fd - grad| {worst:e} (max |grad| {scale:e})");
    assert!(scale > 1e-4, "the gradient must not vanish");
    assert!(worst <= 0.01 * scale, "worst {worst} of {scale}");
    let layers = model.layers();
    assert_eq!(
        layers.iter().find(|l| l.name == "up").unwrap().shape,
        vec![1, 4, 18, 18]
    );
    assert_eq!(
        layers.iter().find(|l| l.name == "pad").unwrap().shape,
        vec![1, 10, 12, 10]
    );
    assert_eq!(model.default_cam_layer().as_deref(), Some("hswish"));
}
