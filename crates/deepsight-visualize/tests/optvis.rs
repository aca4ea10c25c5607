//! Class model visualisation on a linear model, where the optimum and every step are known in
//! closed form: `S_c(I) = w_c . I`, so `argmax S_c - lambda ||I||^2 = w_c / (2 lambda)`.

use deepsight_models::preprocess::Resize;
use deepsight_models::resample::Filter;
use deepsight_models::{Preprocess, RgbImage};
use deepsight_runtime::{Conv2d, Graph, GraphModel, Linear, Op, Padding, Tensor, TensorData, default_device};
use deepsight_visualize::optvis::{
    Basis, ClassObjective, Lucent, Recipe, Simonyan, Target, Yosinski, judge, render,
};

const SIDE: usize = 4;
const DIM: usize = 3 * SIDE * SIDE;

fn weights() -> Vec<f32> {
    weights_of(DIM)
}

fn weights_of(dim: usize) -> Vec<f32> {
    (0..2 * dim).map(|i| ((i * 37 % 19) as f32 - 9.0) / 9.0).collect()
}

/// Flatten and a linear layer: two classes, no bias.
fn linear_model() -> GraphModel {
    linear_model_of(SIDE)
}

fn linear_model_of(side: usize) -> GraphModel {
    linear_model_with(side, weights_of(3 * side * side))
}

/// Class 0 is "red", class 1 "green": the mean of one channel minus the others', a score that
/// translations, scales and rotations keep.
fn colour_model(side: usize) -> GraphModel {
    let hw = side * side;
    let w: Vec<f32> = (0..2 * 3 * hw)
        .map(|i| if (i / hw) % 3 == i / (3 * hw) { 1.0 } else { -0.5 } / hw as f32)
        .collect();
    linear_model_with(side, w)
}

fn linear_model_with(side: usize, weights: Vec<f32>) -> GraphModel {
    let dim = 3 * side * side;
    let d = default_device();
    let mut g = Graph::new("input", 3);
    let f = g.push("flat", Op::Flatten, &[0]).unwrap();
    let fc = Linear {
        weight: Tensor::from_data(TensorData::new(weights, [2, dim]), &d),
        bias: None,
    };
    g.push("fc", Op::Linear(fc), &[f]).unwrap();
    GraphModel::new(g, [side, side], d).unwrap()
}

fn preprocess(std: f32) -> Preprocess {
    preprocess_of(SIDE, std)
}

fn preprocess_of(side: usize, std: f32) -> Preprocess {
    Preprocess {
        resize: Resize::Exact {
            size: [side, side],
            filter: Filter::Bilinear,
        },
        mean: [127.0; 3],
        std: [std; 3],
    }
}

fn class(class: usize, objective: ClassObjective) -> Target {
    Target::Class { class, objective }
}

#[test]
fn simonyan_ascent_follows_the_closed_form() {
    let model = linear_model();
    let (lr, l2, steps) = (0.1f32, 0.5f32, 12);
    let recipe = Recipe::Simonyan(Simonyan {
        steps,
        lr,
        l2,
        clip: false,
    });
    let out = render(
        &model,
        &preprocess(1.0),
        &[class(0, ClassObjective::Logit)],
        &recipe,
        None,
        0,
        &mut |_, _| {},
    )
    .unwrap();
    // I_t = w / (2 lambda) (1 - (1 - 2 lambda lr)^t), so S(I_t) = |w|^2 / (2 lambda) (1 - q^t).
    let w = &weights()[..DIM];
    let norm2: f32 = w.iter().map(|v| v * v).sum();
    let q = 1.0 - 2.0 * l2 * lr;
    for (t, &s) in out.curves[0].iter().enumerate() {
        let expect = norm2 / (2.0 * l2) * (1.0 - q.powi(t as i32));
        assert!((s - expect).abs() < 1e-3 * norm2, "step {t}: {s} vs {expect}");
    }
    // The saved pixels: 127 + I_T (std 1), rounded.
    let scale = (1.0 - q.powi(steps as i32)) / (2.0 * l2);
    let img = &out.images[0];
    for c in 0..3 {
        for p in 0..SIDE * SIDE {
            let expect = (127.0 + w[c * SIDE * SIDE + p] * scale).round();
            assert_eq!(img.pixels[p * 3 + c] as f32, expect.clamp(0.0, 255.0));
        }
    }
}

#[test]
fn the_probability_objective_follows_the_softmax_gradient() {
    let model = linear_model();
    let lr = 0.3f32;
    let recipe = Recipe::Simonyan(Simonyan {
        steps: 2,
        lr,
        l2: 0.0,
        clip: false,
    });
    let out = render(
        &model,
        &preprocess(1.0),
        &[class(0, ClassObjective::Probability)],
        &recipe,
        None,
        0,
        &mut |_, _| {},
    )
    .unwrap();
    // At I = 0 both logits are 0: P_0 = 1/2 and dP_0/dI = 1/4 (w_0 - w_1), so after one step
    // z_0 - z_1 = lr / 4 |w_0 - w_1|^2.
    let w = weights();
    let diff2: f32 = (0..DIM).map(|i| (w[i] - w[DIM + i]).powi(2)).sum();
    let z = lr / 4.0 * diff2;
    assert!((out.curves[0][0] - 0.5).abs() < 1e-6);
    let expect = 1.0 / (1.0 + (-z).exp());
    assert!(
        (out.curves[0][1] - expect).abs() < 1e-5,
        "{} vs {expect}",
        out.curves[0][1]
    );
}

#[test]
fn yosinski_steps_and_decays_in_pixel_units() {
    let model = linear_model();
    let start = RgbImage {
        width: SIDE,
        height: SIDE,
        pixels: vec![227; SIDE * SIDE * 3],
    };
    // No step: the start decays towards the mean, (1 - d)^T: 127 + 100 * 0.9^3 = 199.9.
    let decay_only = Recipe::Yosinski(Yosinski {
        steps: 3,
        lr: 0.0,
        decay: 0.1,
        blur_every: 0,
        norm_percentile: None,
        ..Yosinski::default()
    });
    let t = [class(1, ClassObjective::Logit)];
    let out = render(
        &model,
        &preprocess(100.0),
        &t,
        &decay_only,
        Some(&[start]),
        0,
        &mut |_, _| {},
    )
    .unwrap();
    assert!(out.images[0].pixels.iter().all(|&p| p == 200));
    // One step of 1000 pixel units from the mean image: dS/dpixel = w / std, so each pixel moves
    // by lr w / std = 10 w grey levels.
    let mean = RgbImage {
        width: SIDE,
        height: SIDE,
        pixels: vec![127; SIDE * SIDE * 3],
    };
    let step = Recipe::Yosinski(Yosinski {
        steps: 1,
        lr: 1000.0,
        decay: 0.0,
        blur_every: 0,
        norm_percentile: None,
        ..Yosinski::default()
    });
    let out = render(
        &model,
        &preprocess(100.0),
        &t,
        &step,
        Some(&[mean]),
        0,
        &mut |_, _| {},
    )
    .unwrap();
    let w = &weights()[DIM..];
    for c in 0..3 {
        for p in 0..SIDE * SIDE {
            let expect = (127.0 + 10.0 * w[c * SIDE * SIDE + p]).round();
            assert_eq!(out.images[0].pixels[p * 3 + c] as f32, expect);
        }
    }
}

#[test]
fn lucent_images_are_classified_as_their_class_after_the_round_trip() {
    // Through the Fourier basis, the colour decorrelation, the sigmoid and random transforms.
    // The input is large enough that Lucent's 12-pixel pad leaves most of it to the image.
    let model = colour_model(32);
    let pre = preprocess_of(32, 128.0);
    let recipe = Recipe::Lucent(Lucent {
        steps: 40,
        size: 16,
        ..Lucent::default()
    });
    let targets = [class(0, ClassObjective::Logit), class(1, ClassObjective::Logit)];
    let out = render(&model, &pre, &targets, &recipe, None, 7, &mut |_, _| {}).unwrap();
    let verdicts = judge(&model, &pre, &out.images, &[Some(0), Some(1)]).unwrap();
    assert_eq!(verdicts[0].top1, 0);
    assert_eq!(verdicts[1].top1, 1);
    for c in &out.curves {
        assert!(*c.last().unwrap() > c[0] + 1e-3, "the score rose: {c:?}");
    }
    // Same seed, same images.
    let again = render(&model, &pre, &targets, &recipe, None, 7, &mut |_, _| {}).unwrap();
    assert_eq!(again.images, out.images);
    let pixel = Recipe::Lucent(Lucent {
        steps: 20,
        size: 32,
        basis: Basis::Pixel,
        decorrelate: false,
        transforms: false,
        ..Lucent::default()
    });
    let out = render(&model, &pre, &targets[..1], &pixel, None, 0, &mut |_, _| {}).unwrap();
    assert_eq!(judge(&model, &pre, &out.images, &[Some(0)]).unwrap()[0].top1, 0);
}

#[test]
fn feature_targets_and_bad_requests() {
    let d = default_device();
    let mut g = Graph::new("input", 3);
    let w: Vec<f32> = (0..2 * 3).map(|i| if i % 4 == 0 { 1.0 } else { -0.5 }).collect();
    let conv = Op::Conv2d(Conv2d {
        weight: Tensor::from_data(TensorData::new(w, [2, 3, 1, 1]), &d),
        bias: None,
        stride: [1, 1],
        dilation: [1, 1],
        groups: 1,
        padding: Padding::Explicit([0; 4]),
    });
    let c = g.push("conv", conv, &[0]).unwrap();
    let p = g.push("gap", Op::GlobalAvgPool, &[c]).unwrap();
    let fc = Linear {
        weight: Tensor::ones([2, 2], &d),
        bias: None,
    };
    g.push("fc", Op::Linear(fc), &[p]).unwrap();
    let model = GraphModel::new(g, [SIDE, SIDE], d).unwrap();
    let pre = preprocess(1.0);
    let recipe = Recipe::Simonyan(Simonyan {
        steps: 3,
        lr: 0.1,
        l2: 0.0,
        clip: false,
    });
    // Channel 0 is x_r - x_g/2 - x_b/2: its mean, the unit at the centre, and the layer energy rise.
    let targets = [
        Target::Channel {
            layer: "conv".into(),
            channel: 0,
        },
        Target::Neuron {
            layer: "conv".into(),
            channel: 1,
            position: None,
        },
        Target::DeepDream { layer: "conv".into() },
    ];
    let out = render(&model, &pre, &targets, &recipe, None, 0, &mut |_, _| {}).unwrap();
    // From zero the channel mean moves by lr |w_0|^2 / (h w) per step: 0.1 * 1.5 / 16.
    let c = &out.curves[0];
    assert!((c[1] - 0.1 * 1.5 / 16.0).abs() < 1e-6, "{c:?}");
    assert!(out.curves[1][2] > out.curves[1][1]);
    // The energy's gradient at zero is zero: DeepDream cannot leave the zero image.
    assert!(out.curves[2].iter().all(|&v| v == 0.0));
    let bad = [
        Target::Channel {
            layer: "conv".into(),
            channel: 5,
        },
        Target::DeepDream { layer: "nope".into() },
        class(9, ClassObjective::Logit),
        Target::Neuron {
            layer: "conv".into(),
            channel: 0,
            position: Some([4, 0]),
        },
    ];
    for t in bad {
        let err = render(
            &model,
            &pre,
            std::slice::from_ref(&t),
            &recipe,
            None,
            0,
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(!err.to_string().is_empty(), "{t:?}");
    }
    assert!(render(&model, &pre, &[], &recipe, None, 0, &mut |_, _| {}).is_err());
}
