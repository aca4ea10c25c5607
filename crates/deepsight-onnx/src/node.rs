//! One ONNX node seen by the importer: its name for messages, and typed access to attributes.

use crate::error::OnnxError;
use onnx_protobuf::attribute_proto::AttributeType;
use onnx_protobuf::{AttributeProto, NodeProto};

pub(crate) struct NodeRef<'a> {
    pub proto: &'a NodeProto,
    /// The node's first output: the layer name DeepSight shows.
    pub name: String,
    /// The node's position in the file's graph.
    pub index: usize,
}

impl<'a> NodeRef<'a> {
    pub fn new(proto: &'a NodeProto, index: usize) -> Self {
        let name = match proto.output.first() {
            Some(o) if !o.is_empty() => o.clone(),
            _ if !proto.name.is_empty() => proto.name.clone(),
            _ => format!("{}_{index}", proto.op_type),
        };
        NodeRef { proto, name, index }
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

    /// The attribute `name` if present, refused when the file declares it of another type (a
    /// float `group` would otherwise read as 0).
    fn typed(&self, name: &str, want: AttributeType) -> Result<Option<&'a AttributeProto>, OnnxError> {
        let Some(a) = self.attr(name) else {
            return Ok(None);
        };
        match a.type_.enum_value() {
            Ok(t) if t == want || t == AttributeType::UNDEFINED => Ok(Some(a)),
            Ok(t) => Err(self.invalid(format!("attribute '{name}' must be of type {want:?}, got {t:?}"))),
            Err(code) => Err(self.invalid(format!("attribute '{name}' has the unknown type {code}"))),
        }
    }

    pub fn int(&self, name: &str, default: i64) -> Result<i64, OnnxError> {
        Ok(self.typed(name, AttributeType::INT)?.map_or(default, |a| a.i))
    }

    /// A 0/1 attribute (`ceil_mode`, `transB`, `keepdims`).
    pub fn flag(&self, name: &str, default: bool) -> Result<bool, OnnxError> {
        match self.int(name, default as i64)? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(self.invalid(format!("attribute '{name}' must be 0 or 1, got {v}"))),
        }
    }

    /// A count of at least 1 (`group`, `size`).
    pub fn count(&self, name: &str, default: usize) -> Result<usize, OnnxError> {
        match self.int(name, default as i64)? {
            v if v >= 1 => {
                usize::try_from(v).map_err(|_| self.invalid(format!("attribute '{name}' = {v} is too large")))
            }
            v => Err(self.invalid(format!("attribute '{name}' must be at least 1, got {v}"))),
        }
    }

    /// A finite float attribute.
    pub fn float(&self, name: &str, default: f32) -> Result<f32, OnnxError> {
        let v = self.typed(name, AttributeType::FLOAT)?.map_or(default, |a| a.f);
        if !v.is_finite() {
            return Err(self.invalid(format!("attribute '{name}' must be a finite number, got {v}")));
        }
        Ok(v)
    }

    pub fn ints(&self, name: &str) -> Result<Option<Vec<i64>>, OnnxError> {
        Ok(self.typed(name, AttributeType::INTS)?.map(|a| a.ints.clone()))
    }

    pub fn floats(&self, name: &str) -> Result<Option<Vec<f32>>, OnnxError> {
        Ok(self.typed(name, AttributeType::FLOATS)?.map(|a| a.floats.clone()))
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, OnnxError> {
        Ok(self
            .typed(name, AttributeType::STRING)?
            .map(|a| String::from_utf8_lossy(&a.s).into_owned()))
    }

    /// A pair of spatial values of at least `min` (strides, dilations and kernels 1, output
    /// padding 0), `default` if absent.
    pub fn pair(&self, name: &str, default: usize, min: usize) -> Result<[usize; 2], OnnxError> {
        match self.ints(name)? {
            None => Ok([default; 2]),
            Some(v) => match *v.as_slice() {
                [a, b] if a >= min as i64 && b >= min as i64 => Ok([a as usize, b as usize]),
                [_, _] => Err(self.invalid(format!("{name} = {v:?}: each must be at least {min}"))),
                _ => Err(self.unsupported(format!(
                    "{name} = {v:?}: only 2-D operations on [N, C, H, W] are supported"
                ))),
            },
        }
    }

    /// ONNX `pads` `[top, left, bottom, right]` (begin values, then end values).
    pub fn pads(&self) -> Result<[usize; 4], OnnxError> {
        match self.ints("pads")? {
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
