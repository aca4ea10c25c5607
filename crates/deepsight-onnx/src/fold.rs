//! Constant folding: the operators that, on constant inputs, are evaluated at import time.

use crate::constant::{Const, axis};
use crate::error::Result;
use crate::import::{Importer, Value};
use crate::node::NodeRef;

/// Operators folded when every input is a constant.
pub(crate) const FOLDABLE: &[&str] = &[
    "Identity",
    "Cast",
    "Gather",
    "Slice",
    "ConstantOfShape",
    "Concat",
    "Unsqueeze",
    "Squeeze",
    "Reshape",
    "Transpose",
    "Flatten",
    "Add",
    "Sub",
    "Mul",
    "Div",
    "Pow",
    "Shape",
    "Constant",
];

/// Dims after removing (`unsqueeze` false) or inserting size-1 axes.
pub(crate) fn squeeze_dims(dims: &[usize], axes: &[i64], unsqueeze: bool) -> Result<Vec<usize>, String> {
    if unsqueeze {
        let rank = dims.len() + axes.len();
        let mut at: Vec<usize> = axes.iter().map(|&a| axis(a, rank)).collect::<Result<_, _>>()?;
        at.sort_unstable();
        let mut out = dims.to_vec();
        for a in at {
            out.insert(a, 1);
        }
        Ok(out)
    } else {
        let at: Vec<usize> = if axes.is_empty() {
            (0..dims.len()).filter(|&k| dims[k] == 1).collect()
        } else {
            axes.iter()
                .map(|&a| axis(a, dims.len()))
                .collect::<Result<_, _>>()?
        };
        // `axis` lets a scalar have an axis 0, which a squeeze cannot remove.
        if let Some(&k) = at.iter().find(|&&k| dims.get(k) != Some(&1)) {
            return Err(format!("cannot squeeze axis {k} of shape {dims:?}"));
        }
        Ok(dims
            .iter()
            .enumerate()
            .filter(|(k, _)| !at.contains(k))
            .map(|(_, &d)| d)
            .collect())
    }
}

fn constant_attr(node: &NodeRef) -> Result<Const> {
    let attr = node
        .proto
        .attribute
        .first()
        .ok_or_else(|| node.invalid("a Constant needs a value attribute"))?;
    let c = match attr.name.as_str() {
        "value" => {
            let t = attr
                .t
                .as_ref()
                .ok_or_else(|| node.invalid("empty tensor value"))?;
            Const::from_proto(t).map_err(|e| node.invalid(e))?
        }
        "value_float" => Const::f32(vec![], vec![attr.f]),
        "value_floats" => Const::f32(vec![attr.floats.len()], attr.floats.clone()),
        "value_int" => Const::i64(vec![], vec![attr.i]),
        "value_ints" => Const::i64(vec![attr.ints.len()], attr.ints.clone()),
        other => return Err(node.unsupported(format!("a Constant given as '{other}'"))),
    };
    Ok(c)
}

/// Evaluates `node` on its constant inputs.
pub(crate) fn fold(imp: &Importer, node: &NodeRef) -> Result<Value> {
    let input = |i: usize| imp.constant(node, i);
    let opt = |i: usize| imp.optional_constant(node, i);
    let bad = |e: String| node.invalid(e);
    let c = match node.op() {
        "Constant" => constant_attr(node)?,
        "Identity" => return Ok(Value::Const(input(0)?)),
        "Shape" => {
            let d = input(0)?.dims.clone();
            Const::i64(vec![d.len()], d.iter().map(|&v| v as i64).collect())
        }
        "Cast" => {
            let x = input(0)?;
            match node.int("to", 1)? {
                1 | 10 | 11 | 16 => Const::f32(x.dims.clone(), x.to_f32()),
                _ => Const::i64(x.dims.clone(), x.to_i64()),
            }
        }
        "Gather" => {
            let x = input(0)?;
            let ax = axis(node.int("axis", 0)?, x.dims.len()).map_err(bad)?;
            x.gather(ax, &*input(1)?).map_err(bad)?
        }
        "Slice" => {
            let x = input(0)?;
            let starts = input(1)?.to_i64();
            let ends = input(2)?.to_i64();
            let axes = match opt(3)? {
                Some(a) => a
                    .to_i64()
                    .iter()
                    .map(|&v| axis(v, x.dims.len()))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(bad)?,
                None => (0..starts.len()).collect(),
            };
            let steps = opt(4)?
                .map(|s| s.to_i64())
                .unwrap_or_else(|| vec![1; starts.len()]);
            if starts.len() != ends.len() || axes.len() != starts.len() {
                return Err(node.invalid("starts, ends and axes differ in length"));
            }
            x.slice(&starts, &ends, &axes, &steps).map_err(bad)?
        }
        "ConstantOfShape" => {
            let dims: Vec<usize> = input(0)?.to_i64().iter().map(|&d| d.max(0) as usize).collect();
            let fill = match node.attr("value").and_then(|a| a.t.as_ref()) {
                Some(t) => Const::from_proto(t).map_err(bad)?,
                None => Const::f32(vec![1], vec![0.0]),
            };
            let n: usize = dims
                .iter()
                .try_fold(1usize, |a, &d| a.checked_mul(d))
                .unwrap_or(usize::MAX);
            if n > 1 << 28 {
                return Err(node.invalid(format!("a constant of shape {dims:?} is too large")));
            }
            match fill.data {
                crate::constant::Data::F32(v) => Const::f32(dims, vec![v.first().copied().unwrap_or(0.0); n]),
                crate::constant::Data::I64(v) => Const::i64(dims, vec![v.first().copied().unwrap_or(0); n]),
            }
        }
        "Concat" => {
            let parts: Vec<std::sync::Arc<Const>> =
                (0..node.proto.input.len()).map(input).collect::<Result<_>>()?;
            let rank = parts.first().map_or(1, |p| p.dims.len());
            let ax = axis(node.int("axis", 0)?, rank).map_err(bad)?;
            Const::concat(&parts.iter().map(|p| &**p).collect::<Vec<_>>(), ax).map_err(bad)?
        }
        "Unsqueeze" | "Squeeze" => {
            let x = input(0)?;
            let axes = match opt(1)? {
                Some(a) => a.to_i64(),
                None => node.ints("axes")?.unwrap_or_default(),
            };
            let dims = squeeze_dims(&x.dims, &axes, node.op() == "Unsqueeze").map_err(bad)?;
            Const {
                dims,
                data: x.data.clone(),
            }
        }
        "Reshape" => input(0)?.reshape(&input(1)?.to_i64()).map_err(bad)?,
        "Flatten" => {
            let x = input(0)?;
            let ax = axis(node.int("axis", 1)?, x.dims.len() + 1).map_err(bad)?;
            let target = [x.dims[..ax].iter().product::<usize>() as i64, -1];
            x.reshape(&target).map_err(bad)?
        }
        "Transpose" => {
            let x = input(0)?;
            let perm: Vec<usize> = match node.ints("perm")? {
                Some(p) => p.iter().map(|&v| v.max(0) as usize).collect(),
                None => (0..x.dims.len()).rev().collect(),
            };
            x.transpose(&perm).map_err(bad)?
        }
        "Add" | "Sub" | "Mul" | "Div" | "Pow" => input(0)?.binary(&*input(1)?, node.op()).map_err(bad)?,
        other => return Err(node.unsupported(format!("folding '{other}'"))),
    };
    Ok(Value::Const(std::sync::Arc::new(c)))
}
