//! Runs a [`Plan`] on a batch: inference, or an autodiff forward whose rectifiers follow a rule,
//! with captured activations, gradient probes and max-pool switches.

use crate::depthwise;
use crate::depthwise_infer::depthwise_channels_last;
use crate::graph::{NodeId, Padding, Pool};
use crate::ops::ExtOp;
use crate::plan::{Plan, StepOp};
use crate::rectifier::{RectifierRule, rectify};
use crate::value::ValueShape;
use burn::tensor::module::{avg_pool2d, conv2d, max_pool2d, max_pool2d_with_indices};
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use burn::tensor::{Int, Tensor};
use std::collections::HashMap;

/// What one run should do besides computing the output.
#[derive(Default)]
pub(crate) struct RunSpec<'a> {
    /// `Some(rule)`: an autodiff run whose rectifiers use `rule`; `None`: plain inference.
    pub rule: Option<RectifierRule>,
    /// Rectifiers whose rule differs from `rule`.
    pub overrides: &'a [(NodeId, RectifierRule)],
    /// Nodes whose values to return.
    pub capture: &'a [NodeId],
    /// Zero leaves added to node values so that their gradient is the gradient at that node.
    pub probes: &'a [(NodeId, Tensor<4>)],
    /// Record the argmax positions of every max-pool.
    pub switches: bool,
    /// Every node's logical shape (any batch: the run's replaces it), which operations on values
    /// of other ranks read; see [`crate::value`].
    pub values: &'a [ValueShape],
}

/// The output of a run.
pub(crate) struct RunOutput {
    pub output: Tensor<4>,
    pub captured: HashMap<NodeId, Tensor<4>>,
    pub switches: HashMap<NodeId, Tensor<4, Int>>,
}

fn pad_pairs(p: [usize; 4]) -> [(usize, usize); 2] {
    [(p[0], p[2]), (p[1], p[3])]
}

/// `DEEPSIGHT_PROFILE=1` prints each step's wall time (the flex backend runs eagerly, so a step's
/// time is its kernels' time).
pub(crate) fn profiling() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var_os("DEEPSIGHT_PROFILE").is_some_and(|v| v == "1"))
}

pub(crate) fn run(plan: &Plan, input: Tensor<4>, spec: &RunSpec) -> RunOutput {
    let profile = profiling();
    let mut values: Vec<Option<Tensor<4>>> = vec![None; plan.last_use.len()];
    let mut captured = HashMap::new();
    let mut switches = HashMap::new();
    let mut input = Some(input);
    // Moves a value out at its last read (the last argument slot of its last reader), else clones.
    let take = |values: &mut Vec<Option<Tensor<4>>>, inputs: &[NodeId], j: usize, step: usize| -> Tensor<4> {
        let id = inputs[j];
        let last = plan.last_use[id] == step && !inputs[j + 1..].contains(&id);
        let v = if last {
            values[id].take()
        } else {
            values[id].clone()
        };
        v.expect("plan order guarantees inputs are computed")
    };
    for (s, step) in plan.steps.iter().enumerate() {
        let started = profile.then(std::time::Instant::now);
        let args: Vec<Tensor<4>> = (0..step.inputs.len())
            .map(|j| take(&mut values, &step.inputs, j, s))
            .collect();
        let y = match (&step.op, spec.switches) {
            (StepOp::Input, _) => input.take().expect("one input node"),
            (StepOp::MaxPool(p), true) => {
                let (y, idx) = max_pool2d_with_indices(one(args), pool_options(p));
                switches.insert(step.node, idx);
                y
            }
            (op, _) => apply(op, step.node, &step.inputs, args, spec),
        };
        let y = match spec.probes.iter().find(|(id, _)| *id == step.node) {
            Some((_, probe)) => y + probe.clone(),
            None => y,
        };
        if let Some(t) = started {
            let kind = match &step.op {
                StepOp::Conv { groups, weight, .. } => format!("conv g{groups} {:?}", weight.dims()),
                other => format!("{:?}", std::mem::discriminant(other)),
            };
            eprintln!(
                "profile {:>9.3} ms  step {s:3} node {:3} {kind} {:?}",
                t.elapsed().as_secs_f64() * 1e3,
                step.node,
                y.dims()
            );
        }
        if spec.capture.contains(&step.node) {
            captured.insert(step.node, y.clone());
        }
        values[step.node] = Some(y);
    }
    let output = values[plan.output]
        .take()
        .expect("the output node is computed last");
    RunOutput {
        output,
        captured,
        switches,
    }
}

fn one(args: Vec<Tensor<4>>) -> Tensor<4> {
    args.into_iter()
        .next()
        .expect("arity checked when the graph was built")
}

fn pool_options(p: &Pool) -> MaxPoolOptions<2> {
    MaxPoolOptions {
        kernel_size: p.kernel,
        stride: p.stride,
        padding: pad_pairs(p.padding),
        dilation: p.dilation,
        ceil_mode: p.ceil_mode,
    }
}

/// Whether `x` is on an autodiff tape (a gradient run, or a value that a trainable module before
/// the classifier produced). Host-side kernels (which read values out and write a new tensor) are
/// chosen only when this is false, so they can never cut a gradient path: the choice follows the
/// tensor, not the caller's intent.
fn on_tape(x: &Tensor<4>, spec: &RunSpec) -> bool {
    spec.rule.is_some() || x.is_autodiff()
}

/// Applies one step's operation (inference or, with `spec.rule`, an autodiff forward) to its
/// arguments; the input step and max-pool switches are the caller's.
pub(crate) fn apply(
    op: &StepOp,
    node: NodeId,
    inputs: &[NodeId],
    args: Vec<Tensor<4>>,
    spec: &RunSpec,
) -> Tensor<4> {
    if let StepOp::Ext(ExtOp::Tensor(t)) = op {
        let n = args[0].dims()[0];
        let logical = |id: NodeId| {
            spec.values
                .get(id)
                .expect("runs of graphs with tensor operations carry the logical shapes")
                .with_batch(n)
        };
        let dims: Vec<Vec<usize>> = inputs.iter().map(|&i| logical(i)).collect();
        return t.apply(args, &dims, &logical(node));
    }
    let mut args = args.into_iter();
    let mut x = || args.next().expect("arity checked when the graph was built");
    match op {
        StepOp::Input => unreachable!("the input step is handled by the caller"),
        StepOp::Conv {
            weight,
            bias,
            stride,
            dilation,
            groups,
            padding,
        } => {
            let x = x();
            let [_, _, h, w] = x.dims();
            let [_, _, kh, kw] = weight.dims();
            let pads = match padding {
                Padding::Explicit(p) => *p,
                same => same.resolve([h, w], [kh, kw], *stride, *dilation),
            };
            let [out_c, per_group, _, _] = weight.dims();
            let is_depthwise = *groups == out_c && per_group == 1 && x.dims()[1] == out_c;
            let ([sh, sw], [dh, dw]) = (*stride, *dilation);
            let geometry = [sh, sw, pads[0], pads[1], pads[2], pads[3], dh, dw];
            if is_depthwise
                && !on_tape(&x, spec)
                && !depthwise::disabled()
                && crate::flex::is_flex(&x.device())
                && !depthwise::worthwhile(&x)
            {
                // Small maps, no autodiff: channels-last beats both planar kernels (depthwise_speed).
                depthwise_channels_last(x, weight.clone(), bias.clone(), geometry)
            } else if is_depthwise && depthwise::worthwhile(&x) {
                let y = depthwise::depthwise_conv2d(x, weight.clone(), geometry);
                match bias {
                    Some(b) => y + b.clone().reshape([1, out_c, 1, 1]),
                    None => y,
                }
            } else {
                let opts = ConvOptions {
                    stride: *stride,
                    padding: pad_pairs(pads),
                    dilation: *dilation,
                    groups: *groups,
                };
                conv2d(x, weight.clone(), bias.clone(), opts)
            }
        }
        StepOp::Affine { scale, shift } => x() * scale.clone() + shift.clone(),
        StepOp::Rectifier(bounds) => match spec.rule {
            Some(rule) => {
                let rule = spec
                    .overrides
                    .iter()
                    .find(|(id, _)| *id == node)
                    .map_or(rule, |o| o.1);
                rectify(x(), *bounds, rule)
            }
            None => {
                let x = x();
                if on_tape(&x, spec) || crate::flex::is_flex(&x.device()) {
                    rectify(x, *bounds, RectifierRule::Plain)
                } else {
                    match bounds.hi {
                        None => x.clamp_min(bounds.lo),
                        Some(hi) => x.clamp(bounds.lo, hi),
                    }
                }
            }
        },
        StepOp::MaxPool(p) => max_pool2d(x(), pool_options(p)),
        StepOp::AvgPool(p) => {
            let opts = AvgPoolOptions {
                kernel_size: p.kernel,
                stride: p.stride,
                padding: pad_pairs(p.padding),
                count_include_pad: p.count_include_pad,
                ceil_mode: p.ceil_mode,
            };
            avg_pool2d(x(), opts)
        }
        StepOp::GlobalAvgPool => {
            let x = x();
            let [n, c, h, w] = x.dims();
            x.reshape([n, c, h * w]).mean_dim(2).reshape([n, c, 1, 1])
        }
        StepOp::Flatten => {
            let x = x();
            let [n, c, h, w] = x.dims();
            x.reshape([n, c * h * w, 1, 1])
        }
        StepOp::Linear { weight, bias } => {
            let x = x();
            let [n, f, _, _] = x.dims();
            let out = weight.dims()[1];
            let mut y = x.reshape([n, f]).matmul(weight.clone());
            if let Some(b) = bias {
                y = y + b.clone();
            }
            y.reshape([n, out, 1, 1])
        }
        StepOp::Add => {
            let a = x();
            a + x()
        }
        StepOp::Identity => x(),
        StepOp::Ext(e) => e.apply(args.collect()),
    }
}
