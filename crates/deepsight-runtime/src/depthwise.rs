//! A direct depthwise convolution (one filter per channel), forward and backward, as a backend
//! extension of burn's `flex` CPU backend.
//!
//! Why: flex runs depthwise convolutions at 1-2 GFLOP/s (scalar strided loops, one task per
//! plane), which made them a third of EfficientNet-Lite0's forward time though they are 3% of
//! its FLOPs. Here each plane is copied once into a zero-padded buffer split into `stride`
//! column phases, so every tap of every output row is one contiguous, vectorisable
//! multiply-add over the row; the input gradient scatters through the same layout.
//! Verified against burn's own grouped convolution and finite differences (tests/depthwise.rs).

use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::tensor::{Tensor, TensorData};
use burn_flex::FlexTensor;
use rayon::prelude::*;

/// `[stride_h, stride_w, pad_top, pad_left, pad_bottom, pad_right, dilation_h, dilation_w]`.
pub type Geometry = [usize; 8];

#[derive(Debug, Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    oh: usize,
    ow: usize,
    /// Padded height and the width of one column phase.
    hp: usize,
    wq: usize,
    g: Geometry,
}

impl Dims {
    fn new([n, c, h, w]: [usize; 4], [kh, kw]: [usize; 2], g: Geometry) -> Dims {
        let [sh, sw, pt, pl, pb, pr, dh, dw] = g;
        let hp = h + pt + pb;
        let wp = w + pl + pr;
        let oh = (hp - (kh - 1) * dh - 1) / sh + 1;
        let ow = (wp - (kw - 1) * dw - 1) / sw + 1;
        Dims {
            n,
            c,
            h,
            w,
            kh,
            kw,
            oh,
            ow,
            hp,
            wq: wp.div_ceil(sw),
            g,
        }
    }
    fn plane(&self) -> usize {
        self.hp * self.g[1] * self.wq
    }
    /// Offset in the phase buffer of padded row `row`, column `j * sw + r`.
    fn at(&self, row: usize, r: usize, j: usize) -> usize {
        (row * self.g[1] + r) * self.wq + j
    }
    /// For tap `(a, b)`: the padded row of output row 0, and the phase and column shift.
    fn tap(&self, b: usize) -> (usize, usize) {
        let off = b * self.g[7];
        (off % self.g[1], off / self.g[1])
    }
}

/// For phase `r`: the first input column that lands in it, and that column's index in the phase.
fn phase_start(r: usize, pl: usize, sw: usize) -> (usize, usize) {
    let jx0 = (r + sw - pl % sw) % sw;
    (jx0, (jx0 + pl) / sw)
}

/// One input plane, zero-padded, split into column phases.
fn phases(x: &[f32], d: &Dims, buf: &mut [f32]) {
    let [_, sw, pt, pl, ..] = d.g;
    buf.fill(0.0);
    for i in 0..d.h {
        let src = &x[i * d.w..(i + 1) * d.w];
        if sw == 1 {
            let start = d.at(i + pt, 0, pl);
            buf[start..start + d.w].copy_from_slice(src);
            continue;
        }
        for r in 0..sw {
            let (jx0, q0) = phase_start(r, pl, sw);
            let start = d.at(i + pt, r, q0);
            for (dst, v) in buf[start..].iter_mut().zip(src.iter().skip(jx0).step_by(sw)) {
                *dst = *v;
            }
        }
    }
}

/// The inverse of [`phases`]: reads the unpadded plane back out of a phase buffer.
fn unphase(buf: &[f32], d: &Dims, out: &mut [f32]) {
    let [_, sw, pt, pl, ..] = d.g;
    for i in 0..d.h {
        let dst = &mut out[i * d.w..(i + 1) * d.w];
        if sw == 1 {
            let start = d.at(i + pt, 0, pl);
            dst.copy_from_slice(&buf[start..start + d.w]);
            continue;
        }
        for r in 0..sw {
            let (jx0, q0) = phase_start(r, pl, sw);
            let start = d.at(i + pt, r, q0);
            for (o, v) in dst.iter_mut().skip(jx0).step_by(sw).zip(&buf[start..]) {
                *o = *v;
            }
        }
    }
}

/// `acc[j] += sum_b w[b] * src[b][j]`: all taps of one kernel row in one pass over the output
/// row, unrolled for the common kernel widths.
#[inline(always)]
fn row_taps<const K: usize>(acc: &mut [f32], src: [&[f32]; K], w: [f32; K]) {
    let n = acc.len();
    let src = src.map(|s| &s[..n]);
    for j in 0..n {
        let mut v = acc[j];
        for b in 0..K {
            v += w[b] * src[b][j];
        }
        acc[j] = v;
    }
}

fn forward_row<const K: usize>(acc: &mut [f32], buf: &[f32], row: usize, w: &[f32], d: &Dims) {
    let src: [&[f32]; K] = std::array::from_fn(|b| {
        let (r, q) = d.tap(b);
        &buf[d.at(row, r, q)..]
    });
    row_taps::<K>(acc, src, std::array::from_fn(|b| w[b]));
}

fn forward_plane(x: &[f32], w: &[f32], d: &Dims, buf: &mut [f32], out: &mut [f32]) {
    phases(x, d, buf);
    let [sh, _, _, _, _, _, dh, _] = d.g;
    out.fill(0.0);
    for o in 0..d.oh {
        let acc = &mut out[o * d.ow..(o + 1) * d.ow];
        for a in 0..d.kh {
            let row = o * sh + a * dh;
            let wr = &w[a * d.kw..(a + 1) * d.kw];
            match d.kw {
                3 => forward_row::<3>(acc, buf, row, wr, d),
                5 => forward_row::<5>(acc, buf, row, wr, d),
                7 => forward_row::<7>(acc, buf, row, wr, d),
                _ => {
                    for (b, &wv) in wr.iter().enumerate() {
                        let (r, q) = d.tap(b);
                        let src = &buf[d.at(row, r, q)..d.at(row, r, q) + d.ow];
                        acc.iter_mut().zip(src).for_each(|(y, s)| *y += wv * s);
                    }
                }
            }
        }
    }
}

fn grad_input_plane(g: &[f32], w: &[f32], d: &Dims, buf: &mut [f32], out: &mut [f32]) {
    let [sh, _, _, _, _, _, dh, _] = d.g;
    buf.fill(0.0);
    for o in 0..d.oh {
        let grow = &g[o * d.ow..(o + 1) * d.ow];
        for a in 0..d.kh {
            let row = o * sh + a * dh;
            for b in 0..d.kw {
                let (r, q) = d.tap(b);
                let wv = w[a * d.kw + b];
                let start = d.at(row, r, q);
                for (dst, gv) in buf[start..start + d.ow].iter_mut().zip(grow) {
                    *dst += wv * gv;
                }
            }
        }
    }
    unphase(buf, d, out);
}

fn grad_weight_plane(x: &[f32], g: &[f32], d: &Dims, buf: &mut [f32], out: &mut [f32]) {
    phases(x, d, buf);
    let [sh, _, _, _, _, _, dh, _] = d.g;
    for a in 0..d.kh {
        for b in 0..d.kw {
            let (r, q) = d.tap(b);
            let mut sum = 0.0f32;
            for o in 0..d.oh {
                let start = d.at(o * sh + a * dh, r, q);
                sum += buf[start..start + d.ow]
                    .iter()
                    .zip(&g[o * d.ow..(o + 1) * d.ow])
                    .map(|(x, g)| x * g)
                    .sum::<f32>();
            }
            out[a * d.kw + b] += sum;
        }
    }
}

/// Runs `work(plane index, output chunk, scratch)` over all `n * c` planes in parallel, batching
/// small planes so that each task has a few thousand outputs.
fn par_planes(
    out: &mut [f32],
    chunk: usize,
    scratch: usize,
    work: impl Fn(usize, &mut [f32], &mut [f32]) + Sync,
) {
    let min_len = (4096 / chunk.max(1)).max(1);
    out.par_chunks_mut(chunk)
        .enumerate()
        .with_min_len(min_len)
        .for_each_init(|| vec![0f32; scratch], |buf, (p, o)| work(p, o, buf));
}

fn flex_f32(t: FloatTensor<Flex>) -> (FlexTensor, [usize; 4]) {
    let t: FlexTensor = t.to_contiguous();
    let s = t.layout().shape();
    let dims = [s[0], s[1], s[2], s[3]];
    (t, dims)
}

fn flex_out(data: Vec<f32>, shape: [usize; 4]) -> FloatTensor<Flex> {
    FlexTensor::from_data(TensorData::new(data, shape))
}

/// The gradient kernels, which only the autodiff wrapper calls.
pub trait DepthwiseKernels: Backend {
    /// `dL/dx` of shape `[n, c, in_h, in_w]` from `dL/dy`.
    fn depthwise_grad_input(
        grad: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        input: [usize; 2],
        g: Geometry,
    ) -> FloatTensor<Self>;
    /// `dL/dw` of shape `[c, 1, kh, kw]` from the input and `dL/dy`.
    fn depthwise_grad_weight(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        kernel: [usize; 2],
        g: Geometry,
    ) -> FloatTensor<Self>;
}

impl DepthwiseKernels for Flex {
    fn depthwise_grad_input(
        grad: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        [h, w]: [usize; 2],
        g: Geometry,
    ) -> FloatTensor<Self> {
        let (grad, [n, c, _, _]) = flex_f32(grad);
        let (weight, [_, _, kh, kw]) = flex_f32(weight);
        let d = Dims::new([n, c, h, w], [kh, kw], g);
        let (gs, ws): (&[f32], &[f32]) = (grad.storage(), weight.storage());
        let mut out = vec![0f32; n * c * h * w];
        par_planes(&mut out, h * w, d.plane(), |p, o, buf| {
            let ch = p % c;
            grad_input_plane(
                &gs[p * d.oh * d.ow..(p + 1) * d.oh * d.ow],
                &ws[ch * kh * kw..(ch + 1) * kh * kw],
                &d,
                buf,
                o,
            )
        });
        flex_out(out, [n, c, h, w])
    }

    fn depthwise_grad_weight(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        [kh, kw]: [usize; 2],
        g: Geometry,
    ) -> FloatTensor<Self> {
        let (x, shape) = flex_f32(x);
        let (grad, _) = flex_f32(grad);
        let d = Dims::new(shape, [kh, kw], g);
        let (xs, gs): (&[f32], &[f32]) = (x.storage(), grad.storage());
        let (plane_in, plane_out, k) = (d.h * d.w, d.oh * d.ow, kh * kw);
        let mut per_item = vec![0f32; d.n * d.c * k];
        par_planes(&mut per_item, k, d.plane(), |p, o, buf| {
            grad_weight_plane(
                &xs[p * plane_in..(p + 1) * plane_in],
                &gs[p * plane_out..(p + 1) * plane_out],
                &d,
                buf,
                o,
            )
        });
        let mut out = vec![0f32; d.c * k];
        for item in per_item.chunks(d.c * k) {
            out.iter_mut().zip(item).for_each(|(a, b)| *a += b);
        }
        flex_out(out, [d.c, 1, kh, kw])
    }
}

#[backend_extension(Autodiff, Flex)]
pub trait DepthwiseBackend: Backend {
    /// Depthwise convolution of `x [n, c, h, w]` with `weight [c, 1, kh, kw]`, no bias.
    fn depthwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        geometry: [usize; 8],
    ) -> FloatTensor<Self>;
}

impl DepthwiseBackend for Flex {
    fn depthwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        geometry: [usize; 8],
    ) -> FloatTensor<Self> {
        let (x, shape) = flex_f32(x);
        let (weight, [_, _, kh, kw]) = flex_f32(weight);
        let d = Dims::new(shape, [kh, kw], geometry);
        let (xs, ws): (&[f32], &[f32]) = (x.storage(), weight.storage());
        let (plane_in, plane_out) = (d.h * d.w, d.oh * d.ow);
        let mut out = vec![0f32; d.n * d.c * plane_out];
        par_planes(&mut out, plane_out, d.plane(), |p, o, buf| {
            let ch = p % d.c;
            forward_plane(
                &xs[p * plane_in..(p + 1) * plane_in],
                &ws[ch * kh * kw..(ch + 1) * kh * kw],
                &d,
                buf,
                o,
            )
        });
        flex_out(out, [d.n, d.c, d.oh, d.ow])
    }
}

impl<B: Backend + DepthwiseBackend + DepthwiseKernels, C: CheckpointStrategy> DepthwiseBackend
    for Autodiff<B, C>
{
    fn depthwise_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        geometry: [usize; 8],
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct DepthwiseBackward {
            geometry: Geometry,
        }

        impl<B: Backend + DepthwiseKernels> Backward<B, 2> for DepthwiseBackward {
            type State = (FloatTensor<B>, FloatTensor<B>);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_w] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x, weight) = ops.state;
                let xs = x.shape();
                let ws = weight.shape();
                if let Some(node) = node_w {
                    let gw = B::depthwise_grad_weight(x, grad.clone(), [ws[2], ws[3]], self.geometry);
                    grads.register::<B>(node.id, gw);
                }
                if let Some(node) = node_x {
                    let gx = B::depthwise_grad_input(grad, weight, [xs[2], xs[3]], self.geometry);
                    grads.register::<B>(node.id, gx);
                }
            }
        }

        match (DepthwiseBackward { geometry })
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (xp, wp) = (x.primitive().clone(), weight.primitive().clone());
                let out = B::depthwise_conv2d(xp.clone(), wp.clone(), geometry);
                prep.finish((xp, wp), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::depthwise_conv2d(
                x.into_primitive(),
                weight.into_primitive(),
                geometry,
            )),
        }
    }
}

/// Whether to use the direct kernel for `x`: on flex, for maps of at least 14x14 (on 7x7 maps
/// per-plane overhead dominates and burn's kernel is about twice as fast: measured by the
/// `depthwise_speed` example).
/// `DEEPSIGHT_DEPTHWISE=burn` turns it off, for side-by-side benchmarks.
pub fn worthwhile(x: &Tensor<4>) -> bool {
    let [_, _, h, w] = x.dims();
    !disabled() && h * w >= 14 * 14 && crate::flex::is_flex(&x.device())
}

/// Whether `DEEPSIGHT_DEPTHWISE=burn` asks for burn's grouped convolution everywhere.
pub fn disabled() -> bool {
    static OFF: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OFF.get_or_init(|| std::env::var_os("DEEPSIGHT_DEPTHWISE").is_some_and(|v| v == "burn"))
}

/// Depthwise convolution of `x` by `weight [c, 1, kh, kw]` with `geometry`.
pub fn depthwise_conv2d(x: Tensor<4>, weight: Tensor<4>, geometry: Geometry) -> Tensor<4> {
    Tensor::from_dispatch(<Dispatch as DepthwiseBackend>::depthwise_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        geometry,
    ))
}
