//! The import loop: walks the ONNX nodes in order, folding constants and turning every operation
//! on activations into a node of a DeepSight [`Graph`], named by the ONNX node's output.

use crate::constant::{Const, axis};
use crate::error::{OnnxError, Result};
use crate::node::NodeRef;

mod gelu_pattern;
mod general;
mod layers;
mod lrn_pattern;
mod shape_ops;
use deepsight_runtime::{
    Activation, Bounds, Device, ExtOp, Graph, Lrn, NodeId, Op, Pad, Padding, Pool, Tensor, TensorData,
    TensorOp, ValueShape,
};
use onnx_protobuf::{GraphProto, ModelProto};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The ONNX opsets whose operator semantics the importer knows.
pub(crate) const OPSETS: std::ops::RangeInclusive<i64> = 7..=23;

/// A value flowing through the ONNX graph.
#[derive(Debug, Clone)]
pub(crate) enum Value {
    /// Known at import time; shared, because weights are large and values are cloned freely.
    Const(Arc<Const>),
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
    /// Every node's stored shape (its ONNX shape for rank 4).
    shapes: Vec<[usize; 4]>,
    /// Every node's ONNX shape and axis meanings.
    logical: Vec<ValueShape>,
    input_shape: [usize; 4],
    opset: i64,
    consumed: HashSet<&'a str>,
    /// The graph input, when the model declares it NHWC (tf2onnx).
    nhwc_input: Option<String>,
    /// PyTorch LocalResponseNorm chains (`lrn_pattern.rs`).
    lrn: lrn_pattern::LrnPatterns<'a>,
    /// The exporters' exact-GELU chains (`gelu_pattern.rs`).
    gelu: gelu_pattern::GeluPatterns,
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
    // Operators change meaning between opsets (Pad's pads moved to an input at 11, Softmax's
    // axis at 13): an opset outside the known range could be read wrongly, so it is refused.
    if !OPSETS.contains(&opset) {
        return Err(OnnxError::Model(format!(
            "the model declares ONNX opset {opset}; DeepSight reads opsets {} to {}",
            OPSETS.start(),
            OPSETS.end()
        )));
    }
    let mut notes = Vec::new();
    let mut values = HashMap::new();
    for init in &g.initializer {
        let c = Const::from_proto(init).map_err(OnnxError::Model)?;
        values.insert(init.name.clone(), Value::Const(Arc::new(c)));
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
    // A Keras model whose preprocessing layers (Rescaling, Normalization) run on the NHWC input
    // before its Transpose: DeepSight feeds NCHW and transposes it back for them.
    let nhwc_preprocessed = !nhwc
        && matches!(dims.as_slice(), [_, h, _, Some(1 | 3)] if !matches!(h, Some(1 | 3)))
        && g.node.iter().any(|n| {
            n.op_type == "Transpose"
                && n.attribute
                    .iter()
                    .any(|a| a.name == "perm" && a.ints == [0, 3, 1, 2])
        });
    if nhwc {
        notes.push(format!(
            "the model's NHWC input '{}' is fed as NCHW (its Transpose is skipped)",
            input.name
        ));
    }
    let (channels, declared) = match (dims.as_slice(), nhwc || nhwc_preprocessed) {
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
        logical: Vec::new(),
        input_shape: [1, channels, size[0], size[1]],
        opset,
        consumed,
        nhwc_input: nhwc.then(|| input.name.clone()),
        lrn: lrn_pattern::LrnPatterns::new(g),
        gelu: gelu_pattern::GeluPatterns::new(g),
    };
    imp.refresh_shapes()?;
    imp.values
        .insert(input.name.clone(), Value::Node { id: 0, rank: 4 });
    if nhwc_preprocessed {
        notes.push(format!(
            "the model's NHWC input '{}' is fed as NCHW and transposed back for the layers before its own Transpose",
            input.name
        ));
        let v = imp.push_tensor(
            format!("{}:nhwc", input.name),
            TensorOp::Transpose(vec![0, 2, 3, 1]),
            &[0],
        )?;
        imp.values.insert(input.name.clone(), v);
    }
    // A trailing softmax turns scores into probabilities; every method wants the scores.
    let mut output_name = output.name.clone();
    let softmax_at = g.node.iter().position(|n| {
        n.output.first() == Some(&output.name) && matches!(n.op_type.as_str(), "Softmax" | "LogSoftmax")
    });
    for (i, proto) in g.node.iter().enumerate() {
        let node = NodeRef::new(proto, i);
        if imp.gelu.is_inside(i) {
            continue;
        }
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
    /// Infers the shapes of the nodes pushed since the last call.
    fn refresh_shapes(&mut self) -> Result<()> {
        self.graph.extend_values(self.input_shape, &mut self.logical)?;
        let known = self.shapes.len();
        self.shapes
            .extend(self.logical[known..].iter().map(ValueShape::physical));
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

    pub(crate) fn constant(&self, node: &NodeRef, i: usize) -> Result<Arc<Const>> {
        match self.value(node, i)? {
            Value::Const(c) => Ok(c.clone()),
            _ => Err(node.unsupported(format!(
                "input '{}' is computed from the image; DeepSight needs it to be a constant (weights, shapes)",
                node.input(i).unwrap_or_default()
            ))),
        }
    }

    pub(crate) fn optional_constant(&self, node: &NodeRef, i: usize) -> Result<Option<Arc<Const>>> {
        match node.input(i) {
            None => Ok(None),
            Some(_) => self.constant(node, i).map(Some),
        }
    }

    /// ONNX dims of a value (batch folded as 1).
    fn dims(&self, v: &Value) -> Vec<usize> {
        match v {
            Value::Const(c) => c.dims.clone(),
            Value::Node { id, .. } => self.logical[*id].dims.clone(),
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
        if let Some(v) = self.lrn_pattern(node)? {
            return Ok(v);
        }
        if let Some(v) = self.gelu_pattern(node)? {
            return Ok(v);
        }
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
                let (s, e) = (clampi(node.int("start", 0)?), clampi(node.int("end", r)?));
                let dims = if s < e { dims[s..e].to_vec() } else { vec![] };
                Ok(Value::Const(Arc::new(Const::i64(vec![dims.len()], dims))))
            }
            "Identity" | "Dropout" => {
                if node.op() == "Dropout" && node.flag("training_mode", false)? {
                    return Err(node.unsupported("training_mode = 1"));
                }
                self.check_extra_outputs(node)?;
                self.unary(node, Op::Identity)
            }
            "Cast" => {
                let to = node.int("to", 1)?;
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
                let alpha = node.float("alpha", 0.01)?;
                self.unary(node, Op::Ext(ExtOp::Activation(Activation::LeakyRelu { alpha })))
            }
            "Sigmoid" => self.unary(node, Op::Ext(ExtOp::Activation(Activation::Sigmoid))),
            "HardSigmoid" => {
                let (alpha, beta) = (node.float("alpha", 0.2)?, node.float("beta", 0.5)?);
                self.unary(
                    node,
                    Op::Ext(ExtOp::Activation(Activation::HardSigmoid { alpha, beta })),
                )
            }
            "HardSwish" => self.unary(node, Op::Ext(ExtOp::Activation(Activation::HardSwish))),
            "Tanh" => self.unary(node, Op::Ext(ExtOp::Activation(Activation::Tanh))),
            "Erf" => self.unary(node, Op::Ext(ExtOp::Activation(Activation::Erf))),
            "Gelu" => match node.string("approximate")?.as_deref().unwrap_or("none") {
                "none" => self.unary(node, Op::Ext(ExtOp::Activation(Activation::Gelu))),
                other => Err(node.unsupported(format!("approximate = '{other}' (only the exact GELU)"))),
            },
            "Softplus" => self.unary(node, Op::Ext(ExtOp::Activation(Activation::Softplus))),
            "Mish" => self.unary(node, Op::Ext(ExtOp::Activation(Activation::Mish))),
            "Elu" => {
                let alpha = node.float("alpha", 1.0)?;
                self.unary(node, Op::Ext(ExtOp::Activation(Activation::Elu { alpha })))
            }
            "Selu" => {
                let alpha = node.float("alpha", 1.673_263_2)?;
                let gamma = node.float("gamma", 1.050_701)?;
                self.unary(
                    node,
                    Op::Ext(ExtOp::Activation(Activation::Selu { alpha, gamma })),
                )
            }
            "Sqrt" | "Exp" | "Neg" | "Abs" | "Reciprocal" => {
                let f = match node.op() {
                    "Sqrt" => Activation::Sqrt,
                    "Exp" => Activation::Exp,
                    "Neg" => Activation::Neg,
                    "Abs" => Activation::Abs,
                    _ => Activation::Reciprocal,
                };
                self.unary(node, Op::Ext(ExtOp::Activation(f)))
            }
            "Pow" => {
                let exponent = self
                    .constant(node, 1)?
                    .scalar_f32()
                    .map_err(|e| node.invalid(e))?;
                self.unary(node, Op::Ext(ExtOp::Activation(Activation::Pow { exponent })))
            }
            "PRelu" => self.prelu(node),
            "Slice" => self.slice(node),
            "Split" => self.split(node),
            "Gather" => self.gather(node),
            "ReduceMax" | "ReduceSum" => self.reduce(node),
            "LayerNormalization" => self.layer_norm(node),
            "GroupNormalization" | "InstanceNormalization" => self.group_norm(node),
            "Resize" | "Upsample" => self.resize(node),
            "Expand" => self.expand(node),
            "Where" => self.where_op(node),
            "Greater" | "GreaterOrEqual" | "Less" | "LessOrEqual" | "Equal" => self.compare(node),
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
                let size = node.count("size", 0)?;
                let lrn = Lrn {
                    size,
                    front: Lrn::onnx_front(size),
                    alpha: node.float("alpha", 1e-4)?,
                    beta: node.float("beta", 0.75)?,
                    bias: node.float("bias", 1.0)?,
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
                let ax = axis(node.int("axis", default)?, rank).map_err(|e| node.invalid(e))?;
                let dims = self.logical[x].dims.clone();
                if ax == 1 && matches!(rank, 2 | 4) {
                    let id = self.push(node.name.clone(), Op::Ext(ExtOp::Softmax), &[x])?;
                    return Ok(Value::Node { id, rank });
                }
                // Before opset 13 Softmax flattens the axes from `axis` on into one.
                if self.opset < 13 && dims[ax + 1..].iter().any(|&d| d != 1) {
                    return Err(node.unsupported(format!(
                        "a pre-13 softmax over the flattened axes {ax}.. of {dims:?}"
                    )));
                }
                if ax == 0 {
                    return Err(node.unsupported("a softmax over the batch"));
                }
                self.push_tensor(node.name.clone(), TensorOp::Softmax { axis: ax }, &[x])
            }
            "Flatten" | "Reshape" | "Squeeze" | "Unsqueeze" | "Transpose" => self.layout(node),
            "ReduceMean" => self.reduce(node),
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
}

/// Every operator the importer takes, for the error message.
pub const SUPPORTED: &[&str] = &[
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
    "ReduceMax",
    "ReduceSum",
    "Erf",
    "Gelu",
    "Softplus",
    "Mish",
    "Elu",
    "Selu",
    "PRelu",
    "Sqrt",
    "Exp",
    "Neg",
    "Abs",
    "Reciprocal",
    "Split",
    "Expand",
    "Where",
    "Greater",
    "Less",
    "Equal",
    "LayerNormalization",
    "GroupNormalization",
    "InstanceNormalization",
    "Resize",
    "Upsample",
    "Constant",
    "Shape",
    "Gather",
    "Slice",
    "ConstantOfShape",
    "Pow",
];
