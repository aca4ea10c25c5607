//! The gradient of a loss on the frozen, embedded Lite0 reaches a trainable tensor before it
//! (L-CAM-Img's mask on the image) and matches central differences of plain inference, through
//! every layer kind Lite0 has (TF-SAME strided convs, BatchNorm folded, ReLU6, depthwise convs on
//! 112..7 pixel maps, residual adds, the 1x1 head, global pooling, the linear classifier).

use deepsight_runtime::{
    Classifier, GraphModel, LayeredClassifier, Tensor, TensorData, default_device, to_vec,
};

fn lite0() -> GraphModel {
    let d = default_device();
    let g = deepsight_models::lite0::lite0(&deepsight_models::zoo::lite0_weights(), &d).unwrap();
    GraphModel::new(g, [224, 224], d).unwrap()
}

fn pseudo(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        })
        .collect()
}

#[test]
fn mask_gradient_through_frozen_lite0_matches_central_differences() {
    let model = lite0();
    let d = model.device();
    let shape = [1, 3, 224, 224];
    let n = 3 * 224 * 224;
    let image = pseudo(n, 1);
    let mask: Vec<f32> = pseudo(n, 2).into_iter().map(|v| 0.8 + 0.2 * v).collect();
    let class = 207;
    let score = |m: &[f32]| -> f64 {
        let x: Vec<f32> = image.iter().zip(m).map(|(a, b)| a * b).collect();
        let t = Tensor::from_data(TensorData::new(x, shape), &d);
        to_vec(model.logits(t).unwrap())[class] as f64
    };
    let ad = d.clone().autodiff();
    let m = Tensor::<4>::from_data(TensorData::new(mask.clone(), shape), &ad).require_grad();
    let img = Tensor::<4>::from_data(TensorData::new(image.clone(), shape), &d);
    let logits = model.forward_tracked(img * m.clone(), &[]).unwrap().logits;
    let grads = logits.narrow(1, class, 1).sum().backward();
    let grad = to_vec(m.grad(&grads).expect("the gradient reaches the mask"));
    // The largest gradients (where finite differences are far above float noise), and a spread.
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| grad[b].abs().total_cmp(&grad[a].abs()));
    let picks: Vec<usize> = order[..6].iter().copied().chain((0..n).step_by(25013)).collect();
    let eps = 5e-3f32;
    let scale = grad[order[0]].abs() as f64;
    let mut rel = Vec::new();
    for &i in &picks {
        let (mut p, mut q) = (mask.clone(), mask.clone());
        p[i] += eps;
        q[i] -= eps;
        let fd = (score(&p) - score(&q)) / (2.0 * eps as f64);
        println!(
            "pixel {i}: autodiff {:+.6e}, central difference {fd:+.6e}",
            grad[i]
        );
        rel.push((fd - grad[i] as f64).abs() / (grad[i].abs() as f64).max(0.05 * scale));
    }
    rel.sort_by(f64::total_cmp);
    println!("lite0 mask gradient: relative errors {rel:.4?}");
    assert!(scale > 0.0);
    // Lite0 has thousands of ReLU6 kinks: a difference quotient may straddle one, so an outlier
    // is allowed; the typical pixel must agree closely.
    assert!(
        rel[rel.len() / 2] <= 0.02,
        "median relative error {}",
        rel[rel.len() / 2]
    );
    assert!(
        rel[rel.len() - 2] <= 0.10,
        "second-worst relative error {}",
        rel[rel.len() - 2]
    );
}
