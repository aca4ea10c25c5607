//! The model-zoo comparison shared by `modern_zoo.rs` and `torchvision_zoo.rs`: an exported
//! model against PyTorch's logits, input gradient and CAM-layer values (see the scripts that
//! write them).

use super::floats;
use deepsight_runtime::{
    Classifier, GradientRequest, GraphModel, LayeredClassifier, Objective, RectifierRule, Tensor, TensorData,
    default_device, to_vec,
};
use std::path::Path;
use std::time::Instant;

/// What one model gave.
#[derive(Debug)]
pub struct Row {
    pub logits_rel: f32,
    pub saliency_r: f64,
    pub grad_cam_r: f64,
    pub seconds_import: f64,
    pub seconds_logits: f64,
    pub seconds_gradients: f64,
}

fn max_abs(v: &[f32]) -> f32 {
    v.iter().fold(0.0, |m, x| m.max(x.abs()))
}

pub fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

pub fn pearson(a: &[f32], b: &[f32]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (
        a.iter().map(|&v| v as f64).sum::<f64>() / n,
        b.iter().map(|&v| v as f64).sum::<f64>() / n,
    );
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    sab / (saa * sbb).sqrt().max(1e-30)
}

/// Grad-CAM of one image: `relu(sum_c mean_hw(grad_c) * act_c)`, `[h * w]`.
pub fn grad_cam(act: &[f32], grad: &[f32], [c, h, w]: [usize; 3]) -> Vec<f32> {
    let hw = h * w;
    let mut cam = vec![0f32; hw];
    for ch in 0..c {
        let weight = grad[ch * hw..(ch + 1) * hw].iter().sum::<f32>() / hw as f32;
        for p in 0..hw {
            cam[p] += weight * act[ch * hw + p];
        }
    }
    cam.iter().map(|v| v.max(0.0)).collect()
}

/// Saliency: the largest absolute input gradient over the channels, `[h * w]`.
pub fn saliency(grad: &[f32], [c, h, w]: [usize; 3]) -> Vec<f32> {
    (0..h * w)
        .map(|p| (0..c).map(|ch| grad[ch * h * w + p].abs()).fold(0.0, f32::max))
        .collect()
}

/// Imports `onnx`, checks it against the reference `r` and asserts the bounds of the zoo test:
/// logits within 1e-5 of the largest, saliency r >= 0.999, Grad-CAM r >= 0.9999 and the CAM
/// layer's activation and gradient in canonical `[N, C, H, W]`.
pub fn check(name: &str, onnx: &Path, r: &serde_json::Value) -> Row {
    let d = default_device();
    let t = Instant::now();
    let imported = deepsight_onnx::import_file(onnx, &d, None).unwrap_or_else(|e| panic!("{name}: {e}"));
    let model = GraphModel::new(imported.graph, imported.input_size, d.clone()).unwrap();
    let seconds_import = t.elapsed().as_secs_f64();
    let shape: Vec<usize> = r["shape"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect();
    let [n, c, h, w] = [shape[0], shape[1], shape[2], shape[3]];
    let input = Tensor::from_data(TensorData::new(floats(&r["input"]), [n, c, h, w]), &d);
    let target = r["target"].as_u64().unwrap() as usize;

    let want = floats(&r["logits"]);
    let t = Instant::now();
    let got = to_vec(model.logits(input.clone()).unwrap());
    let seconds_logits = t.elapsed().as_secs_f64();
    let logits_rel = max_diff(&got, &want) / max_abs(&want);
    println!("{name}: logits max diff {logits_rel:.2e} of the largest logit");
    assert!(
        logits_rel <= 1e-5,
        "{name}: logits differ by {logits_rel:e} of the largest"
    );

    let cams = r["cams"].as_array().unwrap();
    let layers: Vec<String> = cams
        .iter()
        .map(|c| c["layer"].as_str().unwrap().to_string())
        .collect();
    let req = GradientRequest {
        wrt_layers: layers.clone(),
        ..GradientRequest::input(Objective::Logit(vec![target]), RectifierRule::Plain)
    };
    let t = Instant::now();
    let g = model
        .gradients(input, &req)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let seconds_gradients = t.elapsed().as_secs_f64();
    let input_grad = to_vec(g.input.unwrap());
    let want_grad = floats(&r["input_grad"]);
    let saliency_r = pearson(
        &saliency(&input_grad, [c, h, w]),
        &saliency(&want_grad, [c, h, w]),
    );
    let grad_rel = max_diff(&input_grad, &want_grad) / max_abs(&want_grad);
    println!("{name}: saliency r {saliency_r:.7}, input gradient max diff {grad_rel:.2e} of the largest");
    assert!(saliency_r >= 0.999, "{name}: saliency r {saliency_r}");

    let mut grad_cam_r = 1.0f64;
    for (cam, layer) in cams.iter().zip(&layers) {
        let s: Vec<usize> = cam["shape"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap() as usize)
            .collect();
        let lg = &g.layers[layer];
        assert_eq!(
            lg.activation.dims().to_vec(),
            s,
            "{name} {layer}: canonical [N, C, H, W]"
        );
        let (act, grad) = (to_vec(lg.activation.clone()), to_vec(lg.gradient.clone()));
        let (want_act, want_grad) = (floats(&cam["activation"]), floats(&cam["gradient"]));
        let act_rel = max_diff(&act, &want_act) / max_abs(&want_act);
        let dims = [s[1], s[2], s[3]];
        let r_cam = pearson(
            &grad_cam(&act, &grad, dims),
            &grad_cam(&want_act, &want_grad, dims),
        );
        println!(
            "{name} {} ({layer}): activation {act_rel:.1e}, Grad-CAM r {r_cam:.7}",
            cam["module"]
        );
        assert!(act_rel <= 1e-5, "{name} {layer}: activation {act_rel:e}");
        assert!(r_cam >= 0.9999, "{name} {layer}: Grad-CAM r {r_cam}");
        grad_cam_r = grad_cam_r.min(r_cam);
    }
    let default = model.default_cam_layer().expect("a feature map");
    let info = model.layers().into_iter().find(|l| l.name == default).unwrap();
    assert!(
        info.shape.len() == 4 && info.shape[2] * info.shape[3] > 1,
        "{name}: {default} {:?}",
        info.shape
    );
    Row {
        logits_rel,
        saliency_r,
        grad_cam_r,
        seconds_import,
        seconds_logits,
        seconds_gradients,
    }
}
