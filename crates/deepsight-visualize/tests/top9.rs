//! Top-9 per feature map on hand-made networks whose answers are known: the strongest images of
//! a synthetic dataset, receptive fields against gradient supports, and the deconvnet against
//! the plain gradient where no rectifier is in the way (Simonyan et al. 2014 section 4).

use deepsight_models::preprocess::Resize;
use deepsight_models::resample::Filter;
use deepsight_models::{Preprocess, RgbImage};
use deepsight_runtime::{
    Bounds, Conv2d, Device, GradientRequest, Graph, GraphModel, LayeredClassifier, Linear, Objective, Op,
    Padding, Pool, RectifierRule, Tensor, TensorData, default_device, to_vec,
};
use deepsight_visualize::receptive_field::{PixelBox, ReceptiveFields};
use deepsight_visualize::top9::{Channels, GridStyle, Stage, Top9Options, default_layer, grid, top9};

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    fn tensor<const D: usize>(&mut self, shape: [usize; D], d: &Device) -> Tensor<D> {
        let n = shape.iter().product();
        let v: Vec<f32> = (0..n).map(|_| self.next()).collect();
        Tensor::from_data(TensorData::new(v, shape), d)
    }
}

fn conv(weight: Tensor<4>, stride: usize, dilation: usize, padding: Padding) -> Op {
    Op::Conv2d(Conv2d {
        weight,
        bias: None,
        stride: [stride; 2],
        dilation: [dilation; 2],
        groups: 1,
        padding,
    })
}

/// Ends `g` at node `x` with a global pool and a 2-class linear layer, as a classifier must.
fn head(mut g: Graph, x: usize, channels: usize, size: [usize; 2], d: &Device) -> GraphModel {
    let p = g.push("gap", Op::GlobalAvgPool, &[x]).unwrap();
    let fc = Linear {
        weight: Tensor::ones([2, channels], d),
        bias: None,
    };
    g.push("fc", Op::Linear(fc), &[p]).unwrap();
    GraphModel::new(g, size, d.clone()).unwrap()
}

fn input_gradient(
    model: &GraphModel,
    x: Tensor<4>,
    layer: &str,
    unit: [usize; 2],
    rule: RectifierRule,
) -> Vec<f32> {
    let obj = Objective::Activation {
        layer: layer.into(),
        channel: 0,
        position: Some(unit),
    };
    to_vec(
        model
            .gradients(x, &GradientRequest::input(obj, rule))
            .unwrap()
            .input
            .unwrap(),
    )
}

/// The bounding box of the nonzero entries of a `[C, h, w]` gradient.
fn support(grad: &[f32], [h, w]: [usize; 2]) -> PixelBox {
    let mut b = PixelBox {
        top: h,
        left: w,
        bottom: 0,
        right: 0,
    };
    for (i, v) in grad.iter().enumerate() {
        if *v != 0.0 {
            let (y, x) = ((i % (h * w)) / w, i % w);
            b = PixelBox {
                top: b.top.min(y),
                left: b.left.min(x),
                bottom: b.bottom.max(y + 1),
                right: b.right.max(x + 1),
            };
        }
    }
    b
}

/// Strided (a 4x4 kernel, so that the dilated layer above leaves no holes), dilated, TF-SAME and explicitly padded convolutions, an average pool and two
/// branches of different reach added, all linear with positive weights: the plain input gradient
/// of any unit is positive exactly on its receptive field.
fn linear_positive_net(d: &Device) -> GraphModel {
    let pos = |shape: [usize; 4]| Tensor::<4>::ones(shape, d);
    let mut g = Graph::new("input", 2);
    let a = g
        .push("a", conv(pos([3, 2, 4, 4]), 2, 1, Padding::SameUpper), &[0])
        .unwrap();
    let b = g
        .push("b", conv(pos([3, 3, 3, 3]), 1, 2, Padding::symmetric(2)), &[a])
        .unwrap();
    let p = g.push("p", Op::AvgPool(Pool::square(3, 2, 1)), &[b]).unwrap();
    let n1 = g
        .push("near", conv(pos([3, 3, 1, 1]), 1, 1, Padding::symmetric(0)), &[p])
        .unwrap();
    let far = g
        .push(
            "far",
            conv(pos([3, 3, 5, 5]), 1, 1, Padding::Explicit([1, 3, 3, 1])),
            &[p],
        )
        .unwrap();
    let s = g.push("sum", Op::Add, &[n1, far]).unwrap();
    head(g, s, 3, [29, 27], d)
}

#[test]
fn receptive_fields_equal_the_support_of_the_plain_gradient() {
    let d = default_device();
    let model = linear_positive_net(&d);
    let fields = ReceptiveFields::new(model.graph(), [29, 27]).unwrap();
    let x = Rng(3).tensor([1, 2, 29, 27], &d);
    let mut checked = 0;
    for layer in ["a", "b", "p", "near", "far", "sum"] {
        let [_, h, w] = fields.layer_shape(layer).unwrap();
        for unit in [[0, 0], [h - 1, w - 1], [h / 2, w / 3], [0, w - 1], [h - 1, 0]] {
            let grad = input_gradient(&model, x.clone(), layer, unit, RectifierRule::Plain);
            let rf = fields.of(layer, unit).unwrap();
            assert_eq!(
                support(&grad, [29, 27]),
                rf.pixels,
                "layer {layer}, unit {unit:?}"
            );
            // Within the box every pixel is reached: the box is not just a bound.
            let b = rf.pixels;
            let inside = (b.top..b.bottom)
                .flat_map(|y| (b.left..b.right).map(move |x| (y, x)))
                .all(|(y, x)| grad[y * 27 + x] > 0.0);
            assert!(inside, "layer {layer}, unit {unit:?}: a zero inside {b:?}");
            checked += 1;
        }
    }
    assert_eq!(checked, 30);
}

/// conv -> maxpool -> conv with signed random weights; `relu` inserts a ReLU after the first conv.
fn conv_net(relu: bool, d: &Device) -> GraphModel {
    let mut r = Rng(11);
    let mut g = Graph::new("input", 3);
    let mut x = g
        .push(
            "c1",
            conv(r.tensor([4, 3, 3, 3], d), 1, 1, Padding::symmetric(1)),
            &[0],
        )
        .unwrap();
    if relu {
        x = g.push("r1", Op::Rectifier(Bounds::RELU), &[x]).unwrap();
    }
    x = g.push("pool", Op::MaxPool(Pool::square(2, 2, 0)), &[x]).unwrap();
    x = g
        .push(
            "c2",
            conv(r.tensor([3, 4, 3, 3], d), 1, 1, Padding::symmetric(1)),
            &[x],
        )
        .unwrap();
    head(g, x, 3, [12, 12], d)
}

#[test]
fn deconvnet_equals_the_plain_gradient_without_rectifiers() {
    let d = default_device();
    let x = Rng(5).tensor([1, 3, 12, 12], &d);
    let linear = conv_net(false, &d);
    for unit in [[0, 0], [2, 3], [5, 5]] {
        let plain = input_gradient(&linear, x.clone(), "c2", unit, RectifierRule::Plain);
        let deconv = input_gradient(&linear, x.clone(), "c2", unit, RectifierRule::Deconv);
        assert!(plain.iter().any(|v| *v != 0.0));
        assert_eq!(plain, deconv, "unit {unit:?}");
    }
    // The control: with a ReLU they part (Simonyan et al.: "they differ only at the ReLU").
    let rectified = conv_net(true, &d);
    let plain = input_gradient(&rectified, x.clone(), "c2", [2, 3], RectifierRule::Plain);
    let deconv = input_gradient(&rectified, x, "c2", [2, 3], RectifierRule::Deconv);
    assert_ne!(plain, deconv);
}

/// A 16x16 image, grey 128, with one bright pixel and one dark pixel.
fn spot_image(bright: (usize, usize, u8), dark: (usize, usize, u8)) -> RgbImage {
    let mut pixels = vec![128u8; 16 * 16 * 3];
    for (y, x, v) in [bright, dark] {
        pixels[(y * 16 + x) * 3..][..3].fill(v);
    }
    RgbImage {
        width: 16,
        height: 16,
        pixels,
    }
}

/// input -> 1x1 conv, channel 0 the mean of RGB and channel 1 its negative -> 2x2 max pool:
/// channel 0 of `pool` peaks at the bright pixel, channel 1 at the dark one.
fn spot_net(d: &Device) -> GraphModel {
    let third = 1.0 / 3.0;
    let w = Tensor::from_data(
        TensorData::new(vec![third, third, third, -third, -third, -third], [2, 3, 1, 1]),
        d,
    );
    let mut g = Graph::new("input", 3);
    let c = g.push("mix", conv(w, 1, 1, Padding::symmetric(0)), &[0]).unwrap();
    let p = g.push("pool", Op::MaxPool(Pool::square(2, 2, 0)), &[c]).unwrap();
    head(g, p, 2, [16, 16], d)
}

fn identity_pipeline() -> Preprocess {
    Preprocess {
        resize: Resize::Exact {
            size: [16, 16],
            filter: Filter::Bilinear,
        },
        mean: [0.0; 3],
        std: [255.0; 3],
    }
}

#[test]
fn top9_finds_the_known_strongest_images_and_projects_inside_the_receptive_field() {
    let d = default_device();
    let model = spot_net(&d);
    // (row, col, value) of the bright and the dark pixel of each image.
    let spots = [
        ((3, 4, 200), (10, 10, 90)),
        ((7, 1, 250), (0, 0, 60)),
        ((12, 13, 30 + 128), (5, 9, 5)),
        ((0, 15, 180), (15, 2, 120)),
        ((9, 9, 250), (8, 3, 5)),
        ((14, 6, 140), (2, 12, 100)),
        ((5, 11, 230), (11, 7, 40)),
    ];
    let images: Vec<RgbImage> = spots.iter().map(|&(b, k)| spot_image(b, k)).collect();
    let options = Top9Options {
        layers: vec!["pool".into()],
        channels: Channels::List(vec![1, 0]),
        k: 3,
        batch: 3,
        ..Default::default()
    };
    let mut reports = Vec::new();
    let result = top9(
        &model,
        &identity_pipeline(),
        &images,
        &options,
        &mut |s, done, total| reports.push((s, done, total)),
    )
    .unwrap();
    assert_eq!(result.images, 7);
    assert_eq!(reports.first(), Some(&(Stage::Scan, 0, 7)));
    assert!(reports.contains(&(Stage::Scan, 7, 7)));
    assert_eq!(reports.last(), Some(&(Stage::Project, 6, 6)));
    let layer = &result.layers[0];
    assert_eq!(layer.shape, [2, 8, 8]);
    // Channel 0: 250 (image 1), 250 (image 4, the tie goes to the earlier image), 230 (image 6).
    // Channel 1: darkest first, 5 (image 2), 5 (image 4), 40 (image 6).
    let expect = [
        (1, [(2, 5u8), (4, 5), (6, 40)]),
        (0, [(1, 250), (4, 250), (6, 230)]),
    ];
    for (ch, (channel, want)) in layer.channels.iter().zip(expect) {
        assert_eq!(ch.channel, channel);
        assert_eq!(ch.hits.len(), 3);
        for (p, (image, value)) in ch.hits.iter().zip(want) {
            let (b, k) = spots[image];
            let (y, x, _) = if channel == 0 { b } else { k };
            let sign = if channel == 0 { 1.0 } else { -1.0 };
            assert_eq!(p.hit.image, image);
            assert!((p.hit.value - sign * value as f32 / 255.0).abs() < 1e-6);
            assert_eq!([p.hit.row, p.hit.col], [y / 2, x / 2]);
            // A 2x2 pool over a 1x1 conv sees the 2x2 block of the spot.
            let rf = p.field.pixels;
            assert_eq!(
                [rf.top, rf.left, rf.height(), rf.width()],
                [y / 2 * 2, x / 2 * 2, 2, 2]
            );
            assert_eq!(p.outside_peak, 0.0);
            // The projection runs through the pool's switch to the spot alone, weight +-1/3 on
            // each colour (the deconvnet passes the weights' transpose, signs included).
            let (py, px) = (y - rf.top, x - rf.left);
            for c in 0..3 {
                for q in 0..4 {
                    let v = p.projection[c * 4 + q];
                    let want = if q == py * 2 + px { sign / 3.0 } else { 0.0 };
                    assert!((v - want).abs() < 1e-6, "channel {channel}, image {image}: {v}");
                }
            }
            assert_eq!(p.patch.pixels[(py * 2 + px) * 3], value);
        }
    }
    // The tracker holds every channel of the layer, in the same order.
    assert_eq!(layer.tracker.entries(0)[0].image, 1);
    let canvas = grid(
        layer,
        result.input_size,
        result.images,
        GridStyle { cell: 16, columns: 2 },
    );
    // 2 channels in 2 columns; a 2x2 block of 16-pixel cells with 2-pixel gaps, twice, 6 apart.
    assert_eq!(
        (canvas.width, canvas.height),
        (14 + 2 * (2 * 34 + 6 + 14), 20 + 12 + 34 + 14 + 7)
    );
}

#[test]
fn a_middle_layer_is_the_default_and_bad_options_are_refused() {
    let d = default_device();
    let model = conv_net(true, &d);
    // The spatial stage ends: r1, pool.
    assert_eq!(default_layer(&model).as_deref(), Some("pool"));
    let images = vec![spot_image((0, 0, 0), (1, 1, 1)); 2];
    let images: Vec<RgbImage> = images
        .into_iter()
        .map(|i| RgbImage {
            width: 12,
            height: 12,
            pixels: i.pixels[..12 * 12 * 3].to_vec(),
        })
        .collect();
    let run = |options: Top9Options| top9(&model, &identity_pipeline(), &images, &options, &mut |_, _, _| {});
    assert!(
        run(Top9Options {
            channels: Channels::List(vec![4]),
            ..Default::default()
        })
        .is_err()
    );
    assert!(
        run(Top9Options {
            k: 0,
            ..Default::default()
        })
        .is_err()
    );
    let ok = run(Top9Options {
        channels: Channels::Random { count: 2, seed: 1 },
        k: 1,
        ..Default::default()
    })
    .unwrap();
    let chosen: Vec<usize> = ok.layers[0].channels.iter().map(|c| c.channel).collect();
    assert_eq!(chosen.len(), 2);
    assert!(chosen.windows(2).all(|w| w[0] < w[1]) && chosen.iter().all(|&c| c < 4));
    assert_eq!(ok.layers[0].layer, "pool");
    let small = vec![spot_image((0, 0, 0), (1, 1, 1))];
    assert!(
        top9(
            &model,
            &identity_pipeline(),
            &small,
            &Top9Options::default(),
            &mut |_, _, _| {}
        )
        .is_err()
    );
}
