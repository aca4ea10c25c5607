//! One ONNX node seen by the importer: its name for messages, and typed access to attributes.

use crate::error::OnnxError;
use onnx_protobuf::{AttributeProto, NodeProto};

pub(crate) struct NodeRef<'a> {
    pub proto: &'a NodeProto,
    /// The node's first output: the layer name DeepSight shows.
    pub name: String,
}

impl<'a> NodeRef<'a> {
    pub fn new(proto: &'a NodeProto, index: usize) -> Self {
        let name = match proto.output.first() {
            Some(o) if !o.is_empty() => o.clone(),
            _ if !proto.name.is_empty() => proto.name.clone(),
            _ => format!("{}_{index}", proto.op_type),
        };
        NodeRef { proto, name }
    }

    pub fn op(&self) -> &str {
        &self.proto.op_type
    }

    pub fn unsupported(&self, what: impl Into<String>) -> OnnxError {
        OnnxError::Unsupported {
            node: self.name.clone(),
            op: self.proto.op_type.clone(),
            what: what.into(),
        }
    }

    pub fn invalid(&self, reason: impl Into<String>) -> OnnxError {
        OnnxError::Invalid {
            node: self.name.clone(),
            op: self.proto.op_type.clone(),
            reason: reason.into(),
        }
    }

    pub fn attr(&self, name: &str) -> Option<&'a AttributeProto> {
        self.proto.attribute.iter().find(|a| a.name == name)
    }

    pub fn int(&self, name: &str, default: i64) -> i64 {
        self.attr(name).map_or(default, |a| a.i)
    }

    pub fn float(&self, name: &str, default: f32) -> f32 {
        self.attr(name).map_or(default, |a| a.f)
    }

    pub fn ints(&self, name: &str) -> Option<Vec<i64>> {
        self.attr(name).map(|a| a.ints.clone())
    }

    pub fn string(&self, name: &str) -> Option<String> {
        self.attr(name)
            .map(|a| String::from_utf8_lossy(&a.s).into_owned())
    }

    /// A pair of non-negative spatial values (strides, dilations, kernel), `default` if absent.
    pub fn pair(&self, name: &str, default: usize) -> Result<[usize; 2], OnnxError> {
        match self.ints(name) {
            None => Ok([default; 2]),
            Some(v) => match v.as_slice() {
                &[a, b] if a >= 0 && b >= 0 => Ok([a as usize, b as usize]),
                _ => Err(self.unsupported(format!(
                    "{name} = {v:?}: only 2-D operations on [N, C, H, W] are supported"
                ))),
            },
        }
    }

    /// ONNX `pads` `[top, left, bottom, right]` (begin values, then end values).
    pub fn pads(&self) -> Result<[usize; 4], OnnxError> {
        match self.ints("pads") {
            None => Ok([0; 4]),
            Some(v) => match v.as_slice() {
                &[t, l, b, r] if t >= 0 && l >= 0 && b >= 0 && r >= 0 => {
                    Ok([t as usize, l as usize, b as usize, r as usize])
                }
                _ => Err(self.unsupported(format!(
                    "pads = {v:?}: only non-negative 2-D padding is supported"
                ))),
            },
        }
    }

    /// Input `i`'s name, `None` if absent or the empty name (an omitted optional input).
    pub fn input(&self, i: usize) -> Option<&'a str> {
        self.proto
            .input
            .get(i)
            .map(String::as_str)
            .filter(|s| !s.is_empty())
    }
}
