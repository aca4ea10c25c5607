//! An execution plan: the graph with BatchNorm folded into the convolution before it wherever
//! no one asked to see that convolution's own output.
//!
//! Folding is exact algebra (`w' = w * s`, `b' = (b - mean) * s + beta`, `s = gamma / sqrt(var +
//! eps)`), and BN is affine, so every gradient through a folded pair is unchanged. A plan is
//! compiled per set of kept (unfoldable) convolutions and cached by the model.

use crate::graph::{Conv2d, Graph, NodeId, Op, Padding, Pool};
use crate::ops::ExtOp;
use crate::rectifier::Bounds;
use burn::tensor::Tensor;

/// One executable step; its output is the value of graph node `node`.
#[derive(Debug, Clone)]
pub(crate) struct Step {
    pub node: NodeId,
    pub op: StepOp,
    pub inputs: Vec<NodeId>,
}

// One per graph node, built once per plan: boxing the weight-bearing variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub(crate) enum StepOp {
    Input,
    Conv {
        weight: Tensor<4>,
        bias: Option<Tensor<1>>,
        stride: [usize; 2],
        dilation: [usize; 2],
        groups: usize,
        padding: Padding,
    },
    /// Unfolded BatchNorm: `x * scale + shift` with `[1, C, 1, 1]` factors.
    Affine {
        scale: Tensor<4>,
        shift: Tensor<4>,
    },
    Rectifier(Bounds),
    MaxPool(Pool),
    AvgPool(Pool),
    GlobalAvgPool,
    Flatten,
    /// `weight` is stored transposed, `[in, out]`, and `bias` as `[1, out]`.
    Linear {
        weight: Tensor<2>,
        bias: Option<Tensor<2>>,
    },
    Add,
    Identity,
    Ext(ExtOp),
}

/// Steps in order, and for each node the index of the last step that reads it.
#[derive(Debug)]
pub(crate) struct Plan {
    pub steps: Vec<Step>,
    pub last_use: Vec<usize>,
    pub output: NodeId,
}

fn channel_view(t: Tensor<1>) -> Tensor<4> {
    let c = t.dims()[0];
    t.reshape([1, c, 1, 1])
}

fn conv_step(conv: &Conv2d) -> StepOp {
    StepOp::Conv {
        weight: conv.weight.clone(),
        bias: conv.bias.clone(),
        stride: conv.stride,
        dilation: conv.dilation,
        groups: conv.groups,
        padding: conv.padding,
    }
}

impl Plan {
    /// Compiles `graph`, folding each BatchNorm into the convolution it reads, unless that
    /// convolution is listed in `keep` or is also read by another node.
    pub fn compile(graph: &Graph, keep: &[NodeId]) -> Plan {
        let nodes = graph.nodes();
        let mut readers = vec![0usize; nodes.len()];
        for node in nodes {
            for &i in &node.inputs {
                readers[i] += 1;
            }
        }
        let foldable = |bn: &crate::graph::Node| -> Option<NodeId> {
            let src = *bn.inputs.first()?;
            let ok = matches!(nodes[src].op, Op::Conv2d(_)) && readers[src] == 1 && !keep.contains(&src);
            ok.then_some(src)
        };
        let mut folded = vec![false; nodes.len()];
        for node in nodes {
            if let (Op::BatchNorm(_), Some(src)) = (&node.op, foldable(node)) {
                folded[src] = true;
            }
        }
        let mut steps = Vec::with_capacity(nodes.len());
        for (id, node) in nodes.iter().enumerate() {
            if folded[id] {
                continue;
            }
            let (op, inputs) = match &node.op {
                Op::BatchNorm(bn) => {
                    let (scale, shift) = bn.affine();
                    match foldable(node) {
                        Some(src) => {
                            let Op::Conv2d(conv) = &nodes[src].op else {
                                unreachable!("checked by foldable")
                            };
                            let out = conv.dims()[0];
                            let weight = conv.weight.clone() * scale.clone().reshape([out, 1, 1, 1]);
                            let bias = match &conv.bias {
                                Some(b) => b.clone() * scale + shift,
                                None => shift,
                            };
                            let fused = Conv2d {
                                weight,
                                bias: Some(bias),
                                ..conv.clone()
                            };
                            (conv_step(&fused), nodes[src].inputs.clone())
                        }
                        None => (
                            StepOp::Affine {
                                scale: channel_view(scale),
                                shift: channel_view(shift),
                            },
                            node.inputs.clone(),
                        ),
                    }
                }
                op => (
                    match op {
                        Op::Input => StepOp::Input,
                        Op::Conv2d(conv) => conv_step(conv),
                        Op::BatchNorm(_) => unreachable!("handled above"),
                        Op::Rectifier(b) => StepOp::Rectifier(*b),
                        Op::MaxPool(p) => StepOp::MaxPool(*p),
                        Op::AvgPool(p) => StepOp::AvgPool(*p),
                        Op::GlobalAvgPool => StepOp::GlobalAvgPool,
                        Op::Flatten => StepOp::Flatten,
                        Op::Linear(l) => {
                            let out = l.weight.dims()[0];
                            StepOp::Linear {
                                weight: l.weight.clone().transpose(),
                                bias: l.bias.clone().map(|b| b.reshape([1, out])),
                            }
                        }
                        Op::Add => StepOp::Add,
                        Op::Identity => StepOp::Identity,
                        Op::AdaptiveAvgPool(size) => StepOp::Ext(ExtOp::AdaptiveAvgPool(*size)),
                        Op::Ext(e) => StepOp::Ext(e.clone()),
                    },
                    node.inputs.clone(),
                ),
            };
            steps.push(Step { node: id, op, inputs });
        }
        let mut last_use = vec![0usize; nodes.len()];
        for (s, step) in steps.iter().enumerate() {
            for &i in &step.inputs {
                last_use[i] = s;
            }
        }
        Plan {
            steps,
            last_use,
            output: graph.output(),
        }
    }
}
