//! ROAD (noisy linear imputation, MoRF/LeRF curves) and the cascading-randomisation sanity check,
//! on hand-made images and on the tiny VGG of `../shared/fixtures` (its ONNX export). The Lite0
//! runs that the reports quote are `#[ignore]`d (minutes in debug): `cargo test --release -p
//! deepsight-eval --test road_sanity -- --ignored --nocapture`.

use deepsight_eval::EvalError;
use deepsight_eval::road::{
    RoadCurve, RoadOrder, impute, impute_with_noise, removal_order, road, road_morf_lerf,
};
use deepsight_eval::sanity::{
    NO_LAYER, cascading_randomisation, randomisation_order, randomised_graph, spearman,
};
use deepsight_explain::cam::{Cam, GradCam};
use deepsight_explain::gradient::Saliency;
use deepsight_explain::{Explainer, Map, Request, Score};
use deepsight_models::{Arch, LoadedModel, ModelSource, Weights, uniform_stream};
use deepsight_runtime::{Classifier, GraphModel, Op, Tensor, TensorData, default_device, to_vec};
use std::path::PathBuf;
use std::time::Instant;

// ---------------------------------------------------------------------------------------------
// Helpers

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures")
}

fn load_tiny_vgg() -> LoadedModel {
    ModelSource::Onnx {
        path: fixtures().join("tiny_vgg.onnx"),
        input_size: None,
    }
    .load(&default_device())
    .unwrap()
}

/// The fixture's `input` batch: values and `[N, C, H, W]`.
fn fixture_inputs(name: &str) -> (Vec<f32>, [usize; 4]) {
    let fx = Weights::from_safetensors(&fixtures().join(format!("{name}.safetensors"))).unwrap();
    let t = &fx.tensors["input"];
    (t.data.clone(), t.shape.clone().try_into().unwrap())
}

fn batch(data: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
    Tensor::from_data(TensorData::new(data, shape), &default_device())
}

fn request_of(data: &[f32], shape: [usize; 4], classes: Vec<usize>) -> Request {
    Request {
        images: batch(data.to_vec(), shape),
        classes,
        score: Score::Logit,
        layer: None,
    }
}

fn top1(model: &dyn Classifier, images: Tensor<4>) -> Vec<usize> {
    let k = model.num_classes();
    to_vec(model.logits(images).unwrap())
        .chunks(k)
        .map(|row| {
            (0..k)
                .max_by(|&a, &b| row[a].total_cmp(&row[b]).then(b.cmp(&a)))
                .unwrap()
        })
        .collect()
}

/// The weighted mean of `(y, x)`'s in-image neighbours in `plane` (edge 1/6, diagonal 1/12).
fn neighbour_mean(plane: &[f32], h: usize, w: usize, y: usize, x: usize) -> f64 {
    let (mut sum, mut total) = (0.0f64, 0.0f64);
    for dy in -1isize..=1 {
        for dx in -1isize..=1 {
            if dy == 0 && dx == 0 {
                continue;
            }
            let (ny, nx) = (y as isize + dy, x as isize + dx);
            if ny < 0 || nx < 0 || ny >= h as isize || nx >= w as isize {
                continue;
            }
            let wt = if dy == 0 || dx == 0 { 1.0 / 6.0 } else { 1.0 / 12.0 };
            sum += wt * plane[ny as usize * w + nx as usize] as f64;
            total += wt;
        }
    }
    sum / total
}

fn random_image(name: &str, dims: [usize; 3]) -> Vec<f32> {
    uniform_stream(7, name)
        .take(dims.iter().product())
        .map(|u| (4.0 * u - 2.0) as f32)
        .collect()
}

fn random_mask(name: &str, n: usize, p: f64) -> Vec<bool> {
    uniform_stream(11, name).take(n).map(|u| u < p).collect()
}

// ---------------------------------------------------------------------------------------------
// ROAD: the imputation

#[test]
fn linear_ramp_with_a_hole_is_reproduced() {
    let dims = [3, 20, 24];
    let [c, h, w] = dims;
    let ramp = |ch: usize, y: usize, x: usize| 0.3 * y as f32 - 0.2 * x as f32 + ch as f32 - 1.0;
    let image: Vec<f32> = (0..c * h * w)
        .map(|i| ramp(i / (h * w), i % (h * w) / w, i % w))
        .collect();
    // An interior hole (a disc, a bar and scattered pixels) that touches no border: at the border
    // the one-sided neighbour mean of a ramp is not the ramp.
    let removed: Vec<bool> = (0..h * w)
        .map(|p| {
            let (y, x) = ((p / w) as f32, (p % w) as f32);
            let disc = (y - 9.0).powi(2) + (x - 10.0).powi(2) <= 36.0;
            let bar = (2.0..=17.0).contains(&y) && (18.0..=20.0).contains(&x);
            let scattered = p % 7 == 3 && (1.0..=18.0).contains(&y) && (1.0..=22.0).contains(&x);
            disc || bar || scattered
        })
        .collect();
    let n_removed = removed.iter().filter(|&&r| r).count();
    assert!(n_removed > 150, "{n_removed}");
    let out = impute_with_noise(&image, dims, &removed, 0, 0.0).unwrap();
    let worst = image
        .iter()
        .zip(&out)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(worst <= 1e-4, "the ramp is off by {worst}");
}

#[test]
fn imputed_pixels_satisfy_the_neighbour_mean_equation_and_known_pixels_stay() {
    let dims = [3, 31, 27];
    let [c, h, w] = dims;
    let image = random_image("equation", dims);
    // 70% removed at random, and the whole first row, so that border pixels are imputed too.
    let mut removed = random_mask("equation", h * w, 0.7);
    removed[..w].iter_mut().for_each(|r| *r = true);
    let out = impute_with_noise(&image, dims, &removed, 0, 0.0).unwrap();
    let mut worst = 0.0f64;
    for ch in 0..c {
        let plane = &out[ch * h * w..(ch + 1) * h * w];
        for p in 0..h * w {
            if removed[p] {
                let dev = (plane[p] as f64 - neighbour_mean(plane, h, w, p / w, p % w)).abs();
                worst = worst.max(dev);
            } else {
                assert_eq!(
                    plane[p].to_bits(),
                    image[ch * h * w + p].to_bits(),
                    "known pixel {p} changed"
                );
            }
        }
    }
    // The solver stops at 1e-6 in f64; the f32 result adds its rounding (values up to ~2).
    assert!(
        worst < 5e-6,
        "an imputed pixel is {worst} from its neighbours' mean"
    );
}

#[test]
fn noise_has_the_reference_scale_and_follows_the_seed() {
    let dims = [3, 64, 64];
    let [c, h, w] = dims;
    let image = random_image("noise", dims);
    let removed = random_mask("noise", h * w, 0.8);
    let exact = impute_with_noise(&image, dims, &removed, 0, 0.0).unwrap();
    let noisy = impute(&image, dims, &removed, 42).unwrap();
    let mut diffs = Vec::new();
    for ch in 0..c {
        for (p, &gone) in removed.iter().enumerate() {
            let i = ch * h * w + p;
            if gone {
                diffs.push((noisy[i] - exact[i]) as f64);
            } else {
                assert_eq!(noisy[i].to_bits(), image[i].to_bits());
            }
        }
    }
    let n = diffs.len() as f64;
    let mean = diffs.iter().sum::<f64>() / n;
    let std = (diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / n).sqrt();
    println!("noise over {n} values: mean {mean:.2e}, std {std:.5}");
    assert!((std - 0.01).abs() < 0.0005, "std {std}");
    assert!(mean.abs() < 0.0005, "mean {mean}");
    assert_eq!(
        noisy,
        impute(&image, dims, &removed, 42).unwrap(),
        "the same seed gives the same noise"
    );
    assert_ne!(
        noisy,
        impute(&image, dims, &removed, 43).unwrap(),
        "another seed, other noise"
    );
}

#[test]
fn nothing_removed_or_everything_removed() {
    let dims = [3, 5, 6];
    let image = random_image("edge", dims);
    assert_eq!(impute(&image, dims, &[false; 30], 1).unwrap(), image);
    // No known pixel: the system is singular; the fill is 0.
    let all = impute_with_noise(&image, dims, &[true; 30], 1, 0.0).unwrap();
    assert!(all.iter().all(|&v| v == 0.0));
}

// ---------------------------------------------------------------------------------------------
// ROAD: the order and the curves

#[test]
fn removal_order_is_a_stable_sort() {
    let v = [1.0, 3.0, 3.0, 0.0, 1.0, -0.0];
    assert_eq!(
        removal_order(&v, RoadOrder::MostRelevantFirst),
        [1, 2, 0, 4, 3, 5]
    );
    assert_eq!(
        removal_order(&v, RoadOrder::LeastRelevantFirst),
        [3, 5, 0, 4, 1, 2]
    );
    let neg: Vec<f32> = v.iter().map(|x| -x).collect();
    assert_eq!(
        removal_order(&neg, RoadOrder::MostRelevantFirst),
        removal_order(&v, RoadOrder::LeastRelevantFirst)
    );
}

/// Tiny VGG, image 0 of the fixtures, its Grad-CAM (at layer resolution: ROAD resizes it).
fn tiny_case() -> (LoadedModel, Vec<f32>, [usize; 3], Map, usize) {
    let loaded = load_tiny_vgg();
    let (data, [_, c, h, w]) = fixture_inputs("tiny_vgg");
    let image = data[..c * h * w].to_vec();
    let class = top1(&loaded.model, batch(image.clone(), [1, c, h, w]))[0];
    let req = request_of(&image, [1, c, h, w], vec![class]);
    let e = Cam(GradCam).explain(&loaded.model, &req).unwrap();
    let map = e.raw.expect("Grad-CAM keeps its layer-resolution map")[0].clone();
    (loaded, image, [c, h, w], map, class)
}

fn print_curve(what: &str, curve: &RoadCurve) {
    let points: Vec<String> = curve
        .fractions
        .iter()
        .zip(&curve.scores)
        .map(|(f, s)| format!("{f:.1}:{s:.4}"))
        .collect();
    println!("{what}: mean {:.4} [{}]", curve.mean(), points.join(" "));
}

#[test]
fn morf_and_lerf_on_tiny_vgg() {
    let (loaded, image, dims, map, class) = tiny_case();
    let model = &loaded.model;
    let [c, h, w] = dims;
    println!("map {}x{} -> image {h}x{w}, class {class}", map.height, map.width);
    let clean = {
        let logits = to_vec(model.logits(batch(image.clone(), [1, c, h, w])).unwrap());
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = logits.iter().map(|v| (v - max).exp()).sum();
        (logits[class] - max).exp() / sum
    };
    let t = Instant::now();
    let (morf, passes) = road(
        model,
        &image,
        dims,
        &map,
        class,
        RoadOrder::MostRelevantFirst,
        0,
        4,
    )
    .unwrap();
    println!("MoRF in {:.2?}", t.elapsed());
    let (lerf, lerf_passes) = road(
        model,
        &image,
        dims,
        &map,
        class,
        RoadOrder::LeastRelevantFirst,
        0,
        16,
    )
    .unwrap();
    print_curve("MoRF", &morf);
    print_curve("LeRF", &lerf);
    for curve in [&morf, &lerf] {
        assert_eq!(curve.fractions.len(), 10);
        assert_eq!(curve.scores.len(), 10);
        for (i, f) in curve.fractions.iter().enumerate() {
            assert!((f - i as f32 / 10.0).abs() < 1e-6);
        }
        assert!(
            (curve.scores[0] - clean).abs() < 1e-5,
            "{} vs {clean}",
            curve.scores[0]
        );
        assert!(curve.scores.iter().all(|s| (0.0..=1.0).contains(s)));
        let mean = curve.scores[1..].iter().sum::<f32>() / 9.0;
        assert!((curve.mean() - mean).abs() < 1e-6);
    }
    assert_eq!((passes, lerf_passes), (10, 10));
    // Both orders together share the clean pass; same seed, same curves; batch size is no factor.
    let (m2, l2, both) = road_morf_lerf(model, &image, dims, &map, class, 0, 1).unwrap();
    assert_eq!(both, 19);
    for (a, b) in morf
        .scores
        .iter()
        .zip(&m2.scores)
        .chain(lerf.scores.iter().zip(&l2.scores))
    {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }
    // Removing pixels changes the score (the imputation reaches the model).
    assert!(morf.scores[9] != morf.scores[0] && lerf.scores[9] != lerf.scores[0]);
}

#[test]
fn road_refuses_bad_maps_and_inputs() {
    let (loaded, image, dims, map, class) = tiny_case();
    let model = &loaded.model;
    let run = |image: &[f32], map: &Map, class: usize| {
        road(model, image, dims, map, class, RoadOrder::MostRelevantFirst, 0, 8)
    };
    let is_invalid = |r: Result<_, EvalError>| matches!(r, Err(EvalError::Invalid { metric: "road", .. }));
    let mut nan = map.clone();
    nan.data[3] = f32::NAN;
    assert!(is_invalid(run(&image, &nan, class)));
    let mut inf = map.clone();
    inf.data[0] = f32::INFINITY;
    assert!(is_invalid(run(&image, &inf, class)));
    let empty = Map {
        channels: 1,
        height: 0,
        width: 0,
        data: vec![],
    };
    assert!(is_invalid(run(&image, &empty, class)));
    assert!(is_invalid(run(&image[1..], &map, class)));
    assert!(is_invalid(run(&image, &map, 10)));
    let mut bad_image = image.clone();
    bad_image[5] = f32::NAN;
    assert!(is_invalid(run(&bad_image, &map, class)));
}

// ---------------------------------------------------------------------------------------------
// Sanity check: Spearman

#[test]
fn spearman_of_known_vectors() {
    // scipy.stats.spearmanr([1,2,3,4,5], [5,6,7,8,7]) = 8 / sqrt(95): ranks of b 1,2,3.5,5,3.5.
    let r = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[5.0, 6.0, 7.0, 8.0, 7.0]);
    assert!((r as f64 - 8.0 / 95f64.sqrt()).abs() < 1e-6, "{r}");
    // Ties in both: ranks 1.5,1.5,3,4 and 1,2.5,2.5,4: 3.75 / 4.5.
    let r = spearman(&[1.0, 1.0, 2.0, 3.0], &[1.0, 2.0, 2.0, 3.0]);
    assert!((r as f64 - 3.75 / 4.5).abs() < 1e-6, "{r}");
    // Monotone transforms change nothing; -0.0 and 0.0 tie.
    let r = spearman(&[0.0, -0.0, 1.0, 2.0], &[0.0, 0.0, 10.0, 1e6]);
    assert!((r - 1.0).abs() < 1e-6, "{r}");
    let a: Vec<f32> = uniform_stream(3, "spearman")
        .take(500)
        .map(|u| u as f32)
        .collect();
    assert!((spearman(&a, &a) - 1.0).abs() < 1e-6);
    let reversed: Vec<f32> = a.iter().map(|v| -v).collect();
    assert!((spearman(&a, &reversed) + 1.0).abs() < 1e-6);
    let cubed: Vec<f32> = a.iter().map(|v| v * v * v + 3.0).collect();
    assert!((spearman(&a, &cubed) - 1.0).abs() < 1e-6);
    // Undefined cases: both constant 1, one constant 0; NaN gives NaN.
    assert_eq!(spearman(&[2.0, 2.0, 2.0], &[1.0, 1.0, 1.0]), 1.0);
    assert_eq!(spearman(&[2.0, 2.0, 2.0], &[1.0, 2.0, 3.0]), 0.0);
    assert!(spearman(&[f32::NAN, 1.0, 2.0], &[1.0, 2.0, 3.0]).is_nan());
}

// ---------------------------------------------------------------------------------------------
// Sanity check: the cascade

fn tiny_request(loaded: &LoadedModel) -> Request {
    let (data, shape) = fixture_inputs("tiny_vgg");
    let classes = top1(&loaded.model, batch(data.clone(), shape));
    request_of(&data, shape, classes)
}

fn print_steps(what: &str, steps: &[deepsight_eval::sanity::SanityStep]) {
    let s: Vec<String> = steps
        .iter()
        .map(|s| format!("{}:{:.3}", s.layer, s.spearman))
        .collect();
    println!("{what}: {}", s.join("  "));
}

#[test]
fn randomisation_order_and_rebuilt_graphs() {
    let loaded = load_tiny_vgg();
    let graph = loaded.model.graph();
    let order = randomisation_order(graph);
    let kinds: Vec<(String, &str)> = order
        .iter()
        .map(|n| (n.clone(), graph.nodes()[graph.find(n).unwrap()].op.kind()))
        .collect();
    println!("order: {kinds:?}");
    assert_eq!(order.len(), 4, "3 convolutions and the linear head");
    assert_eq!(kinds[0].1, "Linear");
    assert!(kinds[1..].iter().all(|(_, k)| *k == "Conv2d"));
    // Depth 1 changes the head's weights only.
    let g1 = randomised_graph(graph, 1, 5).unwrap();
    let weights = |op: &Op| -> Vec<f32> {
        match op {
            Op::Conv2d(c) => to_vec(c.weight.clone()),
            Op::Linear(l) => to_vec(l.weight.clone()),
            _ => vec![],
        }
    };
    for (a, b) in graph.nodes().iter().zip(g1.nodes()) {
        assert_eq!(a.name, b.name);
        assert_eq!(a.inputs, b.inputs);
        let changed = weights(&a.op) != weights(&b.op);
        assert_eq!(changed, a.name == order[0], "{}", a.name);
    }
    // PyTorch's default scale: uniform in +-1/sqrt(fan_in).
    let head = &g1.nodes()[graph.find(&order[0]).unwrap()].op;
    if let Op::Linear(l) = head {
        let fan_in = l.weight.dims()[1] as f32;
        let w = to_vec(l.weight.clone());
        let bound = w.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        assert!(
            bound <= 1.0 / fan_in.sqrt() && bound > 0.9 / fan_in.sqrt(),
            "{bound}"
        );
    }
    // Same seed, same values; the depth past the end is refused.
    let again = randomised_graph(graph, 1, 5).unwrap();
    let idx = graph.find(&order[0]).unwrap();
    assert_eq!(weights(&g1.nodes()[idx].op), weights(&again.nodes()[idx].op));
    assert!(randomised_graph(graph, 5, 5).is_err());
}

#[test]
fn batchnorm_goes_with_its_convolution() {
    // Lite0's graph (seeded random weights: only the structure matters): conv -> bn -> act.
    let graph = Arch::Lite0
        .graph(&deepsight_models::RandomWeights { seed: 3 }, &default_device())
        .unwrap();
    let order = randomisation_order(&graph);
    assert_eq!(
        &order[..4],
        [
            "_fc",
            "_conv_head",
            "_blocks.15._project_conv",
            "_blocks.15._depthwise_conv"
        ]
    );
    let gamma = |g: &deepsight_runtime::Graph, name: &str| match &g.nodes()[g.find(name).unwrap()].op {
        Op::BatchNorm(bn) => (to_vec(bn.gamma.clone()), to_vec(bn.var.clone())),
        _ => panic!("{name} is no BatchNorm"),
    };
    let ones = |v: &[f32]| v.iter().all(|&x| x == 1.0);
    let g1 = randomised_graph(&graph, 1, 9).unwrap();
    assert!(
        !ones(&gamma(&g1, "_bn1").0),
        "depth 1 leaves the head's BatchNorm"
    );
    let g4 = randomised_graph(&graph, 4, 9).unwrap();
    for bn in ["_bn1", "_blocks.15._bn2", "_blocks.15._bn1"] {
        let (g, v) = gamma(&g4, bn);
        assert!(ones(&g) && ones(&v), "{bn} is reset with its convolution");
    }
    assert_eq!(gamma(&g4, "_blocks.15._bn0"), gamma(&graph, "_blocks.15._bn0"));
    // A depthwise convolution's fan-in is its kernel area.
    match &g4.nodes()[g4.find("_blocks.15._depthwise_conv").unwrap()].op {
        Op::Conv2d(c) => {
            let [_, i, kh, kw] = c.dims();
            let bound = 1.0 / ((i * kh * kw) as f32).sqrt();
            let max = to_vec(c.weight.clone())
                .iter()
                .fold(0.0f32, |a, v| a.max(v.abs()));
            assert_eq!(i, 1);
            assert!(max <= bound && max > 0.9 * bound, "{max} vs {bound}");
        }
        _ => panic!("a convolution"),
    }
}

#[test]
fn gradcam_cascade_on_tiny_vgg() {
    let loaded = load_tiny_vgg();
    let req = tiny_request(&loaded);
    let before = to_vec(loaded.model.logits(req.images.clone()).unwrap());
    let t = Instant::now();
    let (steps, passes) = cascading_randomisation(&loaded.model, &req, &Cam(GradCam), 1, None).unwrap();
    println!("Grad-CAM cascade in {:.2?}, {passes} forward passes", t.elapsed());
    print_steps("Grad-CAM", &steps);
    let after = to_vec(loaded.model.logits(req.images.clone()).unwrap());
    assert_eq!(before, after, "the user's model is unchanged");
    assert_eq!(steps.len(), 5);
    assert_eq!(steps[0].layer, NO_LAYER);
    assert!(
        (steps[0].spearman - 1.0).abs() < 1e-6,
        "depth 0: {}",
        steps[0].spearman
    );
    assert_eq!(passes, 6 * 3, "trained, depth 0 and 4 depths, 3 images each");
    // Randomising the head and the convolutions destroys the map's ranking.
    let last = steps.last().unwrap().spearman;
    assert!(last < 0.5, "fully randomised: {last}");
    assert!(steps[1..].iter().all(|s| s.spearman < 0.999), "{steps:?}");
}

#[test]
fn saliency_cascade_on_tiny_vgg() {
    let loaded = load_tiny_vgg();
    let req = tiny_request(&loaded);
    let before = to_vec(loaded.model.logits(req.images.clone()).unwrap());
    let (steps, passes) = cascading_randomisation(&loaded.model, &req, &Saliency, 1, Some(3)).unwrap();
    print_steps("saliency", &steps);
    assert_eq!(before, to_vec(loaded.model.logits(req.images.clone()).unwrap()));
    assert_eq!(steps.len(), 4);
    assert_eq!(passes, 5 * 3);
    assert!((steps[0].spearman - 1.0).abs() < 1e-6);
    assert!(steps[3].spearman < steps[0].spearman - 0.2, "{steps:?}");
}

#[test]
fn cascade_refuses_a_nan_map() {
    struct NanMaps;
    impl Explainer for NanMaps {
        fn name(&self) -> &'static str {
            "nan"
        }
        fn explain(
            &self,
            _model: &dyn deepsight_runtime::LayeredClassifier,
            request: &Request,
        ) -> deepsight_explain::Result<deepsight_explain::Explanation> {
            let n = request.images.dims()[0];
            Ok(deepsight_explain::Explanation {
                maps: vec![
                    Map {
                        channels: 1,
                        height: 2,
                        width: 2,
                        data: vec![1.0, f32::NAN, 0.0, 2.0],
                    };
                    n
                ],
                raw: None,
                passes: Default::default(),
                extra: vec![],
            })
        }
    }
    let loaded = load_tiny_vgg();
    let req = tiny_request(&loaded);
    let r = cascading_randomisation(&loaded.model, &req, &NanMaps, 0, Some(1));
    assert!(matches!(r, Err(EvalError::Invalid { metric: "sanity", .. })));
}

// ---------------------------------------------------------------------------------------------
// Lite0 (the numbers the report quotes; slow)

fn lite0_case() -> (GraphModel, Vec<f32>, [usize; 4], usize) {
    let loaded = ModelSource::Builtin {
        arch: Arch::Lite0,
        random_seed: None,
    }
    .load(&default_device())
    .unwrap();
    let (data, [_, c, h, w]) = fixture_inputs("lite0");
    let image = data[..c * h * w].to_vec();
    let class = top1(&loaded.model, batch(image.clone(), [1, c, h, w]))[0];
    (loaded.model, image, [1, c, h, w], class)
}

#[test]
#[ignore = "Lite0: slow; run for the report"]
fn lite0_road_and_sanity_report() {
    let (model, image, shape, class) = lite0_case();
    let [_, c, h, w] = shape;
    let req = request_of(&image, shape, vec![class]);
    for (name, explainer) in [
        ("gradcam", &Cam(GradCam) as &dyn Explainer),
        ("saliency", &Saliency as &dyn Explainer),
    ] {
        let e = explainer.explain(&model, &req).unwrap();
        let t = Instant::now();
        let (morf, lerf, passes) =
            road_morf_lerf(&model, &image, [c, h, w], &e.maps[0], class, 0, 19).unwrap();
        println!("Lite0 {name} ROAD: {passes} passes in {:.2?}", t.elapsed());
        print_curve("  MoRF", &morf);
        print_curve("  LeRF", &lerf);
        let t = Instant::now();
        let (steps, passes) = cascading_randomisation(&model, &req, explainer, 1, Some(6)).unwrap();
        println!("Lite0 {name} cascade: {passes} passes in {:.2?}", t.elapsed());
        print_steps("  ", &steps);
    }
}

#[test]
#[ignore = "Lite0: slow; times the imputation alone"]
fn lite0_imputation_timing() {
    let (_, image, [_, c, h, w], _) = lite0_case();
    for p in [0.1, 0.5, 0.9] {
        let removed = random_mask("timing", h * w, p);
        let t = Instant::now();
        let _ = impute(&image, [c, h, w], &removed, 0).unwrap();
        println!("224x224, {p} removed at random: {:.2?}", t.elapsed());
        // A contiguous block: the slow case for an iterative solver.
        let k = (h * w) as f64 * p;
        let removed: Vec<bool> = (0..h * w).map(|i| (i as f64) < k).collect();
        let t = Instant::now();
        let _ = impute(&image, [c, h, w], &removed, 0).unwrap();
        println!("224x224, first {p} of the rows removed: {:.2?}", t.elapsed());
    }
}

#[test]
fn imputation_and_spearman_refuse_mismatched_lengths_without_panicking() {
    let err = impute(&[0.0; 5], [1, 2, 3], &[false; 6], 0)
        .unwrap_err()
        .to_string();
    assert!(err.contains("road") && err.contains("[1, 2, 3]"), "{err}");
    assert!(spearman(&[1.0, 2.0], &[1.0]).is_nan());
}
