//! Tests of [`super`]: known answers on hand-made inputs.

use super::*;
use deepsight_models::preprocess::Resize;
use deepsight_models::resample::Filter;
use deepsight_runtime::{Graph, GraphModel, Linear, Op, Tensor, TensorData, default_device};

/// `input -> tap (identity) -> gap -> fc (3 -> 2)`: the tap's features are the normalised
/// image itself, so distances have closed forms.
fn tiny(size: usize) -> GraphModel {
    let d = default_device();
    let mut g = Graph::new("input", 3);
    let x = g.push("tap", Op::Identity, &[0]).unwrap();
    let x = g.push("gap", Op::GlobalAvgPool, &[x]).unwrap();
    let w = Tensor::<2>::from_data(
        TensorData::new(vec![1.0f32, 2.0, -1.0, -1.0, 0.5, 1.0], [2, 3]),
        &d,
    );
    g.push(
        "fc",
        Op::Linear(Linear {
            weight: w,
            bias: None,
        }),
        &[x],
    )
    .unwrap();
    GraphModel::new(g, [size, size], d).unwrap()
}

fn pipeline(size: usize) -> Preprocess {
    Preprocess {
        resize: Resize::Exact {
            size: [size, size],
            filter: Filter::Bicubic,
        },
        mean: [127.0; 3],
        std: [128.0; 3],
    }
}

fn constant(size: usize, v: u8) -> RgbImage {
    RgbImage {
        width: size,
        height: size,
        pixels: vec![v; size * size * 3],
    }
}

fn sweep(t: Transform, amounts: Vec<f32>, img: RgbImage) -> InvarianceReport {
    let n = img.width;
    let images = [SweepImage {
        name: "a".into(),
        image: img,
        class: None,
    }];
    let opts = Invariance {
        transform: t,
        amounts,
        layers: vec!["tap".into(), "gap".into()],
        batch: 3,
    };
    invariance(&tiny(n), &pipeline(n), &images, &opts).unwrap()
}

fn ramp(size: usize) -> RgbImage {
    RgbImage {
        width: size,
        height: size,
        pixels: (0..size * size * 3).map(|i| (i * 7 % 251) as u8).collect(),
    }
}

#[test]
fn identity_gives_zero_distance_and_the_original_probability() {
    for t in Transform::ALL {
        let r = sweep(t, vec![t.identity()], ramp(16));
        let c = &r.images[0];
        assert_eq!(c.distances[0][0], 0.0, "{t:?}");
        assert_eq!(c.distances[1][0], 0.0, "{t:?}");
        assert_eq!(c.probability[0], c.original_probability, "{t:?}");
    }
}

#[test]
fn whole_pixel_translation_moves_pixels_exactly() {
    let img = ramp(9);
    let fill = [1.0, 2.0, 3.0];
    for k in [-3i64, 2] {
        let out = transform_image(&img, Transform::Translate, k as f32, fill);
        for y in 0..9i64 {
            for x in 0..9usize {
                let o = (y as usize * 9 + x) * 3;
                let want: [f32; 3] = if (0..9).contains(&(y - k)) {
                    let i = ((y - k) as usize * 9 + x) * 3;
                    [0, 1, 2].map(|c| img.pixels[i + c] as f32)
                } else {
                    fill
                };
                assert_eq!(out[o..o + 3], want, "shift {k} at ({x}, {y})");
            }
        }
    }
}

#[test]
fn quarter_turn_is_exact() {
    let img = ramp(5);
    let out = transform_image(&img, Transform::Rotate, 90.0, [0.0; 3]);
    // Counter-clockwise as seen: the top-right corner moves to the top-left, so output
    // (x, y) comes from input (4 - y, x).
    for y in 0..5 {
        for x in 0..5 {
            let i = (x * 5 + (4 - y)) * 3;
            assert_eq!(out[(y * 5 + x) * 3], img.pixels[i] as f32);
        }
    }
}

#[test]
fn translation_distance_has_its_closed_form_and_grows() {
    // A constant image: shifting by k rows uncovers k rows of mean colour (0 after
    // normalisation), so ||x - T x|| = sqrt(3 * 16 * k) * (200 - 127) / 128.
    let r = sweep(Transform::Translate, vec![1.0, 2.0, 4.0, -4.0], constant(16, 200));
    let d = &r.images[0].distances[0];
    for (k, &got) in [1.0f32, 2.0, 4.0, 4.0].iter().zip(d) {
        let want = (48.0 * k).sqrt() * 73.0 / 128.0;
        assert!((got - want).abs() < 1e-4, "shift {k}: {got} vs {want}");
    }
    // The pooled features lose (k/16) of their value: distance k/16 * sqrt(3) * 73/128.
    let g = &r.images[0].distances[1];
    let want = 4.0 / 16.0 * 3f32.sqrt() * 73.0 / 128.0;
    assert!((g[2] - want).abs() < 1e-5, "{} vs {want}", g[2]);
}

#[test]
fn rotation_and_scale_distances_grow_with_the_amount() {
    let r = sweep(Transform::Rotate, vec![0.0, 15.0, 30.0, 45.0], constant(32, 220));
    let d = &r.images[0].distances[0];
    assert!(d.windows(2).all(|w| w[1] > w[0]), "{d:?}");
    let r = sweep(Transform::Scale, vec![1.0, 0.9, 0.7, 0.5], constant(32, 220));
    let d = &r.images[0].distances[0];
    assert!(d.windows(2).all(|w| w[1] > w[0]), "{d:?}");
    // Zooming into a constant image uncovers nothing.
    let r = sweep(Transform::Scale, vec![1.3], constant(32, 220));
    assert_eq!(r.images[0].distances[0][0], 0.0);
}

#[test]
fn default_layers_are_the_first_conv_and_the_classifier_input() {
    let d = default_device();
    let mut g = Graph::new("input", 3);
    let w = Tensor::<4>::from_data(TensorData::new(vec![1.0f32; 6], [2, 3, 1, 1]), &d);
    let x = g
        .push(
            "conv",
            Op::Conv2d(deepsight_runtime::Conv2d {
                weight: w,
                bias: None,
                stride: [1, 1],
                dilation: [1, 1],
                groups: 1,
                padding: deepsight_runtime::Padding::symmetric(0),
            }),
            &[0],
        )
        .unwrap();
    let x = g.push("pool", Op::GlobalAvgPool, &[x]).unwrap();
    let lw = Tensor::<2>::from_data(TensorData::new(vec![1.0f32; 4], [2, 2]), &d);
    g.push(
        "fc",
        Op::Linear(Linear {
            weight: lw,
            bias: None,
        }),
        &[x],
    )
    .unwrap();
    let m = GraphModel::new(g, [4, 4], d).unwrap();
    assert_eq!(default_layers(&m).unwrap(), ["conv", "pool"]);
}

#[test]
fn bad_requests_get_one_clear_error() {
    let m = tiny(8);
    let images = [SweepImage {
        name: "a".into(),
        image: constant(8, 1),
        class: None,
    }];
    let run =
        |o: Invariance, imgs: &[SweepImage]| invariance(&m, &pipeline(8), imgs, &o).unwrap_err().to_string();
    let e = run(
        Invariance {
            layers: vec!["nope".into()],
            ..Default::default()
        },
        &images,
    );
    assert!(e.contains("unknown layer 'nope'"), "{e}");
    let e = run(
        Invariance {
            transform: Transform::Scale,
            amounts: vec![0.0],
            layers: vec!["tap".into()],
            ..Default::default()
        },
        &images,
    );
    assert!(e.contains("not a valid scale amount"), "{e}");
    let mut wrong = images.clone();
    wrong[0].class = Some(7);
    let e = run(
        Invariance {
            layers: vec!["tap".into()],
            ..Default::default()
        },
        &wrong,
    );
    assert!(e.contains("2 classes"), "{e}");
}

#[test]
fn plots_and_csv_have_a_line_per_image_and_amount() {
    let r = sweep(Transform::Translate, vec![-2.0, 0.0, 2.0], ramp(8));
    let plots = r.plots(&[]);
    let names: Vec<_> = plots.iter().map(|p| p.0.as_str()).collect();
    assert_eq!(
        names,
        [
            "invariance-translate-tap",
            "invariance-translate-gap",
            "invariance-translate-probability"
        ]
    );
    let strip = examples(&ramp(8), &pipeline(8), Transform::Rotate, &[0.0, 90.0]).unwrap();
    assert!(strip.width >= 16);
    let csv = r.csv();
    assert_eq!(csv.lines().count(), 4);
    assert!(csv.starts_with("image,class,transform,amount,probability,top1,distance:tap,distance:gap\n"));
}
