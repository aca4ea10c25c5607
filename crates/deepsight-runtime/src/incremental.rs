//! Incremental inference for occlusion (the idea of Krypton, Nakandala et al., SIGMOD 2019): an
//! image with a patch replaced differs from the original only inside the patch, and each layer's
//! output only inside the patch's projective field. Every layer is recomputed only there, on crops
//! of the cached activations of the unedited image, and the result is exact (the same arithmetic
//! on the same numbers, up to float summation order).
//!
//! A batch of edits (one patch each, all the same size) is carried through the plan as
//! [`Val::Patch`]: one region size per layer for the whole batch, one origin per image, the region's
//! values `[B, C, h, w]`. Windowed layers (convolutions, pooling) grow the region by their
//! receptive field; position-wise layers keep it; multi-input position-wise layers (residual adds,
//! concatenation) take the union. A region that would cover more than `full_fraction` of its
//! layer, and every layer this module does not know, falls back to full computation on the
//! materialised batch ([`Val::Full`]); a global average pool turns a region into exact sums.

use crate::error::{Result, RuntimeError};
use crate::exec::{RunSpec, apply, run};
use crate::graph::{NodeId, Padding, Pool};
use crate::ops::ExtOp;
use crate::plan::{Plan, StepOp};
use crate::value::ValueShape;
use burn::tensor::{Device, Tensor, TensorData};
use std::sync::Arc;

/// A batch of edits of one image: image `b` has the `[C, h, w]` block `values[b]` written at
/// `origins[b]` = `[top, left]`.
#[derive(Debug, Clone)]
pub struct PatchBatch {
    pub origins: Vec<[usize; 2]>,
    /// `[B, C, h, w]`, in the model's input space.
    pub values: Tensor<4>,
}

/// What a batch of edits gives.
#[derive(Debug, Clone)]
pub struct PatchedOutput {
    /// `[B, K]` class scores.
    pub logits: Tensor<2>,
    /// Per tapped layer, per image, the spatial sum of each channel: `[B * C]` row-major.
    pub tap_sums: Vec<Vec<f32>>,
    /// Multiply-accumulates of the convolutions and linear layers actually run.
    pub macs: u64,
}

/// A patched value taken apart: its node, region size, origins and values.
type PatchParts = (NodeId, [usize; 2], Vec<[usize; 2]>, Vec<f32>);

/// The unedited image's activation of one node.
struct Base {
    /// `[C, H, W]`.
    dims: [usize; 3],
    data: Vec<f32>,
    /// Spatial sum per channel, in f64 so that `sum - region + patch` stays exact enough.
    sums: Vec<f64>,
}

impl Base {
    fn new(t: Tensor<4>) -> Base {
        let [_, c, h, w] = t.dims();
        let data = crate::to_vec(t);
        let sums = data
            .chunks(h * w)
            .map(|ch| ch.iter().map(|&v| v as f64).sum())
            .collect();
        Base {
            dims: [c, h, w],
            data,
            sums,
        }
    }
}

/// A value of the batch at one node.
#[derive(Clone)]
enum Val {
    /// Equal to the base activation except in a `size` block at each image's origin.
    Patch {
        size: [usize; 2],
        origins: Vec<[usize; 2]>,
        data: Tensor<4>,
    },
    Full(Tensor<4>),
}

/// Incremental re-inference around one image, reusable for any number of patch batches.
pub struct Incremental {
    plan: Arc<Plan>,
    base: Vec<Option<Base>>,
    base_logits: Vec<f32>,
    taps: Vec<NodeId>,
    device: Device,
    full_macs: u64,
    /// Regions covering more than this fraction of a layer are computed in full.
    pub full_fraction: f32,
    /// Every node's logical shape, for the operations on values of other ranks.
    values: Vec<ValueShape>,
}

fn ceil_div(a: i64, b: i64) -> i64 {
    (a + b - 1).div_euclid(b)
}

/// The window of a convolution or pooling step, if it can be computed on a crop.
struct Window {
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    pads: [usize; 4],
    fill: f32,
    /// The step with zero padding, run on crops.
    op: StepOp,
}

fn window(op: &StepOp, input: [usize; 2]) -> Option<Window> {
    let pool = |p: &Pool, fill: f32, op: StepOp| Window {
        kernel: p.kernel,
        stride: p.stride,
        dilation: p.dilation,
        pads: p.padding,
        fill,
        op,
    };
    let unpadded = |p: &Pool| Pool {
        padding: [0; 4],
        ceil_mode: false,
        ..*p
    };
    match op {
        StepOp::Conv {
            weight,
            stride,
            dilation,
            padding,
            ..
        } => {
            let [_, _, kh, kw] = weight.dims();
            let pads = match padding {
                Padding::Explicit(p) => *p,
                same => same.resolve(input, [kh, kw], *stride, *dilation),
            };
            let mut op = op.clone();
            if let StepOp::Conv { padding, .. } = &mut op {
                *padding = Padding::Explicit([0; 4]);
            }
            Some(Window {
                kernel: [kh, kw],
                stride: *stride,
                dilation: *dilation,
                pads,
                fill: 0.0,
                op,
            })
        }
        // Windows past the padded edge (ceil mode) ignore what lies there: -inf does the same.
        StepOp::MaxPool(p) => Some(pool(p, f32::NEG_INFINITY, StepOp::MaxPool(unpadded(p)))),
        StepOp::AvgPool(p) if p.count_include_pad && !p.ceil_mode => {
            Some(pool(p, 0.0, StepOp::AvgPool(unpadded(p))))
        }
        _ => None,
    }
}

fn position_wise(op: &StepOp) -> bool {
    matches!(
        op,
        StepOp::Affine { .. }
            | StepOp::Rectifier(_)
            | StepOp::Identity
            | StepOp::Add
            | StepOp::Ext(
                ExtOp::Activation(_) | ExtOp::Lrn(_) | ExtOp::Softmax | ExtOp::Binary(_) | ExtOp::Concat
            )
    )
}

fn step_macs(op: &StepOp, out: [usize; 4]) -> u64 {
    let [n, c, h, w] = out.map(|d| d as u64);
    match op {
        StepOp::Conv { weight, .. } => {
            let [_, per_group, kh, kw] = weight.dims().map(|d| d as u64);
            n * c * h * w * per_group * kh * kw
        }
        StepOp::Linear { weight, .. } => {
            let [i, o] = weight.dims().map(|d| d as u64);
            n * i * o
        }
        _ => 0,
    }
}

/// Multiply-accumulates of one run of `plan`, given every node's output shape.
pub(crate) fn plan_macs(plan: &Plan, shapes: &[[usize; 4]]) -> u64 {
    plan.steps.iter().map(|s| step_macs(&s.op, shapes[s.node])).sum()
}

/// Writes rows `r0..r0 + rows`, columns `c0..c0 + cols` of `base` with `patch` (at `origin`, size
/// `psize`) written over it, `fill` outside the map, into `out` (`[C, rows, cols]`).
#[allow(clippy::too_many_arguments)]
fn crop(
    base: &Base,
    patch: Option<(&[f32], [usize; 2], [usize; 2])>,
    r0: i64,
    c0: i64,
    rows: usize,
    cols: usize,
    fill: f32,
    out: &mut Vec<f32>,
) {
    let [channels, h, w] = base.dims;
    for ch in 0..channels {
        let plane = &base.data[ch * h * w..(ch + 1) * h * w];
        for y in 0..rows as i64 {
            let iy = r0 + y;
            let start = out.len();
            out.resize(start + cols, fill);
            if iy < 0 || iy >= h as i64 {
                continue;
            }
            let row = &mut out[start..];
            let (x0, x1) = ((-c0).max(0), (w as i64 - c0).min(cols as i64));
            if x0 >= x1 {
                continue;
            }
            let src = iy as usize * w;
            row[x0 as usize..x1 as usize]
                .copy_from_slice(&plane[src + (c0 + x0) as usize..src + (c0 + x1) as usize]);
            if let Some((data, [ph, pw], [py, px])) = patch {
                let (py, px) = (py as i64, px as i64);
                if iy < py || iy >= py + ph as i64 {
                    continue;
                }
                let (a, b) = ((px - c0).max(x0), (px + pw as i64 - c0).min(x1));
                if a >= b {
                    continue;
                }
                let prow = &data[(ch * ph + (iy - py) as usize) * pw..][..pw];
                let (pa, pb) = ((c0 + a - px) as usize, (c0 + b - px) as usize);
                row[a as usize..b as usize].copy_from_slice(&prow[pa..pb]);
            }
        }
    }
}

impl Incremental {
    /// Runs `image` (`[1, C, H, W]`) once through `plan`, keeping every activation.
    pub(crate) fn new(
        plan: Arc<Plan>,
        image: Tensor<4>,
        taps: Vec<NodeId>,
        values: Vec<ValueShape>,
    ) -> Incremental {
        let device = image.device();
        let all: Vec<NodeId> = plan.steps.iter().map(|s| s.node).collect();
        let spec = RunSpec {
            capture: &all,
            values: &values,
            ..Default::default()
        };
        let out = run(&plan, image, &spec);
        let base_logits = crate::to_vec(out.output);
        let mut base: Vec<Option<Base>> = (0..plan.last_use.len()).map(|_| None).collect();
        let mut full_macs = 0;
        for (id, t) in out.captured {
            full_macs += plan
                .steps
                .iter()
                .find(|s| s.node == id)
                .map_or(0, |s| step_macs(&s.op, t.dims()));
            base[id] = Some(Base::new(t));
        }
        Incremental {
            plan,
            base,
            base_logits,
            taps,
            device,
            full_macs,
            full_fraction: 0.6,
            values,
        }
    }

    /// The unedited image's class scores.
    pub fn base_logits(&self) -> &[f32] {
        &self.base_logits
    }

    /// The unedited image's spatial sum of each channel of each tapped layer.
    pub fn base_tap_sums(&self) -> Vec<Vec<f32>> {
        self.taps
            .iter()
            .map(|&t| self.base(t).sums.iter().map(|&v| v as f32).collect())
            .collect()
    }

    /// Multiply-accumulates of one full forward pass of one image.
    pub fn full_macs(&self) -> u64 {
        self.full_macs
    }

    fn base(&self, id: NodeId) -> &Base {
        self.base[id].as_ref().expect("every step's activation is kept")
    }

    fn tensor(&self, data: Vec<f32>, dims: [usize; 4]) -> Tensor<4> {
        Tensor::from_data(TensorData::new(data, dims), &self.device)
    }

    /// The batch's value at `id` as full tensors.
    fn materialise(&self, id: NodeId, v: Val) -> Tensor<4> {
        match v {
            Val::Full(t) => t,
            Val::Patch { size, origins, data } => {
                let base = self.base(id);
                let [c, h, w] = base.dims;
                let patches = crate::to_vec(data);
                let per = c * size[0] * size[1];
                let mut out = Vec::with_capacity(origins.len() * c * h * w);
                for (b, &o) in origins.iter().enumerate() {
                    let p = &patches[b * per..(b + 1) * per];
                    crop(base, Some((p, size, o)), 0, 0, h, w, 0.0, &mut out);
                }
                self.tensor(out, [origins.len(), c, h, w])
            }
        }
    }

    /// Spatial sums per image and channel.
    fn sums(&self, id: NodeId, v: &Val) -> Vec<f64> {
        match v {
            Val::Full(t) => {
                let [n, c, h, w] = t.dims();
                let data = crate::to_vec(t.clone());
                (0..n * c)
                    .map(|i| data[i * h * w..(i + 1) * h * w].iter().map(|&x| x as f64).sum())
                    .collect()
            }
            Val::Patch { size, origins, data } => {
                let base = self.base(id);
                let [c, _, w] = base.dims;
                let patches = crate::to_vec(data.clone());
                let [ph, pw] = *size;
                let mut out = Vec::with_capacity(origins.len() * c);
                for (b, &[py, px]) in origins.iter().enumerate() {
                    for ch in 0..c {
                        let p = &patches[(b * c + ch) * ph * pw..][..ph * pw];
                        let plane = &base.data[ch * base.dims[1] * w..];
                        let old: f64 = (0..ph)
                            .flat_map(|y| &plane[(py + y) * w + px..][..pw])
                            .map(|&x| x as f64)
                            .sum();
                        let new: f64 = p.iter().map(|&x| x as f64).sum();
                        out.push(base.sums[ch] - old + new);
                    }
                }
                out
            }
        }
    }

    /// Class scores (and tap sums) of the image under each edit of `batch`.
    pub fn run(&self, batch: &PatchBatch) -> Result<PatchedOutput> {
        let input = self.base(self.plan.steps[0].node);
        let [b, c, ph, pw] = batch.values.dims();
        let [_, h, w] = input.dims;
        let fits = batch.origins.iter().all(|o| o[0] + ph <= h && o[1] + pw <= w);
        if b != batch.origins.len() || c != input.dims[0] || !fits {
            return Err(RuntimeError::InputShape {
                got: vec![b, c, ph, pw],
                reason: format!(
                    "{} origins for {b} patches of a [{}, {h}, {w}] image; every patch must lie inside it",
                    batch.origins.len(),
                    input.dims[0]
                ),
            });
        }
        let mut values: Vec<Option<Val>> = vec![None; self.plan.last_use.len()];
        let mut macs = 0u64;
        let mut tap_sums = vec![Vec::new(); self.taps.len()];
        for (s, step) in self.plan.steps.iter().enumerate() {
            let mut args = Vec::with_capacity(step.inputs.len());
            for (j, &i) in step.inputs.iter().enumerate() {
                let last = self.plan.last_use[i] == s && !step.inputs[j + 1..].contains(&i);
                let v = if last { values[i].take() } else { values[i].clone() };
                args.push((i, v.expect("plan order guarantees inputs are computed")));
            }
            let y = match &step.op {
                StepOp::Input => Val::Patch {
                    size: [ph, pw],
                    origins: batch.origins.clone(),
                    data: batch.values.clone(),
                },
                op => {
                    let started = crate::exec::profiling().then(std::time::Instant::now);
                    let kinds: Option<Vec<&str>> = started.map(|_| {
                        args.iter()
                            .map(|(_, v)| {
                                if matches!(v, Val::Full(_)) {
                                    "full"
                                } else {
                                    "patch"
                                }
                            })
                            .collect()
                    });
                    let y = self.step(step.node, op, args, &mut macs);
                    if let Some(t) = started {
                        let kind = match op {
                            StepOp::Conv { groups, .. } if *groups > 1 => "depthwise".to_string(),
                            StepOp::Conv { weight, .. } => format!("conv{}", weight.dims()[2]),
                            other => format!("{:?}", std::mem::discriminant(other)),
                        };
                        let size = match &y {
                            Val::Full(t) => t.dims(),
                            Val::Patch { data, .. } => data.dims(),
                        };
                        eprintln!(
                            "incprofile {:.3} {kind} {kinds:?} {size:?}",
                            t.elapsed().as_secs_f64() * 1e3
                        );
                    }
                    y
                }
            };
            if let Some(t) = self.taps.iter().position(|&id| id == step.node) {
                tap_sums[t] = self.sums(step.node, &y).into_iter().map(|x| x as f32).collect();
            }
            values[step.node] = Some(y);
        }
        let out = values[self.plan.output]
            .take()
            .expect("the output node is computed last");
        let out = self.materialise(self.plan.output, out);
        let [n, k, _, _] = out.dims();
        Ok(PatchedOutput {
            logits: out.reshape([n, k]),
            tap_sums,
            macs,
        })
    }

    fn step(&self, node: NodeId, op: &StepOp, args: Vec<(NodeId, Val)>, macs: &mut u64) -> Val {
        let spec = RunSpec {
            values: &self.values,
            ..Default::default()
        };
        let all_patch = args.iter().all(|(_, v)| matches!(v, Val::Patch { .. }));
        let out_dims = self.base(node).dims;
        let full = |args: Vec<(NodeId, Val)>, macs: &mut u64| {
            let ids: Vec<NodeId> = args.iter().map(|(i, _)| *i).collect();
            let ts: Vec<Tensor<4>> = args.into_iter().map(|(i, v)| self.materialise(i, v)).collect();
            let y = apply(op, node, &ids, ts, &spec);
            *macs += step_macs(op, y.dims());
            Val::Full(y)
        };
        if !all_patch {
            return full(args, macs);
        }
        if let [(i, Val::Patch { size, origins, data })] = args.as_slice() {
            if matches!(op, StepOp::GlobalAvgPool) {
                let [c, h, w] = self.base(*i).dims;
                let v = self.sums(*i, &args[0].1);
                let mean = v.iter().map(|&x| (x / (h * w) as f64) as f32).collect();
                return Val::Full(self.tensor(mean, [origins.len(), c, 1, 1]));
            }
            if position_wise(op) {
                // Moved, not cloned: a rectifier then works in place.
                let Some((_, Val::Patch { size, origins, data })) = args.into_iter().next() else {
                    unreachable!("matched above")
                };
                let y = apply(op, node, &[], vec![data], &spec);
                return Val::Patch {
                    size,
                    origins,
                    data: y,
                };
            }
            let [_, ih, iw] = self.base(*i).dims;
            if let Some(win) = window(op, [ih, iw]) {
                return self
                    .windowed(node, *i, &win, size, origins, data, macs)
                    .unwrap_or_else(|| full(args, macs));
            }
            return full(args, macs);
        }
        let same_size = args.iter().all(|(i, _)| self.base(*i).dims[1..] == out_dims[1..]);
        if position_wise(op) && same_size {
            return self.union(node, op, args, macs);
        }
        full(args, macs)
    }

    /// The output region of `node` under a windowed op, for each image: `(size, origins)`, or
    /// `None` where it is too large to be worth a crop.
    fn out_region(
        &self,
        node: NodeId,
        win: &Window,
        size: &[usize; 2],
        origins: &[[usize; 2]],
    ) -> Option<([usize; 2], Vec<[usize; 2]>)> {
        let [_, oh, ow] = self.base(node).dims;
        let out = [oh, ow];
        let spans: Vec<[(i64, i64); 2]> = origins
            .iter()
            .map(|o| {
                [0, 1].map(|a| {
                    let (s, k, d, p) = (
                        win.stride[a] as i64,
                        win.kernel[a] as i64,
                        win.dilation[a] as i64,
                        win.pads[a] as i64,
                    );
                    let lo = ceil_div(o[a] as i64 + p - (k - 1) * d, s).max(0);
                    let hi = ((o[a] + size[a]) as i64 - 1 + p).div_euclid(s) + 1;
                    (lo, hi.min(out[a] as i64).max(lo + 1))
                })
            })
            .collect();
        let sz = [0, 1].map(|a| {
            spans
                .iter()
                .map(|s| (s[a].1 - s[a].0) as usize)
                .max()
                .unwrap_or(1)
                .min(out[a])
        });
        if (sz[0] * sz[1]) as f32 > self.full_fraction * (oh * ow) as f32 {
            return None;
        }
        let starts = spans
            .iter()
            .map(|s| [0, 1].map(|a| (s[a].0 as usize).min(out[a] - sz[a])))
            .collect();
        Some((sz, starts))
    }

    #[allow(clippy::too_many_arguments)]
    fn windowed(
        &self,
        node: NodeId,
        input: NodeId,
        win: &Window,
        size: &[usize; 2],
        origins: &[[usize; 2]],
        data: &Tensor<4>,
        macs: &mut u64,
    ) -> Option<Val> {
        let (osize, starts) = self.out_region(node, win, size, origins)?;
        let base = self.base(input);
        let rows = (osize[0] - 1) * win.stride[0] + (win.kernel[0] - 1) * win.dilation[0] + 1;
        let cols = (osize[1] - 1) * win.stride[1] + (win.kernel[1] - 1) * win.dilation[1] + 1;
        let patches = crate::to_vec(data.clone());
        let per = base.dims[0] * size[0] * size[1];
        let mut buf = Vec::with_capacity(origins.len() * base.dims[0] * rows * cols);
        for (b, (o, st)) in origins.iter().zip(&starts).enumerate() {
            let r0 = (st[0] * win.stride[0]) as i64 - win.pads[0] as i64;
            let c0 = (st[1] * win.stride[1]) as i64 - win.pads[1] as i64;
            let p = &patches[b * per..(b + 1) * per];
            crop(base, Some((p, *size, *o)), r0, c0, rows, cols, win.fill, &mut buf);
        }
        let x = self.tensor(buf, [origins.len(), base.dims[0], rows, cols]);
        let y = apply(&win.op, node, &[], vec![x], &RunSpec::default());
        *macs += step_macs(&win.op, y.dims());
        Some(Val::Patch {
            size: osize,
            origins: starts,
            data: y,
        })
    }

    /// A position-wise op of several patched inputs, on the union of their regions.
    fn union(&self, node: NodeId, op: &StepOp, args: Vec<(NodeId, Val)>, macs: &mut u64) -> Val {
        let [_, h, w] = self.base(node).dims;
        let regions: Vec<PatchParts> = args
            .into_iter()
            .map(|(i, v)| match v {
                Val::Patch { size, origins, data } => (i, size, origins, crate::to_vec(data)),
                Val::Full(_) => unreachable!("checked by the caller"),
            })
            .collect();
        let n = regions[0].2.len();
        let spans: Vec<[(usize, usize); 2]> = (0..n)
            .map(|b| {
                [0, 1].map(|a| {
                    let lo = regions.iter().map(|r| r.2[b][a]).min().unwrap_or(0);
                    let hi = regions.iter().map(|r| r.2[b][a] + r.1[a]).max().unwrap_or(0);
                    (lo, hi)
                })
            })
            .collect();
        let dims = [h, w];
        let sz = [0, 1].map(|a| {
            spans
                .iter()
                .map(|s| s[a].1 - s[a].0)
                .max()
                .unwrap_or(1)
                .min(dims[a])
        });
        let starts: Vec<[usize; 2]> = spans
            .iter()
            .map(|s| [0, 1].map(|a| s[a].0.min(dims[a] - sz[a])))
            .collect();
        let inputs = regions
            .iter()
            .map(|(i, size, origins, patches)| {
                let base = self.base(*i);
                let per = base.dims[0] * size[0] * size[1];
                let mut buf = Vec::with_capacity(n * base.dims[0] * sz[0] * sz[1]);
                for b in 0..n {
                    let p = &patches[b * per..(b + 1) * per];
                    let [r0, c0] = starts[b].map(|v| v as i64);
                    crop(
                        base,
                        Some((p, *size, origins[b])),
                        r0,
                        c0,
                        sz[0],
                        sz[1],
                        0.0,
                        &mut buf,
                    );
                }
                self.tensor(buf, [n, base.dims[0], sz[0], sz[1]])
            })
            .collect();
        let y = apply(op, node, &[], inputs, &RunSpec::default());
        *macs += step_macs(op, y.dims());
        Val::Patch {
            size: sz,
            origins: starts,
            data: y,
        }
    }
}
