//! The explainer network: each loss term against values computed by hand on tiny tensors, the
//! target / non-target masks, the gradient of the whole training loss against finite differences,
//! one explainer pass serving several classes, and weight files (round trip, corrupt, mismatched).

use deepsight_explain::learned::explainer_loss::{
    ClassifierKind, bce_with_logits, class_mask_area, negative_entropy, rtis_loss, softmax_set_ce,
    total_variation,
};
use deepsight_explain::learned::explainer_train::{Objective, extract_masks, gaussian_blur, training_loss};
use deepsight_explain::learned::lcam::TrainBatch;
use deepsight_explain::learned::{
    ExplainerProfile, ExplainerWeights, ModelIdentity, NnExplainer, Segmenter, TapDecoder, TapSpec,
};
use deepsight_explain::{Explainer, Request, Score};
use deepsight_runtime::{
    Conv2d, Graph, GraphModel, Linear, Op, Padding, Tensor, TensorData, default_device, to_vec,
};
use std::collections::BTreeMap;
use std::sync::Arc;

fn t<const D: usize>(v: Vec<f32>, s: [usize; D]) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, s), &default_device())
}

fn one(t: Tensor<1>) -> f64 {
    to_vec(t)[0] as f64
}

fn close(a: f64, b: f64, tol: f64) {
    assert!((a - b).abs() < tol, "{a} vs {b}");
}

#[test]
fn bce_is_the_mean_over_batch_and_classes() {
    // class 0 (y = 0): -log(1 - σ(0)) = ln 2; class 1 (y = 1): -log σ(2) = ln(1 + e^-2).
    let v = one(bce_with_logits(t(vec![0.0, 2.0], [1, 2]), &[vec![1]]));
    close(v, (2f64.ln() + (1.0 + (-2f64).exp()).ln()) / 2.0, 1e-6);
}

#[test]
fn softmax_set_ce_is_minus_log_of_the_target_mass() {
    // probabilities 1/4, 1/2, 1/4.
    let z = || t(vec![0.0, 2f32.ln(), 0.0], [1, 3]);
    close(one(softmax_set_ce(z(), &[vec![0]])), 4f64.ln(), 1e-6);
    close(one(softmax_set_ce(z(), &[vec![0, 2]])), 2f64.ln(), 1e-6);
    // Two images: the mean of -log(1/2) and -log(3/4).
    let z2 = t(vec![0.0, 2f32.ln(), 0.0, 0.0, 2f32.ln(), 0.0], [2, 3]);
    close(
        one(softmax_set_ce(z2, &[vec![1], vec![0, 1]])),
        (2f64.ln() + (4.0f64 / 3.0).ln()) / 2.0,
        1e-6,
    );
}

#[test]
fn negative_entropy_is_the_mean_of_p_log_p() {
    close(
        one(negative_entropy(t(vec![0.0, 0.0], [1, 2]))),
        0.5 * 0.5f64.ln(),
        1e-6,
    );
    // p = (0.2, 0.8): (0.2 ln 0.2 + 0.8 ln 0.8) / 2.
    let z = t(vec![0.0, 4f32.ln()], [1, 2]);
    close(
        one(negative_entropy(z)),
        (0.2 * 0.2f64.ln() + 0.8 * 0.8f64.ln()) / 2.0,
        1e-6,
    );
}

#[test]
fn total_variation_has_reflect_padding_at_the_last_row_and_column() {
    // 2x2 [[0, 1], [1, 1]]: right diffs 1, |1-0| (reflected), 0, 0; down diffs 1, 0, |1-0|
    // (reflected), 0; sum 4 over 4 positions.
    close(
        one(total_variation(t(vec![0.0, 1.0, 1.0, 1.0], [1, 1, 2, 2]), false)),
        1.0,
        1e-6,
    );
    // 1x3 [0, 0.5, 1]: right diffs 0.5, 0.5, 0.5 (reflected); one row: no vertical term.
    close(
        one(total_variation(t(vec![0.0, 0.5, 1.0], [1, 1, 1, 3]), false)),
        0.5,
        1e-6,
    );
    close(
        one(total_variation(t(vec![0.0, 0.5, 1.0], [1, 1, 1, 3]), true)),
        0.25,
        1e-6,
    );
}

#[test]
fn class_mask_area_uses_the_sorted_pixels() {
    // n = 10, min 0.2 (two ones), max 0.5 (five ones); sorted .9 .8 .6 .3 .2 .1 0 0 0 0:
    // min term (0.1 + 0.2) / 10, max term 0.1 / 10.
    let row = vec![0.9, 0.1, 0.6, 0.0, 0.0, 0.8, 0.0, 0.0, 0.3, 0.2];
    close(
        one(class_mask_area(t(row.clone(), [1, 10]), 1, 0.2, 0.5)),
        0.04,
        1e-6,
    );
    // Two pairs on a batch of two images: summed, divided by the batch.
    let mut two = row.clone();
    two.extend(vec![1.0; 10]); // all ones: min term 0, max term 5 / 10.
    close(
        one(class_mask_area(t(two, [2, 10]), 2, 0.2, 0.5)),
        (0.04 + 0.5) / 2.0,
        1e-6,
    );
}

#[test]
fn masks_take_the_maximum_over_targets_and_over_the_others() {
    // K = 3, 1x2 pixels: S0 = [1, -1], S1 = [5, 5], S2 = [-2, 3]; targets {0, 2}.
    let s = t(vec![1.0, -1.0, 5.0, 5.0, -2.0, 3.0], [1, 3, 1, 2]);
    let m = extract_masks(s, &[vec![0, 2]], 1, 2);
    let sig = |z: f32| 1.0 / (1.0 + (-z).exp());
    let target = to_vec(m.target);
    let non = to_vec(m.non_target);
    let classes = to_vec(m.classes);
    for (a, b) in target.iter().zip([sig(1.0), sig(3.0)]) {
        close(*a as f64, b as f64, 1e-6);
    }
    for a in non {
        close(a as f64, sig(5.0) as f64, 1e-6);
    }
    for (a, b) in classes.iter().zip([sig(1.0), sig(-1.0), sig(-2.0), sig(3.0)]) {
        close(*a as f64, b as f64, 1e-6);
    }
}

#[test]
fn rtis_loss_is_the_weighted_sum_of_its_terms() {
    let mask = t(vec![0.25; 4], [1, 1, 2, 2]);
    let lp = t(vec![0.0, 0.0], [1, 2]);
    let ld = t(vec![0.0, 2f32.ln()], [1, 2]);
    let (total, [tv, area, pres, destr]) = rtis_loss(ClassifierKind::Softmax, mask, lp, ld, &[vec![1]]);
    close(one(tv), 0.0, 1e-7);
    close(one(area), 0.25, 1e-7);
    close(one(pres.clone()), 2f64.ln(), 1e-6);
    close(one(destr.clone()), 2.0 / 3.0, 1e-6);
    close(
        one(total),
        0.25 + 2f64.ln() + 5.0 * (2.0f64 / 3.0).powf(0.3),
        1e-5,
    );
}

#[test]
fn gaussian_blur_keeps_a_constant_interior_and_sums_to_one() {
    let v = vec![1.0f32; 41 * 41];
    let b = gaussian_blur(&v, [1, 41, 41], 2.0);
    close(b[20 * 41 + 20] as f64, 1.0, 1e-5);
    // Zero padding darkens the corners (TorchRay's imsmooth).
    assert!(b[0] < 0.5);
}

/// input 3x8x8 -> conv 3x3 (4 ch, `c1`) -> ReLU -> conv 3x3 stride 2 (4 ch, `features`) -> GAP ->
/// linear to 3 classes.
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
    let x = g
        .push("r1", Op::Rectifier(deepsight_runtime::Bounds::RELU), &[x])
        .unwrap();
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

fn spec() -> TapSpec {
    TapSpec {
        taps: vec!["c1".into(), "features".into()],
        channels: vec![4, 4],
        width: 5,
        classes: 3,
        skip: false,
    }
}

fn images01() -> Tensor<4> {
    let v: Vec<f32> = (0..2 * 3 * 64).map(|i| ((i * 53) % 17) as f32 / 17.0).collect();
    t(v, [2, 3, 8, 8])
}

#[test]
fn the_training_loss_gradient_matches_finite_differences() {
    let model = tiny();
    let device = default_device();
    let labels = vec![vec![2], vec![0, 1]];
    let batch = |x: Tensor<4>| TrainBatch {
        images01: x,
        labels: &[],
        mean: [100.0, 110.0, 120.0],
        std: [60.0, 60.0, 60.0],
    };
    let objective = Objective::Explainer(ExplainerProfile::VocVgg16.coefficients());
    let loss = |dec: &TapDecoder| {
        let (total, _) = training_loss(
            &model,
            dec,
            &batch(images01()),
            &labels,
            ClassifierKind::Softmax,
            objective,
        )
        .unwrap();
        total
    };
    let dec = TapDecoder::init(&spec(), 3, &device.clone().autodiff());
    let total = loss(&dec);
    let grads = total.backward();
    let g = to_vec(dec.head_w.val().grad(&grads).expect("the head has a gradient"));
    let named = dec.to_named();
    let at = named.iter().position(|n| n.0 == "head.weight").unwrap();
    let eps = 1e-2f32;
    for idx in [0, 3, 7, 14] {
        let shifted = |d: f32| {
            let mut n = named.clone();
            n[at].2[idx] += d;
            let dec = TapDecoder::from_named(&spec(), n, &device).unwrap();
            one(loss(&dec))
        };
        let fd = (shifted(eps) - shifted(-eps)) / (2.0 * eps as f64);
        assert!(
            (fd - g[idx] as f64).abs() < 2e-3 + 0.02 * fd.abs(),
            "head.weight[{idx}]: autodiff {} vs finite differences {fd}",
            g[idx]
        );
    }
}

fn weights(model: &GraphModel) -> ExplainerWeights {
    let dec = TapDecoder::init(&spec(), 7, &default_device());
    ExplainerWeights {
        architecture: Default::default(),
        spec: spec(),
        model: ModelIdentity::of(model, "tiny"),
        profile: "voc-vgg16".into(),
        kind: ClassifierKind::Softmax,
        tensors: dec.to_named(),
        info: BTreeMap::from([("command".to_string(), "test".to_string())]),
    }
}

#[test]
fn one_explainer_pass_serves_every_class_of_the_images() {
    let model = tiny();
    let w = weights(&model);
    let dec = w.decoder(&default_device()).unwrap();
    let x = images01();
    let s = to_vec(dec.class_logits(&model, x.clone()).unwrap());
    let e = NnExplainer::new(Some(Arc::new(w)));
    let request = |classes: Vec<usize>| Request {
        images: x.clone(),
        classes,
        score: Score::Logit,
        layer: None,
    };
    let first = e.explain(&model, &request(vec![2, 0])).unwrap();
    assert_eq!(first.passes.forward, 2);
    let second = e.explain(&model, &request(vec![1, 1])).unwrap();
    assert_eq!(
        second.passes.forward, 0,
        "the same images reuse the explainer's pass"
    );
    // The raw map of image 1, class 1 is sigmoid(S[1, 1]) at the decoder's 8x8 resolution.
    let raw = &second.raw.as_ref().unwrap()[1];
    assert_eq!((raw.height, raw.width), (8, 8));
    for (p, &v) in raw.data.iter().enumerate() {
        let z = s[(3 + 1) * 64 + p];
        close(v as f64, 1.0 / (1.0 + (-z as f64).exp()), 1e-5);
    }
    assert!(
        e.explain(&model, &request(vec![3, 0])).is_err(),
        "class 3 of 3 is refused"
    );
}

#[test]
fn weight_files_round_trip_and_bad_ones_are_refused() {
    let model = tiny();
    let w = weights(&model);
    let bytes = w.to_bytes(false, &[], &[]);
    let back = ExplainerWeights::from_bytes(&bytes, "'x'").unwrap();
    let mut sorted = w.clone();
    sorted.tensors.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(back, sorted);
    let half = ExplainerWeights::from_bytes(&w.to_bytes(true, &[], &[]), "'x'").unwrap();
    assert_eq!(half.spec, w.spec);
    let err = ExplainerWeights::from_bytes(&bytes[..bytes.len() / 2], "'cut.safetensors'").unwrap_err();
    assert!(err.to_string().contains("cut.safetensors"), "{err}");
    // Weights for another model are refused, naming it.
    let lite = deepsight_models::ModelSource::Builtin {
        arch: deepsight_models::Arch::Lite0,
        random_seed: None,
    }
    .load(&default_device())
    .unwrap();
    let err = w.check_fits(&lite.model).unwrap_err().to_string();
    assert!(err.contains("'tiny'"), "{err}");
}

#[test]
fn shipped_weights_fit_the_embedded_lite0() {
    let loaded = deepsight_models::ModelSource::Builtin {
        arch: deepsight_models::Arch::Lite0,
        random_seed: None,
    }
    .load(&default_device())
    .unwrap();
    let w = deepsight_explain::learned::explainer_weights::shipped().expect("shipped");
    w.check_fits(&loaded.model).unwrap();
    assert_eq!(w.spec.taps, ["_blocks.4", "_blocks.10", "features"]);
    assert!(w.spec.skip, "the shipped decoder started from CAM");
    assert!(w.info.contains_key("command"), "the training command is recorded");
}
