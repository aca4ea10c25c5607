//! Differentiable forwards for training modules on a frozen classifier: a tensor computed by a
//! trainable module (here a `require_grad` mask) goes through the frozen network, and the
//! gradient of the class scores reaches it through every layer kind, matching central
//! differences of plain inference (which takes the host-side fast paths where it may).

mod common;

use common::{Rng, bn, conv};
use deepsight_runtime::{
    Activation, Bounds, Classifier, Device, ExtOp, GradientRequest, Graph, GraphModel, LayeredClassifier,
    Linear, Objective, Op, Padding, Pool, RectifierRule, Tensor, TensorData, default_device, to_vec,
};

/// Every layer kind of the runtime: strided TF-SAME conv, BatchNorm, ReLU6, overlapping max-pool,
/// a depthwise conv on a 7x7 map (inference takes the host-side channels-last kernel there),
/// residual add, ReLU, average pool, hard-swish, concat, adaptive pool, global pool, flatten,
/// linear, identity.
fn every_kind(d: &Device) -> GraphModel {
    let mut r = Rng(11);
    let mut g = Graph::new("input", 3);
    let mut x = g
        .push(
            "conv1",
            conv(&mut r, [3, 8], 3, 2, 1, Padding::SameUpper, d),
            &[0],
        )
        .unwrap();
    x = g.push("bn1", bn(&mut r, 8, d), &[x]).unwrap();
    x = g.push("act1", Op::Rectifier(Bounds::RELU6), &[x]).unwrap();
    let a = g.push("pool", Op::MaxPool(Pool::square(3, 2, 1)), &[x]).unwrap();
    x = g
        .push(
            "dw",
            conv(&mut r, [8, 8], 3, 1, 8, Padding::symmetric(1), d),
            &[a],
        )
        .unwrap();
    x = g.push("bn2", bn(&mut r, 8, d), &[x]).unwrap();
    x = g.push("add", Op::Add, &[x, a]).unwrap();
    let b = g.push("relu", Op::Rectifier(Bounds::RELU), &[x]).unwrap();
    x = g.push("avg", Op::AvgPool(Pool::square(3, 1, 1)), &[b]).unwrap();
    x = g
        .push("hswish", Op::Ext(ExtOp::Activation(Activation::HardSwish)), &[x])
        .unwrap();
    x = g.push("cat", Op::Ext(ExtOp::Concat), &[x, b]).unwrap();
    x = g
        .push(
            "conv2",
            conv(&mut r, [16, 6], 1, 1, 1, Padding::symmetric(0), d),
            &[x],
        )
        .unwrap();
    x = g.push("adaptive", Op::AdaptiveAvgPool([2, 2]), &[x]).unwrap();
    x = g.push("flatten", Op::Flatten, &[x]).unwrap();
    let fc = Linear {
        weight: r.tensor([5, 24], 0.4, d),
        bias: Some(r.tensor([5], 0.1, d)),
    };
    x = g.push("fc", Op::Linear(fc), &[x]).unwrap();
    g.push("out", Op::Identity, &[x]).unwrap();
    GraphModel::new(g, [13, 13], d.clone()).unwrap()
}

/// The scalar trained on: `sum_n sum_k w[n, k] logits[n, k]` of the image times the mask.
fn objective(model: &GraphModel, image: &[f32], mask: &[f32], shape: [usize; 4], w: &[f32]) -> f64 {
    let x: Vec<f32> = image.iter().zip(mask).map(|(a, m)| a * m).collect();
    let t = Tensor::from_data(TensorData::new(x, shape), &model.device());
    let logits = to_vec(model.logits(t).unwrap());
    logits.iter().zip(w).map(|(l, w)| (*l as f64) * (*w as f64)).sum()
}

/// The gradient with respect to the mask through `forward_tracked`.
fn mask_gradient(model: &GraphModel, image: &[f32], mask: &[f32], shape: [usize; 4], w: &[f32]) -> Vec<f32> {
    let d = model.device();
    let ad = d.clone().autodiff();
    let m = Tensor::<4>::from_data(TensorData::new(mask.to_vec(), shape), &ad).require_grad();
    let img = Tensor::<4>::from_data(TensorData::new(image.to_vec(), shape), &d);
    let out = model.forward_tracked(img * m.clone(), &[]).unwrap();
    let [n, k] = out.logits.dims();
    let wt = Tensor::<2>::from_data(TensorData::new(w.to_vec(), [n, k]), &d);
    let grads = (out.logits * wt).sum().backward();
    to_vec(m.grad(&grads).expect("the gradient reaches the mask"))
}

fn worst_error(model: &GraphModel, shape: [usize; 4], every: usize, seed: u64) -> (f64, f64) {
    let mut r = Rng(seed);
    let n = shape.iter().product();
    let image = r.vec(n, 1.0);
    let mask: Vec<f32> = r.vec(n, 0.4).into_iter().map(|v| v + 0.6).collect();
    let w = r.vec(shape[0] * model.num_classes(), 1.0);
    let grad = mask_gradient(model, &image, &mask, shape, &w);
    let eps = 3e-3f32;
    let mut worst = 0f64;
    let mut errs = Vec::new();
    for i in (0..n).step_by(every) {
        let (mut p, mut m) = (mask.clone(), mask.clone());
        p[i] += eps;
        m[i] -= eps;
        let fd = (objective(model, &image, &p, shape, &w) - objective(model, &image, &m, shape, &w))
            / (2.0 * eps as f64);
        worst = worst.max((fd - grad[i] as f64).abs());
        errs.push((fd - grad[i] as f64).abs());
    }
    errs.sort_by(f64::total_cmp);
    let median = errs[errs.len() / 2];
    println!(
        "errors: median {median:e}, 90% {:e}, largest {:?}",
        errs[errs.len() * 9 / 10],
        &errs[errs.len() - 3..]
    );
    let scale = grad.iter().map(|v| v.abs()).fold(0.0, f32::max) as f64;
    // A kink (ReLU, max-pool tie) crossed within eps explains an outlier, not a typical error.
    assert!(median <= 1e-3 * scale, "median error {median} of {scale}");
    (worst, scale)
}

#[test]
fn gradient_through_every_layer_kind_matches_central_differences() {
    let model = every_kind(&default_device());
    // A batch of 3: inference runs the 7x7 depthwise conv on the host-side kernel.
    let (worst, scale) = worst_error(&model, [3, 3, 13, 13], 3, 5);
    println!("every layer kind: worst abs error {worst:e} (max |grad| {scale:e})");
    assert!(scale > 0.0, "the gradient is not zero");
    assert!(worst <= 0.03 * scale, "worst {worst} of {scale}");
}

#[test]
fn tracked_forward_gives_the_gradient_api_input_gradient() {
    let d = default_device();
    let model = every_kind(&d);
    let x = Rng(3).tensor([2, 3, 13, 13], 1.0, &d);
    let g = model
        .gradients(
            x.clone(),
            &GradientRequest::input(Objective::Logit(vec![1, 4]), RectifierRule::Plain),
        )
        .unwrap();
    let ad = d.clone().autodiff();
    let leaf = x.autodiff().require_grad();
    let out = model.forward_tracked(leaf.clone(), &["relu"]).unwrap();
    assert!(out.activations["relu"].is_autodiff());
    let onehot = Tensor::<2>::from_data(
        TensorData::new(vec![0., 1., 0., 0., 0., 0., 0., 0., 0., 1.], [2, 5]),
        &ad,
    );
    let grads = (out.logits * onehot).sum().backward();
    let a = to_vec(leaf.grad(&grads).unwrap());
    let b = to_vec(g.input.unwrap());
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(diff <= 1e-6, "max difference {diff}");
}

#[test]
fn resumed_forward_keeps_the_tape_of_replaced_values() {
    let d = default_device();
    let model = every_kind(&d);
    let x = Rng(4).tensor([2, 3, 13, 13], 1.0, &d);
    let req = GradientRequest {
        objective: Some(Objective::Logit(vec![0, 2])),
        wrt_layers: vec!["relu".into()],
        ..Default::default()
    };
    let g = model.gradients(x.clone(), &req).unwrap();
    let resume = model.resume(x, "relu").unwrap();
    let ad = d.clone().autodiff();
    let value = resume.activation().autodiff().require_grad();
    let logits = resume.logits_with(&[0, 1], value.clone()).unwrap();
    let onehot = Tensor::<2>::from_data(
        TensorData::new(vec![1., 0., 0., 0., 0., 0., 0., 1., 0., 0.], [2, 5]),
        &ad,
    );
    let grads = (logits * onehot).sum().backward();
    let a = to_vec(
        value
            .grad(&grads)
            .expect("the gradient reaches the replaced value"),
    );
    let b = to_vec(g.layers["relu"].gradient.clone());
    let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max);
    assert!(diff <= 1e-6, "max difference {diff}");
}
