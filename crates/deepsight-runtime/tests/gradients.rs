//! Gradients against finite differences and against closed forms, on small random graphs with
//! every op kind: convolution (strided, grouped, TF-SAME), BatchNorm, ReLU6, overlapping max-pool,
//! residual add, global average pool, linear.

mod common;

use common::{Rng, bn, conv};
use deepsight_runtime::{
    Bounds, Classifier, Device, GradientRequest, Graph, GraphModel, LayeredClassifier, Linear, Objective, Op,
    Padding, Pool, RectifierRule, Tensor, TensorData, default_device, to_vec,
};

/// input -> conv(SAME, s2) -> bn -> relu6 -> maxpool 3x3/s2/p1 -> [a] -> depthwise conv -> bn
/// -> add(a) -> relu -> [b] -> conv -> gap -> linear
fn net(d: &Device) -> GraphModel {
    let mut r = Rng(42);
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
    let pool = Pool::square(3, 2, 1);
    let a = g.push("pool", Op::MaxPool(pool), &[x]).unwrap();
    x = g
        .push(
            "dw",
            conv(&mut r, [8, 8], 3, 1, 8, Padding::symmetric(1), d),
            &[a],
        )
        .unwrap();
    x = g.push("bn2", bn(&mut r, 8, d), &[x]).unwrap();
    x = g.push("add", Op::Add, &[x, a]).unwrap();
    let b = g.push("block", Op::Rectifier(Bounds::RELU), &[x]).unwrap();
    x = g
        .push(
            "conv2",
            conv(&mut r, [8, 6], 1, 1, 1, Padding::symmetric(0), d),
            &[b],
        )
        .unwrap();
    x = g.push("gap", Op::GlobalAvgPool, &[x]).unwrap();
    let fc = Linear {
        weight: r.tensor([4, 6], 0.5, d),
        bias: Some(r.tensor([4], 0.1, d)),
    };
    g.push("fc", Op::Linear(fc), &[x]).unwrap();
    GraphModel::new(g, [13, 13], d.clone()).unwrap()
}

fn logit(model: &GraphModel, x: &[f32], shape: [usize; 4], class: usize) -> f64 {
    let t = Tensor::from_data(TensorData::new(x.to_vec(), shape), &model.device());
    to_vec(model.logits(t).unwrap())[class] as f64
}

#[test]
fn input_gradient_matches_central_differences() {
    let d = default_device();
    let model = net(&d);
    let shape = [1, 3, 13, 13];
    let x: Vec<f32> = {
        let mut r = Rng(7);
        (0..3 * 13 * 13).map(|_| r.next()).collect()
    };
    let t = Tensor::from_data(TensorData::new(x.clone(), shape), &d);
    let g = model
        .gradients(
            t,
            &GradientRequest::input(Objective::Logit(vec![2]), RectifierRule::Plain),
        )
        .unwrap();
    let grad = to_vec(g.input.unwrap());
    let eps = 1e-2f32;
    let mut worst = 0f64;
    for i in (0..x.len()).step_by(7) {
        let mut p = x.clone();
        p[i] += eps;
        let mut m = x.clone();
        m[i] -= eps;
        let fd = (logit(&model, &p, shape, 2) - logit(&model, &m, shape, 2)) / (2.0 * eps as f64);
        worst = worst.max((fd - grad[i] as f64).abs());
    }
    let scale = grad.iter().map(|v| v.abs()).fold(0.0, f32::max) as f64;
    println!("input gradient vs central differences: worst abs error {worst:e} (max |grad| {scale:e})");
    assert!(
        worst <= 0.03 * scale,
        "worst {worst} (kinks crossed within eps account for a few per cent)"
    );
}

/// The gradient at an intermediate layer equals the input gradient of the rest of the network
/// run on that layer's activation, which in turn matches finite differences.
#[test]
fn layer_gradient_matches_central_differences_of_the_tail() {
    let d = default_device();
    let model = net(&d);
    let x = Rng(9).tensor([2, 3, 13, 13], 1.0, &d);
    let req = GradientRequest {
        objective: Some(Objective::Logit(vec![1, 3])),
        wrt_layers: vec!["block".into()],
        ..Default::default()
    };
    let g = model.gradients(x, &req).unwrap();
    let lg = &g.layers["block"];
    let act = to_vec(lg.activation.clone());
    let grad = to_vec(lg.gradient.clone());
    // The tail: block -> conv2 -> gap -> fc, rebuilt on the same weights.
    let mut tail = Graph::new("input", 8);
    let nodes = model.graph().nodes();
    let mut x = 0;
    for name in ["conv2", "gap", "fc"] {
        let node = nodes.iter().find(|n| n.name == name).unwrap();
        x = tail.push(name, node.op.clone(), &[x]).unwrap();
    }
    let shape = lg.activation.dims();
    let tail = GraphModel::new(tail, [shape[2], shape[3]], d.clone()).unwrap();
    let per = act.len() / 2;
    let eps = 1e-2f32;
    let mut worst = 0f64;
    for (item, class) in [(0usize, 1usize), (1, 3)] {
        let one = [1, shape[1], shape[2], shape[3]];
        let base = &act[item * per..(item + 1) * per];
        for i in (0..per).step_by(5) {
            let mut p = base.to_vec();
            p[i] += eps;
            let mut m = base.to_vec();
            m[i] -= eps;
            let fd = (logit(&tail, &p, one, class) - logit(&tail, &m, one, class)) / (2.0 * eps as f64);
            worst = worst.max((fd - grad[item * per + i] as f64).abs());
        }
    }
    println!("layer gradient vs central differences: worst abs error {worst:e}");
    assert!(worst <= 1e-3, "worst {worst}");
}

#[test]
fn probability_objective_is_the_softmax_chain_rule() {
    let d = default_device();
    let model = net(&d);
    let x = Rng(3).tensor([1, 3, 13, 13], 1.0, &d);
    let all: Vec<Vec<f32>> = (0..4)
        .map(|c| {
            let g = model.gradients(
                x.clone(),
                &GradientRequest::input(Objective::Logit(vec![c]), RectifierRule::Plain),
            );
            to_vec(g.unwrap().input.unwrap())
        })
        .collect();
    let logits = to_vec(model.logits(x.clone()).unwrap());
    let z: f32 = logits.iter().map(|v| v.exp()).sum();
    let p: Vec<f32> = logits.iter().map(|v| v.exp() / z).collect();
    let gp = to_vec(
        model
            .gradients(
                x,
                &GradientRequest::input(Objective::Probability(vec![1]), RectifierRule::Plain),
            )
            .unwrap()
            .input
            .unwrap(),
    );
    // dP1/dx = P1 * (dS1/dx - sum_k P_k dS_k/dx)
    for i in 0..gp.len() {
        let mix: f32 = (0..4).map(|k| p[k] * all[k][i]).sum();
        let expected = p[1] * (all[1][i] - mix);
        assert!(
            (gp[i] - expected).abs() <= 1e-6 + 1e-4 * expected.abs(),
            "{i}: {} vs {expected}",
            gp[i]
        );
    }
}

#[test]
fn batch_items_get_their_own_gradients() {
    let d = default_device();
    let model = net(&d);
    let x = Rng(11).tensor([2, 3, 13, 13], 1.0, &d);
    let both = model
        .gradients(
            x.clone(),
            &GradientRequest::input(Objective::Logit(vec![0, 2]), RectifierRule::Guided),
        )
        .unwrap();
    let both = to_vec(both.input.unwrap());
    for (i, class) in [(0usize, 0usize), (1, 2)] {
        let one = x.clone().slice([i..i + 1, 0..3, 0..13, 0..13]);
        let g = model
            .gradients(
                one,
                &GradientRequest::input(Objective::Logit(vec![class]), RectifierRule::Guided),
            )
            .unwrap();
        let g = to_vec(g.input.unwrap());
        let n = g.len();
        let diff = g
            .iter()
            .zip(&both[i * n..(i + 1) * n])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff <= 1e-6, "item {i}: {diff}");
    }
}

#[test]
fn activation_objective_gradient_is_zero_outside_the_receptive_field() {
    let d = default_device();
    let model = net(&d);
    let x = Rng(5).tensor([1, 3, 13, 13], 1.0, &d);
    let obj = Objective::Activation {
        layer: "conv1".into(),
        channel: 3,
        position: Some([0, 0]),
    };
    let g = model
        .gradients(x, &GradientRequest::input(obj, RectifierRule::Deconv))
        .unwrap();
    let grad = to_vec(g.input.unwrap());
    // conv1 is 3x3, stride 2, SAME (pad 1 bottom/right only for 13 -> 7): output [0,0] sees rows/cols 0..3.
    for c in 0..3 {
        for r in 0..13 {
            for q in 0..13 {
                let v = grad[c * 169 + r * 13 + q];
                if r >= 3 || q >= 3 {
                    assert_eq!(v, 0.0, "outside the window at {c},{r},{q}");
                }
            }
        }
    }
    assert!(grad.iter().any(|v| *v != 0.0));
}
