//! Operations on values of any rank and layout ([`TensorOp`]) and the smooth activations: their
//! gradients against central differences on a small graph that uses every one of them, the same
//! gradients under the guided and deconvnet rules (none of them is a rectifier), and captures
//! of an NHWC value in canonical `[N, C, H, W]`.

mod common;

use deepsight_runtime::{
    Activation, Arithmetic, Comparison, Constant, Conv2d, CoordinateMode, Device, ExtOp, GradientRequest,
    Graph, GraphModel, Interpolation, LayeredClassifier, Linear, NearestMode, NodeId, Objective, Op, Padding,
    RectifierRule, Reduction, Resize, Tensor, TensorData, TensorOp, default_device, to_vec,
};

use common::values;

fn tensor<const D: usize>(seed: u64, shape: [usize; D], scale: f32, d: &Device) -> Tensor<D> {
    common::seeded(seed, shape, scale, d)
}

fn constant(seed: u64, dims: &[usize], scale: f32, offset: f32, d: &Device) -> Constant {
    let v = values(seed, dims.iter().product(), scale)
        .iter()
        .map(|x| x + offset)
        .collect();
    Constant::new(v, dims.to_vec(), d)
}

struct Builder<'a> {
    g: Graph,
    d: &'a Device,
}

impl Builder<'_> {
    fn t(&mut self, name: &str, op: TensorOp, inputs: &[NodeId]) -> NodeId {
        self.g.push(name, Op::Ext(ExtOp::Tensor(op)), inputs).unwrap()
    }

    fn act(&mut self, name: &str, a: Activation, x: NodeId) -> NodeId {
        self.g.push(name, Op::Ext(ExtOp::Activation(a)), &[x]).unwrap()
    }
}

/// conv -> NHWC (Transpose) -> LayerNorm -> MatMul -> GELU -> MatMul -> back to NCHW ->
/// channel shuffle (rank-5 Reshape, Transpose) -> GroupNorm -> PRelu -> two channel slices
/// (Mish, ELU) -> Concat -> linear and nearest Resize -> Softplus, SELU, Erf -> Where (constant
/// mask) -> Reshape [N, C, L] -> Softmax over L -> MatMulLeft -> Sqrt/Exp/Neg/Abs/Reciprocal/Pow
/// -> channel max and mean (Reduce) -> Expand -> sum -> Gather -> linear.
fn net(d: &Device) -> GraphModel {
    let mut b = Builder {
        g: Graph::new("input", 3),
        d,
    };
    let conv = Op::Conv2d(Conv2d {
        weight: tensor(1, [8, 3, 3, 3], 0.4, b.d),
        bias: Some(tensor(2, [8], 0.1, b.d)),
        stride: [1, 1],
        dilation: [1, 1],
        groups: 1,
        padding: Padding::symmetric(1),
    });
    let c = b.g.push("conv", conv, &[0]).unwrap();
    let nhwc = b.t("nhwc", TensorOp::Transpose(vec![0, 2, 3, 1]), &[c]);
    let ln = TensorOp::LayerNorm {
        axis: 3,
        scale: Some(tensor(3, [8], 0.5, b.d) + 1.0),
        bias: Some(tensor(4, [8], 0.2, b.d)),
        eps: 1e-5,
    };
    let ln = b.t("ln", ln, &[nhwc]);
    let fc1 = TensorOp::MatMul {
        weight: tensor(5, [8, 12], 0.4, b.d),
        bias: Some(tensor(6, [12], 0.1, b.d)),
    };
    let fc1 = b.t("fc1", fc1, &[ln]);
    let gelu = b.act("gelu", Activation::Gelu, fc1);
    let fc2 = TensorOp::MatMul {
        weight: tensor(7, [12, 8], 0.3, b.d),
        bias: None,
    };
    let fc2 = b.t("fc2", fc2, &[gelu]);
    let back = b.t("nchw", TensorOp::Transpose(vec![0, 3, 1, 2]), &[fc2]);
    let split = b.t("split", TensorOp::Reshape(vec![1, 2, 4, 6, 6]), &[back]);
    let swap = b.t("swap", TensorOp::Transpose(vec![0, 2, 1, 3, 4]), &[split]);
    let shuffled = b.t("shuffled", TensorOp::Reshape(vec![1, 8, 6, 6]), &[swap]);
    let gn = TensorOp::GroupNorm {
        groups: 4,
        scale: tensor(8, [8], 0.3, b.d) + 1.0,
        bias: tensor(9, [8], 0.2, b.d),
        eps: 1e-5,
    };
    let gn = b.t("gn", gn, &[shuffled]);
    let prelu = b.t(
        "prelu",
        TensorOp::PRelu(constant(10, &[8, 1, 1], 0.3, 0.2, b.d)),
        &[gn],
    );
    let slice = |axis, start, end, step| TensorOp::Slice {
        axis,
        start,
        end,
        step,
    };
    let a = b.t("a", slice(1, 0, 4, 1), &[prelu]);
    let z = b.t("z", slice(1, 4, 8, 1), &[prelu]);
    let a = b.act("mish", Activation::Mish, a);
    let z = b.act("elu", Activation::Elu { alpha: 0.7 }, z);
    let cat = b.t("cat", TensorOp::Concat { axis: 1 }, &[a, z]);
    let resize = |mode, coordinates| {
        TensorOp::Resize(Resize {
            size: [9, 9],
            scales: None,
            mode,
            coordinates,
        })
    };
    let up1 = b.t(
        "up1",
        resize(Interpolation::Linear, CoordinateMode::HalfPixel),
        &[cat],
    );
    let up2 = b.t(
        "up2",
        resize(
            Interpolation::Nearest(NearestMode::RoundPreferFloor),
            CoordinateMode::Asymmetric,
        ),
        &[cat],
    );
    let sp = b.act("softplus", Activation::Softplus, up1);
    let se = b.act(
        "selu",
        Activation::Selu {
            alpha: 1.67,
            gamma: 1.05,
        },
        up2,
    );
    let er = b.act("erf", Activation::Erf, se);
    let mix = b.t("mix", TensorOp::Binary(Arithmetic::Add), &[sp, er]);
    let mask: Vec<f32> = (0..81).map(|k| (k % 3 == 0) as u8 as f32).collect();
    let masked = TensorOp::Where {
        mask: Some(Constant::new(mask, vec![9, 9], b.d)),
        then_value: None,
        else_value: Some(constant(11, &[1], 0.0, 0.5, b.d)),
    };
    let masked = b.t("where", masked, &[mix]);
    let gate = TensorOp::Compare {
        op: Comparison::Greater,
        constant: constant(12, &[1], 0.0, 0.3, b.d),
        constant_first: false,
    };
    let gate = b.t("gate", gate, &[masked]);
    let gated = b.t(
        "gated",
        TensorOp::Where {
            mask: None,
            then_value: None,
            else_value: None,
        },
        &[gate, masked, mix],
    );
    let flat3 = b.t("rank3", TensorOp::Reshape(vec![1, 8, 81]), &[gated]);
    let sm = b.t("softmax", TensorOp::Softmax { axis: 2 }, &[flat3]);
    let scaled = TensorOp::WithConstant {
        op: Arithmetic::Mul,
        constant: constant(13, &[81], 10.0, 40.0, b.d),
        constant_first: false,
    };
    let scaled = b.t("scaled", scaled, &[sm]);
    let left = b.t(
        "left",
        TensorOp::MatMulLeft {
            weight: tensor(14, [5, 8], 0.5, b.d),
        },
        &[scaled],
    );
    let sq = b.act("square", Activation::Pow { exponent: 2.0 }, left);
    let one = TensorOp::WithConstant {
        op: Arithmetic::Add,
        constant: constant(15, &[1], 0.0, 1.0, b.d),
        constant_first: false,
    };
    let pos = b.t("plus1", one, &[sq]);
    let rt = b.act("sqrt", Activation::Sqrt, pos);
    let rc = b.act("recip", Activation::Reciprocal, rt);
    let ng = b.act("neg", Activation::Neg, rc);
    let ex = b.act("exp", Activation::Exp, ng);
    let ab = b.act("abs", Activation::Abs, left);
    let pw = b.act("pow", Activation::Pow { exponent: 1.5 }, ab);
    let both = b.t("both", TensorOp::Binary(Arithmetic::Sub), &[ex, pw]);
    let reduce = |reduction, axes: Vec<usize>, keep_dims| TensorOp::Reduce {
        reduction,
        axes,
        keep_dims,
    };
    let mx = b.t("max", reduce(Reduction::Max, vec![2], true), &[both]);
    let wide = b.t("expand", TensorOp::Expand(vec![1, 5, 4]), &[mx]);
    let mean = b.t("mean", reduce(Reduction::Mean, vec![2], true), &[both]);
    let sum = b.t("sum", TensorOp::Binary(Arithmetic::Mul), &[wide, mean]);
    let s = b.t("total", reduce(Reduction::Sum, vec![2], false), &[sum]);
    let picked = b.t(
        "gather",
        TensorOp::Gather {
            axis: 1,
            indices: vec![0, 2, 4, 1],
            drop_axis: false,
        },
        &[s],
    );
    let fc = Op::Linear(Linear {
        weight: tensor(16, [3, 4], 0.5, b.d),
        bias: Some(tensor(17, [3], 0.1, b.d)),
    });
    b.g.push("fc", fc, &[picked]).unwrap();
    GraphModel::new(b.g, [6, 6], d.clone()).unwrap()
}

fn gradient(model: &GraphModel, x: &[f32], rule: RectifierRule) -> Vec<f32> {
    let t = Tensor::from_data(TensorData::new(x.to_vec(), [1, 3, 6, 6]), &default_device());
    let req = GradientRequest::input(Objective::Logit(vec![1]), rule);
    to_vec(model.gradients(t, &req).unwrap().input.unwrap())
}

#[test]
fn tensor_op_gradients_match_central_differences() {
    let d = default_device();
    let model = net(&d);
    let x = values(77, 108, 1.0);
    let grad = gradient(&model, &x, RectifierRule::Plain);
    let (worst, scale) = common::worst_central_difference(&model, &x, [1, 3, 6, 6], 1, &grad, 2e-3);
    println!("tensor ops: worst |fd - grad| {worst:e} (max |grad| {scale:e})");
    assert!(scale > 1e-4, "the gradient must not vanish");
    assert!(worst <= 0.02 * scale, "worst {worst} of {scale}");
    // No rectifier in the graph: the guided and deconvnet rules change nothing.
    for rule in [RectifierRule::Guided, RectifierRule::Deconv] {
        assert_eq!(gradient(&model, &x, rule), grad, "{rule:?}");
    }
}

#[test]
fn nhwc_values_are_captured_and_probed_as_nchw() {
    let d = default_device();
    let model = net(&d);
    let x = Tensor::from_data(TensorData::new(values(5, 108, 1.0), [1, 3, 6, 6]), &d);
    let cap = model
        .capture(x.clone(), &["conv", "nhwc", "fc2", "rank3"], false)
        .unwrap();
    // The transpose of the conv output, seen canonically, is the conv output itself.
    assert_eq!(
        to_vec(cap.activations["nhwc"].clone()),
        to_vec(cap.activations["conv"].clone())
    );
    assert_eq!(cap.activations["fc2"].dims(), [1, 8, 6, 6]);
    let layers = model.layers();
    let shape = |n: &str| layers.iter().find(|l| l.name == n).unwrap().shape.clone();
    assert_eq!(shape("fc2"), [1, 8, 6, 6]);
    assert_eq!(shape("split"), [1, 2, 4, 6, 6]);
    assert_eq!(shape("rank3"), [1, 8, 81]);
    assert_eq!(model.default_cam_layer().as_deref(), Some("gated"));
    // The gradient at the NHWC value is the gradient at the conv output, permuted.
    let req = GradientRequest {
        wrt_layers: vec!["nhwc".into(), "conv".into()],
        ..GradientRequest::input(Objective::Logit(vec![2]), RectifierRule::Plain)
    };
    let g = model.gradients(x, &req).unwrap();
    let (a, b) = (
        to_vec(g.layers["nhwc"].gradient.clone()),
        to_vec(g.layers["conv"].gradient.clone()),
    );
    let diff = a.iter().zip(&b).map(|(p, q)| (p - q).abs()).fold(0.0, f32::max);
    assert!(diff < 1e-6, "{diff}");
}
