//! Tests of [`super`]: known answers on hand-made inputs.

use super::*;
use deepsight_models::resample::Filter;
use deepsight_runtime::{Graph, GraphModel, Linear, Op, Tensor, TensorData, default_device};

/// `input -> tap (identity) -> gap -> fc`: `eps` at `tap` is the normalised image inside the
/// box and 0 outside; at `gap` it is each channel's box sum / 16.
fn tiny() -> GraphModel {
    let d = default_device();
    let mut g = Graph::new("input", 3);
    let x = g.push("tap", Op::Identity, &[0]).unwrap();
    let x = g.push("gap", Op::GlobalAvgPool, &[x]).unwrap();
    let w = Tensor::<2>::from_data(TensorData::new(vec![1.0f32, 0.0, 0.0, 0.0, 1.0, 1.0], [2, 3]), &d);
    g.push(
        "fc",
        Op::Linear(Linear {
            weight: w,
            bias: None,
        }),
        &[x],
    )
    .unwrap();
    GraphModel::new(g, [4, 4], d).unwrap()
}

/// Resize is a copy at 4x4; normalised value = pixel - 127.
fn pipeline() -> Preprocess {
    Preprocess {
        resize: Resize::Exact {
            size: [4, 4],
            filter: Filter::Bicubic,
        },
        mean: [127.0; 3],
        std: [1.0; 3],
    }
}

fn image(name: &str, pixels: Vec<u8>) -> PartsImage {
    PartsImage {
        name: name.into(),
        image: RgbImage {
            width: 4,
            height: 4,
            pixels,
        },
        parts: BTreeMap::from([("eye".to_string(), [0, 0, 2, 2])]),
    }
}

fn three() -> Vec<PartsImage> {
    let a = vec![200u8; 48];
    let b = vec![50u8; 48];
    // C: like A, but the box's top row is the mean colour, so its change there is 0.
    let mut c = vec![200u8; 48];
    c[..6].fill(127);
    vec![image("a", a), image("b", b), image("c", c)]
}

#[test]
fn delta_matches_the_hand_computation() {
    let opts = Correspondence {
        layers: vec!["tap".into(), "gap".into()],
        draws: 0,
        ..Default::default()
    };
    let r = correspondence(&tiny(), &pipeline(), &three(), &opts).unwrap();
    assert_eq!(r.rows.len(), 1);
    let tap = &r.rows[0].layers[0];
    // D = 48. Box signs: A +1 (12 values), B -1 (12), C 0 on the top row (6) and +1 below (6).
    // H(A,B) = 12/48, H(A,C) = 6/48, H(B,C) = 12/48.
    assert_eq!(tap.dim, 48);
    assert_eq!(tap.values, [0.25, 0.125, 0.25]);
    let mean = 0.625 / 3.0;
    let std = ((2.0 * (0.25f32 - mean).powi(2) + (0.125 - mean).powi(2)) / 3.0).sqrt();
    assert!(
        (tap.mean - mean).abs() < 1e-6 && (tap.std - std).abs() < 1e-6,
        "{tap:?}"
    );
    assert!((tap.delta - 1.25).abs() < 1e-6);
    // Pooled: eps per channel is + (A), - (B), + (C): H(A,B) = 1, H(A,C) = 0, H(B,C) = 1.
    let gap = &r.rows[0].layers[1];
    assert_eq!(gap.dim, 3);
    assert_eq!(gap.values, [1.0, 0.0, 1.0]);
    assert!((gap.mean - 2.0 / 3.0).abs() < 1e-6);
    // Sign frequencies at tap (-, 0, +): A (0, 36, 12)/48, B (12, 36, 0)/48, C (0, 42, 6)/48;
    // chance H = 1 - sum f_i f_j: (A,B) 1 - 36*36/48², (A,C) 1 - (36*42 + 12*6)/48²,
    // (B,C) 1 - 36*42/48².
    let want = [
        1.0 - 1296.0 / 2304.0,
        1.0 - 1584.0 / 2304.0,
        1.0 - 1512.0 / 2304.0,
    ];
    assert!(
        (tap.chance - want.iter().sum::<f32>() / 3.0).abs() < 1e-6,
        "{}",
        tap.chance
    );
    assert!((tap.changed - (0.25 + 0.25 + 0.125) / 3.0).abs() < 1e-6);
    assert!(
        r.markdown().contains("| eye | 0.208 ± 0.059 | 0.667 ± 0.471 |"),
        "{}",
        r.markdown()
    );
}

#[test]
fn random_baseline_is_seeded_and_sized_as_the_part() {
    let opts = Correspondence {
        layers: vec!["tap".into()],
        draws: 4,
        seed: 7,
        ..Default::default()
    };
    let a = correspondence(&tiny(), &pipeline(), &three(), &opts).unwrap();
    let b = correspondence(
        &tiny(),
        &pipeline(),
        &three(),
        &Correspondence {
            batch: 1,
            ..opts.clone()
        },
    )
    .unwrap();
    assert_eq!(a.rows.len(), 2);
    assert_eq!(a.rows[1].occlusion, "random (eye size)");
    assert_eq!(a.rows[1].layers[0].pairs, 12);
    assert_eq!(a.rows[1].layers[0].values, b.rows[1].layers[0].values);
    assert_eq!(a.random_boxes[2]["eye"].len(), 4);
    let fig = a.figure(&pipeline(), &three(), 3).unwrap();
    assert!(fig.width >= 12 && fig.height > 4);
    let mut rng = SplitMix(3);
    for _ in 0..100 {
        let r = random_box(&mut rng, [1, 1, 3, 4], [4, 4]);
        assert!(
            r[2] <= 4 && r[3] <= 4 && r[2] - r[0] == 2 && r[3] - r[1] == 3,
            "{r:?}"
        );
    }
}

#[test]
fn boxes_map_to_the_input_size() {
    let lite = deepsight_models::Preset::EfficientNetLite.pipeline();
    // 227 -> 224: 76 * 224 / 227 = 75.0, 98 * 224 / 227 = 96.7.
    assert_eq!(
        map_box(&lite, 227, 227, [76, 118, 98, 140]).unwrap(),
        [75, 116, 97, 138]
    );
    let tv = deepsight_models::Preset::TorchvisionImagenet.pipeline();
    // 227 -> 256 (x 1.1278), crop 224 from offset 16.
    assert_eq!(
        map_box(&tv, 227, 227, [76, 118, 98, 140]).unwrap(),
        [70, 117, 95, 142]
    );
    let e = map_box(&tv, 227, 227, [0, 0, 10, 10]).unwrap_err().to_string();
    assert!(e.contains("outside the model's 224x224 centre crop"), "{e}");
    let e = map_box(&lite, 227, 227, [200, 0, 240, 10])
        .unwrap_err()
        .to_string();
    assert!(e.contains("inside the 227x227 image"), "{e}");
}

#[test]
fn bad_parts_get_one_clear_error() {
    let m = tiny();
    let run = |imgs: &[PartsImage], o: &Correspondence| {
        correspondence(&m, &pipeline(), imgs, o).unwrap_err().to_string()
    };
    let opts = Correspondence {
        layers: vec!["tap".into()],
        draws: 0,
        ..Default::default()
    };
    let e = run(
        &three(),
        &Correspondence {
            parts: vec!["nose".into()],
            ..opts.clone()
        },
    );
    assert!(e.contains("image 'a' has no part 'nose' (it has: eye)"), "{e}");
    let mut imgs = three();
    imgs[1].parts.insert("eye".into(), [3, 3, 6, 6]);
    let e = run(&imgs, &opts);
    assert!(
        e.contains("image 'b' part 'eye'") && e.contains("inside the 4x4 image"),
        "{e}"
    );
    let e = run(
        &three(),
        &Correspondence {
            layers: vec!["conv9".into()],
            ..opts.clone()
        },
    );
    assert!(e.contains("unknown layer 'conv9'"), "{e}");
}

#[test]
fn parts_files_resolve_paths_and_refuse_bad_boxes() {
    let dir = std::env::temp_dir().join(format!("deepsight-parts-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("parts.json");
    std::fs::write(&f, r#"[{"file": "img/a.jpg", "parts": {"nose": [1, 2, 5, 6]}}]"#).unwrap();
    let p = read_parts(&f).unwrap();
    assert_eq!(p[0].file, dir.join("img/a.jpg"));
    assert_eq!(p[0].parts["nose"], [1, 2, 5, 6]);
    std::fs::write(&f, r#"[{"file": "a.jpg", "parts": {"nose": [5, 2, 1, 6]}}]"#).unwrap();
    let e = read_parts(&f).unwrap_err().to_string();
    assert!(e.contains("part 'nose'") && e.contains("x0 < x1"), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}
