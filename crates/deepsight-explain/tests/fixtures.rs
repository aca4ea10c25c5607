//! Every method against the maps Captum and pytorch-grad-cam computed (`../shared/fixtures`), after
//! the same normalisation as the reference: Pearson r >= 0.999 and max abs diff <= 1e-4. The tiny
//! networks come from their ONNX exports; Lite0 is the built-in.

use deepsight_explain::cam::{
    Cam, ClassActivationMap, EigenCam, GradCam, GradCamPlusPlus, LayerCam, XGradCam,
};
use deepsight_explain::gradient::{
    Deconvnet, GuidedBackprop, InputXGradient, IntegratedGradients, Quadrature, Saliency,
};
use deepsight_explain::registry::{MethodOptions, SmoothGradBase, by_name_with};
use deepsight_explain::smoothgrad::SmoothGrad;
use deepsight_explain::{Explainer, Map, Normalisation, Request, Score};
use deepsight_models::{Arch, LoadedModel, ModelSource, Weights};
use deepsight_runtime::{Classifier, LayeredClassifier, default_device, to_vec};
mod common;
use common::{load, pearson, request, shared};
use std::path::PathBuf;

/// Lite0's input gradients: ReLU6 pre-activations that lie within float rounding of 0 or 6 flip
/// their mask between any two float32 computations, and a flip deep in the network moves a whole
/// receptive field. The fixture itself is not reproducible to 1e-4: recomputed by PyTorch in float64
/// it differs from the float32 fixture by up to 2.4e-2 (image 3, 1258 pixels > 1e-4), and by PyTorch
/// in float32 with oneDNN switched off by up to 2.7e-2 (`scripts/lite0_fixture_precision.py`).
/// DeepSight's maps are within the same band (max 2.4e-2, identical to the float64 recomputation's on
/// image 3). So Lite0's gradient maps are held to r >= 0.9999 and a mean absolute difference <= 2e-4
/// of the map's scale instead of the max (measured: r >= 0.99997, mean <= 1.6e-4 of the scale); the
/// tiny nets (no kink hit) meet the max bar at 1e-9.
fn check_lite0_gradient(what: &str, ours: &[Map], reference: &[f32]) {
    let per = reference.len() / ours.len();
    for (i, m) in ours.iter().enumerate() {
        let r = &reference[i * per..(i + 1) * per];
        let scale = r.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        let mean = m.data.iter().zip(r).map(|(a, b)| (a - b).abs()).sum::<f32>() / per as f32;
        let max = m
            .data
            .iter()
            .zip(r)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        let corr = pearson(&m.data, r);
        println!(
            "{what} image {i}: mean abs diff {mean:e}, max {max:e} (max |ref| {scale:e}), r = {corr:.7}"
        );
        assert!(
            corr >= 0.9999 && mean <= 2e-4 * scale,
            "{what} image {i}: mean {mean}, r {corr}"
        );
    }
}

/// Compares per image; `norm` is applied to our maps (the reference's own processing).
fn check(what: &str, ours: &[Map], reference: &[f32], norm: Option<Normalisation>, tol: f32) {
    if what.starts_with("lite0") && norm.is_none() {
        return check_lite0_gradient(what, ours, reference);
    }
    let per = reference.len() / ours.len();
    for (i, m) in ours.iter().enumerate() {
        let m = norm.map_or_else(|| m.clone(), |n| m.normalise(n));
        let r = &reference[i * per..(i + 1) * per];
        assert_eq!(m.data.len(), per, "{what}: size");
        let diff = m
            .data
            .iter()
            .zip(r)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        let corr = pearson(&m.data, r);
        let scale = r.iter().fold(0.0f32, |a, v| a.max(v.abs()));
        println!("{what} image {i}: max abs diff {diff:e} (max |ref| {scale:e}), r = {corr:.6}");
        assert!(
            diff <= tol && corr >= 0.999,
            "{what} image {i}: diff {diff}, r {corr}"
        );
    }
}

fn run(e: &dyn Explainer, model: &LoadedModel, req: &Request) -> Vec<Map> {
    e.explain(&model.model, req).unwrap().maps
}

#[test]
fn gradient_family_matches_captum() {
    for name in ["tiny_vgg", "tiny_resnet", "lite0"] {
        let (model, fx, classes) = load(name);
        let req = request(&fx, &classes);
        let v = |k: &str| fx.tensors[k].data.clone();
        check(
            &format!("{name} saliency"),
            &run(&Saliency, &model, &req),
            &v("saliency_max"),
            None,
            1e-5,
        );
        check(
            &format!("{name} input-x-gradient"),
            &run(&InputXGradient, &model, &req),
            &v("input_x_gradient"),
            None,
            1e-5,
        );
        let ig = IntegratedGradients {
            steps: 16,
            quadrature: Quadrature::CaptumTrapezoid,
            baseline: 0.0,
            batch_size: 16,
        };
        let reference = v("integrated_gradients");
        let scale = reference.iter().fold(1.0f32, |m, x| m.max(x.abs()));
        println!("{name} integrated-gradients: max |ref| {scale:e}");
        check(
            &format!("{name} integrated-gradients"),
            &run(&ig, &model, &req),
            &reference,
            None,
            1e-4 * scale,
        );
    }
    // Captum switches the rule only on nn.ReLU modules: the tiny VGG has nothing else, so there
    // the references are the paper's rules (see the methods' Deviations for the other nets).
    let (model, fx, classes) = load("tiny_vgg");
    let req = request(&fx, &classes);
    check(
        "tiny_vgg guided-backprop",
        &run(&GuidedBackprop, &model, &req),
        &fx.tensors["guided_backprop"].data,
        None,
        1e-5,
    );
    check(
        "tiny_vgg deconvnet",
        &run(&Deconvnet, &model, &req),
        &fx.tensors["deconvolution"].data,
        None,
        1e-5,
    );
}

#[test]
fn cam_family_matches_pytorch_grad_cam() {
    for name in ["tiny_vgg", "tiny_resnet", "lite0"] {
        let (model, fx, classes) = load(name);
        let req = request(&fx, &classes);
        let v = |k: &str| fx.tensors[k].data.clone();
        let gradcam = Cam(GradCam).explain(&model.model, &req).unwrap();
        check(
            &format!("{name} gradcam raw"),
            gradcam.raw.as_ref().unwrap(),
            &v("gradcam_raw"),
            None,
            1e-4,
        );
        let style = Some(Normalisation::GradCamStyle);
        check(
            &format!("{name} gradcam"),
            &gradcam.maps,
            &v("gradcam"),
            style,
            1e-4,
        );
        check(
            &format!("{name} gradcam++"),
            &run(&Cam(GradCamPlusPlus), &model, &req),
            &v("gradcam_pp"),
            style,
            1e-4,
        );
        check(
            &format!("{name} xgradcam"),
            &run(&Cam(XGradCam), &model, &req),
            &v("xgradcam"),
            style,
            1e-4,
        );
        check(
            &format!("{name} layercam"),
            &run(&Cam(LayerCam), &model, &req),
            &v("layercam"),
            style,
            1e-4,
        );
        // A singular vector's sign is arbitrary: pytorch-grad-cam keeps LAPACK's, DeepSight fixes
        // its own convention (EigenCam's Deviations); the map must match for one of the signs.
        let plus = Cam(EigenCam::default()).explain(&model.model, &req).unwrap();
        let minus = Cam(EigenCam { flip: true }).explain(&model.model, &req).unwrap();
        let reference = v("eigencam");
        let per = reference.len() / plus.maps.len();
        for i in 0..plus.maps.len() {
            let r = &reference[i * per..(i + 1) * per];
            let ok = [&plus, &minus].iter().any(|e| {
                let m = e.maps[i].normalise(Normalisation::GradCamStyle);
                let d = m
                    .data
                    .iter()
                    .zip(r)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                println!(
                    "{name} eigencam image {i}: max abs diff {d:e}, r = {:.6}",
                    pearson(&m.data, r)
                );
                d <= 1e-4 && pearson(&m.data, r) >= 0.999
            });
            assert!(ok, "{name} eigencam image {i} matches neither sign");
        }
    }
}

#[test]
fn smoothgrad_with_sigma_zero_is_its_base_method() {
    let (model, fx, classes) = load("tiny_resnet");
    let req = request(&fx, &classes);
    let base = run(&Saliency, &model, &req);
    let sg = SmoothGrad {
        base: Saliency,
        samples: 4,
        sigma: 0.0,
        seed: 3,
        batch_size: 5,
        reduce: None,
    };
    let out = sg.explain(&model.model, &req).unwrap();
    assert_eq!(out.passes.forward, 12);
    for (a, b) in out.maps.iter().zip(&base) {
        let d = a
            .data
            .iter()
            .zip(&b.data)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(d <= 1e-6, "diff {d}");
    }
    let noisy = SmoothGrad { sigma: 0.2, ..sg };
    let again = SmoothGrad { sigma: 0.2, ..sg };
    let (x, y) = (
        noisy.explain(&model.model, &req).unwrap(),
        again.explain(&model.model, &req).unwrap(),
    );
    assert_eq!(x.maps, y.maps, "seeded: the same map twice");
    assert_ne!(x.maps, base, "noise changes the map");
}

#[test]
fn smoothgrad_wraps_every_selectable_base_method() {
    let (model, fx, classes) = load("tiny_resnet");
    let req = request(&fx, &classes);
    for (base, name) in [
        (SmoothGradBase::Saliency, "saliency"),
        (SmoothGradBase::InputXGradient, "input-x-gradient"),
        (SmoothGradBase::GuidedBackprop, "guided-backprop"),
        (SmoothGradBase::IntegratedGradients, "integrated-gradients"),
    ] {
        let o = MethodOptions {
            smoothgrad_base: base,
            smoothgrad_samples: 2,
            smoothgrad_sigma: 0.0,
            ig_steps: 4,
            ..Default::default()
        };
        let sg = by_name_with("smoothgrad", &o)
            .unwrap()
            .explain(&model.model, &req)
            .unwrap();
        let alone = by_name_with(name, &o)
            .unwrap()
            .explain(&model.model, &req)
            .unwrap();
        assert_eq!(sg.passes.backward, 2 * alone.passes.backward, "{name}: passes");
        for (a, b) in sg.maps.iter().zip(&alone.maps) {
            assert_eq!(a.channels, b.channels, "{name}: channels");
            let d = a
                .data
                .iter()
                .zip(&b.data)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(d <= 1e-6, "{name}: sigma 0 differs from the base by {d}");
        }
    }
}

#[test]
fn integrated_gradients_is_complete() {
    let (model, fx, classes) = load("tiny_resnet");
    let req = request(&fx, &classes);
    let ig = IntegratedGradients {
        steps: 300,
        batch_size: 64,
        ..Default::default()
    };
    let out = ig.explain(&model.model, &req).unwrap();
    let logits = to_vec(model.model.logits(req.images.clone()).unwrap());
    let zero = to_vec(model.model.logits(req.images.zeros_like()).unwrap());
    let k = model.model.num_classes();
    for (i, m) in out.maps.iter().enumerate() {
        let c = classes[i];
        let total: f64 = m.data.iter().map(|&v| v as f64).sum();
        let expected = (logits[i * k + c] - zero[i * k + c]) as f64;
        println!("IG completeness image {i}: sum {total:.5}, S(x) - S(0) {expected:.5}");
        assert!(
            (total - expected).abs() <= 0.01 * expected.abs().max(1e-3),
            "{total} vs {expected}"
        );
    }
}

#[test]
fn gradcam_equals_cam_on_a_gap_linear_head() {
    // tiny_vgg ends in global average pooling and a linear layer: CAM = sum_k w_k^c A^k, and
    // Grad-CAM's weights are w_k^c / (h w).
    let (model, fx, classes) = load("tiny_vgg");
    let req = request(&fx, &classes);
    let out = Cam(GradCam).explain(&model.model, &req).unwrap();
    let w = Weights::from_safetensors(&shared().join("tiny_vgg.weights.safetensors")).unwrap();
    let fc = &w.tensors["fc.weight"].data;
    let layer = model.model.default_cam_layer().unwrap();
    let cap = model.model.capture(req.images.clone(), &[&layer], false).unwrap();
    let a = &cap.activations[&layer];
    let [n, k, h, wd] = a.dims();
    let a = to_vec(a.clone());
    for i in 0..n {
        let cam: Vec<f32> = (0..h * wd)
            .map(|p| {
                (0..k)
                    .map(|ch| fc[classes[i] * k + ch] * a[(i * k + ch) * h * wd + p])
                    .sum::<f32>()
                    .max(0.0)
                    / (h * wd) as f32
            })
            .collect();
        let raw = &out.raw.as_ref().unwrap()[i].data;
        let d = raw
            .iter()
            .zip(&cam)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(d <= 1e-6, "image {i}: {d}");
        // The CAM method itself: the same map times h w, unrectified.
        let zhou: Vec<f32> = (0..h * wd)
            .map(|p| {
                (0..k)
                    .map(|ch| fc[classes[i] * k + ch] * a[(i * k + ch) * h * wd + p])
                    .sum::<f32>()
            })
            .collect();
        let ours = &Cam(ClassActivationMap)
            .explain(&model.model, &req)
            .unwrap()
            .raw
            .unwrap()[i]
            .data;
        let d = ours
            .iter()
            .zip(&zhou)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        assert!(d <= 1e-5, "CAM image {i}: {d}");
    }
    // Where the head is not GAP + linear, CAM is refused rather than approximated.
    let (resnet, fx, classes) = load("tiny_resnet");
    let mut req = request(&fx, &classes);
    req.layer = Some("/layer2/Relu_output_0".into());
    assert!(Cam(ClassActivationMap).explain(&resnet.model, &req).is_ok());
    req.layer = Some("/layer1/Relu_output_0".into());
    let err = Cam(ClassActivationMap)
        .explain(&resnet.model, &req)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("CAM needs global average pooling then one linear layer"),
        "{err}"
    );
}

#[test]
fn every_method_has_a_documented_file_and_a_name() {
    for m in deepsight_explain::registry::methods() {
        for section in ["# Computes", "# Equation", "# Paper", "# Deviations"] {
            assert!(m.doc.contains(section), "{}: no {section}", m.name);
        }
        let e = deepsight_explain::registry::by_name(m.name).expect("constructible");
        assert_eq!(e.name(), m.name);
    }
}

#[test]
fn gradcam_is_class_discriminative_on_the_sample_photo() {
    // samples/dog.jpg: a dog left of a bicycle. Grad-CAM for the dog (German shepherd, 235) and
    // for the bicycle (mountain bike, 671) must peak in different places, the bicycle's right of
    // the dog's.
    let loaded = ModelSource::Builtin {
        arch: Arch::Lite0,
        random_seed: None,
    }
    .load(&default_device())
    .unwrap();
    let photo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples/dog.jpg");
    let x = loaded
        .pipeline
        .load_batch(&[photo.as_path()], &default_device())
        .unwrap();
    let peak = |class: usize| {
        let req = Request {
            images: x.clone(),
            classes: vec![class],
            score: Score::Logit,
            layer: None,
        };
        let raw = &Cam(GradCam).explain(&loaded.model, &req).unwrap().raw.unwrap()[0];
        let i = (0..raw.data.len())
            .max_by(|&a, &b| raw.data[a].total_cmp(&raw.data[b]))
            .unwrap();
        (i / raw.width, i % raw.width)
    };
    let (dog, bike) = (peak(235), peak(671));
    println!("Grad-CAM peaks (row, col) on the 7x7 map: dog {dog:?}, mountain bike {bike:?}");
    assert_ne!(dog, bike);
    assert!(bike.1 > dog.1, "the bicycle is right of the dog");
}

#[test]
fn methods_sharing_passes_give_the_same_maps_as_alone() {
    let (model, fx, classes) = load("tiny_resnet");
    let req = request(&fx, &classes);
    let sal = Saliency;
    let ixg = InputXGradient;
    let gc = Cam(GradCam);
    let pp = Cam(GradCamPlusPlus);
    let eig = Cam(EigenCam::default());
    let gb = GuidedBackprop;
    let methods: [&dyn Explainer; 6] = [&sal, &ixg, &gc, &pp, &eig, &gb];
    let (shared, total) = deepsight_explain::explain_all(&model.model, &req, &methods).unwrap();
    // One plain pass (input and layer gradients, the Eigen-CAM activation) and one guided pass.
    assert_eq!((total.forward, total.backward), (6, 6));
    for (m, e) in methods.iter().zip(&shared) {
        let alone = m.explain(&model.model, &req).unwrap();
        assert_eq!(alone.passes, e.passes, "{}", m.name());
        for (a, b) in alone.maps.iter().zip(&e.maps) {
            let d = a
                .data
                .iter()
                .zip(&b.data)
                .map(|(x, y)| (x - y).abs())
                .fold(0.0, f32::max);
            assert!(d <= 1e-6, "{}: {d}", m.name());
        }
    }
}

#[test]
fn deconvnet_feature_projects_the_strongest_activation_within_its_receptive_field() {
    use deepsight_explain::gradient::DeconvnetFeature;
    let (model, fx, classes) = load("tiny_resnet");
    let req = request(&fx, &classes);
    let layer = "/layer1/Relu_output_0".to_string();
    let e = DeconvnetFeature {
        layer: layer.clone(),
        channel: 3,
    };
    let out = e.explain(&model.model, &req).unwrap();
    assert_eq!(out.maps.len(), 3);
    // The projection is non-zero and confined to the receptive field of one 16x16 position of a
    // 64x64 input: the stem (7x7/2), the max-pool (3x3/2) and two 3x3 convs span 43 pixels at most.
    for m in &out.maps {
        let plane = m.height * m.width;
        let nonzero: Vec<usize> = (0..plane)
            .filter(|&p| (0..m.channels).any(|c| m.data[c * plane + p] != 0.0))
            .collect();
        assert!(!nonzero.is_empty());
        let rows: Vec<usize> = nonzero.iter().map(|p| p / m.width).collect();
        let cols: Vec<usize> = nonzero.iter().map(|p| p % m.width).collect();
        let span = |v: &[usize]| v.iter().max().unwrap() - v.iter().min().unwrap() + 1;
        assert!(
            span(&rows) <= 43 && span(&cols) <= 43,
            "{} x {}",
            span(&rows),
            span(&cols)
        );
    }
    let bad = DeconvnetFeature { layer, channel: 99 }
        .explain(&model.model, &req)
        .unwrap_err();
    assert!(
        bad.to_string().contains("has 16 channels, not channel 99"),
        "{bad}"
    );
}
