//! The model graph: named nodes in topological order, each one operation on earlier nodes.
//!
//! Every value in a graph is stored as a rank-4 tensor; a flat feature vector `[N, F]` as
//! `[N, F, 1, 1]`, values of other ranks and layouts as [`crate::value`] describes, so that every
//! layer can be captured, probed and differentiated the same way.

use crate::error::{Result, RuntimeError};
use crate::ops::ExtOp;
use crate::rectifier::Bounds;
use crate::value::ValueShape;
use burn::tensor::Tensor;
use std::collections::HashMap;

/// Index of a node in its graph; node 0 is the input.
pub type NodeId = usize;

/// How a convolution or pooling window pads its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    /// Fixed zero padding `[top, left, bottom, right]`.
    Explicit([usize; 4]),
    /// TensorFlow "SAME": output size `ceil(in / stride)`, the odd pixel of padding going to the
    /// bottom and right; computed from the input size at run time.
    SameUpper,
}

impl Padding {
    /// Symmetric padding `p` on every side.
    pub fn symmetric(p: usize) -> Self {
        Padding::Explicit([p, p, p, p])
    }

    /// `[top, left, bottom, right]` for an input of `[h, w]`.
    pub fn resolve(
        self,
        input: [usize; 2],
        kernel: [usize; 2],
        stride: [usize; 2],
        dilation: [usize; 2],
    ) -> [usize; 4] {
        match self {
            Padding::Explicit(p) => p,
            Padding::SameUpper => {
                // Saturating: the graph's checks refuse a zero stride or kernel, but this is also
                // called on a file's attributes before those checks.
                let total = |i: usize| {
                    let out = input[i].div_ceil(stride[i].max(1));
                    (out.saturating_sub(1))
                        .saturating_mul(stride[i])
                        .saturating_add(kernel[i].saturating_sub(1).saturating_mul(dilation[i]))
                        .saturating_add(1)
                        .saturating_sub(input[i])
                };
                let (th, tw) = (total(0), total(1));
                [th / 2, tw / 2, th - th / 2, tw - tw / 2]
            }
        }
    }
}

/// A 2-D convolution, weights `[out, in / groups, kh, kw]` as in PyTorch.
#[derive(Debug, Clone)]
pub struct Conv2d {
    pub weight: Tensor<4>,
    pub bias: Option<Tensor<1>>,
    pub stride: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
    pub padding: Padding,
}

impl Conv2d {
    /// `[out_channels, in_channels / groups, kh, kw]`.
    pub fn dims(&self) -> [usize; 4] {
        self.weight.dims()
    }
}

/// Inference-mode batch normalisation over channels.
#[derive(Debug, Clone)]
pub struct BatchNorm {
    pub gamma: Tensor<1>,
    pub beta: Tensor<1>,
    pub mean: Tensor<1>,
    pub var: Tensor<1>,
    pub eps: f64,
}

impl BatchNorm {
    /// The affine form `y = x * scale + shift`, per channel.
    pub fn affine(&self) -> (Tensor<1>, Tensor<1>) {
        let scale = self.gamma.clone() / (self.var.clone() + self.eps).sqrt();
        let shift = self.beta.clone() - self.mean.clone() * scale.clone();
        (scale, shift)
    }
}

/// A fully connected layer, weights `[out, in]` as in PyTorch.
#[derive(Debug, Clone)]
pub struct Linear {
    pub weight: Tensor<2>,
    pub bias: Option<Tensor<1>>,
}

/// A pooling window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pool {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    /// `[top, left, bottom, right]`.
    pub padding: [usize; 4],
    pub dilation: [usize; 2],
    pub ceil_mode: bool,
    /// Average pooling only: whether padded zeros count in the denominator.
    pub count_include_pad: bool,
}

impl Pool {
    /// A square `k x k` window with stride `s` and padding `p` on every side, floor mode.
    pub fn square(k: usize, s: usize, p: usize) -> Pool {
        Pool {
            kernel: [k, k],
            stride: [s, s],
            padding: [p; 4],
            dilation: [1, 1],
            ceil_mode: false,
            count_include_pad: true,
        }
    }
}

/// One operation of the graph.
// A graph holds a few hundred nodes built once: boxing the weight-bearing variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Op {
    /// The image batch.
    Input,
    Conv2d(Conv2d),
    BatchNorm(BatchNorm),
    /// `clamp(x, lo, hi)`: ReLU, ReLU6 and the like; its backward rule is chosen per run.
    Rectifier(Bounds),
    /// Max pooling; records its switches (argmax positions) when asked.
    MaxPool(Pool),
    AvgPool(Pool),
    /// Mean over the spatial positions, `[N, C, 1, 1]`.
    GlobalAvgPool,
    /// `[N, C, H, W] -> [N, C*H*W, 1, 1]` in PyTorch's `flatten(1)` order.
    Flatten,
    Linear(Linear),
    /// Elementwise sum of two nodes of the same shape.
    Add,
    /// Passes its input through (dropout at inference, a named tap point).
    Identity,
    /// PyTorch's `adaptive_avg_pool2d` to `[h, w]` (the identity where the input already has
    /// that size).
    AdaptiveAvgPool([usize; 2]),
    /// The operations that imported graphs bring (see [`ExtOp`]).
    Ext(ExtOp),
}

impl Op {
    /// Short name of the operation, as `deepsight layers` prints it.
    pub fn kind(&self) -> &'static str {
        match self {
            Op::Input => "Input",
            Op::Conv2d(c) if c.groups > 1 && c.groups == c.dims()[0] => "DepthwiseConv2d",
            Op::Conv2d(_) => "Conv2d",
            Op::BatchNorm(_) => "BatchNorm",
            Op::Rectifier(b) if b.hi.is_none() && b.lo == 0.0 => "ReLU",
            Op::Rectifier(b) if b.hi == Some(6.0) && b.lo == 0.0 => "ReLU6",
            Op::Rectifier(_) => "Clip",
            Op::MaxPool(_) => "MaxPool",
            Op::AvgPool(_) => "AvgPool",
            Op::GlobalAvgPool => "GlobalAvgPool",
            Op::Flatten => "Flatten",
            Op::Linear(_) => "Linear",
            Op::Add => "Add",
            Op::Identity => "Identity",
            Op::AdaptiveAvgPool(_) => "AdaptiveAvgPool",
            Op::Ext(e) => e.kind(),
        }
    }

    /// Number of learned parameters (BatchNorm: gamma and beta, like PyTorch).
    pub fn params(&self) -> usize {
        match self {
            Op::Conv2d(c) => c.weight.shape().num_elements() + c.bias.as_ref().map_or(0, |b| b.dims()[0]),
            Op::BatchNorm(b) => 2 * b.gamma.dims()[0],
            Op::Linear(l) => l.weight.shape().num_elements() + l.bias.as_ref().map_or(0, |b| b.dims()[0]),
            Op::Ext(e) => e.params(),
            _ => 0,
        }
    }

    /// Number of inputs, `None` for any number of at least one.
    fn arity(&self) -> Option<usize> {
        match self {
            Op::Input => Some(0),
            Op::Add => Some(2),
            Op::Ext(e) => e.arity(),
            _ => Some(1),
        }
    }
}

/// A named operation and the nodes it reads.
#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub op: Op,
    pub inputs: Vec<NodeId>,
}

/// A classifier as a graph: node 0 is the input, the last node gives the logits.
#[derive(Debug, Clone)]
pub struct Graph {
    nodes: Vec<Node>,
    index: HashMap<String, NodeId>,
    input_channels: usize,
}

impl Graph {
    /// Starts a graph whose input has `channels` channels; the input node is called `name`.
    pub fn new(name: &str, channels: usize) -> Self {
        let mut index = HashMap::new();
        index.insert(name.to_string(), 0);
        Graph {
            nodes: vec![Node {
                name: name.to_string(),
                op: Op::Input,
                inputs: vec![],
            }],
            index,
            input_channels: channels,
        }
    }

    /// Appends `op` reading `inputs`; checks the name is new and the inputs exist.
    pub fn push(&mut self, name: impl Into<String>, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        let name = name.into();
        let invalid = |reason: String| RuntimeError::InvalidGraph {
            node: name.clone(),
            reason,
        };
        if self.index.contains_key(&name) {
            return Err(invalid("a node of this name already exists".into()));
        }
        match op.arity() {
            Some(n) if inputs.len() != n => {
                return Err(invalid(format!(
                    "{} takes {n} inputs, got {}",
                    op.kind(),
                    inputs.len()
                )));
            }
            None if inputs.is_empty() => {
                return Err(invalid(format!("{} takes at least one input", op.kind())));
            }
            _ => {}
        }
        if let Some(bad) = inputs.iter().find(|&&i| i >= self.nodes.len()) {
            return Err(invalid(format!("input node #{bad} does not exist yet")));
        }
        crate::validate::check(&op).map_err(|reason| invalid(format!("{}: {reason}", op.kind())))?;
        let id = self.nodes.len();
        self.index.insert(name.clone(), id);
        self.nodes.push(Node {
            name,
            op,
            inputs: inputs.to_vec(),
        });
        Ok(id)
    }

    /// The nodes in execution order.
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// The node that gives the logits.
    pub fn output(&self) -> NodeId {
        self.nodes.len() - 1
    }

    /// Channels the input must have.
    pub fn input_channels(&self) -> usize {
        self.input_channels
    }

    /// The node called `name`, or an error that lists a few real names.
    pub fn find(&self, name: &str) -> Result<NodeId> {
        self.index
            .get(name)
            .copied()
            .ok_or_else(|| RuntimeError::UnknownLayer {
                name: name.to_string(),
                hint: self
                    .nodes
                    .iter()
                    .rev()
                    .take(3)
                    .map(|n| format!("'{}'", n.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Output shape of every node for an input of `[n, c, h, w]`, or an error naming the first
    /// node that cannot take its input.
    /// Values in another layout are given in their canonical `[N, C, H, W]` form (the form
    /// captures and gradients have), values of other ranks in their stored form (see
    /// [`crate::value`]).
    pub fn infer_shapes(&self, input: [usize; 4]) -> Result<Vec<[usize; 4]>> {
        Ok(crate::shapes::infer(self, input)?
            .iter()
            .map(ValueShape::canonical)
            .collect())
    }

    /// The logical shape of every node and what its axes mean, for an input of `[n, c, h, w]`.
    pub fn infer_values(&self, input: [usize; 4]) -> Result<Vec<ValueShape>> {
        crate::shapes::infer(self, input)
    }

    /// Extends `known` (the shapes of the first nodes, as [`Graph::infer_values`] gave them) to
    /// every node: a graph built node by node is checked in linear time.
    pub fn extend_values(&self, input: [usize; 4], known: &mut Vec<ValueShape>) -> Result<()> {
        known.truncate(self.nodes.len());
        crate::shapes::infer_from(self, input, known)
    }
}

impl Graph {
    /// Floating-point operations of one forward pass for an input of `[n, c, h, w]` (a multiply
    /// and an add count as two; convolutions and linear layers only, which dominate).
    pub fn forward_flops(&self, input: [usize; 4]) -> Result<f64> {
        let shapes = self.infer_shapes(input)?;
        Ok(self
            .nodes
            .iter()
            .zip(&shapes)
            .map(|(node, out)| match &node.op {
                Op::Conv2d(c) => {
                    let [_, i, kh, kw] = c.dims();
                    2.0 * (out.iter().product::<usize>() * i * kh * kw) as f64
                }
                Op::Linear(l) => 2.0 * (out[0] * l.weight.shape().num_elements()) as f64,
                Op::Ext(ExtOp::ConvTranspose2d(t)) => {
                    let [i, _, kh, kw] = t.weight.dims();
                    let [n, _, h, w] = shapes[node.inputs[0]];
                    2.0 * (n * h * w * i * t.weight.dims()[1] * kh * kw) as f64
                }
                _ => 0.0,
            })
            .sum())
    }
}
