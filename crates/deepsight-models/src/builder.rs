//! Shared steps for writing an architecture as a graph whose weights come by PyTorch name.

use crate::error::Result;
use crate::source::WeightSource;
use deepsight_runtime::{BatchNorm, Bounds, Conv2d, Device, Graph, Linear, NodeId, Op, Padding};

/// A convolution's shape: `[in, out]` channels, square kernel, stride, padding, groups, bias.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConvSpec {
    pub io: [usize; 2],
    pub k: usize,
    pub stride: usize,
    pub padding: Padding,
    pub groups: usize,
    pub bias: bool,
}

impl ConvSpec {
    pub fn new(io: [usize; 2], k: usize, stride: usize, padding: Padding) -> Self {
        ConvSpec {
            io,
            k,
            stride,
            padding,
            groups: 1,
            bias: false,
        }
    }
    pub fn groups(self, groups: usize) -> Self {
        ConvSpec { groups, ..self }
    }
    pub fn bias(self) -> Self {
        ConvSpec { bias: true, ..self }
    }
}

pub(crate) struct Builder<'a, W> {
    pub g: Graph,
    pub w: &'a W,
    pub device: &'a Device,
}

impl<'a, W: WeightSource> Builder<'a, W> {
    pub fn new(w: &'a W, device: &'a Device) -> Self {
        Builder {
            g: Graph::new("input", 3),
            w,
            device,
        }
    }

    pub fn push(&mut self, name: &str, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        Ok(self.g.push(name, op, inputs)?)
    }

    pub fn conv(&mut self, name: &str, x: NodeId, s: ConvSpec) -> Result<NodeId> {
        let [cin, cout] = s.io;
        let weight = self.w.tensor(
            &format!("{name}.weight"),
            [cout, cin / s.groups, s.k, s.k],
            self.device,
        )?;
        let bias = if s.bias {
            Some(self.w.tensor(&format!("{name}.bias"), [cout], self.device)?)
        } else {
            None
        };
        let conv = Conv2d {
            weight,
            bias,
            stride: [s.stride; 2],
            dilation: [1, 1],
            groups: s.groups,
            padding: s.padding,
        };
        self.push(name, Op::Conv2d(conv), &[x])
    }

    pub fn bn(&mut self, name: &str, x: NodeId, c: usize, eps: f64) -> Result<NodeId> {
        let t = |s: &str| self.w.tensor(&format!("{name}.{s}"), [c], self.device);
        let bn = BatchNorm {
            gamma: t("weight")?,
            beta: t("bias")?,
            mean: t("running_mean")?,
            var: t("running_var")?,
            eps,
        };
        self.push(name, Op::BatchNorm(bn), &[x])
    }

    pub fn rectifier(&mut self, name: &str, x: NodeId, bounds: Bounds) -> Result<NodeId> {
        self.push(name, Op::Rectifier(bounds), &[x])
    }

    pub fn linear(&mut self, name: &str, x: NodeId, io: [usize; 2]) -> Result<NodeId> {
        let fc = Linear {
            weight: self
                .w
                .tensor(&format!("{name}.weight"), [io[1], io[0]], self.device)?,
            bias: Some(self.w.tensor(&format!("{name}.bias"), [io[1]], self.device)?),
        };
        self.push(name, Op::Linear(fc), &[x])
    }
}
