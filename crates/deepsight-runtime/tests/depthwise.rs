//! The direct depthwise kernel against burn's grouped convolution: forward, input gradient and
//! weight gradient, on random shapes with odd sizes, strides, dilations and asymmetric padding.

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use deepsight_runtime::depthwise::depthwise_conv2d;
use deepsight_runtime::{Tensor, TensorData, default_device, to_vec};

fn rand(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e3779b97f4a7c15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn matches_burns_grouped_convolution_forward_and_backward() {
    let cases = [
        // (n, c, h, w, k, stride, dilation, pad [t, l, b, r])
        (1, 3, 7, 9, 3, 1, 1, [1, 1, 1, 1]),
        (2, 5, 13, 11, 3, 2, 1, [0, 0, 1, 1]),
        (1, 4, 15, 15, 5, 2, 1, [1, 2, 2, 1]),
        (3, 2, 9, 10, 5, 1, 1, [2, 2, 2, 2]),
        (1, 6, 17, 8, 3, 3, 2, [2, 0, 1, 3]),
        (2, 3, 6, 6, 7, 1, 1, [3, 3, 3, 3]),
        (1, 4, 12, 12, 4, 2, 1, [0, 1, 2, 1]),
    ];
    for (i, &(n, c, h, w, k, s, dil, p)) in cases.iter().enumerate() {
        let dev = default_device().autodiff();
        let xv = rand(n * c * h * w, i as u64 + 1);
        let wv = rand(c * k * k, i as u64 + 100);
        let make = || {
            let x: Tensor<4> =
                Tensor::from_data(TensorData::new(xv.clone(), [n, c, h, w]), &dev).require_grad();
            let wt: Tensor<4> =
                Tensor::from_data(TensorData::new(wv.clone(), [c, 1, k, k]), &dev).require_grad();
            (x, wt)
        };
        let (x1, w1) = make();
        let ours = depthwise_conv2d(x1.clone(), w1.clone(), [s, s, p[0], p[1], p[2], p[3], dil, dil]);
        let (x2, w2) = make();
        let opts = ConvOptions {
            stride: [s, s],
            padding: [(p[0], p[2]), (p[1], p[3])],
            dilation: [dil, dil],
            groups: c,
        };
        let reference = conv2d(x2.clone(), w2.clone(), None, opts);
        assert_eq!(ours.dims(), reference.dims(), "case {i}");
        let probe: Tensor<4> = Tensor::from_data(
            TensorData::new(rand(reference.shape().num_elements(), 7), reference.dims()),
            &dev,
        );
        let fwd = max_diff(&to_vec(ours.clone().inner()), &to_vec(reference.clone().inner()));
        let g1 = (ours * probe.clone()).sum().backward();
        let g2 = (reference * probe).sum().backward();
        let gx = max_diff(&to_vec(x1.grad(&g1).unwrap()), &to_vec(x2.grad(&g2).unwrap()));
        let gw = max_diff(&to_vec(w1.grad(&g1).unwrap()), &to_vec(w2.grad(&g2).unwrap()));
        assert!(
            fwd < 1e-5 && gx < 1e-5 && gw < 1e-4,
            "case {i}: forward {fwd}, dx {gx}, dw {gw}"
        );
    }
}

#[test]
fn weight_gradient_matches_central_differences() {
    let dev = default_device();
    let (c, h, k) = (2, 9, 3);
    let xv = rand(c * h * h, 3);
    let wv = rand(c * k * k, 4);
    let x: Tensor<4> = Tensor::from_data(TensorData::new(xv, [1, c, h, h]), &dev);
    let geometry = [2, 2, 0, 0, 1, 1, 1, 1];
    let f = |w: &[f32]| -> f64 {
        let wt: Tensor<4> = Tensor::from_data(TensorData::new(w.to_vec(), [c, 1, k, k]), &dev);
        to_vec(depthwise_conv2d(x.clone(), wt, geometry))
            .iter()
            .map(|v| (*v as f64).powi(2))
            .sum::<f64>()
            / 2.0
    };
    let ad = dev.clone().autodiff();
    let wt: Tensor<4> = Tensor::from_data(TensorData::new(wv.clone(), [c, 1, k, k]), &ad).require_grad();
    let y = depthwise_conv2d(x.clone().autodiff(), wt.clone(), geometry);
    let grads = (y.clone() * y).sum().mul_scalar(0.5).backward();
    let analytic = to_vec(wt.grad(&grads).unwrap());
    for i in 0..wv.len() {
        let (mut p, mut m) = (wv.clone(), wv.clone());
        p[i] += 1e-2;
        m[i] -= 1e-2;
        let fd = (f(&p) - f(&m)) / 2e-2;
        assert!(
            (fd - analytic[i] as f64).abs() < 2e-3 * fd.abs().max(1.0),
            "w[{i}]: {fd} vs {}",
            analytic[i]
        );
    }
}

#[test]
fn channels_last_inference_kernel_matches_burns_grouped_convolution() {
    use deepsight_runtime::depthwise_infer::depthwise_channels_last;
    let cases = [
        (1, 3, 7, 9, 3, 1, 1, [1, 1, 1, 1]),
        (2, 5, 13, 11, 3, 2, 1, [0, 0, 1, 1]),
        (1, 4, 15, 15, 5, 2, 1, [1, 2, 2, 1]),
        (3, 2, 9, 10, 5, 1, 1, [2, 2, 2, 2]),
        (1, 6, 17, 8, 3, 3, 2, [2, 0, 1, 3]),
        (4, 37, 7, 7, 5, 1, 1, [2, 2, 2, 2]),
    ];
    let dev = default_device();
    for (i, &(n, c, h, w, k, s, dil, p)) in cases.iter().enumerate() {
        let x = Tensor::<4>::from_data(
            TensorData::new(rand(n * c * h * w, i as u64 + 7), [n, c, h, w]),
            &dev,
        );
        let wt = Tensor::<4>::from_data(
            TensorData::new(rand(c * k * k, i as u64 + 70), [c, 1, k, k]),
            &dev,
        );
        let b = Tensor::<1>::from_data(TensorData::new(rand(c, i as u64 + 700), [c]), &dev);
        let padded = x.clone().pad([(p[0], p[2]), (p[1], p[3])], 0.0);
        let opts = ConvOptions::new([s, s], [0, 0], [dil, dil], c);
        let reference = to_vec(conv2d(padded, wt.clone(), Some(b.clone()), opts));
        let ours = to_vec(depthwise_channels_last(
            x,
            wt,
            Some(b),
            [s, s, p[0], p[1], p[2], p[3], dil, dil],
        ));
        let d = max_diff(&ours, &reference);
        assert!(d < 1e-5, "case {i}: {d}");
    }
}
