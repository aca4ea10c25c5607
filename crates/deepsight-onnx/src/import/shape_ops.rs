//! Operations that combine or re-shape activations: arithmetic with nodes and constants, padding,
//! flatten-like layout changes, spatial means and channel concatenation.

use super::{Importer, Value};
use crate::constant::{axis, resolve_reshape};
use crate::error::Result;
use crate::node::NodeRef;
use deepsight_runtime::{Arithmetic, Constant, ExtOp, Op, Pad, TensorOp};

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
                if !matches!(rank, 2 | 4) || c.dims.len() > rank {
                    let op = TensorOp::WithConstant {
                        op,
                        constant: Constant::new(c.to_f32(), c.dims.clone(), self.device),
                        constant_first,
                    };
                    return self.push_tensor(node.name.clone(), op, &[x]);
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
                if rx != ry || !matches!(rx, 2 | 4) {
                    return self.push_tensor(node.name.clone(), TensorOp::Binary(op), &[x, y]);
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
                    if pads.len() != 2 * axes.len() {
                        return Err(node.invalid(format!(
                            "{} pads for {} axes (two per axis)",
                            pads.len(),
                            axes.len()
                        )));
                    }
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

    /// Flatten, Reshape, Squeeze, Unsqueeze and Transpose on activations: the identity, a
    /// flatten to `[N, F]`, otherwise a [`TensorOp`] (the batch stays first).
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
                let identity = perm.iter().enumerate().all(|(k, &p)| p == k as i64);
                if !from_nhwc_input && !identity {
                    let perm: Vec<usize> = perm
                        .iter()
                        .map(|&p| axis(p, dims.len()))
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|e| node.invalid(e))?;
                    let (x, _) = self.activation(node, 0)?;
                    return self.push_tensor(node.name.clone(), TensorOp::Transpose(perm), &[x]);
                }
                dims.clone()
            }
        };
        let (x, _) = self.activation(node, 0)?;
        if target == dims {
            return self.unary(node, Op::Identity);
        }
        if target[0] != dims[0] {
            return Err(node.unsupported(format!(
                "reshaping {dims:?} to {target:?} moves values between the batch and other axes"
            )));
        }
        if target.len() == 2 && dims.len() >= 2 {
            let id = self.push(node.name.clone(), Op::Flatten, &[x])?;
            return Ok(self.node_value(id));
        }
        self.push_tensor(node.name.clone(), TensorOp::Reshape(target), &[x])
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
        if ax != 1 || !matches!(rank, 2 | 4) {
            return self.push_tensor(node.name.clone(), TensorOp::Concat { axis: ax }, &ids);
        }
        let id = self.push(node.name.clone(), Op::Ext(ExtOp::Concat), &ids)?;
        Ok(Value::Node { id, rank })
    }
}
