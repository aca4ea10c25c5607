//! The import loop: walks the ONNX nodes in order, folding constants and turning every operation
//! on activations into a node of a DeepSight [`Graph`], named by the ONNX node's output.

use crate::constant::{Const, axis, resolve_reshape};
use crate::error::{OnnxError, Result};
use crate::node::NodeRef;
use deepsight_runtime::{
    Activation, Arithmetic, BatchNorm, Bounds, Conv2d, ConvTranspose2d, Device, ExtOp, Graph, Linear, Lrn,
    NodeId, Op, Pad, Padding, Pool, Tensor, TensorData,
};
use onnx_protobuf::{GraphProto, ModelProto};
use std::collections::{HashMap, HashSet};

/// A value flowing through the ONNX graph.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// Known at import time.
    Const(Const),
    /// A node of the DeepSight graph; `rank` is its ONNX rank (4, or 2 for `[N, F]`, stored as
    /// `[N, F, 1, 1]`).
    Node { id: NodeId, rank: usize },
    /// A constant spatial padding not yet materialised: a convolution reading it absorbs it.
    Padded { id: NodeId, pad: Pad, name: String },
}

/// What the import produced besides the graph.
pub struct Imported {
    pub graph: Graph,
    /// The input `[height, width]` the graph was folded for.
    pub input_size: [usize; 2],
    /// Things the user should know (a removed trailing softmax, an assumed input size).
    pub notes: Vec<String>,
}

pub(crate) struct Importer<'a> {
    graph: Graph,
    device: &'a Device,
    values: HashMap<String, Value>,
    shapes: Vec<[usize; 4]>,
    input_shape: [usize; 4],
    opset: i64,
    consumed: HashSet<&'a str>,
    /// The graph input, when the model declares it NHWC (tf2onnx).
    nhwc_input: Option<String>,
}

fn dims_of_info(info: &onnx_protobuf::ValueInfoProto) -> Option<Vec<Option<usize>>> {
    use onnx_protobuf::tensor_shape_proto::dimension::Value as D;
    use onnx_protobuf::type_proto::Value as T;
    let Some(T::TensorType(t)) = &info.type_.as_ref()?.value else {
        return None;
    };
    Some(
        t.shape
            .as_ref()?
            .dim
            .iter()
            .map(|d| match d.value {
                Some(D::DimValue(v)) if v > 0 => Some(v as usize),
                _ => None,
            })
            .collect(),
    )
}

pub(crate) fn import_model(
    model: &ModelProto,
    device: &Device,
    input_size: Option<[usize; 2]>,
) -> Result<Imported> {
    let g: &GraphProto = model
        .graph
        .as_ref()
        .ok_or_else(|| OnnxError::Model("the file has no graph".into()))?;
    // The specification requires it; a file without it is most likely cut short.
    let opset = model
        .opset_import
        .iter()
        .find(|o| o.domain.is_empty() || o.domain == "ai.onnx")
        .map(|o| o.version)
        .ok_or_else(|| OnnxError::Model("the model declares no ONNX opset (is the file complete?)".into()))?;
    let mut notes = Vec::new();
    let mut values = HashMap::new();
    for init in &g.initializer {
        let c = Const::from_proto(init).map_err(OnnxError::Model)?;
        values.insert(init.name.clone(), Value::Const(c));
    }
    let inputs: Vec<_> = g.input.iter().filter(|i| !values.contains_key(&i.name)).collect();
    let [input] = inputs.as_slice() else {
        return Err(OnnxError::Model(format!(
            "DeepSight explains models with one image input; this graph has {} inputs ({})",
            inputs.len(),
            inputs
                .iter()
                .map(|i| i.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    };
    let dims = dims_of_info(input).unwrap_or_default();
    // tf2onnx keeps a Keras model's NHWC input and transposes it to NCHW first thing: DeepSight
    // then feeds NCHW directly and that Transpose becomes the identity.
    let to_nchw = |n: &onnx_protobuf::NodeProto| {
        n.op_type == "Transpose"
            && n.input.first() == Some(&input.name)
            && n.attribute
                .iter()
                .any(|a| a.name == "perm" && a.ints == [0, 3, 1, 2])
    };
    let readers: Vec<_> = g.node.iter().filter(|n| n.input.contains(&input.name)).collect();
    let nhwc = !readers.is_empty() && readers.iter().all(|n| to_nchw(n));
    if nhwc {
        notes.push(format!(
            "the model's NHWC input '{}' is fed as NCHW (its Transpose is skipped)",
            input.name
        ));
    }
    let (channels, declared) = match (dims.as_slice(), nhwc) {
        ([_, h, w, Some(c)], true) => (*c, [*h, *w]),
        ([_, Some(c), h, w], false) => (*c, [*h, *w]),
        _ => {
            return Err(OnnxError::Model(format!(
                "input '{}' must be an image batch [N, C, H, W] with a fixed channel count, got {dims:?}",
                input.name
            )));
        }
    };
    let size = match (declared, input_size) {
        ([Some(h), Some(w)], Some(s)) if s != [h, w] => {
            return Err(OnnxError::Model(format!(
                "input '{}' is fixed at {h}x{w}, but {}x{} was asked for",
                input.name, s[0], s[1]
            )));
        }
        ([Some(h), Some(w)], _) => [h, w],
        (_, Some(s)) => s,
        _ => {
            notes.push("the model's input height/width are dynamic: imported for 224x224".into());
            [224, 224]
        }
    };
    let [output] = g.output.as_slice() else {
        return Err(OnnxError::Model(format!(
            "DeepSight explains classifiers with one output (class scores); this graph has {}",
            g.output.len()
        )));
    };
    let mut consumed: HashSet<&str> = g
        .node
        .iter()
        .flat_map(|n| n.input.iter().map(String::as_str))
        .collect();
    consumed.insert(output.name.as_str());
    let mut imp = Importer {
        graph: Graph::new(&input.name, channels),
        device,
        values,
        shapes: Vec::new(),
        input_shape: [1, channels, size[0], size[1]],
        opset,
        consumed,
        nhwc_input: nhwc.then(|| input.name.clone()),
    };
    imp.refresh_shapes()?;
    imp.values
        .insert(input.name.clone(), Value::Node { id: 0, rank: 4 });
    // A trailing softmax turns scores into probabilities; every method wants the scores.
    let mut output_name = output.name.clone();
    let softmax_at = g.node.iter().position(|n| {
        n.output.first() == Some(&output.name) && matches!(n.op_type.as_str(), "Softmax" | "LogSoftmax")
    });
    for (i, proto) in g.node.iter().enumerate() {
        let node = NodeRef::new(proto, i);
        if Some(i) == softmax_at {
            let src = node.input(0).ok_or_else(|| node.invalid("no input"))?;
            notes.push(format!(
                "removed the trailing {} ('{}'): DeepSight reads the class scores before it",
                node.op(),
                node.name
            ));
            output_name = src.to_string();
            continue;
        }
        if !proto.domain.is_empty() && proto.domain != "ai.onnx" {
            return Err(node.unsupported(format!(
                "operator domain '{}' (only the standard ONNX domain)",
                proto.domain
            )));
        }
        let v = imp.convert(&node)?;
        imp.values.insert(node.name.clone(), v);
    }
    let out = imp
        .values
        .get(&output_name)
        .cloned()
        .ok_or_else(|| OnnxError::Model(format!("no node computes the graph output '{output_name}'")))?;
    let id = match out {
        Value::Node { id, .. } => id,
        _ => {
            return Err(OnnxError::Model(format!(
                "the graph output '{output_name}' does not depend on the input"
            )));
        }
    };
    if id != imp.graph.output() {
        imp.push(format!("{output_name}:output"), Op::Identity, &[id])?;
    }
    Ok(Imported {
        graph: imp.graph,
        input_size: size,
        notes,
    })
}

/// Where a SAME auto-pad puts its padding.
fn same_pads(
    input: [usize; 2],
    kernel: [usize; 2],
    stride: [usize; 2],
    dilation: [usize; 2],
    upper: bool,
) -> [usize; 4] {
    let [t, l, b, r] = Padding::SameUpper.resolve(input, kernel, stride, dilation);
    if upper { [t, l, b, r] } else { [b, r, t, l] }
}

impl<'a> Importer<'a> {
    fn refresh_shapes(&mut self) -> Result<()> {
        self.shapes = self.graph.infer_shapes(self.input_shape)?;
        Ok(())
    }

    fn push(&mut self, name: impl Into<String>, op: Op, inputs: &[NodeId]) -> Result<NodeId> {
        let id = self.graph.push(name, op, inputs)?;
        self.refresh_shapes()?;
        Ok(id)
    }

    fn value(&self, node: &NodeRef, i: usize) -> Result<&Value> {
        let name = node
            .input(i)
            .ok_or_else(|| node.invalid(format!("input #{i} is missing")))?;
        self.values.get(name).ok_or_else(|| {
            node.invalid(format!(
                "input '{name}' is not produced by any earlier node or initializer"
            ))
        })
    }

    fn constant(&self, node: &NodeRef, i: usize) -> Result<Const> {
        match self.value(node, i)? {
            Value::Const(c) => Ok(c.clone()),
            _ => Err(node.unsupported(format!(
                "input '{}' is computed from the image; DeepSight needs it to be a constant (weights, shapes)",
                node.input(i).unwrap_or_default()
            ))),
        }
    }

    fn optional_constant(&self, node: &NodeRef, i: usize) -> Result<Option<Const>> {
        match node.input(i) {
            None => Ok(None),
            Some(_) => self.constant(node, i).map(Some),
        }
    }

    /// ONNX dims of a value (batch folded as 1).
    fn dims(&self, v: &Value) -> Vec<usize> {
        match v {
            Value::Const(c) => c.dims.clone(),
            Value::Node { id, rank } => {
                let s = self.shapes[*id];
                if *rank == 2 { vec![s[0], s[1]] } else { s.to_vec() }
            }
            Value::Padded { id, pad, .. } => {
                let [n, c, h, w] = self.shapes[*id];
                vec![n, c, h + pad.pads[0] + pad.pads[2], w + pad.pads[1] + pad.pads[3]]
            }
        }
    }

    /// The graph node holding an activation input, materialising a pending pad.
    fn activation(&mut self, node: &NodeRef, i: usize) -> Result<(NodeId, usize)> {
        match self.value(node, i)?.clone() {
            Value::Node { id, rank } => Ok((id, rank)),
            Value::Padded { id, pad, name } => {
                let pid = match self.graph.find(&name) {
                    Ok(existing) => existing,
                    Err(_) => self.push(name.clone(), Op::Ext(ExtOp::Pad(pad)), &[id])?,
                };
                self.values.insert(name, Value::Node { id: pid, rank: 4 });
                Ok((pid, 4))
            }
            Value::Const(_) => Err(node.unsupported(format!(
                "input '{}' is a constant where DeepSight expects an activation",
                node.input(i).unwrap_or_default()
            ))),
        }
    }

    fn spatial(&self, node: &NodeRef, id: NodeId, rank: usize) -> Result<[usize; 2]> {
        if rank != 4 {
            return Err(node.unsupported(format!("needs an [N, C, H, W] input, got rank {rank}")));
        }
        let s = self.shapes[id];
        Ok([s[2], s[3]])
    }

    fn tensor<const D: usize>(&self, c: &Const, shape: [usize; D]) -> Tensor<D> {
        Tensor::from_data(TensorData::new(c.to_f32(), shape), self.device)
    }

    fn unary(&mut self, node: &NodeRef, op: Op) -> Result<Value> {
        let (x, rank) = self.activation(node, 0)?;
        let id = self.push(node.name.clone(), op, &[x])?;
        Ok(Value::Node { id, rank })
    }

    fn convert(&mut self, node: &NodeRef) -> Result<Value> {
        let all_const = (0..node.proto.input.len())
            .filter_map(|i| node.input(i))
            .all(|n| matches!(self.values.get(n), Some(Value::Const(_))));
        if all_const && !node.proto.input.is_empty() && crate::fold::FOLDABLE.contains(&node.op()) {
            return crate::fold::fold(self, node);
        }
        match node.op() {
            "Constant" => crate::fold::fold(self, node),
            "Shape" => {
                let v = self.value(node, 0)?.clone();
                let dims: Vec<i64> = self.dims(&v).iter().map(|&d| d as i64).collect();
                let r = dims.len() as i64;
                let clampi = |a: i64| (if a < 0 { a + r } else { a }).clamp(0, r) as usize;
                let (s, e) = (clampi(node.int("start", 0)), clampi(node.int("end", r)));
                let dims = if s < e { dims[s..e].to_vec() } else { vec![] };
                Ok(Value::Const(Const::i64(vec![dims.len()], dims)))
            }
            "Identity" | "Dropout" => {
                if node.op() == "Dropout" && node.int("training_mode", 0) != 0 {
                    return Err(node.unsupported("training_mode = 1"));
                }
                self.check_extra_outputs(node)?;
                self.unary(node, Op::Identity)
            }
            "Cast" => {
                let to = node.int("to", 1);
                if ![1, 10, 11, 16].contains(&to) {
                    return Err(
                        node.unsupported(format!("casting an activation to type {to} (only to floats)"))
                    );
                }
                self.unary(node, Op::Identity)
            }
            "Conv" => self.conv(node),
            "ConvTranspose" => self.conv_transpose(node),
            "BatchNormalization" => self.batch_norm(node),
            "Relu" => self.unary(node, Op::Rectifier(Bounds::RELU)),
            "Clip" => self.clip(node),
            "LeakyRelu" => {
                let alpha = node.float("alpha", 0.01);
                self.unary(node, Op::Ext(ExtOp::Activation(Activation::LeakyRelu { alpha })))
            }
            "Sigmoid" => self.unary(node, Op::Ext(ExtOp::Activation(Activation::Sigmoid))),
            "HardSigmoid" => {
                let (alpha, beta) = (node.float("alpha", 0.2), node.float("beta", 0.5));
                self.unary(
                    node,
                    Op::Ext(ExtOp::Activation(Activation::HardSigmoid { alpha, beta })),
                )
            }
            "HardSwish" => self.unary(node, Op::Ext(ExtOp::Activation(Activation::HardSwish))),
            "Tanh" => self.unary(node, Op::Ext(ExtOp::Activation(Activation::Tanh))),
            "MaxPool" | "AveragePool" => self.pool(node),
            "GlobalAveragePool" => {
                let (x, rank) = self.activation(node, 0)?;
                self.spatial(node, x, rank)?;
                let id = self.push(node.name.clone(), Op::GlobalAvgPool, &[x])?;
                Ok(Value::Node { id, rank: 4 })
            }
            "GlobalMaxPool" => {
                let (x, rank) = self.activation(node, 0)?;
                let [h, w] = self.spatial(node, x, rank)?;
                let pool = Pool {
                    kernel: [h, w],
                    stride: [1, 1],
                    ..Pool::square(1, 1, 0)
                };
                let id = self.push(node.name.clone(), Op::MaxPool(pool), &[x])?;
                Ok(Value::Node { id, rank: 4 })
            }
            "LRN" => {
                let size = node.int("size", 0);
                if size < 1 {
                    return Err(node.invalid("attribute 'size' must be a positive integer"));
                }
                let lrn = Lrn {
                    size: size as usize,
                    alpha: node.float("alpha", 1e-4),
                    beta: node.float("beta", 0.75),
                    bias: node.float("bias", 1.0),
                };
                self.unary(node, Op::Ext(ExtOp::Lrn(lrn)))
            }
            "Gemm" => self.gemm(node),
            "MatMul" => self.matmul(node),
            "Add" | "Sub" | "Mul" | "Div" => self.arithmetic(node),
            "Pad" => self.pad(node),
            "Softmax" => {
                let (x, rank) = self.activation(node, 0)?;
                let default = if self.opset >= 13 { -1 } else { 1 };
                let ax = axis(node.int("axis", default), rank).map_err(|e| node.invalid(e))?;
                if ax != 1 && !(rank == 4 && self.shapes[x][2] * self.shapes[x][3] == 1) {
                    return Err(node.unsupported(format!("softmax over axis {ax} (only over channels)")));
                }
                let id = self.push(node.name.clone(), Op::Ext(ExtOp::Softmax), &[x])?;
                Ok(Value::Node { id, rank })
            }
            "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" | "Transpose" => self.layout(node),
            "ReduceMean" => self.reduce_mean(node),
            "Concat" => self.concat(node),
            other => Err(node.unsupported(format!(
                "operator '{other}' is not supported; DeepSight imports CNN classifiers built from: {}",
                SUPPORTED.join(", ")
            ))),
        }
    }

    fn check_extra_outputs(&self, node: &NodeRef) -> Result<()> {
        match node
            .proto
            .output
            .iter()
            .skip(1)
            .find(|o| self.consumed.contains(o.as_str()))
        {
            Some(o) => {
                Err(node.unsupported(format!("its extra output '{o}' is used (training-time outputs)")))
            }
            None => Ok(()),
        }
    }

    fn conv(&mut self, node: &NodeRef) -> Result<Value> {
        let w = self.constant(node, 1)?;
        let [o, i, kh, kw] = w.dims[..] else {
            return Err(node.unsupported(format!("a weight of shape {:?}: only 2-D convolutions", w.dims)));
        };
        let bias = self.optional_constant(node, 2)?;
        let stride = node.pair("strides", 1)?;
        let dilation = node.pair("dilations", 1)?;
        let groups = node.int("group", 1).max(1) as usize;
        if let Some(k) = node.ints("kernel_shape")
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
        let mut padding = match node.string("auto_pad").as_deref().unwrap_or("NOTSET") {
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

    fn conv_transpose(&mut self, node: &NodeRef) -> Result<Value> {
        let w = self.constant(node, 1)?;
        let [i, o, kh, kw] = w.dims[..] else {
            return Err(node.unsupported(format!("a weight of shape {:?}: only 2-D convolutions", w.dims)));
        };
        if node.attr("output_shape").is_some() {
            return Err(node.unsupported("attribute 'output_shape' (give pads and output_padding instead)"));
        }
        if node.string("auto_pad").is_some_and(|a| a != "NOTSET") {
            return Err(node.unsupported("auto_pad on a transposed convolution"));
        }
        let [t, l, b, r] = node.pads()?;
        if t != b || l != r {
            return Err(node.unsupported(format!("asymmetric pads {:?}", [t, l, b, r])));
        }
        let groups = node.int("group", 1).max(1) as usize;
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
            stride: node.pair("strides", 1)?,
            padding: [t, l],
            output_padding: node.pair("output_padding", 0)?,
            dilation: node.pair("dilations", 1)?,
            groups,
        };
        self.unary(node, Op::Ext(ExtOp::ConvTranspose2d(ct)))
    }

    fn batch_norm(&mut self, node: &NodeRef) -> Result<Value> {
        if node.int("training_mode", 0) != 0 {
            return Err(node.unsupported("training_mode = 1 (export the model in eval mode)"));
        }
        self.check_extra_outputs(node)?;
        let p: Vec<Const> = (1..5).map(|i| self.constant(node, i)).collect::<Result<_>>()?;
        let c = p[0].len();
        if p.iter().any(|t| t.len() != c) {
            return Err(node.invalid("scale, bias, mean and variance differ in length"));
        }
        let bn = BatchNorm {
            gamma: self.tensor(&p[0], [c]),
            beta: self.tensor(&p[1], [c]),
            mean: self.tensor(&p[2], [c]),
            var: self.tensor(&p[3], [c]),
            eps: node.float("epsilon", 1e-5) as f64,
        };
        self.unary(node, Op::BatchNorm(bn))
    }

    fn clip(&mut self, node: &NodeRef) -> Result<Value> {
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

    fn pool(&mut self, node: &NodeRef) -> Result<Value> {
        let max = node.op() == "MaxPool";
        if max {
            self.check_extra_outputs(node)?;
            if node.int("storage_order", 0) != 0 {
                return Err(node.unsupported("storage_order = 1"));
            }
        }
        let (x, rank) = self.activation(node, 0)?;
        let hw = self.spatial(node, x, rank)?;
        let kernel = match node.ints("kernel_shape") {
            Some(_) => node.pair("kernel_shape", 1)?,
            None => return Err(node.invalid("attribute 'kernel_shape' is required")),
        };
        let stride = node.pair("strides", 1)?;
        let dilation = node.pair("dilations", 1)?;
        if !max && dilation != [1, 1] {
            return Err(node.unsupported("dilated average pooling"));
        }
        let padding = match node.string("auto_pad").as_deref().unwrap_or("NOTSET") {
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
            ceil_mode: node.int("ceil_mode", 0) != 0,
            count_include_pad: node.int("count_include_pad", 0) != 0,
        };
        let op = if max { Op::MaxPool(pool) } else { Op::AvgPool(pool) };
        let id = self.push(node.name.clone(), op, &[x])?;
        Ok(Value::Node { id, rank: 4 })
    }

    fn linear(
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

    fn gemm(&mut self, node: &NodeRef) -> Result<Value> {
        if node.int("transA", 0) != 0 {
            return Err(node.unsupported("transA = 1"));
        }
        let b = self.constant(node, 1)?;
        let [r, c] = b.dims[..] else {
            return Err(node.invalid(format!("B must be a matrix, got {:?}", b.dims)));
        };
        let (alpha, beta) = (node.float("alpha", 1.0), node.float("beta", 1.0));
        let trans = node.int("transB", 0) != 0;
        let (out, inp) = if trans { (r, c) } else { (c, r) };
        let m = if trans {
            b
        } else {
            b.transpose(&[1, 0]).map_err(|e| node.invalid(e))?
        };
        let weight: Vec<f32> = m.to_f32().iter().map(|v| v * alpha).collect();
        let bias = match self.optional_constant(node, 2)? {
            None => None,
            Some(cb) if cb.len() == out => Some(cb.to_f32().iter().map(|v| v * beta).collect()),
            Some(cb) if cb.len() == 1 => Some(vec![cb.to_f32()[0] * beta; out]),
            Some(cb) => return Err(node.unsupported(format!("C of shape {:?} for {out} outputs", cb.dims))),
        };
        self.linear(node, weight, [out, inp], bias)
    }

    fn matmul(&mut self, node: &NodeRef) -> Result<Value> {
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

    fn arithmetic(&mut self, node: &NodeRef) -> Result<Value> {
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

    fn pad(&mut self, node: &NodeRef) -> Result<Value> {
        let mode = node.string("mode").unwrap_or_else(|| "constant".into());
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
            (node.ints("pads").unwrap_or_default(), node.float("value", 0.0))
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
    fn layout(&mut self, node: &NodeRef) -> Result<Value> {
        let src = self.value(node, 0)?.clone();
        let dims = self.dims(&src);
        let target: Vec<usize> = match node.op() {
            "Flatten" => {
                let ax = axis(node.int("axis", 1), dims.len() + 1).map_err(|e| node.invalid(e))?;
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
                let axes = match self.optional_constant(node, 1)? {
                    Some(a) => a.to_i64(),
                    None => node.ints("axes").unwrap_or_default(),
                };
                crate::fold::squeeze_dims(&dims, &axes, node.op() == "Unsqueeze")
                    .map_err(|e| node.invalid(e))?
            }
            _ => {
                let perm = node
                    .ints("perm")
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
    fn reduce_mean(&mut self, node: &NodeRef) -> Result<Value> {
        let (x, rank) = self.activation(node, 0)?;
        let axes = match self.optional_constant(node, 1)? {
            Some(a) => a.to_i64(),
            None => node.ints("axes").unwrap_or_default(),
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
            rank: if node.int("keepdims", 1) != 0 { 4 } else { 2 },
        })
    }

    fn concat(&mut self, node: &NodeRef) -> Result<Value> {
        let n = node.proto.input.len();
        let mut ids = Vec::with_capacity(n);
        let mut rank = 0;
        for i in 0..n {
            let (id, r) = self.activation(node, i)?;
            ids.push(id);
            rank = r;
        }
        let ax = axis(node.int("axis", 1), rank).map_err(|e| node.invalid(e))?;
        if ax != 1 {
            return Err(node.unsupported(format!(
                "concatenating activations along axis {ax} (only channels)"
            )));
        }
        let id = self.push(node.name.clone(), Op::Ext(ExtOp::Concat), &ids)?;
        Ok(Value::Node { id, rank })
    }
}

impl Importer<'_> {
    pub(crate) fn constant_input(&self, node: &NodeRef, i: usize) -> Result<Const> {
        self.constant(node, i)
    }

    pub(crate) fn optional_constant_input(&self, node: &NodeRef, i: usize) -> Result<Option<Const>> {
        self.optional_constant(node, i)
    }
}

/// Every operator the importer takes, for the error message.
pub(crate) const SUPPORTED: &[&str] = &[
    "Conv",
    "ConvTranspose",
    "BatchNormalization",
    "Relu",
    "LeakyRelu",
    "Clip",
    "Sigmoid",
    "HardSigmoid",
    "HardSwish",
    "Tanh",
    "MaxPool",
    "AveragePool",
    "GlobalAveragePool",
    "GlobalMaxPool",
    "LRN",
    "Gemm",
    "MatMul",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Flatten",
    "Reshape",
    "Transpose",
    "Squeeze",
    "Unsqueeze",
    "Concat",
    "Pad",
    "Dropout",
    "Identity",
    "Cast",
    "Softmax",
    "ReduceMean",
    "Constant",
    "Shape",
    "Gather",
    "Slice",
    "ConstantOfShape",
    "Pow",
];
