//! Counterfactual Grad-CAM against values computed independently of its code path. PyTorch is
//! not available to this test suite, so the checks are: the closed form on networks that end in
//! global average pooling and a linear layer (PyTorch's own exported tiny nets and the real
//! Lite0), computed in f64 from the state dict and the captured activations; finite differences
//! of the class score resumed from a layer where the gradient is not constant; and the
//! complementarity with pytorch-grad-cam's own Grad-CAM fixture (`gradcam_raw`).

mod common;

use common::{load, request, shared};
use deepsight_explain::cam::{Cam, GradCam, GradCamCounterfactual};
use deepsight_explain::registry::by_name;
use deepsight_explain::{Explainer, Request, Score};
use deepsight_models::{Arch, ModelSource, Weights};
use deepsight_runtime::{LayeredClassifier, Tensor, TensorData, default_device, to_vec};
use std::path::PathBuf;

/// `ReLU(-sum_k w_k^c A^k) / (h w)` in f64 for every image: the counterfactual map of a GAP +
/// linear head, from the linear weights `fc` `[classes, K]` and the activation at the GAP input.
fn closed_form(model: &dyn LayeredClassifier, req: &Request, layer: &str, fc: &[f32]) -> Vec<Vec<f64>> {
    let cap = model.capture(req.images.clone(), &[layer], false).unwrap();
    let a = &cap.activations[layer];
    let [n, k, h, w] = a.dims();
    let a = to_vec(a.clone());
    (0..n)
        .map(|i| {
            (0..h * w)
                .map(|p| {
                    let s: f64 = (0..k)
                        .map(|ch| fc[req.classes[i] * k + ch] as f64 * a[(i * k + ch) * h * w + p] as f64)
                        .sum();
                    (-s).max(0.0) / (h * w) as f64
                })
                .collect()
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(&x, &y)| (x as f64 - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn counterfactual_gradcam_is_relu_of_minus_cam_on_the_pytorch_tiny_nets() {
    // Every class, not only the fixture's target (which these random nets favour everywhere, so
    // that nothing speaks against it).
    for name in ["tiny_vgg", "tiny_resnet"] {
        let (model, fx, _) = load(name);
        let w = Weights::from_safetensors(&shared().join(format!("{name}.weights.safetensors"))).unwrap();
        let fc = &w.tensors["fc.weight"].data;
        let layer = model.model.default_cam_layer().unwrap();
        let mut nonzero = 0;
        for class in 0..10 {
            let req = request(&fx, &[class; 3]);
            let expected = closed_form(&model.model, &req, &layer, fc);
            let out = Cam(GradCamCounterfactual).explain(&model.model, &req).unwrap();
            let raw = out.raw.unwrap();
            for (i, (ours, want)) in raw.iter().zip(&expected).enumerate() {
                let scale = want.iter().fold(0.0f64, |m, v| m.max(*v));
                let d = max_diff(&ours.data, want);
                assert!(d <= 1e-6 + 1e-5 * scale, "{name} class {class} image {i}: {d}");
                nonzero += usize::from(scale > 0.0);
            }
            // The full-size map is the bilinear upsampling of the raw one, non-negative.
            assert_eq!(out.maps[0].height, 64);
            assert!(out.maps.iter().all(|m| m.data.iter().all(|&v| v >= 0.0)));
        }
        println!("{name}: {nonzero} of 30 (class, image) maps not all zero");
        assert!(nonzero >= 10, "{name}: the closed form is zero almost everywhere");
    }
}

#[test]
fn counterfactual_and_pytorch_gradcam_are_the_two_halves_of_one_map() {
    // pytorch-grad-cam's `gradcam_raw` is ReLU(G); ours is ReLU(-G): where PyTorch's is positive
    // ours is zero, and ReLU(G) - ReLU(-G) = G is the f64 CAM of the head divided by h w.
    for name in ["tiny_vgg", "tiny_resnet"] {
        let (model, fx, classes) = load(name);
        let req = request(&fx, &classes);
        let reference = &fx.tensors["gradcam_raw"].data;
        let ours = Cam(GradCamCounterfactual)
            .explain(&model.model, &req)
            .unwrap()
            .raw
            .unwrap();
        let w = Weights::from_safetensors(&shared().join(format!("{name}.weights.safetensors"))).unwrap();
        let fc = &w.tensors["fc.weight"].data;
        let layer = model.model.default_cam_layer().unwrap();
        let cap = model.model.capture(req.images.clone(), &[&layer], false).unwrap();
        let a = to_vec(cap.activations[&layer].clone());
        let [_, k, h, wd] = cap.activations[&layer].dims();
        let per = h * wd;
        for (i, m) in ours.iter().enumerate() {
            let r = &reference[i * per..(i + 1) * per];
            for p in 0..per {
                let g: f64 = (0..k)
                    .map(|ch| fc[classes[i] * k + ch] as f64 * a[(i * k + ch) * per + p] as f64)
                    .sum::<f64>()
                    / per as f64;
                let (pos, neg) = (r[p] as f64, m.data[p] as f64);
                assert!(
                    pos == 0.0 || neg == 0.0,
                    "{name} image {i} pos {p}: both halves positive"
                );
                assert!(
                    (pos - neg - g).abs() <= 1e-5 * (1.0 + g.abs()),
                    "{name} image {i} pos {p}"
                );
            }
        }
    }
}

#[test]
fn counterfactual_weights_are_minus_finite_differences_inside_a_resnet() {
    // At tiny_resnet's first block the gradient varies over positions: alpha_k = -1/(h w)
    // sum_ij dS/dA^k_ij is the derivative of S along "add t to all of channel k", divided by
    // -h w, which a central difference of the forward pass resumed from the layer gives.
    let (model, fx, _) = load("tiny_resnet");
    let layer = "/layer1/Relu_output_0";
    // The least likely class of each image: the one with the most evidence against it.
    let logits = fx.tensors["logits"].data.clone();
    let classes: Vec<usize> = logits
        .chunks(10)
        .map(|row| (0..10).min_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap())
        .collect();
    let mut req = request(&fx, &classes);
    req.layer = Some(layer.into());
    let ours = Cam(GradCamCounterfactual)
        .explain(&model.model, &req)
        .unwrap()
        .raw
        .unwrap();
    let resume = model.model.resume(req.images.clone(), layer).unwrap();
    let act = resume.activation();
    let [n, k, h, w] = act.dims();
    let a = to_vec(act.clone());
    let per = h * w;
    // Downstream ReLUs whose input lies within t of 0 bias the central difference: the error
    // shrinks with t (image 2: 2.6%, 1.0%, 0.5% of the map's maximum at t = 1e-2, 3e-3, 1e-3)
    // until float32 rounding of the logits takes over.
    let t = 1e-3f64;
    for i in 0..n {
        let base = &a[i * k * per..(i + 1) * k * per];
        // Perturbed copies: +t and -t on channel ch, for every channel, in one batch.
        let mut values = Vec::with_capacity(2 * k * k * per);
        for ch in 0..k {
            for sign in [1.0f32, -1.0] {
                let mut v = base.to_vec();
                v[ch * per..(ch + 1) * per]
                    .iter_mut()
                    .for_each(|x| *x += sign * t as f32);
                values.extend(v);
            }
        }
        let batch = Tensor::from_data(TensorData::new(values, [2 * k, k, h, w]), &default_device());
        let logits = to_vec(resume.logits_with(&vec![i; 2 * k], batch).unwrap());
        let classes_n = logits.len() / (2 * k);
        let alpha: Vec<f64> = (0..k)
            .map(|ch| {
                let up = logits[(2 * ch) * classes_n + classes[i]] as f64;
                let down = logits[(2 * ch + 1) * classes_n + classes[i]] as f64;
                -(up - down) / (2.0 * t) / per as f64
            })
            .collect();
        let expected: Vec<f64> = (0..per)
            .map(|p| {
                (0..k)
                    .map(|ch| alpha[ch] * base[ch * per + p] as f64)
                    .sum::<f64>()
                    .max(0.0)
            })
            .collect();
        let scale = expected.iter().fold(0.0f64, |m, v| m.max(*v));
        let d = max_diff(&ours[i].data, &expected);
        println!("tiny_resnet {layer} image {i}: max abs diff {d:e} (max {scale:e})");
        assert!(
            scale > 0.0 && d <= 1e-2 * scale,
            "image {i}: {d} vs scale {scale}"
        );
    }
}

#[test]
fn counterfactual_gradcam_on_lite0_is_its_closed_form_and_avoids_the_class() {
    // Lite0 ends in `features` -> global average pool -> `_fc`: the closed form holds there too.
    // On the sample photo (a dog left of a bicycle) the evidence against "German shepherd"
    // lies away from the dog: the counterfactual map for the dog peaks where Grad-CAM for the
    // dog is zero.
    let device = default_device();
    let loaded = ModelSource::Builtin {
        arch: Arch::Lite0,
        random_seed: None,
    }
    .load(&device)
    .unwrap();
    let photo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples/dog.jpg");
    let x = loaded.pipeline.load_batch(&[photo.as_path()], &device).unwrap();
    let req = Request {
        images: x,
        classes: vec![235],
        score: Score::Logit,
        layer: None,
    };
    let w = deepsight_models::zoo::lite0_weights();
    let fc = &w.tensors["_fc.weight"].data;
    let expected = closed_form(&loaded.model, &req, "features", fc);
    let cf = by_name("gradcam-counterfactual")
        .unwrap()
        .explain(&loaded.model, &req)
        .unwrap();
    let cf = &cf.raw.unwrap()[0];
    let scale = expected[0].iter().fold(0.0f64, |m, v| m.max(*v));
    let d = max_diff(&cf.data, &expected[0]);
    println!("lite0 dog.jpg: max abs diff {d:e} (max {scale:e})");
    assert!(d <= 1e-5 * scale.max(1.0), "{d}");
    let gc = &Cam(GradCam).explain(&loaded.model, &req).unwrap().raw.unwrap()[0];
    let peak = (0..cf.data.len())
        .max_by(|&a, &b| cf.data[a].total_cmp(&cf.data[b]))
        .unwrap();
    println!(
        "counterfactual peak (row, col): {:?}",
        (peak / cf.width, peak % cf.width)
    );
    assert_eq!(gc.data[peak], 0.0);
}
