//! Operations that combine or re-shape activations: arithmetic with nodes and constants, padding,
//! flatten-like layout changes, spatial means and channel concatenation.

use super::{Importer, Value};
use crate::constant::{axis, resolve_reshape};
use crate::error::Result;
use crate::node::NodeRef;
use deepsight_runtime::{Arithmetic, ExtOp, Op, Pad};

impl Importer<'_> {
    pub(super) fn arithmetic(&mut self, node: &NodeRef) -> Result<Value> {
        let op = match node.op() {
            "Add" => Arithmetic::Add,
            "Sub" => Arithmetic::Sub,
            "Mul" => Arithmetic::Mul,
            _ => Arithmetic::Div,
        };
        let (a, b) = (self.value(node, 0)?.clone(), self.value(node, 1)?.clone());
        match (&a, &b) {
            (Value::Const(_), Value::Const(_)) => unreachable!("folded before"),
            (Value::Const(c), _) | (_, Value::Const(c)) => {
                let constant_first = matches!(a, Value::Const(_));
                let (x, rank) = self.activation(node, if constant_first { 1 } else { 0 })?;
                if c.dims.len() > rank {
                    return Err(node.unsupported(format!(
                        "a constant of rank {} on a rank-{rank} activation",
                        c.dims.len()
                    )));
                }
                let mut d = vec![1; rank - c.dims.len()];
                d.extend(&c.dims);
                if d[0] != 1 {
                    return Err(
                        node.unsupported(format!("a constant {:?} that varies over the batch", c.dims))
                    );
                }
                let shape = if rank == 4 {
                    [1, d[1], d[2], d[3]]
                } else {
                    [1, d[1], 1, 1]
                };
                let ext = ExtOp::WithConstant {
                    op,
                    constant: self.tensor(c, shape),
                    constant_first,
                };
                let id = self.push(node.name.clone(), Op::Ext(ext), &[x])?;
                Ok(Value::Node { id, rank })
            }
            _ => {
                let (x, rx) = self.activation(node, 0)?;
                let (y, ry) = self.activation(node, 1)?;
                if rx != ry {
                    return Err(node.unsupported(format!("combining a rank-{rx} and a rank-{ry} activation")));
                }
                let same = self.shapes[x] == self.shapes[y];
                let gop = if same && op == Arithmetic::Add {
                    Op::Add
                } else {
                    Op::Ext(ExtOp::Binary(op))
                };
                let id = self.push(node.name.clone(), gop, &[x, y])?;
                Ok(Value::Node { id, rank: rx })
            }
        }
    }

    pub(super) fn pad(&mut self, node: &NodeRef) -> Result<Value> {
        let mode = node.string("mode")?.unwrap_or_else(|| "constant".into());
        if mode != "constant" {
            return Err(node.unsupported(format!("mode '{mode}' (only constant padding)")));
        }
        let (x, rank) = self.activation(node, 0)?;
        if rank != 4 {
            return Err(node.unsupported("padding a flat vector"));
        }
        let (pads, value) = if self.opset >= 11 {
            let pads = self.constant(node, 1)?.to_i64();
            let value = match self.optional_constant(node, 2)? {
                Some(c) => c.scalar_f32().map_err(|e| node.invalid(e))?,
                None => 0.0,
            };
            let pads = match self.optional_constant(node, 3)? {
                None => pads,
                Some(axes) => {
                    let mut full = vec![0i64; 8];
                    let axes = axes.to_i64();
                    for (k, &a) in axes.iter().enumerate() {
                        let a = axis(a, 4).map_err(|e| node.invalid(e))?;
                        full[a] = pads[k];
                        full[a + 4] = pads[k + axes.len()];
                    }
                    full
                }
            };
            (pads, value)
        } else {
            (node.ints("pads")?.unwrap_or_default(), node.float("value", 0.0)?)
        };
        let p: [i64; 8] = pads
            .as_slice()
            .try_into()
            .map_err(|_| node.invalid(format!("pads {pads:?} must have 8 values for a 4-D input")))?;
        if p[0] != 0 || p[1] != 0 || p[4] != 0 || p[5] != 0 || p.iter().any(|&v| v < 0) {
            return Err(node.unsupported(format!(
                "pads {pads:?}: only non-negative padding of height and width"
            )));
        }
        let pad = Pad {
            pads: [p[2] as usize, p[3] as usize, p[6] as usize, p[7] as usize],
            value,
        };
        Ok(Value::Padded {
            id: x,
            pad,
            name: node.name.clone(),
        })
    }

    /// Flatten, Reshape, Squeeze, Unsqueeze and Transpose on activations: only the ones that do
    /// not move values (`[N, C, 1, 1] <-> [N, C]`, `[N, C, H, W] -> [N, C*H*W]`, identity perms).
    pub(super) fn layout(&mut self, node: &NodeRef) -> Result<Value> {
        let src = self.value(node, 0)?.clone();
        let dims = self.dims(&src);
        let target: Vec<usize> = match node.op() {
            "Flatten" => {
                let ax = axis(node.int("axis", 1)?, dims.len() + 1).map_err(|e| node.invalid(e))?;
                vec![dims[..ax].iter().product(), dims[ax..].iter().product()]
            }
            "Reshape" => {
                let mut t = self.constant(node, 1)?.to_i64();
                // Exporters write the batch as the folded constant 1 (`x.view(x.size(0), -1)`).
                if t.first() == Some(&1) {
                    t[0] = 0;
                }
                resolve_reshape(&dims, &t).map_err(|e| node.unsupported(e))?
            }
            "Squeeze" | "Unsqueeze" => {
                let mut axes = match self.optional_constant(node, 1)? {
                    Some(a) => a.to_i64(),
                    None => node.ints("axes")?.unwrap_or_default(),
                };
                // `x.squeeze()` (no axes) squeezes every axis of size 1; the batch, folded as 1
                // here, is not one of them.
                if axes.is_empty() && node.op() == "Squeeze" {
                    axes = (1..dims.len())
                        .filter(|&k| dims[k] == 1)
                        .map(|k| k as i64)
                        .collect();
                    if axes.is_empty() {
                        return self.unary(node, Op::Identity);
                    }
                }
                crate::fold::squeeze_dims(&dims, &axes, node.op() == "Unsqueeze")
                    .map_err(|e| node.invalid(e))?
            }
            _ => {
                let perm = node
                    .ints("perm")?
                    .unwrap_or_else(|| (0..dims.len() as i64).rev().collect());
                let from_nhwc_input = self.nhwc_input.as_deref() == node.input(0) && perm == [0, 3, 1, 2];
                if !from_nhwc_input && perm.iter().enumerate().any(|(k, &p)| p != k as i64) {
                    return Err(node.unsupported(format!(
                        "perm {perm:?} reorders the dimensions of an activation (DeepSight keeps [N, C, H, W])"
                    )));
                }
                dims.clone()
            }
        };
        let (x, _) = self.activation(node, 0)?;
        let [_, c, h, w] = self.shapes[x];
        let op = match target.len() {
            _ if target[0] != dims[0] => None,
            4 if target == dims || (h * w == 1 && target[1..] == [c, 1, 1]) => Some((Op::Identity, 4)),
            2 if target[1] == c * h * w && h * w == 1 => Some((Op::Identity, 2)),
            2 if target[1] == c * h * w => Some((Op::Flatten, 2)),
            _ => None,
        };
        let Some((op, rank)) = op else {
            return Err(node.unsupported(format!(
                "reshaping {dims:?} to {target:?} moves values between channels, positions or the batch; \
                 DeepSight supports flattening to [N, features] only"
            )));
        };
        let id = self.push(node.name.clone(), op, &[x])?;
        Ok(Value::Node { id, rank })
    }

    /// The spatial mean (tf2onnx's global average pooling) as a GlobalAvgPool.
    pub(super) fn reduce_mean(&mut self, node: &NodeRef) -> Result<Value> {
        let (x, rank) = self.activation(node, 0)?;
        let axes = match self.optional_constant(node, 1)? {
            Some(a) => a.to_i64(),
            None => node.ints("axes")?.unwrap_or_default(),
        };
        let mut axes: Vec<usize> = axes
            .iter()
            .map(|&a| axis(a, rank))
            .collect::<std::result::Result<_, _>>()
            .map_err(|e| node.invalid(e))?;
        axes.sort_unstable();
        if rank != 4 || axes != [2, 3] {
            return Err(node.unsupported(format!(
                "a mean over axes {axes:?} of a rank-{rank} activation (only over height and width)"
            )));
        }
        let id = self.push(node.name.clone(), Op::GlobalAvgPool, &[x])?;
        Ok(Value::Node {
            id,
            rank: if node.flag("keepdims", true)? { 4 } else { 2 },
        })
    }

    pub(super) fn concat(&mut self, node: &NodeRef) -> Result<Value> {
        let n = node.proto.input.len();
        let mut ids = Vec::with_capacity(n);
        let mut rank = 0;
        for i in 0..n {
            let (id, r) = self.activation(node, i)?;
            ids.push(id);
            rank = r;
        }
        let ax = axis(node.int("axis", 1)?, rank).map_err(|e| node.invalid(e))?;
        if ax != 1 {
            return Err(node.unsupported(format!(
                "concatenating activations along axis {ax} (only channels)"
            )));
        }
        let id = self.push(node.name.clone(), Op::Ext(ExtOp::Concat), &ids)?;
        Ok(Value::Node { id, rank })
    }
}
