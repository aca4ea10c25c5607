//! The explainer's training task: a decoder started from CAM gives CAM's maps (a closed form), the
//! default taps of the embedded Lite0, target sets from a softmax classifier's probabilities, and
//! early stopping's judgement.

use deepsight_explain::cam::{Cam, ClassActivationMap};
use deepsight_explain::learned::Segmenter;
use deepsight_explain::{Explainer, Request, Score};
use deepsight_runtime::{
    Bounds, Conv2d, Graph, GraphModel, Linear, Op, Padding, Tensor, TensorData, default_device, to_vec,
};
use deepsight_train::EarlyStop;
use deepsight_train::explainer::{cam_start, default_taps, predicted_targets, tap_spec};

/// input 3x8x8 -> conv (4 ch) -> ReLU `r1` -> conv stride 2 (4 ch) `features` -> GAP -> linear (3).
fn tiny() -> GraphModel {
    let d = default_device();
    let mut g = Graph::new("input", 3);
    let conv = |seed: usize, cin: usize, stride: usize| {
        let w: Vec<f32> = (0..4 * cin * 9)
            .map(|i| ((((i + seed) * 29) % 13) as f32 - 6.0) / 10.0)
            .collect();
        Op::Conv2d(Conv2d {
            weight: Tensor::from_data(TensorData::new(w, [4, cin, 3, 3]), &d),
            bias: None,
            stride: [stride, stride],
            dilation: [1, 1],
            groups: 1,
            padding: Padding::symmetric(1),
        })
    };
    let x = g.push("c1", conv(0, 3, 1), &[0]).unwrap();
    let x = g.push("r1", Op::Rectifier(Bounds::RELU), &[x]).unwrap();
    let x = g.push("features", conv(5, 4, 2), &[x]).unwrap();
    let x = g.push("gap", Op::GlobalAvgPool, &[x]).unwrap();
    let fc: Vec<f32> = (0..12).map(|i| (((i * 7) % 5) as f32 - 2.0) / 3.0).collect();
    g.push(
        "fc",
        Op::Linear(Linear {
            weight: Tensor::from_data(TensorData::new(fc, [3, 4]), &d),
            bias: Some(Tensor::from_data(TensorData::new(vec![0.1, -0.2, 0.3], [3]), &d)),
        }),
        &[x],
    )
    .unwrap();
    GraphModel::new(g, [8, 8], d).unwrap()
}

fn min_max(v: &[f32]) -> Vec<f32> {
    let (lo, hi) = v
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    v.iter().map(|&x| (x - lo) / (hi - lo)).collect()
}

#[test]
fn a_decoder_started_from_cam_gives_cams_maps() {
    let model = tiny();
    let v: Vec<f32> = (0..2 * 3 * 64)
        .map(|i| ((i * 53) % 17) as f32 / 8.0 - 1.0)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(v, [2, 3, 8, 8]), &default_device());
    // One tap: the decoder's output resolution is the CAM layer's.
    let spec = tap_spec(&model, &["features".to_string()], 6, true).unwrap();
    let dec = cam_start(&model, &spec, 1, x.clone(), &default_device()).unwrap();
    let s = to_vec(dec.class_logits(&model, x.clone()).unwrap());
    let classes = vec![2, 0];
    let cam = Cam(ClassActivationMap)
        .explain(
            &model,
            &Request {
                images: x,
                classes: classes.clone(),
                score: Score::Logit,
                layer: Some("features".into()),
            },
        )
        .unwrap();
    for (i, &c) in classes.iter().enumerate() {
        let ours = min_max(&s[(i * 3 + c) * 16..(i * 3 + c + 1) * 16]);
        let theirs = min_max(&cam.raw.as_ref().unwrap()[i].data);
        for (a, b) in ours.iter().zip(&theirs) {
            assert!((a - b).abs() < 1e-4, "image {i} class {c}: {a} vs {b}");
        }
    }
    // Where the last tap feeds no GAP + linear head, starting from CAM is refused.
    let spec = tap_spec(&model, &["r1".to_string()], 6, true).unwrap();
    let x1 = Tensor::<4>::zeros([1, 3, 8, 8], &default_device());
    assert!(cam_start(&model, &spec, 1, x1, &default_device()).is_err());
}

#[test]
fn default_taps_of_lite0_are_its_stride_8_16_and_32_block_outputs() {
    let loaded = deepsight_models::ModelSource::Builtin {
        arch: deepsight_models::Arch::Lite0,
        random_seed: None,
    }
    .load(&default_device())
    .unwrap();
    assert_eq!(
        default_taps(&loaded.model).unwrap(),
        ["_blocks.4", "_blocks.10", "features"]
    );
}

#[test]
fn target_sets_are_the_top_1_plus_the_classes_above_the_threshold() {
    let p = [0.1, 0.6, 0.3, 0.5, 0.25, 0.25];
    assert_eq!(predicted_targets(&p, 3, None), vec![vec![1], vec![0]]);
    assert_eq!(
        predicted_targets(&p, 3, Some(0.25)),
        vec![vec![1, 2], vec![0, 1, 2]]
    );
}

#[test]
fn early_stopping_waits_patience_epochs_without_an_improvement_of_min_delta() {
    let e = EarlyStop {
        patience: 2,
        min_delta: 0.01,
    };
    assert_eq!(e.judge(&[1.0, 0.9, 0.95]), (1, false));
    assert_eq!(
        e.judge(&[1.0, 0.9, 0.95, 0.895]),
        (1, true),
        "0.895 is not 0.01 better"
    );
    assert_eq!(e.judge(&[1.0, 0.9, 0.95, 0.85]), (3, false));
}
