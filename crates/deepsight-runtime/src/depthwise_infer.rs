//! Inference-only depthwise convolution in channels-last layout, for batches of small maps.
//!
//! Why: the planar kernel of [`crate::depthwise`] vectorises along a map's rows, which on 7x7 and
//! 14x14 maps are one or two vector widths long; burn's grouped convolution is slower still. In
//! channels-last layout every tap is one multiply-add over all channels (hundreds, contiguous), so
//! the same arithmetic runs at vector speed whatever the map size. The transposes in and out are
//! two passes over memory. Used for inference runs (no autodiff) where the batch makes those maps
//! many: occlusion's and Score-CAM's batches.

use crate::depthwise::Geometry;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;

#[derive(Clone, Copy)]
struct Shape {
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    hp: usize,
    wp: usize,
}

/// Depthwise convolution of `x` `[n, c, h, w]` by `weight` `[c, 1, kh, kw]`, plus `bias`.
pub fn depthwise_channels_last(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    g: Geometry,
) -> Tensor<4> {
    let device = x.device();
    let [n, c, h, w] = x.dims();
    let [_, _, kh, kw] = weight.dims();
    let [sh, sw, pt, pl, pb, pr, dh, dw] = g;
    let (hp, wp) = (h + pt + pb, w + pl + pr);
    let ho = (hp - (kh - 1) * dh - 1) / sh + 1;
    let wo = (wp - (kw - 1) * dw - 1) / sw + 1;
    let s = Shape {
        c,
        h,
        w,
        kh,
        kw,
        ho,
        wo,
        hp,
        wp,
    };
    let xs = crate::to_vec(x);
    let wv = crate::to_vec(weight);
    // Taps major, channels minor.
    let mut taps = vec![0f32; kh * kw * c];
    for ch in 0..c {
        for t in 0..kh * kw {
            taps[t * c + ch] = wv[ch * kh * kw + t];
        }
    }
    let bias = bias.map_or_else(|| vec![0f32; c], crate::to_vec);
    let mut out = vec![0f32; n * c * ho * wo];
    out.par_chunks_mut(c * ho * wo)
        .zip(xs.par_chunks(c * h * w))
        .for_each(|(o, x)| image(x, o, &taps, &bias, s, [sh, sw, pt, pl, dh, dw]));
    Tensor::from_data(TensorData::new(out, [n, c, ho, wo]), &device)
}

fn image(x: &[f32], out: &mut [f32], taps: &[f32], bias: &[f32], s: Shape, g: [usize; 6]) {
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
        // SAFETY: the CPU has the features the function is compiled for (checked just above).
        return unsafe { image_avx2(x, out, taps, bias, s, g) };
    }
    image_generic(x, out, taps, bias, s, g)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn image_avx2(x: &[f32], out: &mut [f32], taps: &[f32], bias: &[f32], s: Shape, g: [usize; 6]) {
    image_generic(x, out, taps, bias, s, g)
}

#[inline(always)]
fn image_generic(x: &[f32], out: &mut [f32], taps: &[f32], bias: &[f32], s: Shape, g: [usize; 6]) {
    let Shape {
        c,
        h,
        w,
        kh,
        kw,
        ho,
        wo,
        hp,
        wp,
    } = s;
    let [sh, sw, pt, pl, dh, dw] = g;
    // Blocks of channels keep the padded block, its taps and the accumulator in L1/L2.
    const BLOCK: usize = 64;
    let mut pad = vec![0f32; hp * wp * BLOCK];
    let mut acc = [0f32; BLOCK];
    for c0 in (0..c).step_by(BLOCK) {
        let cb = BLOCK.min(c - c0);
        pad.fill(0.0);
        for k in 0..cb {
            for y in 0..h {
                let row = &x[((c0 + k) * h + y) * w..][..w];
                let base = (y + pt) * wp + pl;
                for (xx, &v) in row.iter().enumerate() {
                    pad[(base + xx) * BLOCK + k] = v;
                }
            }
        }
        for oy in 0..ho {
            for ox in 0..wo {
                acc[..cb].copy_from_slice(&bias[c0..c0 + cb]);
                for i in 0..kh {
                    for j in 0..kw {
                        let src = &pad[((oy * sh + i * dh) * wp + ox * sw + j * dw) * BLOCK..][..cb];
                        let t = &taps[(i * kw + j) * c + c0..][..cb];
                        for ((a, &v), &k) in acc[..cb].iter_mut().zip(src).zip(t) {
                            *a += v * k;
                        }
                    }
                }
                let p = oy * wo + ox;
                for (k, &a) in acc[..cb].iter().enumerate() {
                    out[(c0 + k) * ho * wo + p] = a;
                }
            }
        }
    }
}
