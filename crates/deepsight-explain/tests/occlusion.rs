//! Occlusion sensitivity: the Captum profile against Captum's `Occlusion` fixture, incremental
//! inference against full re-inference (every recorded quantity), and the Zeiler & Fergus outputs.

mod common;

use common::{load, pearson, request};
use deepsight_explain::perturbation::occlusion::{
    FeatureChoice, FeatureTap, Fill, Inference, Occlusion, OcclusionProfile, strongest_channel,
};
use deepsight_explain::{Explainer, Score};

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn captum_profile_matches_captum_occlusion() {
    // (model, window, stride) as in the fixture manifest.
    for (name, win, stride) in [("tiny_vgg", 8, 4), ("tiny_resnet", 8, 4), ("lite0", 32, 16)] {
        let (model, fx, classes) = load(name);
        let mut req = request(&fx, &classes);
        if name == "lite0" {
            // Two of the six images keep the test fast; each is 170 forward passes.
            req.images = req.images.narrow(0, 0, 2);
            req.classes.truncate(2);
        }
        let occ = Occlusion {
            profile: OcclusionProfile::Captum,
            window: [win, win],
            stride: [stride, stride],
            fill: Fill::Constant(0.0),
            // Captum tracks no feature map: the pass count below is Captum's.
            feature: FeatureChoice::Off,
            ..Default::default()
        };
        let out = occ.explain(&model.model, &req).unwrap();
        let reference = &fx.tensors["occlusion"];
        let [_, c, h, w] = reference.shape[..] else {
            panic!("rank 4")
        };
        for (i, m) in out.maps.iter().enumerate() {
            let plane = h * w;
            let r = &reference.data[i * c * plane..(i + 1) * c * plane];
            // Captum repeats the attribution over the channels its window spans (all of them).
            assert!(
                r.chunks(plane).all(|ch| ch == &r[..plane]),
                "{name}: channels differ"
            );
            let r = &r[..plane];
            let scale = r.iter().fold(0f32, |a, v| a.max(v.abs()));
            let (d, corr) = (max_diff(&m.data, r), pearson(&m.data, r));
            println!("{name} occlusion image {i}: max abs diff {d:e} (max |ref| {scale:e}), r = {corr:.7}");
            assert!(
                d <= 1e-4 * scale.max(1.0) && corr >= 0.999,
                "{name} image {i}: {d}, r {corr}"
            );
        }
        let g = occ.grid(h, w).unwrap();
        assert_eq!(out.passes.forward, req.classes.len() * (1 + g[0] * g[1]));
    }
}

#[test]
fn incremental_occlusion_equals_full_reinference_on_lite0() {
    let (model, fx, classes) = load("lite0");
    let req = request(&fx, &classes);
    let image = req.images.clone().narrow(0, 2, 1);
    let run = |inference| {
        let occ = Occlusion {
            window: [32, 32],
            stride: [24, 24],
            fill: Fill::Blur { sigma: 4.0 },
            inference,
            feature: FeatureChoice::Channel(FeatureTap {
                layer: "_blocks.10".into(),
                channel: 7,
            }),
            ..Default::default()
        };
        occ.sensitivity(&model.model, image.clone(), classes[2], Score::Logit, &mut |_| {
            Ok(())
        })
        .unwrap()
    };
    let (inc, full) = (run(Inference::Incremental), run(Inference::Full));
    assert_eq!(inc.grid, [9, 9]);
    let (pi, pf) = (&inc.probability, &full.probability);
    let (fi, ff) = (
        &inc.feature.as_ref().unwrap().1,
        &full.feature.as_ref().unwrap().1,
    );
    let fscale = ff.iter().fold(1f32, |a, v| a.max(v.abs()));
    println!(
        "probability max diff {:e}, feature-sum max diff {:e} (scale {fscale:e}); MACs {:.0}M vs {:.0}M ({:.2}x fewer)",
        max_diff(pi, pf),
        max_diff(fi, ff),
        inc.macs as f64 / 1e6,
        full.macs as f64 / 1e6,
        full.macs as f64 / inc.macs as f64
    );
    assert!(max_diff(pi, pf) <= 1e-5);
    assert!(max_diff(fi, ff) <= 1e-4 * fscale);
    assert_eq!(inc.top_class, full.top_class);
    assert_eq!(
        inc.full_macs, full.macs,
        "the full-MAC count is what full re-inference runs"
    );
    assert!(
        inc.macs * 5 < full.macs * 4,
        "incremental inference must skip work"
    );
    // Occlusion changes the score: the map is not flat.
    let spread = pf
        .iter()
        .fold(0f32, |a, &p| a.max((p - inc.base_probability).abs()));
    assert!(spread > 1e-3, "occluding changed nothing ({spread})");
}

#[test]
fn zeiler_fergus_outputs_are_consistent() {
    let (model, fx, classes) = load("tiny_resnet");
    let req = request(&fx, &classes);
    let image = req.images.clone().narrow(0, 0, 1);
    let occ = Occlusion {
        window: [16, 16],
        stride: [8, 8],
        fill: Fill::Colour([0.1, -0.2, 0.3]),
        feature: FeatureChoice::Channel(FeatureTap {
            layer: "/layer1/Relu_output_0".into(),
            channel: 3,
        }),
        ..Default::default()
    };
    let s = occ
        .sensitivity(&model.model, image, classes[0], Score::Logit, &mut |_| Ok(()))
        .unwrap();
    assert_eq!(s.grid, [7, 7]);
    assert_eq!(s.forward_passes, 50);
    // The Zeiler & Fergus profile scores probabilities, whatever the request's score.
    assert_eq!(s.score, s.probability);
    assert!(s.probability.iter().all(|p| (0.0..=1.0).contains(p)));
    assert!(s.top_class.iter().all(|&c| c < 10));
    let drop = s.drop_grid();
    assert_eq!((drop.height, drop.width), (7, 7));
    assert!((drop.data[0] - (s.base_probability - s.probability[0])).abs() < 1e-7);
    // Each pixel of the spread map averages the windows covering it: the corner pixel has one.
    let map = s.spread([16, 16], 64, 64);
    assert!((map.data[0] - drop.data[0]).abs() < 1e-7);
    // Pixel (8, 8) is covered by windows (0,0), (0,8), (8,0), (8,8).
    let mean4 = (drop.data[0] + drop.data[1] + drop.data[7] + drop.data[8]) / 4.0;
    assert!((map.data[8 * 64 + 8] - mean4).abs() < 1e-6);
    let bad = Occlusion {
        feature: FeatureChoice::Channel(FeatureTap {
            layer: "/layer1/Relu_output_0".into(),
            channel: 4096,
        }),
        ..occ.clone()
    };
    let image = req.images.narrow(0, 0, 1);
    let err = bad
        .sensitivity(&model.model, image.clone(), classes[0], Score::Logit, &mut |_| {
            Ok(())
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("channel 4096") && err.contains("/layer1/Relu_output_0"),
        "{err}"
    );
    let too_big = Occlusion {
        window: [65, 65],
        ..occ
    };
    let err = too_big
        .sensitivity(&model.model, image, classes[0], Score::Logit, &mut |_| Ok(()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not fit"), "{err}");
}

/// input 3x8x8 -> 1x1 convolution to `[x0, x1, -x1]` -> ReLU (`features`) -> GAP -> linear (2
/// classes): channel k of `features` sums to a value the test computes from the image alone.
fn three_feature_net() -> deepsight_runtime::GraphModel {
    use deepsight_runtime::{Bounds, Conv2d, Graph, GraphModel, Linear, Op, Padding, Tensor, TensorData};
    let d = deepsight_runtime::default_device();
    let mut g = Graph::new("input", 3);
    let w = vec![1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, -1.0, 0.0];
    let x = g
        .push(
            "split",
            Op::Conv2d(Conv2d {
                weight: Tensor::from_data(TensorData::new(w, [3, 3, 1, 1]), &d),
                bias: None,
                stride: [1, 1],
                dilation: [1, 1],
                groups: 1,
                padding: Padding::symmetric(0),
            }),
            &[0],
        )
        .unwrap();
    let x = g.push("features", Op::Rectifier(Bounds::RELU), &[x]).unwrap();
    let x = g.push("gap", Op::GlobalAvgPool, &[x]).unwrap();
    let fc = vec![1.0, 0.5, -0.3, -0.2, 0.4, 0.9];
    g.push(
        "fc",
        Op::Linear(Linear {
            weight: Tensor::from_data(TensorData::new(fc, [2, 3]), &d),
            bias: None,
        }),
        &[x],
    )
    .unwrap();
    GraphModel::new(g, [8, 8], d).unwrap()
}

#[test]
fn the_strongest_feature_map_is_the_argmax_of_summed_activations() {
    use deepsight_explain::gradient::DeconvnetFeature;
    use deepsight_explain::{ExtraKind, Request};
    use deepsight_runtime::{LayeredClassifier, Tensor, TensorData, default_device};
    let model = three_feature_net();
    // Channel 0: one activation of 10 (the largest single value), sum 10. Channel 1: 0.5 at
    // every pixel but one, sum 31.5: the strongest by sum. Channel 2: ReLU(-x1), sum 0.3.
    let mut x = vec![0.0f32; 3 * 64];
    x[5] = 10.0;
    for p in 0..64 {
        x[64 + p] = if p == 9 { -0.3 } else { 0.5 };
        x[128 + p] = ((p * 7) % 5) as f32 - 2.0;
    }
    let sums = [10.0f64, 31.5, 0.3];
    let want = (0..3).fold(0, |b, k| if sums[k] > sums[b] { k } else { b });
    assert_eq!(want, 1);
    let image = Tensor::from_data(TensorData::new(x, [1, 3, 8, 8]), &default_device());
    let (tap, sum) = strongest_channel(&model, image.clone(), "features").unwrap();
    assert_eq!((tap.layer.as_str(), tap.channel), ("features", want));
    assert!((sum as f64 - sums[want]).abs() < 1e-5, "{sum}");
    // Occlusion by default tracks that map of the model's CAM layer and projects it.
    assert_eq!(model.default_cam_layer().as_deref(), Some("features"));
    let occ = Occlusion {
        window: [4, 4],
        stride: [4, 4],
        ..Default::default()
    };
    let req = Request {
        images: image.clone(),
        classes: vec![0],
        score: Score::Logit,
        layer: None,
    };
    let e = occ.explain(&model, &req).unwrap();
    let names: Vec<&str> = e.extra.iter().map(|x| x.name).collect();
    assert_eq!(names, ["probability", "top-class", "feature", "projection"]);
    let feature = &e.extra[2];
    assert_eq!(feature.captions, ["features:1"]);
    // The unoccluded sum is 31.5; hiding the top-left 4x4 window (which holds pixel 9, x1 < 0)
    // removes 15 * 0.5; the others remove 16 * 0.5.
    assert_eq!((feature.maps[0].height, feature.maps[0].width), (2, 2));
    for (got, want) in feature.maps[0].data.iter().zip([24.0, 23.5, 23.5, 23.5]) {
        assert!((got - want).abs() < 1e-5, "{:?}", feature.maps[0].data);
    }
    let projection = &e.extra[3];
    assert_eq!(projection.kind, ExtraKind::Attribution);
    assert_eq!(projection.captions, ["features:1"]);
    let direct = DeconvnetFeature {
        layer: "features".into(),
        channel: 1,
    }
    .explain(&model, &req)
    .unwrap();
    assert_eq!(projection.maps[0], direct.maps[0]);
    assert_eq!(projection.maps[0].channels, 3);
    // 1 unoccluded + 4 occluded + 1 to pick the channel + 2 for the projection; 1 backward.
    assert_eq!((e.passes.forward, e.passes.backward), (8, 1));
    // A forced channel and a given layer are honoured; Off tracks nothing.
    let forced = Occlusion {
        feature: FeatureChoice::Channel(FeatureTap {
            layer: "features".into(),
            channel: 0,
        }),
        ..occ.clone()
    };
    let e = forced.explain(&model, &req).unwrap();
    assert_eq!(e.extra[2].captions, ["features:0"]);
    let on_split = Occlusion {
        feature: FeatureChoice::Strongest {
            layer: Some("split".into()),
        },
        ..occ.clone()
    };
    // Before the ReLU the sums are 10, 31.2 and -31.2: channel 1 again.
    assert_eq!(
        on_split.feature_tap(&model, &image).unwrap(),
        Some(FeatureTap {
            layer: "split".into(),
            channel: 1
        })
    );
    let off = Occlusion {
        feature: FeatureChoice::Off,
        ..occ
    };
    let e = off.explain(&model, &req).unwrap();
    assert_eq!(e.extra.len(), 2);
    assert_eq!(e.passes.forward, 5);
}
