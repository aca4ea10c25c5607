//! Differentiable bilinear upsampling with PyTorch's `align_corners=False` geometry, as two small
//! matrix products `R_h M R_w^T` (exact, and cheap for the few-pixel maps L-CAM upsamples).

use deepsight_runtime::{Device, Tensor, TensorData};

/// The `[out, input]` matrix of 1-D bilinear interpolation with half-pixel centres
/// (`src = max((dst + 0.5) * input / out - 0.5, 0)`, PyTorch's `upsample_bilinear2d`).
pub fn bilinear_matrix(input: usize, out: usize) -> Vec<f32> {
    let mut m = vec![0f32; out * input];
    let scale = input as f64 / out as f64;
    for i in 0..out {
        let src = ((i as f64 + 0.5) * scale - 0.5).max(0.0);
        let i0 = (src.floor() as usize).min(input - 1);
        let i1 = (i0 + 1).min(input - 1);
        let l = (src - i0 as f64) as f32;
        m[i * input + i0] += 1.0 - l;
        m[i * input + i1] += l;
    }
    m
}

/// Upsamples `[N, M, h, w]` maps to `[N, M, height, width]`.
pub fn upsample_bilinear(maps: Tensor<4>, height: usize, width: usize, device: &Device) -> Tensor<4> {
    let [n, m, h, w] = maps.dims();
    let rh = Tensor::<2>::from_data(TensorData::new(bilinear_matrix(h, height), [height, h]), device);
    let rwt =
        Tensor::<2>::from_data(TensorData::new(bilinear_matrix(w, width), [width, w]), device).transpose();
    // [N*M*h, w] x [w, width] -> rows upsampled along the width.
    let along_w = maps.reshape([n * m * h, w]).matmul(rwt);
    // [N*M, h, width] -> [N*M, width, h] x [h, height]^T ... as one matmul over the h axis.
    let t = along_w
        .reshape([n * m, h, width])
        .swap_dims(1, 2)
        .reshape([n * m * width, h]);
    let along_h = t.matmul(rh.transpose());
    along_h
        .reshape([n * m, width, height])
        .swap_dims(1, 2)
        .reshape([n, m, height, width])
}
