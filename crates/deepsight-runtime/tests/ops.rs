//! Op-level behaviour: max-pool switches and tie-breaking, rectifier rules at the kinks,
//! BatchNorm folding, and the errors every bad request gets.

use deepsight_runtime::{
    BatchNorm, Bounds, Classifier, Conv2d, GradientRequest, Graph, GraphModel, LayeredClassifier, Linear,
    Objective, Op, Padding, Pool, RectifierRule, Tensor, TensorData, default_device, rectify, to_vec,
};

fn pool_model(h: usize, w: usize) -> GraphModel {
    let d = default_device();
    let mut g = Graph::new("input", 1);
    let pool = Pool::square(3, 2, 1);
    let p = g.push("pool", Op::MaxPool(pool), &[0]).unwrap();
    let gap = g.push("gap", Op::GlobalAvgPool, &[p]).unwrap();
    let fc = Linear {
        weight: Tensor::ones([1, 1], &d),
        bias: None,
    };
    g.push("fc", Op::Linear(fc), &[gap]).unwrap();
    GraphModel::new(g, [h, w], d).unwrap()
}

/// PyTorch's rule: scan each window row-major over the unpadded input, keep the first maximum.
fn reference_switches(x: &[f32], h: usize, w: usize) -> Vec<usize> {
    let (oh, ow) = ((h + 2 - 3) / 2 + 1, (w + 2 - 3) / 2 + 1);
    let mut out = Vec::new();
    for i in 0..oh {
        for j in 0..ow {
            let mut best = (f32::NEG_INFINITY, 0);
            for r in (2 * i).saturating_sub(1)..(2 * i + 2).min(h) {
                for c in (2 * j).saturating_sub(1)..(2 * j + 2).min(w) {
                    if x[r * w + c] > best.0 {
                        best = (x[r * w + c], r * w + c);
                    }
                }
            }
            out.push(best.1);
        }
    }
    out
}

#[test]
fn overlapping_max_pool_switches_and_backward_follow_pytorch_including_ties() {
    let (h, w) = (7, 9);
    let model = pool_model(h, w);
    // Plateaus of equal values make every window a tie somewhere.
    let x: Vec<f32> = (0..h * w).map(|i| ((i / 4) % 3) as f32).collect();
    let t = Tensor::from_data(TensorData::new(x.clone(), [1, 1, h, w]), &model.device());
    let expected = reference_switches(&x, h, w);
    let cap = model.capture(t.clone(), &[], true).unwrap();
    let switches: Vec<i64> = cap.switches["pool"]
        .clone()
        .into_data()
        .convert::<i64>()
        .try_to_vec()
        .unwrap();
    assert_eq!(switches.iter().map(|&v| v as usize).collect::<Vec<_>>(), expected);
    // Backward: each output's gradient (1 / #outputs) lands on its switch, summed over overlaps.
    let g = model
        .gradients(
            t,
            &GradientRequest::input(Objective::Logit(vec![0]), RectifierRule::Plain),
        )
        .unwrap();
    let grad = to_vec(g.input.unwrap());
    let mut want = vec![0f32; h * w];
    for s in &expected {
        want[*s] += 1.0 / expected.len() as f32;
    }
    for (i, (a, b)) in grad.iter().zip(&want).enumerate() {
        assert!((a - b).abs() < 1e-6, "pixel {i}: {a} vs {b}");
    }
}

#[test]
fn rectifier_rules_at_and_around_the_kinks() {
    let d = default_device().autodiff();
    let x = Tensor::<1>::from_floats([-1.0, 0.0, 3.0, 6.0, 7.0, 2.0], &d).require_grad();
    let g = Tensor::<1>::from_floats([1.0, 1.0, -2.0, 1.0, 1.0, 5.0], &d);
    let grad_of = |rule| {
        let y = rectify(x.clone(), Bounds::RELU6, rule);
        to_vec((y * g.clone()).sum().backward().pipe(|gr| x.grad(&gr).unwrap()))
    };
    // plain: g where 0 < x < 6 (PyTorch's hardtanh convention: 0 at both kinks)
    assert_eq!(grad_of(RectifierRule::Plain), vec![0.0, 0.0, -2.0, 0.0, 0.0, 5.0]);
    // guided: plain, then only positive gradients
    assert_eq!(grad_of(RectifierRule::Guided), vec![0.0, 0.0, 0.0, 0.0, 0.0, 5.0]);
    // deconv: relu of the gradient, whatever x was
    assert_eq!(grad_of(RectifierRule::Deconv), vec![1.0, 1.0, 0.0, 1.0, 1.0, 5.0]);
    let fwd = to_vec(rectify(x.clone(), Bounds::RELU6, RectifierRule::Deconv));
    assert_eq!(fwd, vec![0.0, 0.0, 3.0, 6.0, 6.0, 2.0]);
}

trait Pipe: Sized {
    fn pipe<T>(self, f: impl FnOnce(Self) -> T) -> T {
        f(self)
    }
}
impl<T> Pipe for T {}

fn conv_bn_model() -> GraphModel {
    let d = default_device();
    let mut g = Graph::new("input", 2);
    let w = Tensor::from_data(
        TensorData::new(
            (0..36).map(|i| (i as f32 * 0.37).sin()).collect::<Vec<_>>(),
            [2, 2, 3, 3],
        ),
        &d,
    );
    let conv = Conv2d {
        weight: w,
        bias: Some(Tensor::from_floats([0.1, -0.2], &d)),
        stride: [1, 1],
        dilation: [1, 1],
        groups: 1,
        padding: Padding::SameUpper,
    };
    let c = g.push("conv", Op::Conv2d(conv), &[0]).unwrap();
    let bn = BatchNorm {
        gamma: Tensor::from_floats([1.5, 0.5], &d),
        beta: Tensor::from_floats([0.3, -0.1], &d),
        mean: Tensor::from_floats([0.2, -0.4], &d),
        var: Tensor::from_floats([0.8, 2.0], &d),
        eps: 1e-5,
    };
    let b = g.push("bn", Op::BatchNorm(bn), &[c]).unwrap();
    let gap = g.push("gap", Op::GlobalAvgPool, &[b]).unwrap();
    let fc = Linear {
        weight: Tensor::from_data(TensorData::new(vec![1.0, -1.0, 0.5, 2.0], [2, 2]), &d),
        bias: None,
    };
    g.push("fc", Op::Linear(fc), &[gap]).unwrap();
    GraphModel::new(g, [5, 5], d).unwrap()
}

#[test]
fn folded_batchnorm_equals_the_unfolded_layers() {
    let model = conv_bn_model();
    let x = Tensor::from_data(
        TensorData::new(
            (0..50).map(|i| (i as f32 * 0.21).cos()).collect::<Vec<_>>(),
            [1, 2, 5, 5],
        ),
        &model.device(),
    );
    let folded = to_vec(model.logits(x.clone()).unwrap());
    // Capturing the convolution forces the unfolded plan.
    let cap = model.capture(x, &["conv", "bn"], false).unwrap();
    assert_eq!(cap.activations.len(), 2);
    let unfolded = to_vec(cap.logits);
    for (a, b) in folded.iter().zip(&unfolded) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    let conv = to_vec(cap.activations["conv"].clone());
    let bn = to_vec(cap.activations["bn"].clone());
    let (gamma, beta, mean, var) = ([1.5f32, 0.5], [0.3f32, -0.1], [0.2f32, -0.4], [0.8f32, 2.0]);
    for (i, (c, b)) in conv.iter().zip(&bn).enumerate() {
        let ch = i / 25;
        let want = (c - mean[ch]) / (var[ch] + 1e-5).sqrt() * gamma[ch] + beta[ch];
        assert!((b - want).abs() < 1e-5);
    }
}

#[test]
fn bad_requests_get_errors_that_name_the_problem() {
    let model = conv_bn_model();
    let d = model.device();
    let x = || Tensor::<4>::zeros([1, 2, 5, 5], &d);
    let msg = |e: deepsight_runtime::RuntimeError| e.to_string();
    let e = msg(model.capture(x(), &["nope"], false).unwrap_err());
    assert!(e.contains("unknown layer 'nope'") && e.contains("'fc'"), "{e}");
    let e = msg(model.logits(Tensor::zeros([1, 3, 5, 5], &d)).unwrap_err());
    assert!(e.contains("expects 2 channels, got 3"), "{e}");
    let e = msg(model
        .gradients(
            x(),
            &GradientRequest::input(Objective::Logit(vec![7]), RectifierRule::Plain),
        )
        .unwrap_err());
    assert!(
        e.contains("class index 7 is out of range") && e.contains("2 classes"),
        "{e}"
    );
    let e = msg(model
        .gradients(
            x(),
            &GradientRequest::input(Objective::Logit(vec![0, 1]), RectifierRule::Plain),
        )
        .unwrap_err());
    assert!(e.contains("got 2 entries for a batch of 1"), "{e}");
    let obj = Objective::Activation {
        layer: "conv".into(),
        channel: 5,
        position: None,
    };
    let e = msg(model
        .gradients(x(), &GradientRequest::input(obj, RectifierRule::Plain))
        .unwrap_err());
    assert!(
        e.contains("layer 'conv'") && e.contains("channel 5") && e.contains("2 channels"),
        "{e}"
    );
    let obj = Objective::Activation {
        layer: "conv".into(),
        channel: 0,
        position: Some([5, 0]),
    };
    let e = msg(model
        .gradients(x(), &GradientRequest::input(obj, RectifierRule::Plain))
        .unwrap_err());
    assert!(e.contains("outside its 5x5 map"), "{e}");
    let mut g = Graph::new("input", 1);
    let e = msg(g.push("input", Op::Identity, &[0]).unwrap_err());
    assert!(e.contains("already exists"), "{e}");
    let e = msg(g.push("x", Op::Add, &[0]).unwrap_err());
    assert!(e.contains("Add takes 2 inputs"), "{e}");
}

#[test]
fn a_linear_head_rejects_an_input_of_another_size() {
    let d = default_device();
    let mut g = Graph::new("input", 1);
    let f = g.push("flatten", Op::Flatten, &[0]).unwrap();
    g.push(
        "fc",
        Op::Linear(Linear {
            weight: Tensor::ones([3, 16], &d),
            bias: None,
        }),
        &[f],
    )
    .unwrap();
    let model = GraphModel::new(g, [4, 4], d.clone()).unwrap();
    let e = model
        .logits(Tensor::zeros([1, 1, 5, 5], &d))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("layer 'fc'") && e.contains("expects 16 features"),
        "{e}"
    );
}

#[test]
fn a_node_may_read_the_same_input_twice() {
    let d = default_device();
    let mut g = Graph::new("input", 1);
    let twice = g.push("twice", Op::Add, &[0, 0]).unwrap();
    let gap = g.push("gap", Op::GlobalAvgPool, &[twice]).unwrap();
    g.push(
        "fc",
        Op::Linear(Linear {
            weight: Tensor::ones([1, 1], &d),
            bias: None,
        }),
        &[gap],
    )
    .unwrap();
    let model = GraphModel::new(g, [2, 2], d.clone()).unwrap();
    let x = Tensor::from_data(TensorData::new(vec![1.0, 2.0, 3.0, 4.0], [1, 1, 2, 2]), &d);
    assert_eq!(to_vec(model.logits(x.clone()).unwrap()), vec![5.0]);
    let g = model
        .gradients(
            x,
            &GradientRequest::input(Objective::Logit(vec![0]), RectifierRule::Plain),
        )
        .unwrap();
    assert_eq!(to_vec(g.input.unwrap()), vec![0.5; 4]);
}
