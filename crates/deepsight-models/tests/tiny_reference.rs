//! The tiny reference networks against the values PyTorch and Captum computed
//! (`../shared/fixtures/tiny_{vgg,resnet}.safetensors`): logits, plain / guided / deconv gradients,
//! including the overlapping 3x3/s2 max-pool of the ResNet.

mod common;

use common::*;
use deepsight_models::Weights;
use deepsight_runtime::{
    Classifier, GradientRequest, GraphModel, LayeredClassifier, Objective, RectifierRule, default_device,
    to_vec,
};

fn load(name: &str) -> (GraphModel, Weights) {
    let device = default_device();
    let w = fixture(&format!("{name}.weights.safetensors"));
    let g = if name == "tiny_vgg" {
        tiny_vgg(&w, &device)
    } else {
        tiny_resnet(&w, &device)
    };
    (
        GraphModel::new(g, [64, 64], device).unwrap(),
        fixture(&format!("{name}.safetensors")),
    )
}

fn input_gradient(name: &str, rule: RectifierRule) -> (Vec<f32>, Weights) {
    let (model, fx) = load(name);
    let x = tensor4(&fx, "input", &model.device());
    let mut req = GradientRequest::input(Objective::Logit(target_classes(name)), rule);
    if name == "tiny_resnet" {
        // The reference model computes the rectifier after each residual add with `F.relu`, which
        // Captum's module hooks do not see: there the gradient passes by the plain rule.
        req.rule_overrides = vec![
            ("layer1".into(), RectifierRule::Plain),
            ("layer2".into(), RectifierRule::Plain),
        ];
    }
    let g = model.gradients(x, &req).unwrap();
    (to_vec(g.input.unwrap()), fx)
}

fn check(name: &str, ours: &[f32], reference: &[f32], what: &str) {
    let diff = max_abs_diff(ours, reference);
    println!(
        "{name} {what}: max abs diff {diff:e}, max |ref| {:e}",
        max_abs(reference)
    );
    assert!(diff <= 1e-5, "{name} {what}: max abs diff {diff}");
}

#[test]
fn logits_match() {
    for name in ["tiny_vgg", "tiny_resnet"] {
        let (model, fx) = load(name);
        let x = tensor4(&fx, "input", &model.device());
        check(
            name,
            &to_vec(model.logits(x).unwrap()),
            &values(&fx, "logits"),
            "logits",
        );
    }
}

#[test]
fn plain_gradient_matches_captum_saliency_and_input_x_gradient() {
    for name in ["tiny_vgg", "tiny_resnet"] {
        let (grad, fx) = input_gradient(name, RectifierRule::Plain);
        let abs: Vec<f32> = grad.iter().map(|v| v.abs()).collect();
        check(name, &abs, &values(&fx, "saliency"), "saliency (|dS/dx|)");
        let x = values(&fx, "input");
        let ixg: Vec<f32> = grad.iter().zip(&x).map(|(g, x)| g * x).collect();
        check(name, &ixg, &values(&fx, "input_x_gradient"), "input x gradient");
    }
}

#[test]
fn guided_rule_matches_captum_guided_backprop() {
    for name in ["tiny_vgg", "tiny_resnet"] {
        let (grad, fx) = input_gradient(name, RectifierRule::Guided);
        check(name, &grad, &values(&fx, "guided_backprop"), "guided backprop");
    }
}

#[test]
fn deconv_rule_matches_captum_deconvolution() {
    for name in ["tiny_vgg", "tiny_resnet"] {
        let (grad, fx) = input_gradient(name, RectifierRule::Deconv);
        check(name, &grad, &values(&fx, "deconvolution"), "deconvolution");
    }
}
