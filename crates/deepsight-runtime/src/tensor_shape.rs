//! Shape inference of [`TensorOp`]: the logical output shape and axis meanings for the inputs'
//! shapes, or why they do not fit.

use crate::tensor_ops::TensorOp;
use crate::value::{MAX_RANK, ValueShape};

impl TensorOp {
    /// The output shape for inputs of `xs`, or why they do not fit.
    pub(crate) fn output_shape(&self, xs: &[ValueShape]) -> Result<ValueShape, String> {
        let x = &xs[0];
        let r = x.rank();
        let in_range = |a: usize| {
            if a == 0 || a >= r {
                Err(format!("axis {a} of a rank-{r} value (the batch, axis 0, stays)"))
            } else {
                Ok(a)
            }
        };
        let out = match self {
            TensorOp::Transpose(perm) => {
                let mut seen = perm.clone();
                seen.sort_unstable();
                if seen != (0..r).collect::<Vec<_>>() || perm[0] != 0 {
                    return Err(format!(
                        "perm {perm:?} is not a permutation of a rank-{r} value keeping the batch first"
                    ));
                }
                x.permuted(perm)
            }
            TensorOp::Reshape(dims) => {
                // The batch is the input's, whatever the file folded it to.
                let mut dims = dims.clone();
                if dims.is_empty()
                    || dims[1..].iter().product::<usize>() != x.dims[1..].iter().product::<usize>()
                {
                    return Err(format!("cannot reshape {:?} to {dims:?}", x.dims));
                }
                dims[0] = x.dims[0];
                x.reshaped(dims)
            }
            TensorOp::Slice {
                axis,
                start,
                end,
                step,
            } => {
                let a = in_range(*axis)?;
                if *step == 0 || start >= end || *end > x.dims[a] {
                    return Err(format!(
                        "slice {start}..{end} step {step} of an axis of {}",
                        x.dims[a]
                    ));
                }
                let mut s = x.clone();
                s.dims[a] = (end - start).div_ceil(*step);
                s
            }
            TensorOp::Gather {
                axis,
                indices,
                drop_axis,
            } => {
                let a = in_range(*axis)?;
                if indices.is_empty()
                    || indices.iter().any(|&i| i >= x.dims[a])
                    || (*drop_axis && indices.len() != 1)
                {
                    return Err(format!("indices {indices:?} on an axis of {}", x.dims[a]));
                }
                let mut s = x.clone();
                if *drop_axis {
                    s.dims.remove(a);
                    s.axes.remove(a);
                } else {
                    s.dims[a] = indices.len();
                }
                s
            }
            TensorOp::Reduce { axes, keep_dims, .. } => {
                let mut s = x.clone();
                for &a in axes {
                    in_range(a)?;
                    s.dims[a] = 1;
                }
                if !keep_dims {
                    let keep: Vec<usize> = (0..r).filter(|k| !axes.contains(k)).collect();
                    s = ValueShape {
                        dims: keep.iter().map(|&k| s.dims[k]).collect(),
                        axes: keep.iter().map(|&k| s.axes[k]).collect(),
                    };
                }
                s
            }
            TensorOp::Softmax { axis } => {
                in_range(*axis)?;
                x.clone()
            }
            TensorOp::Concat { axis } => {
                let a = in_range(*axis)?;
                let mut s = x.clone();
                for y in &xs[1..] {
                    let same = y.rank() == r && (0..r).all(|k| k == a || y.dims[k] == x.dims[k]);
                    if !same {
                        return Err(format!(
                            "concatenates {:?} with {:?} along axis {a}",
                            y.dims, x.dims
                        ));
                    }
                    s.dims[a] += y.dims[a];
                }
                s
            }
            TensorOp::Expand(dims) => broadcast_shape(x, &ValueShape::conventional(dims.clone()))?,
            TensorOp::LayerNorm {
                axis, scale, bias, ..
            } => {
                in_range(*axis)?;
                let m: usize = x.dims[*axis..].iter().product();
                for t in [scale, bias].into_iter().flatten() {
                    if t.dims()[0] != m {
                        return Err(format!(
                            "{} scale/bias values for {m} normalised entries",
                            t.dims()[0]
                        ));
                    }
                }
                x.clone()
            }
            TensorOp::GroupNorm {
                groups, scale, bias, ..
            } => {
                let c = x.dims.get(1).copied().unwrap_or(0);
                if *groups == 0 || !c.is_multiple_of(*groups) || scale.dims()[0] != c || bias.dims()[0] != c {
                    return Err(format!(
                        "{groups} groups and {} scales for {c} channels",
                        scale.dims()[0]
                    ));
                }
                x.clone()
            }
            TensorOp::MatMul { weight, .. } => {
                let [k, m] = weight.dims();
                if r < 2 || x.dims[r - 1] != k {
                    return Err(format!("multiplies {:?} by a [{k}, {m}] matrix", x.dims));
                }
                let mut s = x.clone();
                s.dims[r - 1] = m;
                s
            }
            TensorOp::MatMulLeft { weight } => {
                let [m, k] = weight.dims();
                if r < 3 || x.dims[r - 2] != k {
                    return Err(format!("multiplies a [{m}, {k}] matrix by {:?}", x.dims));
                }
                let mut s = x.clone();
                s.dims[r - 2] = m;
                s
            }
            TensorOp::PRelu(slope) => {
                let s = broadcast_shape(x, &ValueShape::conventional(slope.dims.clone()))?;
                if s.dims != x.dims {
                    return Err(format!("a slope of {:?} would grow {:?}", slope.dims, x.dims));
                }
                s
            }
            TensorOp::Binary(_) => broadcast_shape(x, &xs[1])?,
            TensorOp::WithConstant { constant, .. } => {
                let s = broadcast_shape(x, &ValueShape::conventional(constant.dims.clone()))?;
                if s.dims[0] != x.dims[0] {
                    return Err(format!("a constant of {:?} varies over the batch", constant.dims));
                }
                s
            }
            TensorOp::Where {
                mask,
                then_value,
                else_value,
            } => {
                let mut s = x.clone();
                let constants = [mask, then_value, else_value].into_iter().flatten();
                for y in xs[1..]
                    .iter()
                    .cloned()
                    .chain(constants.map(|c| ValueShape::conventional(c.dims.clone())))
                {
                    s = broadcast_shape(&s, &y)?;
                }
                if s.dims[0] != x.dims[0] {
                    return Err("a constant varies over the batch".into());
                }
                s
            }
            TensorOp::Compare { constant, .. } => {
                let s = broadcast_shape(x, &ValueShape::conventional(constant.dims.clone()))?;
                if s.dims[0] != x.dims[0] {
                    return Err(format!("a constant of {:?} varies over the batch", constant.dims));
                }
                s
            }
            TensorOp::Resize(rs) => {
                if r != 4 || rs.size.contains(&0) {
                    return Err(format!(
                        "resizes {:?} to {:?} (only [N, C, H, W] values)",
                        x.dims, rs.size
                    ));
                }
                let mut s = x.clone();
                s.dims[2..].copy_from_slice(&rs.size);
                s
            }
        };
        if out.rank() > MAX_RANK || out.rank() == 0 {
            return Err(format!("gives a rank-{} value (at most {MAX_RANK})", out.rank()));
        }
        Ok(out)
    }
}

/// NumPy broadcasting; the axes' meanings come from the higher-rank operand.
pub(crate) fn broadcast_shape(a: &ValueShape, b: &ValueShape) -> Result<ValueShape, String> {
    let (big, small) = if b.rank() > a.rank() { (b, a) } else { (a, b) };
    let offset = big.rank() - small.rank();
    let mut out = big.clone();
    for k in 0..small.rank() {
        let (x, y) = (big.dims[offset + k], small.dims[k]);
        out.dims[offset + k] = match (x, y) {
            _ if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("cannot broadcast {:?} with {:?}", a.dims, b.dims)),
        };
    }
    Ok(out)
}
