//! L-CAM: each loss term against values computed by hand on tiny tensors, the upsampling against
//! the map resize, the explainer's one forward pass, CAM as the closed form of a module
//! initialised from a GAP + linear head, and weight files (round trip, corrupt, mismatched).

use deepsight_explain::Explainer;
use deepsight_explain::cam::{Cam, ClassActivationMap};
use deepsight_explain::learned::lcam_loss::{area, cross_entropy, total_variation};
use deepsight_explain::learned::upsample::upsample_bilinear;
use deepsight_explain::learned::{
    AttentionModule, Lcam, LcamFm, LcamImg, LcamLoss, LcamVariant, LcamWeights, ModelIdentity,
};
use deepsight_explain::{Map, Request, Score};
use deepsight_runtime::{
    Conv2d, Graph, GraphModel, LayeredClassifier, Linear, Op, Padding, Tensor, TensorData, default_device,
    to_vec,
};
use std::collections::BTreeMap;
use std::sync::Arc;

fn t4(v: Vec<f32>, s: [usize; 4]) -> Tensor<4> {
    Tensor::from_data(TensorData::new(v, s), &default_device())
}

fn one(t: Tensor<1>) -> f64 {
    to_vec(t)[0] as f64
}

#[test]
fn cross_entropy_is_the_mean_negative_log_softmax_of_the_label() {
    let logits = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, 2.0, 0.5, 0.0, -1.0, 3.0], [2, 3]),
        &default_device(),
    );
    // Row 0, label 1: -log(e^2 / (e + e^2 + e^0.5)); row 1, label 2: -log(e^3 / (1 + e^-1 + e^3)).
    let r0 = -(2f64.exp() / (1f64.exp() + 2f64.exp() + 0.5f64.exp())).ln();
    let r1 = -(3f64.exp() / (1.0 + (-1f64).exp() + 3f64.exp())).ln();
    let got = one(cross_entropy(logits, &[1, 2]));
    assert!(
        (got - (r0 + r1) / 2.0).abs() < 1e-6,
        "{got} vs {}",
        (r0 + r1) / 2.0
    );
}

#[test]
fn area_term_is_the_mean_of_the_shifted_power() {
    let m = t4(vec![0.0, 0.25, 0.5, 1.0], [1, 1, 2, 2]);
    let want = [0.0f64, 0.25, 0.5, 1.0]
        .iter()
        .map(|v| (v + 0.0005).powf(0.3))
        .sum::<f64>()
        / 4.0;
    let got = one(area(m, 0.0005, 0.3));
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
}

#[test]
fn total_variation_has_the_border_penalty_and_divides_by_twice_the_batch() {
    // One 3x3 map [[0, 1, 0], [0, 2, 0], [1, 0, 0]] in a batch of 2 (the second map all zero).
    let mut v = vec![0.0, 1.0, 0.0, 0.0, 2.0, 0.0, 1.0, 0.0, 0.0];
    v.extend([0.0; 9]);
    let m = t4(v, [2, 1, 3, 3]);
    // Vertical differences: (0,1,0)->(0,2,0): 0,1,0; (0,2,0)->(1,0,0): 1,4,0 -> 6.
    // Horizontal: row0 1,1; row1 4,4; row2 1,0 -> 11.
    // Borders: last row 1, first row 1, last col 0, first col 1 -> 3, times 0.3 = 0.9.
    let want = (6.0 + 11.0 + 0.9) / (2.0 * 2.0);
    let got = one(total_variation(m, 0.3, 2));
    assert!((got - want).abs() < 1e-5, "{got} vs {want}");
}

#[test]
fn loss_is_the_weighted_sum_of_its_terms() {
    let logits = Tensor::<2>::from_data(
        TensorData::new(vec![0.3f32, -0.2, 0.1, 0.9], [2, 2]),
        &default_device(),
    );
    let m = t4(vec![0.1, 0.7, 0.4, 0.2, 0.9, 0.3, 0.5, 0.6], [2, 1, 2, 2]);
    let t = LcamLoss::default().terms(logits, &[0, 1], m);
    let (ce, ar, tv) = (one(t.ce), one(t.area), one(t.tv));
    assert!((one(t.total) - (1.5 * ce + 2.0 * ar + 0.01 * tv)).abs() < 1e-6);
}

#[test]
fn upsampling_matches_the_map_resize() {
    let v: Vec<f32> = (0..2 * 7 * 5).map(|i| ((i * 37) % 11) as f32 - 4.0).collect();
    let up = to_vec(upsample_bilinear(
        t4(v.clone(), [1, 2, 7, 5]),
        31,
        24,
        &default_device(),
    ));
    let per = 31 * 24;
    for c in 0..2 {
        let map = Map {
            channels: 1,
            height: 7,
            width: 5,
            data: v[c * 35..(c + 1) * 35].to_vec(),
        };
        let want = map.resize(31, 24).data;
        let diff = want
            .iter()
            .zip(&up[c * per..(c + 1) * per])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-4, "channel {c}: {diff}");
    }
}

/// input 3x8x8 -> conv 3x3 (4 channels) -> `features` -> GAP -> linear to 3 classes.
fn gap_linear() -> GraphModel {
    let d = default_device();
    let mut g = Graph::new("input", 3);
    let w: Vec<f32> = (0..4 * 3 * 9)
        .map(|i| (((i * 29) % 13) as f32 - 6.0) / 10.0)
        .collect();
    let x = g
        .push(
            "features",
            Op::Conv2d(Conv2d {
                weight: Tensor::from_data(TensorData::new(w, [4, 3, 3, 3]), &d),
                bias: None,
                stride: [1, 1],
                dilation: [1, 1],
                groups: 1,
                padding: Padding::symmetric(1),
            }),
            &[0],
        )
        .unwrap();
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

/// L-CAM weights holding the head (`[classes, channels]` like the linear layer's).
fn head_weights(model: &GraphModel, variant: LcamVariant) -> LcamWeights {
    let weight: Vec<f32> = (0..12).map(|i| (((i * 7) % 5) as f32 - 2.0) / 3.0).collect();
    LcamWeights {
        variant,
        layer: "features".into(),
        model: ModelIdentity::of(model, "gap-linear"),
        channels: 4,
        classes: 3,
        weight,
        bias: vec![0.1, -0.2, 0.3],
        info: BTreeMap::new(),
    }
}

fn request() -> Request {
    let v: Vec<f32> = (0..2 * 3 * 64)
        .map(|i| ((i * 53) % 17) as f32 / 8.0 - 1.0)
        .collect();
    Request {
        images: t4(v, [2, 3, 8, 8]),
        classes: vec![2, 0],
        score: Score::Logit,
        layer: None,
    }
}

#[test]
fn lcam_initialised_from_the_head_is_cam_plus_the_bias_in_one_forward_pass() {
    let model = gap_linear();
    let lcam = Lcam {
        kind: LcamImg,
        weights: Some(Arc::new(head_weights(&model, LcamVariant::Img))),
    };
    let req = request();
    let e = lcam.explain(&model, &req).unwrap();
    assert_eq!((e.passes.forward, e.passes.backward), (2, 0));
    let cam = Cam(ClassActivationMap).explain(&model, &req).unwrap();
    for (i, (l, c)) in e.raw.unwrap().iter().zip(cam.raw.unwrap()).enumerate() {
        let bias = [0.1f32, -0.2, 0.3][req.classes[i]];
        let diff = l
            .data
            .iter()
            .zip(&c.data)
            .map(|(a, b)| (a - (b + bias)).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-5, "image {i}: {diff}");
    }
}

#[test]
fn module_scores_of_chosen_classes_are_rows_of_all_scores() {
    let d = default_device();
    let am = AttentionModule::pytorch_default(4, 3, 7, &d);
    let f = t4(
        (0..2 * 4 * 6).map(|i| (i % 5) as f32 - 2.0).collect(),
        [2, 4, 2, 3],
    );
    let all = to_vec(am.scores(f.clone()));
    let some = to_vec(am.scores_of(f, &[vec![2, 0], vec![1, 1]]));
    let at = |n: usize, k: usize, p: usize| all[(n * 3 + k) * 6 + p];
    for p in 0..6 {
        assert!((some[p] - at(0, 2, p)).abs() < 1e-5);
        assert!((some[6 + p] - at(0, 0, p)).abs() < 1e-5);
        assert!((some[12 + p] - at(1, 1, p)).abs() < 1e-5);
    }
}

#[test]
fn weight_files_round_trip_and_bad_ones_get_one_line() {
    let model = gap_linear();
    let w = head_weights(&model, LcamVariant::Fm);
    let bytes = w.to_bytes(false, &[], &[]);
    assert_eq!(LcamWeights::from_bytes(&bytes, "x").unwrap(), w);
    let half = LcamWeights::from_bytes(&w.to_bytes(true, &[], &[]), "x").unwrap();
    assert!(
        half.weight
            .iter()
            .zip(&w.weight)
            .all(|(a, b)| (a - b).abs() < 1e-3)
    );
    let err = LcamWeights::from_bytes(&bytes[..bytes.len() / 2], "'cut.safetensors'")
        .unwrap_err()
        .to_string();
    assert!(err.contains("cut.safetensors") && !err.contains('\n'), "{err}");
    let err = LcamWeights::from_bytes(b"not a file", "'junk'")
        .unwrap_err()
        .to_string();
    assert!(err.contains("junk"), "{err}");
}

#[test]
fn weights_for_another_model_variant_or_layer_are_refused_naming_both() {
    let model = gap_linear();
    let mut w = head_weights(&model, LcamVariant::Fm);
    w.model = ModelIdentity {
        name: "resnet50".into(),
        fingerprint: "0123456789abcdef".into(),
    };
    let lcam = Lcam {
        kind: LcamFm,
        weights: Some(Arc::new(w)),
    };
    let err = lcam.explain(&model, &request()).unwrap_err().to_string();
    assert!(
        err.contains("resnet50") && err.contains("0123456789abcdef"),
        "{err}"
    );
    let img = Lcam {
        kind: LcamImg,
        weights: Some(Arc::new(head_weights(&model, LcamVariant::Fm))),
    };
    let err = img.explain(&model, &request()).unwrap_err().to_string();
    assert!(err.contains("l-cam-fm") && err.contains("l-cam-img"), "{err}");
    let mut req = request();
    req.layer = Some("gap".into());
    let fm = Lcam {
        kind: LcamFm,
        weights: Some(Arc::new(head_weights(&model, LcamVariant::Fm))),
    };
    let err = fm.explain(&model, &req).unwrap_err().to_string();
    assert!(err.contains("'features'") && err.contains("'gap'"), "{err}");
    let none = Lcam::<LcamFm> {
        kind: LcamFm,
        weights: None,
    };
    assert!(none.explain(&model, &request()).is_err());
    let _ = model.layers();
}

#[test]
fn shipped_weights_fit_the_embedded_lite0() {
    let loaded = deepsight_models::ModelSource::Builtin {
        arch: deepsight_models::Arch::Lite0,
        random_seed: None,
    }
    .load(&default_device())
    .unwrap();
    for variant in [LcamVariant::Img, LcamVariant::Fm] {
        let w = deepsight_explain::learned::weights::shipped(variant).expect("shipped");
        w.check_fits(&loaded.model, variant, "features").unwrap();
        assert_eq!((w.channels, w.classes), (1280, 1000));
        assert!(w.info.contains_key("command"), "the training command is recorded");
    }
}
