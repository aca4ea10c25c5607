//! The tiny reference networks against the values PyTorch and Captum computed
//! (`../shared/fixtures/tiny_{vgg,resnet}.safetensors`): logits, plain / guided / deconv gradients,
//! including the overlapping 3x3/s2 max-pool of the ResNet. Each network is tested twice: built
//! from its state dict (`*.weights.safetensors`) and imported from its ONNX export (`*.onnx`).

mod common;

use common::*;
use deepsight_models::Weights;
use deepsight_runtime::{
    Classifier, GradientRequest, GraphModel, LayeredClassifier, Objective, RectifierRule, default_device,
    to_vec,
};

/// Every (network, form) pair: `true` for the ONNX import.
const FORMS: [(&str, bool); 4] = [
    ("tiny_vgg", false),
    ("tiny_resnet", false),
    ("tiny_vgg", true),
    ("tiny_resnet", true),
];

fn load(name: &str, onnx: bool) -> (GraphModel, Weights) {
    let device = default_device();
    let g = if onnx {
        let path = shared().join("fixtures").join(format!("{name}.onnx"));
        deepsight_onnx::import_file(&path, &device, None).unwrap().graph
    } else {
        let w = fixture(&format!("{name}.weights.safetensors"));
        if name == "tiny_vgg" {
            tiny_vgg(&w, &device)
        } else {
            tiny_resnet(&w, &device)
        }
    };
    (
        GraphModel::new(g, [64, 64], device).unwrap(),
        fixture(&format!("{name}.safetensors")),
    )
}

fn input_gradient(name: &str, onnx: bool, rule: RectifierRule) -> (Vec<f32>, Weights) {
    let (model, fx) = load(name, onnx);
    let x = tensor4(&fx, "input", &model.device());
    let mut req = GradientRequest::input(Objective::Logit(target_classes(name)), rule);
    if name == "tiny_resnet" {
        // The reference model computes the rectifier after each residual add with `F.relu`, which
        // Captum's module hooks do not see: there the gradient passes by the plain rule.
        let after_add = if onnx {
            ["/layer1/Relu_output_0", "/layer2/Relu_output_0"]
        } else {
            ["layer1", "layer2"]
        };
        req.rule_overrides = after_add
            .iter()
            .map(|l| (l.to_string(), RectifierRule::Plain))
            .collect();
    }
    let g = model.gradients(x, &req).unwrap();
    (to_vec(g.input.unwrap()), fx)
}

fn check(name: &str, onnx: bool, ours: &[f32], reference: &[f32], what: &str) {
    let name = if onnx {
        format!("{name}.onnx")
    } else {
        name.to_string()
    };
    let diff = max_abs_diff(ours, reference);
    println!(
        "{name} {what}: max abs diff {diff:e}, max |ref| {:e}",
        max_abs(reference)
    );
    assert!(diff <= 1e-5, "{name} {what}: max abs diff {diff}");
}

#[test]
fn logits_match() {
    for (name, onnx) in FORMS {
        let (model, fx) = load(name, onnx);
        let x = tensor4(&fx, "input", &model.device());
        check(
            name,
            onnx,
            &to_vec(model.logits(x).unwrap()),
            &values(&fx, "logits"),
            "logits",
        );
    }
}

#[test]
fn plain_gradient_matches_captum_saliency_and_input_x_gradient() {
    for (name, onnx) in FORMS {
        let (grad, fx) = input_gradient(name, onnx, RectifierRule::Plain);
        let abs: Vec<f32> = grad.iter().map(|v| v.abs()).collect();
        check(name, onnx, &abs, &values(&fx, "saliency"), "saliency (|dS/dx|)");
        let x = values(&fx, "input");
        let ixg: Vec<f32> = grad.iter().zip(&x).map(|(g, x)| g * x).collect();
        check(
            name,
            onnx,
            &ixg,
            &values(&fx, "input_x_gradient"),
            "input x gradient",
        );
    }
}

#[test]
fn guided_rule_matches_captum_guided_backprop() {
    for (name, onnx) in FORMS {
        let (grad, fx) = input_gradient(name, onnx, RectifierRule::Guided);
        check(
            name,
            onnx,
            &grad,
            &values(&fx, "guided_backprop"),
            "guided backprop",
        );
    }
}

#[test]
fn deconv_rule_matches_captum_deconvolution() {
    for (name, onnx) in FORMS {
        let (grad, fx) = input_gradient(name, onnx, RectifierRule::Deconv);
        check(name, onnx, &grad, &values(&fx, "deconvolution"), "deconvolution");
    }
}
