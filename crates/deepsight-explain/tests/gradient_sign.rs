//! `--gradient-sign positive` for saliency and SmoothGrad on a hand-made network whose input
//! gradient has known signs: `S = mean_ij sum_ch |x_ch,ij|` (a 1x1 convolution to `x` and `-x`,
//! ReLU, global average pooling, a linear layer of ones), so `dS/dx = sign(x) / (h w)`.

use deepsight_explain::gradient::{GradientSign, InputGradient, PositiveSaliency, Saliency};
use deepsight_explain::registry::{MethodOptions, by_name_with};
use deepsight_explain::smoothgrad::SmoothGrad;
use deepsight_explain::{Explainer, Map, Request, Score};
use deepsight_runtime::{
    Bounds, Conv2d, Graph, GraphModel, Linear, Op, Padding, Tensor, TensorData, default_device,
};

const H: usize = 2;
const W: usize = 3;

fn abs_net() -> GraphModel {
    let d = default_device();
    let mut g = Graph::new("input", 3);
    // Output channel c < 3 is x_c, channel 3 + c is -x_c.
    let mut w = vec![0.0f32; 6 * 3];
    for c in 0..3 {
        w[c * 3 + c] = 1.0;
        w[(3 + c) * 3 + c] = -1.0;
    }
    let x = g
        .push(
            "split",
            Op::Conv2d(Conv2d {
                weight: Tensor::from_data(TensorData::new(w, [6, 3, 1, 1]), &d),
                bias: None,
                stride: [1, 1],
                dilation: [1, 1],
                groups: 1,
                padding: Padding::symmetric(0),
            }),
            &[0],
        )
        .unwrap();
    let x = g.push("relu", Op::Rectifier(Bounds::RELU), &[x]).unwrap();
    let x = g.push("gap", Op::GlobalAvgPool, &[x]).unwrap();
    g.push(
        "fc",
        Op::Linear(Linear {
            weight: Tensor::from_data(TensorData::new(vec![1.0; 6], [1, 6]), &d),
            bias: None,
        }),
        &[x],
    )
    .unwrap();
    GraphModel::new(g, [H, W], d).unwrap()
}

/// Channel-major `[3, H, W]` values: pixel p has channels `px[p]`.
fn image(px: [[f32; 3]; H * W]) -> Request {
    let mut v = vec![0.0f32; 3 * H * W];
    for (p, chans) in px.iter().enumerate() {
        for (c, &x) in chans.iter().enumerate() {
            v[c * H * W + p] = x;
        }
    }
    Request {
        images: Tensor::from_data(TensorData::new(v, [1, 3, H, W]), &default_device()),
        classes: vec![0],
        score: Score::Logit,
        layer: None,
    }
}

/// Pixels with every sign pattern of interest.
const PIXELS: [[f32; 3]; H * W] = [
    [1.0, 2.0, 3.0],    // all positive
    [-1.0, -2.0, -0.5], // all negative
    [-4.0, 0.5, -1.0],  // one positive
    [2.0, -3.0, 1.0],   // two positive
    [-0.2, -0.1, 0.3],  // one positive, small
    [-5.0, -5.0, -5.0], // all negative
];

#[test]
fn positive_saliency_keeps_only_pixels_with_a_positive_gradient_channel() {
    let model = abs_net();
    let req = image(PIXELS);
    let unit = 1.0 / (H * W) as f32;
    let absolute = Saliency.explain(&model, &req).unwrap().maps.remove(0);
    let positive = PositiveSaliency.explain(&model, &req).unwrap().maps.remove(0);
    // |sign(x)| = 1 everywhere; positive: 1 where some channel of x is positive, else 0.
    let want_pos: Vec<f32> = PIXELS
        .iter()
        .map(|p| if p.iter().any(|&x| x > 0.0) { unit } else { 0.0 })
        .collect();
    assert_eq!(absolute.data, vec![unit; H * W]);
    assert_eq!(positive.data, want_pos);
    // Through the registry, by the typed option.
    let o = MethodOptions {
        gradient_sign: GradientSign::Positive,
        ..Default::default()
    };
    let via = by_name_with("saliency", &o)
        .unwrap()
        .explain(&model, &req)
        .unwrap();
    assert_eq!(via.maps[0].data, want_pos);
}

#[test]
fn positive_part_over_channels_is_the_snippet_clamp_then_amax() {
    let m = Map {
        channels: 3,
        height: 1,
        width: 3,
        data: vec![1.0, -2.0, -1.0, -3.0, 0.5, -2.0, 2.0, 0.25, -0.5],
    };
    assert_eq!(m.max_positive_over_channels().data, vec![2.0, 0.5, 0.0]);
    assert_eq!(m.max_abs_over_channels().data, vec![3.0, 2.0, 2.0]);
}

#[test]
fn positive_smoothgrad_is_the_positive_part_of_the_mean_gradient() {
    let model = abs_net();
    // Near zero, the noise flips the gradient's sign from sample to sample: the positive part of
    // the mean (the snippet) differs from the mean of the positive parts.
    let req = image([[0.05, -0.05, 0.0]; H * W]);
    let sg = |base_positive: bool, reduce| -> Map {
        let (samples, sigma, seed, batch_size) = (16, 1.0, 7, 8);
        let e = if base_positive {
            SmoothGrad {
                base: PositiveSaliency,
                samples,
                sigma,
                seed,
                batch_size,
                reduce,
            }
            .explain(&model, &req)
        } else {
            SmoothGrad {
                base: InputGradient,
                samples,
                sigma,
                seed,
                batch_size,
                reduce,
            }
            .explain(&model, &req)
        };
        e.unwrap().maps.remove(0)
    };
    let mean_gradient = sg(false, None);
    assert_eq!(mean_gradient.channels, 3);
    let unit = 1.0 / (H * W) as f64;
    // Every sampled gradient is +-1/(h w): the mean is a multiple of 2/(16 h w) within [-1, 1]/(h w).
    for &v in &mean_gradient.data {
        let k = (v as f64 / unit * 8.0).round();
        assert!((v as f64 - k * unit / 8.0).abs() < 1e-6 && k.abs() <= 8.0, "{v}");
    }
    // The reduction, computed here independently: clamp(min=0), then the maximum over channels.
    let plane = H * W;
    let want: Vec<f32> = (0..plane)
        .map(|p| {
            (0..3)
                .map(|c| mean_gradient.data[c * plane + p].max(0.0))
                .fold(0.0, f32::max)
        })
        .collect();
    let positive = sg(false, Some(GradientSign::Positive));
    assert_eq!(positive.data, want);
    // Through the registry: smoothgrad over saliency, positive sign.
    let o = MethodOptions {
        gradient_sign: GradientSign::Positive,
        smoothgrad_samples: 16,
        smoothgrad_sigma: 1.0,
        seed: 7,
        batch_size: 8,
        ..Default::default()
    };
    let via = by_name_with("smoothgrad", &o)
        .unwrap()
        .explain(&model, &req)
        .unwrap();
    assert_eq!(via.maps[0].data, want);
    // The mean of positive parts is larger wherever the signs were mixed.
    let mean_of_positive = sg(true, None);
    assert!(mean_of_positive.data.iter().zip(&want).all(|(a, b)| a >= b));
    assert!(mean_of_positive.data.iter().zip(&want).any(|(a, b)| a > b));
    // The default (absolute) is unchanged: the mean of max |gradient| = 1/(h w) everywhere.
    let abs = by_name_with(
        "smoothgrad",
        &MethodOptions {
            gradient_sign: GradientSign::Absolute,
            ..o
        },
    )
    .unwrap()
    .explain(&model, &req)
    .unwrap();
    assert!(abs.maps[0].data.iter().all(|&v| (v as f64 - unit).abs() < 1e-7));
}
