//! Times the direct depthwise kernels (planar, and channels-last for inference) against burn's
//! grouped convolution on Lite0's shapes, at batch 1 and 64.
//! `cargo run --release --example depthwise_speed`

use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use deepsight_runtime::depthwise::depthwise_conv2d;
use deepsight_runtime::depthwise_infer::depthwise_channels_last;
use deepsight_runtime::{Tensor, TensorData, default_device};
use std::time::Instant;

fn best(mut f: impl FnMut()) -> f64 {
    f();
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let d = default_device();
    let shapes: [(usize, usize, usize, usize); 6] = [
        (32, 112, 3, 1),
        (96, 112, 3, 2),
        (144, 56, 3, 1),
        (144, 56, 5, 2),
        (480, 14, 5, 1),
        (1152, 7, 5, 1),
    ];
    for (batch, (c, hw, k, s)) in [1, 64].into_iter().flat_map(|b| shapes.map(|sh| (b, sh))) {
        let n = batch * c * hw * hw;
        let x: Tensor<4> = Tensor::from_data(
            TensorData::new(
                (0..n).map(|i| (i as f32 * 0.1).sin()).collect::<Vec<_>>(),
                [batch, c, hw, hw],
            ),
            &d,
        );
        let w: Tensor<4> = Tensor::from_data(
            TensorData::new(
                (0..c * k * k).map(|i| (i as f32).cos()).collect::<Vec<_>>(),
                [c, 1, k, k],
            ),
            &d,
        );
        let total: usize = (hw.div_ceil(s) - 1) * s + k - hw;
        let (p0, p1) = (total / 2, total - total / 2);
        let geometry = [s, s, p0, p0, p1, p1, 1, 1];
        let opts = ConvOptions {
            stride: [s, s],
            padding: [(p0, p1), (p0, p1)],
            dilation: [1, 1],
            groups: c,
        };
        let ours = best(|| {
            let _ = depthwise_conv2d(x.clone(), w.clone(), geometry).into_data();
        });
        let burn = best(|| {
            let _ = conv2d(x.clone(), w.clone(), None, opts.clone()).into_data();
        });
        let last = best(|| {
            let _ = depthwise_channels_last(x.clone(), w.clone(), None, geometry).into_data();
        });
        println!(
            "b{batch:<3} c{c:5} {hw:3}x{hw:<3} k{k} s{s}: direct {ours:8.3} ms   channels-last {last:8.3} ms   burn {burn:8.3} ms"
        );
    }
}
