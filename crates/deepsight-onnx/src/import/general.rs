//! ONNX operators on values of any rank and layout, as [`TensorOp`]s: axis moves (ConvNeXt's
//! NHWC blocks, channel shuffles), slices, splits and gathers of activations (CSP chunks),
//! reductions over any axes, layer/group/instance normalisation, products with constant
//! matrices, PRelu, Resize/Upsample, Expand and Where.

use super::{Importer, Value};
use crate::constant::{Const, axis};
use crate::error::Result;
use crate::node::NodeRef;
use deepsight_runtime::{
    Comparison, Constant, CoordinateMode, ExtOp, Interpolation, NearestMode, NodeId, Op, Reduction, Resize,
    Tensor, TensorData, TensorOp,
};

impl Importer<'_> {
    /// The graph value of node `id`, with its logical rank.
    pub(super) fn node_value(&self, id: NodeId) -> Value {
        Value::Node {
            id,
            rank: self.logical[id].rank(),
        }
    }

    pub(super) fn push_tensor(
        &mut self,
        name: impl Into<String>,
        op: TensorOp,
        inputs: &[NodeId],
    ) -> Result<Value> {
        let id = self.push(name, Op::Ext(ExtOp::Tensor(op)), inputs)?;
        Ok(self.node_value(id))
    }

    fn runtime_constant(&self, c: &Const) -> Constant {
        Constant::new(c.to_f32(), c.dims.clone(), self.device)
    }

    fn vector(&self, v: Vec<f32>) -> Tensor<1> {
        let n = v.len();
        Tensor::from_data(TensorData::new(v, [n]), self.device)
    }

    fn axes_of(&self, node: &NodeRef, input: usize, rank: usize) -> Result<Option<Vec<usize>>> {
        let raw = match self.optional_constant(node, input)? {
            Some(a) => Some(a.to_i64()),
            None => node.ints("axes")?,
        };
        raw.map(|axes| {
            let mut v: Vec<usize> = axes
                .iter()
                .map(|&a| axis(a, rank))
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| node.invalid(e))?;
            v.sort_unstable();
            v.dedup();
            Ok(v)
        })
        .transpose()
    }

    /// Slice of an activation: one [`TensorOp::Slice`] per axis that is cut.
    pub(super) fn slice(&mut self, node: &NodeRef) -> Result<Value> {
        let (x, _) = self.activation(node, 0)?;
        let dims = self.logical[x].dims.clone();
        let r = dims.len();
        let (starts, ends, axes, steps) = if self.opset >= 10 {
            let starts = self.constant(node, 1)?.to_i64();
            let ends = self.constant(node, 2)?.to_i64();
            let axes = self.optional_constant(node, 3)?.map(|a| a.to_i64());
            let steps = self.optional_constant(node, 4)?.map(|s| s.to_i64());
            (starts, ends, axes, steps)
        } else {
            let starts = node.ints("starts")?.unwrap_or_default();
            let ends = node.ints("ends")?.unwrap_or_default();
            (starts, ends, node.ints("axes")?, None)
        };
        let axes = axes.unwrap_or_else(|| (0..starts.len() as i64).collect());
        let steps = steps.unwrap_or_else(|| vec![1; starts.len()]);
        if ends.len() != starts.len() || axes.len() != starts.len() || steps.len() != starts.len() {
            return Err(node.invalid("starts, ends, axes and steps differ in length"));
        }
        let mut cuts = Vec::new();
        for k in 0..starts.len() {
            let a = axis(axes[k], r).map_err(|e| node.invalid(e))?;
            if steps[k] <= 0 {
                return Err(node.unsupported(format!("slicing with step {} (only positive steps)", steps[k])));
            }
            let n = dims[a] as i64;
            let clamp = |v: i64| (if v < 0 { v + n } else { v }).clamp(0, n) as usize;
            let (s, e) = (clamp(starts[k]), clamp(ends[k]));
            if s == 0 && e == dims[a] && steps[k] == 1 {
                continue;
            }
            if a == 0 {
                return Err(node.unsupported("slicing the batch"));
            }
            if s >= e {
                return Err(node.invalid(format!("an empty slice {s}..{e} of axis {a}")));
            }
            cuts.push(TensorOp::Slice {
                axis: a,
                start: s,
                end: e,
                step: steps[k] as usize,
            });
        }
        if cuts.is_empty() {
            return self.unary(node, Op::Identity);
        }
        let last = cuts.len() - 1;
        let mut cur = x;
        for (k, op) in cuts.into_iter().enumerate() {
            let name = if k == last {
                node.name.clone()
            } else {
                format!("{}:{k}", node.name)
            };
            cur = self.push(name, Op::Ext(ExtOp::Tensor(op)), &[cur])?;
        }
        Ok(self.node_value(cur))
    }

    /// Split of an activation: one slice per output, each named by its output.
    pub(super) fn split(&mut self, node: &NodeRef) -> Result<Value> {
        let (x, _) = self.activation(node, 0)?;
        let dims = self.logical[x].dims.clone();
        let a = axis(node.int("axis", 0)?, dims.len()).map_err(|e| node.invalid(e))?;
        if a == 0 {
            return Err(node.unsupported("splitting the batch"));
        }
        let outputs = node.proto.output.len();
        let sizes: Vec<usize> = match (
            self.opset >= 13,
            self.optional_constant(node, 1)?,
            node.ints("split")?,
        ) {
            (true, Some(s), _) => s.to_i64().iter().map(|&v| v.max(0) as usize).collect(),
            (false, _, Some(s)) => s.iter().map(|&v| v.max(0) as usize).collect(),
            _ => {
                let parts = node.count("num_outputs", outputs.max(1))?;
                let each = dims[a].div_ceil(parts);
                (0..parts)
                    .map(|k| each.min(dims[a].saturating_sub(k * each)))
                    .collect()
            }
        };
        if sizes.len() != outputs || sizes.iter().sum::<usize>() != dims[a] || sizes.contains(&0) {
            return Err(node.invalid(format!(
                "splits {sizes:?} into {outputs} outputs do not cover the {} entries of axis {a}",
                dims[a]
            )));
        }
        let mut first = None;
        let mut start = 0;
        for (k, &size) in sizes.iter().enumerate() {
            let name = node.proto.output[k].clone();
            let op = TensorOp::Slice {
                axis: a,
                start,
                end: start + size,
                step: 1,
            };
            start += size;
            if name.is_empty() {
                continue;
            }
            let v = if size == dims[a] {
                let id = self.push(name.clone(), Op::Identity, &[x])?;
                self.node_value(id)
            } else {
                self.push_tensor(name.clone(), op, &[x])?
            };
            self.values.insert(name, v.clone());
            first.get_or_insert(v);
        }
        first.ok_or_else(|| node.invalid("no output is named"))
    }

    /// Gather of an activation by constant indices.
    pub(super) fn gather(&mut self, node: &NodeRef) -> Result<Value> {
        let (x, _) = self.activation(node, 0)?;
        let dims = self.logical[x].dims.clone();
        let a = axis(node.int("axis", 0)?, dims.len()).map_err(|e| node.invalid(e))?;
        let idx = self.constant(node, 1)?;
        if a == 0 {
            return Err(node.unsupported("gathering along the batch"));
        }
        if idx.dims.len() > 1 {
            return Err(node.unsupported(format!(
                "indices of shape {:?} (only a scalar or a vector)",
                idx.dims
            )));
        }
        let n = dims[a] as i64;
        let indices = idx
            .to_i64()
            .iter()
            .map(|&i| {
                let j = if i < 0 { i + n } else { i };
                if (0..n).contains(&j) {
                    Ok(j as usize)
                } else {
                    Err(node.invalid(format!("index {i} is out of range for an axis of {n}")))
                }
            })
            .collect::<Result<Vec<_>>>()?;
        let op = TensorOp::Gather {
            axis: a,
            indices,
            drop_axis: idx.dims.is_empty(),
        };
        self.push_tensor(node.name.clone(), op, &[x])
    }

    /// ReduceMean / ReduceMax / ReduceSum over any axes but the batch; the spatial mean of an
    /// image-like value is a GlobalAvgPool (the fast path CAM methods know).
    pub(super) fn reduce(&mut self, node: &NodeRef) -> Result<Value> {
        let (x, rank) = self.activation(node, 0)?;
        let reduction = match node.op() {
            "ReduceMean" => Reduction::Mean,
            "ReduceMax" => Reduction::Max,
            _ => Reduction::Sum,
        };
        let axes_input = self.opset >= 18 || (node.op() == "ReduceSum" && self.opset >= 13);
        let axes = self.axes_of(node, if axes_input { 1 } else { usize::MAX }, rank)?;
        let keep = node.flag("keepdims", true)?;
        let axes = match axes {
            Some(a) if !a.is_empty() => a,
            _ if node.flag("noop_with_empty_axes", false)? => return self.unary(node, Op::Identity),
            _ => (0..rank).collect(),
        };
        if axes.contains(&0) {
            return Err(node.unsupported(format!("a reduction over axes {axes:?}, which include the batch")));
        }
        if reduction == Reduction::Mean
            && rank == 4
            && axes == [2, 3]
            && self.logical[x].axes[2..] == self.logical[0].axes[2..]
        {
            if keep {
                let id = self.push(node.name.clone(), Op::GlobalAvgPool, &[x])?;
                return Ok(self.node_value(id));
            }
            let pooled = self.push(format!("{}:mean", node.name), Op::GlobalAvgPool, &[x])?;
            let id = self.push(node.name.clone(), Op::Flatten, &[pooled])?;
            return Ok(self.node_value(id));
        }
        let op = TensorOp::Reduce {
            reduction,
            axes,
            keep_dims: keep,
        };
        self.push_tensor(node.name.clone(), op, &[x])
    }

    pub(super) fn layer_norm(&mut self, node: &NodeRef) -> Result<Value> {
        self.check_extra_outputs(node)?;
        let (x, rank) = self.activation(node, 0)?;
        let a = axis(node.int("axis", -1)?, rank).map_err(|e| node.invalid(e))?;
        let m: usize = self.logical[x].dims[a..].iter().product();
        let per_entry = |c: Option<std::sync::Arc<Const>>, what: &str| -> Result<Option<Tensor<1>>> {
            match c {
                None => Ok(None),
                Some(c) if c.len() == m => Ok(Some(self.vector(c.to_f32()))),
                Some(c) if c.len() == 1 => Ok(Some(self.vector(vec![c.to_f32()[0]; m]))),
                Some(c) => Err(node.unsupported(format!(
                    "a {what} of shape {:?} for {m} normalised entries",
                    c.dims
                ))),
            }
        };
        let scale = per_entry(Some(self.constant(node, 1)?), "scale")?;
        let bias = per_entry(self.optional_constant(node, 2)?, "bias")?;
        let op = TensorOp::LayerNorm {
            axis: a,
            scale,
            bias,
            eps: node.float("epsilon", 1e-5)? as f64,
        };
        self.push_tensor(node.name.clone(), op, &[x])
    }

    /// GroupNormalization (scale and bias per group at opset 18, per channel from 21) and
    /// InstanceNormalization (a group per channel).
    pub(super) fn group_norm(&mut self, node: &NodeRef) -> Result<Value> {
        let (x, rank) = self.activation(node, 0)?;
        if rank < 3 {
            return Err(node.unsupported(format!("normalising a rank-{rank} value (needs [N, C, ...])")));
        }
        let c = self.logical[x].dims[1];
        let groups = if node.op() == "InstanceNormalization" {
            c
        } else {
            node.count("num_groups", 0)?
        };
        if groups == 0 || !c.is_multiple_of(groups) {
            return Err(node.invalid(format!("{groups} groups for {c} channels")));
        }
        let per_channel = |k: usize| -> Result<Vec<f32>> {
            let v = self.constant(node, k)?.to_f32();
            match v.len() {
                n if n == c => Ok(v),
                n if n == groups => Ok((0..c).map(|ch| v[ch / (c / groups)]).collect()),
                n => Err(node.invalid(format!(
                    "{n} scale/bias values for {c} channels in {groups} groups"
                ))),
            }
        };
        let op = TensorOp::GroupNorm {
            groups,
            scale: self.vector(per_channel(1)?),
            bias: self.vector(per_channel(2)?),
            eps: node.float("epsilon", 1e-5)? as f64,
        };
        self.push_tensor(node.name.clone(), op, &[x])
    }

    /// MatMul of an activation of rank 3 or more by a constant matrix, on either side.
    pub(super) fn matmul_any(&mut self, node: &NodeRef) -> Result<Value> {
        let (a, b) = (self.value(node, 0)?.clone(), self.value(node, 1)?.clone());
        let device = self.device;
        let matrix = |c: &Const| -> Result<Tensor<2>> {
            let [r, k] = c.dims[..] else {
                return Err(node.unsupported(format!("a constant of shape {:?} (only a matrix)", c.dims)));
            };
            Ok(Tensor::from_data(TensorData::new(c.to_f32(), [r, k]), device))
        };
        match (&a, &b) {
            (_, Value::Const(w)) => {
                let (x, _) = self.activation(node, 0)?;
                let weight = matrix(w)?;
                self.push_tensor(node.name.clone(), TensorOp::MatMul { weight, bias: None }, &[x])
            }
            (Value::Const(w), _) => {
                let (x, _) = self.activation(node, 1)?;
                let weight = matrix(w)?;
                self.push_tensor(node.name.clone(), TensorOp::MatMulLeft { weight }, &[x])
            }
            _ => Err(node.unsupported("a product of two activations (only activation x constant matrix)")),
        }
    }

    pub(super) fn prelu(&mut self, node: &NodeRef) -> Result<Value> {
        let (x, _) = self.activation(node, 0)?;
        let slope = self.constant(node, 1)?;
        let op = TensorOp::PRelu(self.runtime_constant(&slope));
        self.push_tensor(node.name.clone(), op, &[x])
    }

    pub(super) fn expand(&mut self, node: &NodeRef) -> Result<Value> {
        let (x, _) = self.activation(node, 0)?;
        let shape: Vec<usize> = self
            .constant(node, 1)?
            .to_i64()
            .iter()
            .map(|&d| d.max(0) as usize)
            .collect();
        let dims = &self.logical[x].dims;
        let grows = shape.len() > dims.len()
            || shape
                .iter()
                .rev()
                .zip(dims.iter().rev())
                .any(|(&s, &d)| s != 1 && s != d);
        if !grows {
            return self.unary(node, Op::Identity);
        }
        self.push_tensor(node.name.clone(), TensorOp::Expand(shape), &[x])
    }

    /// A comparison of an activation with a constant, as a 0/1 mask.
    pub(super) fn compare(&mut self, node: &NodeRef) -> Result<Value> {
        let op = match node.op() {
            "Greater" => Comparison::Greater,
            "GreaterOrEqual" => Comparison::GreaterOrEqual,
            "Less" => Comparison::Less,
            "LessOrEqual" => Comparison::LessOrEqual,
            _ => Comparison::Equal,
        };
        let constant_first = matches!(self.value(node, 0)?, Value::Const(_));
        let (c, k) = if constant_first { (0, 1) } else { (1, 0) };
        let constant = self.constant(node, c)?;
        let (x, _) = self.activation(node, k)?;
        let op = TensorOp::Compare {
            op,
            constant: self.runtime_constant(&constant),
            constant_first,
        };
        self.push_tensor(node.name.clone(), op, &[x])
    }

    /// Where; the condition and either branch may be constants.
    pub(super) fn where_op(&mut self, node: &NodeRef) -> Result<Value> {
        let mut inputs = Vec::new();
        let mut branch = |imp: &mut Self, k: usize| -> Result<Option<Constant>> {
            match imp.value(node, k)?.clone() {
                Value::Const(c) => Ok(Some(imp.runtime_constant(&c))),
                _ => {
                    inputs.push(imp.activation(node, k)?.0);
                    Ok(None)
                }
            }
        };
        let mask = branch(self, 0)?;
        let then_value = branch(self, 1)?;
        let else_value = branch(self, 2)?;
        let op = TensorOp::Where {
            mask,
            then_value,
            else_value,
        };
        self.push_tensor(node.name.clone(), op, &inputs)
    }

    /// Resize (opset 10+) and Upsample (opsets 7 and 9) of the spatial axes.
    pub(super) fn resize(&mut self, node: &NodeRef) -> Result<Value> {
        let (x, rank) = self.activation(node, 0)?;
        if rank != 4 {
            return Err(node.unsupported(format!("resizing a rank-{rank} value (only [N, C, H, W])")));
        }
        let dims = self.logical[x].dims.clone();
        let legacy = node.op() == "Upsample" || self.opset < 11;
        let scales_at = if legacy { 1 } else { 2 };
        let scales = match (node.op(), self.opset) {
            ("Upsample", ..9) => node.floats("scales")?,
            _ => self
                .optional_constant(node, scales_at)?
                .map(|c| c.to_f32())
                .filter(|s| !s.is_empty()),
        };
        let sizes = if legacy {
            None
        } else {
            self.optional_constant(node, 3)?
                .map(|c| c.to_i64())
                .filter(|s| !s.is_empty())
        };
        if let Some(axes) = node.ints("axes")?
            && axes != [2, 3]
            && axes != [-2, -1]
        {
            return Err(node.unsupported(format!("resizing axes {axes:?} (only height and width)")));
        }
        let (size, scales) = match (sizes, scales) {
            (Some(s), _) if s.len() == 4 && s[0] as usize == dims[0] && s[1] as usize == dims[1] => {
                ([s[2].max(0) as usize, s[3].max(0) as usize], None)
            }
            (Some(s), _) if s.len() == 2 => ([s[0].max(0) as usize, s[1].max(0) as usize], None),
            (None, Some(s)) if s.len() == 4 && s[0] == 1.0 && s[1] == 1.0 => {
                let out = |k: usize| (dims[k] as f64 * s[k] as f64).floor() as usize;
                ([out(2), out(3)], Some([s[2], s[3]]))
            }
            (sizes, scales) => {
                return Err(node.unsupported(format!(
                    "sizes {sizes:?} / scales {scales:?} (only height and width change)"
                )));
            }
        };
        let mode = node.string("mode")?.unwrap_or_else(|| "nearest".into());
        let coordinates = if legacy {
            CoordinateMode::Asymmetric
        } else {
            match node
                .string("coordinate_transformation_mode")?
                .as_deref()
                .unwrap_or("half_pixel")
            {
                "half_pixel" => CoordinateMode::HalfPixel,
                "pytorch_half_pixel" => CoordinateMode::PytorchHalfPixel,
                "align_corners" => CoordinateMode::AlignCorners,
                "asymmetric" => CoordinateMode::Asymmetric,
                "tf_half_pixel_for_nn" => CoordinateMode::TfHalfPixelForNn,
                other => return Err(node.unsupported(format!("coordinate_transformation_mode '{other}'"))),
            }
        };
        let interpolation = match mode.as_str() {
            "nearest" if legacy => Interpolation::Nearest(NearestMode::Floor),
            "nearest" => Interpolation::Nearest(
                match node
                    .string("nearest_mode")?
                    .as_deref()
                    .unwrap_or("round_prefer_floor")
                {
                    "round_prefer_floor" => NearestMode::RoundPreferFloor,
                    "round_prefer_ceil" => NearestMode::RoundPreferCeil,
                    "floor" => NearestMode::Floor,
                    "ceil" => NearestMode::Ceil,
                    other => return Err(node.unsupported(format!("nearest_mode '{other}'"))),
                },
            ),
            "linear" | "bilinear" => {
                let shrinks = size[0] < dims[2] || size[1] < dims[3];
                if shrinks && node.flag("antialias", false)? {
                    return Err(node.unsupported("antialiased downscaling"));
                }
                Interpolation::Linear
            }
            other => return Err(node.unsupported(format!("mode '{other}' (only nearest and linear)"))),
        };
        let op = TensorOp::Resize(Resize {
            size,
            scales,
            mode: interpolation,
            coordinates,
        });
        self.push_tensor(node.name.clone(), op, &[x])
    }
}
