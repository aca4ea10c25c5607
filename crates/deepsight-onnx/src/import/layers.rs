//! Operations with weights or windows: convolutions, BatchNorm, pooling, linear layers, clamps.

use super::{Importer, Value, same_pads};
use crate::constant::Const;
use crate::error::Result;
use crate::node::NodeRef;
use deepsight_runtime::{
    BatchNorm, Bounds, Conv2d, ConvTranspose2d, ExtOp, Linear, Op, Padding, Pool, Tensor, TensorData,
};
use std::sync::Arc;

impl Importer<'_> {
    pub(super) fn conv(&mut self, node: &NodeRef) -> Result<Value> {
        let w = self.constant(node, 1)?;
        let [o, i, kh, kw] = w.dims[..] else {
            return Err(node.unsupported(format!("a weight of shape {:?}: only 2-D convolutions", w.dims)));
        };
        let bias = self.optional_constant(node, 2)?;
        let stride = node.pair("strides", 1, 1)?;
        let dilation = node.pair("dilations", 1, 1)?;
        let groups = node.count("group", 1)?;
        if let Some(k) = node.ints("kernel_shape")?
            && k != [kh as i64, kw as i64]
        {
            return Err(node.invalid(format!(
                "kernel_shape {k:?} does not match the weight {:?}",
                w.dims
            )));
        }
        let src = self.value(node, 0)?.clone();
        let input_hw = match self.dims(&src)[..] {
            [_, _, h, w] => [h, w],
            ref d => return Err(node.unsupported(format!("needs an [N, C, H, W] input, got {d:?}"))),
        };
        let mut padding = match node.string("auto_pad")?.as_deref().unwrap_or("NOTSET") {
            "NOTSET" => Padding::Explicit(node.pads()?),
            "VALID" => Padding::Explicit([0; 4]),
            "SAME_UPPER" => Padding::SameUpper,
            "SAME_LOWER" => Padding::Explicit(same_pads(input_hw, [kh, kw], stride, dilation, false)),
            other => return Err(node.unsupported(format!("auto_pad = '{other}'"))),
        };
        let x = match (&src, padding) {
            (Value::Padded { id, pad, .. }, Padding::Explicit(p)) if pad.value == 0.0 => {
                padding = Padding::Explicit(std::array::from_fn(|k| p[k] + pad.pads[k]));
                *id
            }
            _ => self.activation(node, 0)?.0,
        };
        let conv = Conv2d {
            weight: self.tensor(&w, [o, i, kh, kw]),
            bias: match bias {
                Some(b) if b.len() == o => Some(self.tensor(&b, [o])),
                Some(b) => return Err(node.invalid(format!("bias has {} values for {o} channels", b.len()))),
                None => None,
            },
            stride,
            dilation,
            groups,
            padding,
        };
        let id = self.push(node.name.clone(), Op::Conv2d(conv), &[x])?;
        Ok(Value::Node { id, rank: 4 })
    }

    pub(super) fn conv_transpose(&mut self, node: &NodeRef) -> Result<Value> {
        let w = self.constant(node, 1)?;
        let [i, o, kh, kw] = w.dims[..] else {
            return Err(node.unsupported(format!("a weight of shape {:?}: only 2-D convolutions", w.dims)));
        };
        if node.attr("output_shape").is_some() {
            return Err(node.unsupported("attribute 'output_shape' (give pads and output_padding instead)"));
        }
        if node.string("auto_pad")?.is_some_and(|a| a != "NOTSET") {
            return Err(node.unsupported("auto_pad on a transposed convolution"));
        }
        let [t, l, b, r] = node.pads()?;
        if t != b || l != r {
            return Err(node.unsupported(format!("asymmetric pads {:?}", [t, l, b, r])));
        }
        let groups = node.count("group", 1)?;
        let bias = self.optional_constant(node, 2)?;
        let out = o * groups;
        let ct = ConvTranspose2d {
            weight: self.tensor(&w, [i, o, kh, kw]),
            bias: match bias {
                Some(bv) if bv.len() == out => Some(self.tensor(&bv, [out])),
                Some(bv) => {
                    return Err(node.invalid(format!("bias has {} values for {out} channels", bv.len())));
                }
                None => None,
            },
            stride: node.pair("strides", 1, 1)?,
            padding: [t, l],
            output_padding: node.pair("output_padding", 0, 0)?,
            dilation: node.pair("dilations", 1, 1)?,
            groups,
        };
        self.unary(node, Op::Ext(ExtOp::ConvTranspose2d(ct)))
    }

    pub(super) fn batch_norm(&mut self, node: &NodeRef) -> Result<Value> {
        if node.flag("training_mode", false)? {
            return Err(node.unsupported("training_mode = 1 (export the model in eval mode)"));
        }
        self.check_extra_outputs(node)?;
        let p: Vec<Arc<Const>> = (1..5).map(|i| self.constant(node, i)).collect::<Result<_>>()?;
        let c = p[0].len();
        if p.iter().any(|t| t.len() != c) {
            return Err(node.invalid("scale, bias, mean and variance differ in length"));
        }
        let bn = BatchNorm {
            gamma: self.tensor(&p[0], [c]),
            beta: self.tensor(&p[1], [c]),
            mean: self.tensor(&p[2], [c]),
            var: self.tensor(&p[3], [c]),
            eps: node.float("epsilon", 1e-5)? as f64,
        };
        self.unary(node, Op::BatchNorm(bn))
    }

    pub(super) fn clip(&mut self, node: &NodeRef) -> Result<Value> {
        let bound = |imp: &Self, i: usize, attr: &str| -> Result<Option<f32>> {
            match imp.optional_constant(node, i)? {
                Some(c) => c.scalar_f32().map(Some).map_err(|e| node.invalid(e)),
                None => Ok(node.attr(attr).map(|a| a.f)),
            }
        };
        let lo = bound(self, 1, "min")?.unwrap_or(f32::NEG_INFINITY);
        let hi = bound(self, 2, "max")?.filter(|h| h.is_finite());
        self.unary(node, Op::Rectifier(Bounds { lo, hi }))
    }

    pub(super) fn pool(&mut self, node: &NodeRef) -> Result<Value> {
        let max = node.op() == "MaxPool";
        if max {
            self.check_extra_outputs(node)?;
            if node.flag("storage_order", false)? {
                return Err(node.unsupported("storage_order = 1"));
            }
        }
        let (x, rank) = self.activation(node, 0)?;
        let hw = self.spatial(node, x, rank)?;
        let kernel = match node.ints("kernel_shape")? {
            Some(_) => node.pair("kernel_shape", 1, 1)?,
            None => return Err(node.invalid("attribute 'kernel_shape' is required")),
        };
        let stride = node.pair("strides", 1, 1)?;
        let dilation = node.pair("dilations", 1, 1)?;
        if !max && dilation != [1, 1] {
            return Err(node.unsupported("dilated average pooling"));
        }
        let padding = match node.string("auto_pad")?.as_deref().unwrap_or("NOTSET") {
            "NOTSET" => node.pads()?,
            "VALID" => [0; 4],
            "SAME_UPPER" => same_pads(hw, kernel, stride, dilation, true),
            "SAME_LOWER" => same_pads(hw, kernel, stride, dilation, false),
            other => return Err(node.unsupported(format!("auto_pad = '{other}'"))),
        };
        let pool = Pool {
            kernel,
            stride,
            padding,
            dilation,
            ceil_mode: node.flag("ceil_mode", false)?,
            count_include_pad: node.flag("count_include_pad", false)?,
        };
        let op = if max { Op::MaxPool(pool) } else { Op::AvgPool(pool) };
        let id = self.push(node.name.clone(), op, &[x])?;
        Ok(Value::Node { id, rank: 4 })
    }

    pub(super) fn linear(
        &mut self,
        node: &NodeRef,
        weight: Vec<f32>,
        [out, inp]: [usize; 2],
        bias: Option<Vec<f32>>,
    ) -> Result<Value> {
        let (x, rank) = self.activation(node, 0)?;
        if rank != 2 {
            return Err(node.unsupported(format!(
                "needs a [N, features] input, got rank {rank} (flatten first)"
            )));
        }
        let fc = Linear {
            weight: Tensor::from_data(TensorData::new(weight, [out, inp]), self.device),
            bias: bias.map(|b| Tensor::from_data(TensorData::new(b, [out]), self.device)),
        };
        let id = self.push(node.name.clone(), Op::Linear(fc), &[x])?;
        Ok(Value::Node { id, rank: 2 })
    }

    pub(super) fn gemm(&mut self, node: &NodeRef) -> Result<Value> {
        if node.flag("transA", false)? {
            return Err(node.unsupported("transA = 1"));
        }
        let b = self.constant(node, 1)?;
        let [r, c] = b.dims[..] else {
            return Err(node.invalid(format!("B must be a matrix, got {:?}", b.dims)));
        };
        let (alpha, beta) = (node.float("alpha", 1.0)?, node.float("beta", 1.0)?);
        let trans = node.flag("transB", false)?;
        let (out, inp) = if trans { (r, c) } else { (c, r) };
        let m = if trans {
            b
        } else {
            Arc::new(b.transpose(&[1, 0]).map_err(|e| node.invalid(e))?)
        };
        let mut weight = m.to_f32();
        if alpha != 1.0 {
            weight.iter_mut().for_each(|v| *v *= alpha);
        }
        let bias = match self.optional_constant(node, 2)? {
            None => None,
            Some(cb) if cb.len() == out => Some(cb.to_f32().iter().map(|v| v * beta).collect()),
            Some(cb) if cb.len() == 1 => Some(vec![cb.to_f32()[0] * beta; out]),
            Some(cb) => return Err(node.unsupported(format!("C of shape {:?} for {out} outputs", cb.dims))),
        };
        self.linear(node, weight, [out, inp], bias)
    }

    pub(super) fn matmul(&mut self, node: &NodeRef) -> Result<Value> {
        let a = self.value(node, 0)?.clone();
        if matches!(a, Value::Const(_)) || self.dims(&a).len() != 2 {
            return self.matmul_any(node);
        }
        let b = match self.value(node, 1)? {
            Value::Const(b) => b.clone(),
            _ => {
                return Err(
                    node.unsupported("a product of two activations (only activation x constant matrix)")
                );
            }
        };
        let [inp, out] = b.dims[..] else {
            return Err(node.unsupported(format!("a constant of shape {:?} (only a matrix)", b.dims)));
        };
        let weight = b.transpose(&[1, 0]).map_err(|e| node.invalid(e))?.to_f32();
        self.linear(node, weight, [out, inp], None)
    }
}
