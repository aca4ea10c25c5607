//! The metrics against the fixtures computed by the reference code (`../shared/fixtures`,
//! `generate_fixtures.py`: `ad_ic`, `causal_metric`), to 1e-4: AD/IC's `Y` and `O` per image and
//! the AD/IC values of `manifest.json` at keep 100/50/15 on `gradcam_raw` and the `[0, 1]` image;
//! deletion and insertion curves and AUCs on the bilinear upsampling of `gradcam_raw`, in the
//! model's input space, step = image width. The tiny networks come from their ONNX exports; Lite0
//! is the built-in.

use deepsight_eval::adic::{AdIcProfile, average_drop, confidences, increase_in_confidence};
use deepsight_eval::causal::{CausalMode, causal_curve};
use deepsight_explain::Map;
use deepsight_models::{LoadedModel, Weights};
mod common;
use common::{dims, gradcam_raw, images01, load, manifest, normaliser};

const TOL: f32 = 1e-4;

fn check_adic(name: &str) {
    let (model, fx, classes) = load(name);
    let x01 = images01(name, &fx);
    let d: [usize; 4] = dims(&fx, "input").try_into().unwrap();
    let maps = gradcam_raw(&fx);
    let metrics = &manifest()[name]["metrics"];
    for keep in [100, 50, 15] {
        let (c, passes) = confidences(
            &model.model,
            &x01,
            d,
            normaliser(name),
            &maps,
            &classes,
            keep as f32 / 100.0,
            AdIcProfile::Lcam,
        )
        .unwrap();
        assert_eq!(passes, 2 * d[0]);
        let (ry, ro) = (
            &fx.tensors[&format!("adic_keep{keep}_y")].data,
            &fx.tensors[&format!("adic_keep{keep}_o")].data,
        );
        for (i, r) in c.iter().enumerate() {
            let (dy, dox) = ((r.y - ry[i]).abs(), (r.o - ro[i]).abs());
            println!(
                "{name} keep {keep} image {i}: Y {} (diff {dy:e}), O {} (diff {dox:e})",
                r.y, r.o
            );
            assert!(dy <= TOL && dox <= TOL, "{name} keep {keep} image {i}");
        }
        let (ad, ic) = (average_drop(&c, AdIcProfile::Lcam), increase_in_confidence(&c));
        let m = &metrics[format!("gradcam_keep{keep}")];
        let (rad, ric) = (m["AD"].as_f64().unwrap() as f32, m["IC"].as_f64().unwrap() as f32);
        println!(
            "{name} keep {keep}: AD {ad} (ref {rad}, diff {:e}), IC {ic} (ref {ric}, diff {:e})",
            (ad - rad).abs(),
            (ic - ric).abs()
        );
        assert!(
            (ad - rad).abs() <= TOL && (ic - ric).abs() <= TOL,
            "{name} keep {keep}"
        );
    }
}

#[test]
fn adic_matches_the_reference_on_tiny_vgg() {
    check_adic("tiny_vgg");
}

#[test]
fn adic_matches_the_reference_on_tiny_resnet() {
    check_adic("tiny_resnet");
}

#[test]
fn adic_matches_the_reference_on_lite0() {
    check_adic("lite0");
}

/// One image's curve against `{mode}_curve_{i}` and the manifest's AUC.
fn check_curve(name: &str, model: &LoadedModel, fx: &Weights, classes: &[usize], i: usize, mode: CausalMode) {
    let [_, c, h, w]: [usize; 4] = dims(fx, "input").try_into().unwrap();
    let per = c * h * w;
    let image = &fx.tensors["input"].data[i * per..(i + 1) * per];
    let map: Map = gradcam_raw(fx).swap_remove(i);
    let (curve, passes) =
        causal_curve(&model.model, image, [c, h, w], &map, classes[i], mode, w, 32).unwrap();
    let reference = &fx.tensors[&format!("{}_curve_{i}", mode.name())].data;
    assert_eq!(curve.scores.len(), reference.len());
    assert_eq!(passes, h * w / w + 1);
    let diff = curve
        .scores
        .iter()
        .zip(reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    let rauc = manifest()[name]["metrics"][format!("gradcam_{}_auc", mode.name())][i]
        .as_f64()
        .unwrap() as f32;
    let dauc = (curve.auc - rauc).abs();
    println!(
        "{name} image {i} {}: max curve diff {diff:e}, AUC {} (ref {rauc}, diff {dauc:e})",
        mode.name(),
        curve.auc
    );
    assert!(diff <= TOL && dauc <= TOL, "{name} image {i} {}", mode.name());
}

fn check_curves(name: &str, images: std::ops::Range<usize>, modes: &[CausalMode]) {
    let (model, fx, classes) = load(name);
    for i in images {
        for &mode in modes {
            check_curve(name, &model, &fx, &classes, i, mode);
        }
    }
}

const BOTH: [CausalMode; 2] = [CausalMode::Deletion, CausalMode::Insertion];

#[test]
fn deletion_and_insertion_match_the_reference_on_tiny_vgg() {
    check_curves("tiny_vgg", 0..3, &BOTH);
}

#[test]
fn deletion_and_insertion_match_the_reference_on_tiny_resnet() {
    check_curves("tiny_resnet", 0..3, &BOTH);
}

#[test]
fn deletion_matches_the_reference_on_one_lite0_image() {
    check_curves("lite0", 1..2, &[CausalMode::Deletion]);
}

#[test]
fn insertion_matches_the_reference_on_one_lite0_image() {
    check_curves("lite0", 1..2, &[CausalMode::Insertion]);
}

#[test]
#[ignore = "12 Lite0 curves of 225 forwards each: minutes on two cores"]
fn deletion_and_insertion_match_the_reference_on_every_lite0_image() {
    check_curves("lite0", 0..6, &BOTH);
}

// ---- corner cases, on a linear model whose scores show which pixels a metric touched ----

use deepsight_eval::adic::{Confidence, keep_mask};
use deepsight_eval::causal::{auc, saliency_order, upsample_like_torch};
use deepsight_eval::localisation::{
    FRACTION, box_from_map, checked_box_from_map, iou, localised, top1_localisation_error,
};
use deepsight_eval::pointing::{
    PointingGame, TOLERANCE, centre, centre_exact, checked_point, is_hit, is_hit_at, point,
};
use deepsight_eval::{EvalError, Normaliser};
use deepsight_runtime::{Classifier, Device, Tensor, TensorData, default_device, to_vec};

/// `logits[k] = sum_i w[k][i] x_i` over the flat image.
struct Linear {
    w: Vec<Vec<f32>>,
}

impl Classifier for Linear {
    fn num_classes(&self) -> usize {
        self.w.len()
    }
    fn device(&self) -> Device {
        default_device()
    }
    fn logits(&self, images: Tensor<4>) -> deepsight_runtime::Result<Tensor<2>> {
        let n = images.dims()[0];
        let x = to_vec(images);
        let per = x.len() / n;
        let out: Vec<f32> = x
            .chunks(per)
            .flat_map(|img| {
                self.w
                    .iter()
                    .map(move |w| w.iter().zip(img).map(|(a, b)| a * b).sum::<f32>())
            })
            .collect();
        Ok(Tensor::from_data(
            TensorData::new(out, [n, self.w.len()]),
            &default_device(),
        ))
    }
}

fn plane(h: usize, w: usize, data: Vec<f32>) -> Map {
    Map {
        channels: 1,
        height: h,
        width: w,
        data,
    }
}

const IDENTITY: Normaliser = Normaliser {
    mean: [0.0; 3],
    std: [255.0; 3],
};

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

fn assert_invalid<T: std::fmt::Debug>(r: Result<T, EvalError>, metric: &str, needle: &str) {
    match r {
        Err(EvalError::Invalid { metric: m, reason }) => {
            assert_eq!(m, metric, "{reason}");
            assert!(reason.contains(needle), "'{reason}' should mention '{needle}'");
            println!("{m}: {reason}");
        }
        other => panic!("expected Invalid from {metric}, got {other:?}"),
    }
}

/// Class 0's logit weighs the four pixels of a 2x2 image (channel 0) by 1, 2, 4, 8.
fn weighted_pixels() -> Linear {
    let mut w0 = vec![0.0; 12];
    w0[..4].copy_from_slice(&[1.0, 2.0, 4.0, 8.0]);
    Linear {
        w: vec![w0, vec![0.0; 12]],
    }
}

#[test]
fn deletion_removes_tied_pixels_lower_index_first() {
    let model = weighted_pixels();
    let image = vec![1.0f32; 12];
    // Values 1, 2, 2, 0: pixel 1 and 2 tie; the stable order is 1, 2, 0, 3.
    let map = plane(2, 2, vec![1.0, 2.0, 2.0, 0.0]);
    assert_eq!(saliency_order(&map.data), vec![1, 2, 0, 3]);
    let (curve, passes) =
        causal_curve(&model, &image, [3, 2, 2], &map, 0, CausalMode::Deletion, 1, 2).unwrap();
    let expected: Vec<f32> = [15.0, 13.0, 9.0, 8.0, 0.0].iter().map(|&l| sigmoid(l)).collect();
    assert_eq!(passes, 5);
    for (a, b) in curve.scores.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-6, "{:?} vs {expected:?}", curve.scores);
    }
    assert!((curve.auc - auc(&expected)).abs() < 1e-7);
    // -0.0 and 0.0 tie as in NumPy; a constant map keeps row-major order.
    assert_eq!(saliency_order(&[0.0, -0.0, 0.0, -0.0]), vec![0, 1, 2, 3]);
    assert_eq!(saliency_order(&[3.0; 5]), vec![0, 1, 2, 3, 4]);
}

#[test]
fn causal_steps_the_last_partial_step_and_refuses_bad_input() {
    let model = weighted_pixels();
    let image = vec![1.0f32; 12];
    let map = plane(2, 2, vec![4.0, 3.0, 2.0, 1.0]);
    // 4 pixels at 3 per step: 2 steps, 3 points; the second step holds 1 pixel.
    let (curve, passes) =
        causal_curve(&model, &image, [3, 2, 2], &map, 0, CausalMode::Deletion, 3, 1).unwrap();
    assert_eq!(passes, 3);
    let expected = [sigmoid(15.0), sigmoid(8.0), sigmoid(0.0)];
    for (a, b) in curve.scores.iter().zip(&expected) {
        assert!((a - b).abs() < 1e-6);
    }
    // AUC = (sum - s0/2 - sn/2) / n.
    let by_hand = (expected.iter().sum::<f32>() - expected[0] / 2.0 - expected[2] / 2.0) / 2.0;
    assert!((curve.auc - by_hand).abs() < 1e-6);
    assert_eq!(auc(&[0.7]), 0.0);

    let nan = plane(2, 2, vec![1.0, f32::NAN, 0.0, 0.0]);
    assert_invalid(
        causal_curve(&model, &image, [3, 2, 2], &nan, 0, CausalMode::Deletion, 1, 4),
        "deletion",
        "non-finite",
    );
    assert_invalid(
        causal_curve(&model, &image, [3, 2, 2], &nan, 0, CausalMode::Insertion, 1, 4),
        "insertion",
        "non-finite",
    );
    assert_invalid(
        causal_curve(&model, &image, [3, 2, 2], &map, 0, CausalMode::Deletion, 0, 4),
        "deletion",
        "step",
    );
    assert_invalid(
        causal_curve(
            &model,
            &image[..11],
            [3, 2, 2],
            &map,
            0,
            CausalMode::Deletion,
            1,
            4,
        ),
        "deletion",
        "image values",
    );
    assert_invalid(
        causal_curve(&model, &image, [3, 2, 2], &map, 7, CausalMode::Deletion, 1, 4),
        "deletion",
        "class 7",
    );
}

#[test]
fn insertion_starts_from_the_zero_padded_blur() {
    // A constant image blurs to less than itself near the border (zero padding) and to itself
    // 5 pixels in; the score weighs only the corner pixel (0, 0) of channel 0.
    let (h, w) = (12, 12);
    let mut w0 = vec![0.0; 3 * h * w];
    w0[0] = 1.0;
    let model = Linear {
        w: vec![w0, vec![0.0; 3 * h * w]],
    };
    let image = vec![1.0f32; 3 * h * w];
    let map = plane(h, w, (0..h * w).map(|i| i as f32).collect());
    let (curve, _) = causal_curve(&model, &image, [3, h, w], &map, 0, CausalMode::Insertion, w, 16).unwrap();
    // The corner sees the 6x6 quarter of the kernel: (sum_{r=0..5} g_r)^2.
    let g: Vec<f64> = (-5..=5).map(|r: i32| (-(r * r) as f64 / 50.0).exp()).collect();
    let total: f64 = g.iter().sum();
    let quarter = (g[5..].iter().sum::<f64>() / total).powi(2);
    assert!((curve.scores[0] as f64 - 1.0 / (1.0 + (-quarter).exp())).abs() < 1e-6);
    // The map ranks pixel (0, 0) last: it is inserted at the final step only.
    assert!((curve.scores[h - 1] - curve.scores[0]).abs() < 1e-7);
    assert!((curve.scores[h] - sigmoid(1.0)).abs() < 1e-6);
}

#[test]
fn adic_refuses_y_zero_under_lcam_and_nan_maps() {
    // Class 1's logit is 1000 x (sum of the image), class 0's is 0: Y of class 0 underflows to 0.
    let model = Linear {
        w: vec![vec![0.0; 12], vec![1000.0; 12]],
    };
    let x = vec![0.5f32; 12];
    let map = plane(2, 2, vec![0.0, 1.0, 2.0, 3.0]);
    let run = |classes: &[usize], profile, maps: &[Map]| {
        confidences(&model, &x, [1, 3, 2, 2], IDENTITY, maps, classes, 1.0, profile)
    };
    assert_invalid(
        run(&[0], AdIcProfile::Lcam, std::slice::from_ref(&map)),
        "AD/IC",
        "Y",
    );
    // pgc's absolute drop does not divide by Y.
    let (c, passes) = run(&[0], AdIcProfile::Pgc, std::slice::from_ref(&map)).unwrap();
    assert_eq!((c[0].y, passes), (0.0, 2));
    // Records with Y = 0 follow the reference arithmetic: 0 / 0.
    assert!(average_drop(&[Confidence { y: 0.0, o: 0.0 }], AdIcProfile::Lcam).is_nan());
    assert!(average_drop(&[], AdIcProfile::Lcam).is_nan());

    let nan = plane(2, 2, vec![0.0, f32::NAN, 2.0, 3.0]);
    assert_invalid(run(&[1], AdIcProfile::Lcam, &[nan]), "AD/IC", "non-finite");
    let inf = plane(2, 2, vec![0.0, f32::INFINITY, 2.0, 3.0]);
    assert_invalid(run(&[1], AdIcProfile::Lcam, &[inf]), "AD/IC", "non-finite");
    let two = Map {
        channels: 2,
        data: vec![0.0; 8],
        ..map.clone()
    };
    assert_invalid(run(&[1], AdIcProfile::Lcam, &[two]), "AD/IC", "one-channel");
    assert_invalid(
        run(&[1, 1], AdIcProfile::Lcam, std::slice::from_ref(&map)),
        "AD/IC",
        "classes",
    );
    assert_invalid(
        confidences(
            &model,
            &x,
            [1, 3, 2, 2],
            IDENTITY,
            std::slice::from_ref(&map),
            &[1],
            0.0,
            AdIcProfile::Lcam,
        ),
        "AD/IC",
        "keep",
    );
    assert_invalid(
        confidences(
            &model,
            &x,
            [1, 3, 2, 2],
            IDENTITY,
            &[map],
            &[2],
            1.0,
            AdIcProfile::Lcam,
        ),
        "AD/IC",
        "class 2",
    );
}

#[test]
fn adic_keeps_ties_soft_values_and_blacks_out_constant_maps() {
    // keep 50% of 4 pixels: k = 2, the 2nd largest is 1, and all three values equal to it stay.
    assert_eq!(
        keep_mask(&plane(2, 2, vec![1.0, 1.0, 1.0, 0.0]), [2, 2], 0.5),
        vec![1.0, 1.0, 1.0, 0.0]
    );
    // Min-max to [0, 1]; k = round(2.5) = 2 (halves to even); kept values stay soft.
    assert_eq!(
        keep_mask(&plane(1, 5, vec![5.0, 4.0, 3.0, 2.0, 1.0]), [1, 5], 0.5),
        vec![1.0, 0.75, 0.0, 0.0, 0.0]
    );
    assert_eq!(
        keep_mask(&plane(1, 5, vec![5.0, 4.0, 3.0, 2.0, 1.0]), [1, 5], 1.0),
        vec![1.0, 0.75, 0.5, 0.25, 0.0]
    );
    // A constant map normalises to zeros: the masked image is black.
    assert_eq!(keep_mask(&plane(2, 2, vec![0.3; 4]), [2, 2], 1.0), vec![0.0; 4]);

    // Class 0's logit = sum of channel 0: the masked image's score is that of the black image.
    let mut w0 = vec![0.0; 12];
    w0[..4].fill(1.0);
    let model = Linear {
        w: vec![w0, vec![0.0; 12]],
    };
    let x = vec![1.0f32; 12];
    let constant = plane(2, 2, vec![7.0; 4]);
    for profile in [AdIcProfile::Lcam, AdIcProfile::Pgc] {
        let (c, _) = confidences(
            &model,
            &x,
            [1, 3, 2, 2],
            IDENTITY,
            std::slice::from_ref(&constant),
            &[0],
            1.0,
            profile,
        )
        .unwrap();
        assert!(
            (c[0].y - sigmoid(4.0)).abs() < 1e-6 && (c[0].o - 0.5).abs() < 1e-6,
            "{c:?}"
        );
    }
    // lcam masks the [0, 1] image before normalisation, pgc the normalised one: with mean 127.5
    // and std 127.5 a black pixel is -1 under lcam and 0 under pgc.
    let centred = Normaliser {
        mean: [127.5; 3],
        std: [127.5; 3],
    };
    let x = vec![0.5f32; 12]; // normalises to 0
    let half = plane(2, 2, vec![0.0, 0.0, 1.0, 1.0]);
    let (l, _) = confidences(
        &model,
        &x,
        [1, 3, 2, 2],
        centred,
        std::slice::from_ref(&half),
        &[0],
        1.0,
        AdIcProfile::Lcam,
    )
    .unwrap();
    let (p, _) = confidences(
        &model,
        &x,
        [1, 3, 2, 2],
        centred,
        &[half],
        &[0],
        1.0,
        AdIcProfile::Pgc,
    )
    .unwrap();
    assert!((l[0].o - sigmoid(-2.0)).abs() < 1e-6 && (p[0].o - 0.5).abs() < 1e-6);

    // AD relative (lcam) or absolute (pgc), IC strict.
    let c = [
        Confidence { y: 0.5, o: 0.25 },
        Confidence { y: 0.5, o: 0.5 },
        Confidence { y: 0.2, o: 0.4 },
    ];
    assert!((average_drop(&c, AdIcProfile::Lcam) - 100.0 * 0.5 / 3.0).abs() < 1e-4);
    assert!((average_drop(&c, AdIcProfile::Pgc) - 100.0 * 0.25 / 3.0).abs() < 1e-4);
    assert!((increase_in_confidence(&c) - 100.0 / 3.0).abs() < 1e-4);
}

#[test]
fn pointing_game_points_hits_and_scores() {
    // The first row-major maximum; a constant map points at (0, 0).
    let m = plane(2, 3, vec![0.0, 5.0, 1.0, 5.0, 2.0, 5.0]);
    assert_eq!(point(&m, [2, 3]), (0, 1));
    assert_eq!(point(&plane(4, 4, vec![1.0; 16]), [9, 7]), (0, 0));
    // Upsampled 2x2 -> 4x4: the maximum corner fills the 2x2 block of that corner.
    assert_eq!(point(&plane(2, 2, vec![0.0, 0.0, 0.0, 1.0]), [4, 4]), (3, 3));
    assert_invalid(
        checked_point(&plane(1, 2, vec![f32::NAN, 0.0]), [4, 4]),
        "pointing game",
        "non-finite",
    );
    assert_invalid(checked_point(&m, [0, 4]), "pointing game", "size");
    assert_eq!(point(&plane(0, 0, vec![]), [4, 4]), (0, 0));

    let size = [100, 100];
    let px = |x: f32, y: f32| [x, y, x, y];
    // Exactly 15 away: a miss (strict <); 14, or sqrt(221), inside: hits.
    assert!(!is_hit((20, 20), &[px(35.0, 20.0)], size, TOLERANCE));
    assert!(!is_hit((20, 20), &[px(20.0, 5.0)], size, TOLERANCE));
    assert!(!is_hit((20, 20), &[px(32.0, 29.0)], size, TOLERANCE)); // 12^2 + 9^2 = 225
    assert!(is_hit((20, 20), &[px(34.0, 20.0)], size, TOLERANCE));
    assert!(is_hit((20, 20), &[px(34.0, 25.0)], size, TOLERANCE)); // 196 + 25 = 221
    // The union of boxes; inside a box is a hit; the nearest pixel of a box is its clamp.
    assert!(is_hit(
        (50, 50),
        &[px(0.0, 0.0), [40.0, 40.0, 60.0, 60.0]],
        size,
        TOLERANCE
    ));
    assert!(is_hit((50, 50), &[[0.0, 0.0, 41.0, 39.0]], size, TOLERANCE)); // (41, 39): 81 + 121
    assert!(!is_hit((50, 50), &[[0.0, 0.0, 41.0, 38.0]], size, TOLERANCE)); // (41, 38): 81 + 144
    // Inclusive ends: the box [10, 10, 12, 12] holds column 12.
    assert!(!is_hit((11, 27), &[[10.0, 10.0, 12.0, 12.0]], size, TOLERANCE)); // 27 - 12 = 15
    assert!(is_hit((11, 26), &[[10.0, 10.0, 12.0, 12.0]], size, TOLERANCE));
    // Boxes on the border are clipped to the image: the pixels outside it do not count.
    assert!(is_hit((0, 0), &[[-10.0, -10.0, 5.0, 5.0]], size, TOLERANCE));
    assert!(is_hit((99, 99), &[[90.0, 90.0, 250.0, 250.0]], size, TOLERANCE));
    assert!(!is_hit((95, 95), &[[105.0, 90.0, 110.0, 99.0]], size, TOLERANCE)); // 10 px right, off the image
    assert!(is_hit((95, 95), &[[99.0, 90.0, 110.0, 99.0]], size, TOLERANCE)); // column 99 is in
    assert!(!is_hit((5, 5), &[[f32::NAN, 0.0, 9.0, 9.0]], size, TOLERANCE));
    assert!(!is_hit((5, 5), &[], size, TOLERANCE));

    // The centre baseline: integer division, and TorchRay's exact (h / 2, w / 2).
    assert_eq!(centre([224, 224]), (112, 112));
    assert_eq!(centre([5, 4]), (2, 2));
    assert_eq!(centre_exact([5, 4]), (2.5, 2.0));
    // From (2.5, 2.5): column 17 is 14.5 right and row 2 half a row up: 210.25 + 0.25 < 225.
    assert!(is_hit_at(
        centre_exact([5, 5]),
        &[px(17.0, 2.0)],
        [5, 100],
        TOLERANCE
    ));
    assert!(!is_hit_at(
        centre_exact([5, 5]),
        &[px(18.0, 2.0)],
        [5, 100],
        TOLERANCE
    ));
    // The rounded centre (2, 2) reaches column 16 only.
    assert!(!is_hit(centre([5, 5]), &[px(17.0, 2.0)], [5, 100], TOLERANCE));

    let mut game = PointingGame::new();
    assert!(game.score().is_nan());
    game.add(0, true);
    game.add(0, false);
    game.add(3, true);
    assert_eq!(game.counts(0), (1, 1));
    assert_eq!(game.len(), 3);
    assert!((game.score() - 0.75).abs() < 1e-7);
    assert!((game.score_over(4) - 0.375).abs() < 1e-7);
}

#[test]
fn localisation_boxes_components_and_iou() {
    // 4-connectivity: three diagonal pixels are three components of 1; the pair wins.
    let mut d = vec![0.0f32; 6 * 8];
    for (y, x) in [(0, 0), (1, 1), (2, 2), (5, 4), (5, 5)] {
        d[y * 8 + x] = 1.0;
    }
    let m = plane(6, 8, d);
    assert_eq!(box_from_map(&m, [6, 8], FRACTION), [4.0, 5.0, 5.0, 5.0]);
    // Equal components: the first in row-major order. At the image border the box ends there.
    let mut d = vec![0.0f32; 4 * 4];
    d[3] = 1.0; // (0, 3): the top-right corner
    d[12] = 1.0; // (3, 0)
    assert_eq!(
        box_from_map(&plane(4, 4, d), [4, 4], FRACTION),
        [3.0, 0.0, 3.0, 0.0]
    );
    // Inclusive threshold: a value of exactly 0.15 x max is kept.
    let m = plane(1, 4, vec![1.0, 0.15, 0.1499, 1.0]);
    assert_eq!(box_from_map(&m, [1, 4], FRACTION), [0.0, 0.0, 1.0, 0.0]);
    // Constant maps (all zero included) keep every pixel: the whole image.
    assert_eq!(
        box_from_map(&plane(3, 3, vec![0.4; 9]), [7, 5], FRACTION),
        [0.0, 0.0, 4.0, 6.0]
    );
    assert_eq!(
        box_from_map(&plane(3, 3, vec![0.0; 9]), [7, 5], FRACTION),
        [0.0, 0.0, 4.0, 6.0]
    );
    // A negative maximum keeps its maximal pixels.
    let m = plane(1, 3, vec![-3.0, -1.0, -2.0]);
    assert_eq!(box_from_map(&m, [1, 3], FRACTION), [1.0, 0.0, 1.0, 0.0]);
    assert_invalid(
        checked_box_from_map(&plane(1, 2, vec![f32::NAN, 1.0]), [2, 2], FRACTION),
        "localisation",
        "non-finite",
    );
    assert_invalid(checked_box_from_map(&m, [1, 3], 1.5), "localisation", "fraction");
    assert_eq!(box_from_map(&m, [0, 3], FRACTION), [0.0, 0.0, -1.0, -1.0]);

    // IoU with inclusive ends (+1 widths).
    let a = [0.0, 0.0, 9.0, 9.0];
    assert_eq!(iou(a, a), 1.0);
    assert_eq!(iou(a, [20.0, 20.0, 29.0, 29.0]), 0.0); // disjoint
    assert_eq!(iou(a, [10.0, 0.0, 19.0, 9.0]), 0.0); // adjacent, no shared pixel
    assert!((iou(a, [9.0, 0.0, 18.0, 9.0]) - 10.0 / 190.0).abs() < 1e-7); // one shared column
    assert!((iou(a, [0.0, 0.0, 19.0, 19.0]) - 0.25).abs() < 1e-7); // nested
    assert!((iou([2.0, 2.0, 3.0, 3.0], a) - 0.04).abs() < 1e-7); // nested the other way
    assert_eq!(iou(a, [f32::NAN, 0.0, 9.0, 9.0]), 0.0);
    assert_eq!(iou([5.0, 5.0, 4.0, 4.0], [5.0, 5.0, 4.0, 4.0]), 0.0); // empty boxes
    // Localised at IoU >= 0.5 with some box.
    assert!(localised(a, &[[50.0, 50.0, 60.0, 60.0], [0.0, 0.0, 19.0, 9.0]])); // exactly 0.5
    assert!(!localised(a, &[[0.0, 0.0, 20.0, 9.0]]));
    assert!(!localised(a, &[]));
    assert!(
        (top1_localisation_error(&[(true, true), (true, false), (false, true), (true, true)]) - 50.0).abs()
            < 1e-6
    );
}

#[test]
fn upsampling_matches_pytorch_kernels_on_simple_maps() {
    // Same size: the values themselves. 2 -> 4 (channels-last kernel) and 2 -> 100 (generic):
    // quarter weights, exact, clamped at the border.
    let m = plane(1, 2, vec![0.0, 4.0]);
    assert_eq!(upsample_like_torch(&m, 1, 2), vec![0.0, 4.0]);
    assert_eq!(upsample_like_torch(&m, 1, 4), vec![0.0, 1.0, 3.0, 4.0]);
    let wide = upsample_like_torch(&m, 1, 100);
    assert_eq!((wide[0], wide[99]), (0.0, 4.0));
    assert!(
        (wide[25] - 0.04).abs() < 1e-6 && (wide[50] - 2.04).abs() < 1e-6,
        "{wide:?}"
    );
    assert_eq!(upsample_like_torch(&plane(0, 0, vec![]), 2, 2), vec![0.0; 4]);
}

#[test]
fn normaliser_invert_undoes_apply() {
    let n = deepsight_eval::Normaliser {
        mean: [123.7, 116.3, 103.5],
        std: [58.4, 57.1, 57.4],
    };
    let x: Vec<f32> = (0..12).map(|i| i as f32 / 11.0).collect();
    let back = n.invert(&n.apply(&x));
    assert!(x.iter().zip(&back).all(|(a, b)| (a - b).abs() < 1e-6));
}
