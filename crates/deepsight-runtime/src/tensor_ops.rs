//! Operations on values of any rank and layout (see [`crate::value`]): the axis moves, slices,
//! reductions, normalisations, matrix products and broadcasts that modern CNNs (ConvNeXt's NHWC
//! blocks, ShuffleNet's channel shuffle, CSP channel chunks, GroupNorm) put between their
//! convolutions. Each runs on a view of the stored tensor at its logical rank and is written
//! over burn's differentiable tensor ops, so gradients, captures and probes need no code of
//! their own; none is a rectifier, so guided and deconvnet rules leave them alone.

use crate::ops::Arithmetic;
use crate::resize::{Resize, resize_matrix};
use crate::value::physical;
use burn::tensor::activation::softmax;
use burn::tensor::{Bool, Int, Tensor, TensorData};

/// A constant operand of any rank, broadcast against the value it meets (NumPy rules, aligned on
/// the last axis).
#[derive(Debug, Clone)]
pub struct Constant {
    pub dims: Vec<usize>,
    pub values: Tensor<1>,
}

impl Constant {
    /// `values` row-major in `dims`.
    pub fn new(values: Vec<f32>, dims: Vec<usize>, device: &burn::tensor::Device) -> Self {
        let n = values.len();
        Constant {
            dims,
            values: Tensor::from_data(TensorData::new(values, [n]), device),
        }
    }

    /// The constant as a rank-`R` tensor, ones prepended.
    fn view<const R: usize>(&self) -> Tensor<R> {
        self.values.clone().reshape(aligned::<R>(&self.dims))
    }
}

/// A comparison of [`TensorOp::Compare`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Comparison {
    Greater,
    GreaterOrEqual,
    Less,
    LessOrEqual,
    Equal,
}

/// How a reduction combines the values along its axes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reduction {
    Mean,
    Max,
    Sum,
}

/// An operation on values of any rank; axes are logical, the batch (axis 0) never moves.
// Built once per model, a few per graph: boxing the weight-bearing variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum TensorOp {
    /// `out[k] = in[perm[k]]`.
    Transpose(Vec<usize>),
    /// To these dims (the first, the batch, is replaced by the input's).
    Reshape(Vec<usize>),
    /// `start..end` by `step` along `axis`.
    Slice {
        axis: usize,
        start: usize,
        end: usize,
        step: usize,
    },
    /// The entries `indices` along `axis`; a scalar index drops the axis.
    Gather {
        axis: usize,
        indices: Vec<usize>,
        drop_axis: bool,
    },
    Reduce {
        reduction: Reduction,
        axes: Vec<usize>,
        keep_dims: bool,
    },
    Softmax {
        axis: usize,
    },
    /// Along `axis`, any number of inputs.
    Concat {
        axis: usize,
    },
    /// Broadcast to these dims (a batch of 1 takes the input's).
    Expand(Vec<usize>),
    /// Normalisation over the axes from `axis` on, then `* scale + bias` (each of the normalised
    /// axes' extent, flattened).
    LayerNorm {
        axis: usize,
        scale: Option<Tensor<1>>,
        bias: Option<Tensor<1>>,
        eps: f64,
    },
    /// Normalisation over groups of channels (axis 1) and every axis after them, then a
    /// per-channel `* scale + bias`; InstanceNorm is one group per channel.
    GroupNorm {
        groups: usize,
        scale: Tensor<1>,
        bias: Tensor<1>,
        eps: f64,
    },
    /// `x @ weight (+ bias)` over the last axis; `weight` is `[K, M]`.
    MatMul {
        weight: Tensor<2>,
        bias: Option<Tensor<1>>,
    },
    /// `weight @ x` over the second-to-last axis; `weight` is `[M, K]`.
    MatMulLeft {
        weight: Tensor<2>,
    },
    /// `max(0, x) + slope * min(0, x)`, the slope broadcast.
    PRelu(Constant),
    /// Elementwise arithmetic of two values of any rank, broadcasting.
    Binary(Arithmetic),
    /// Arithmetic with a constant; `constant_first` for `constant - x` and `constant / x`.
    WithConstant {
        op: Arithmetic,
        constant: Constant,
        constant_first: bool,
    },
    /// `mask ? a : b`; the mask is a constant, or else the first input (nonzero is true); `a`
    /// and `b` are the next inputs in order, or a constant where `then_value` / `else_value` is
    /// given.
    Where {
        mask: Option<Constant>,
        then_value: Option<Constant>,
        else_value: Option<Constant>,
    },
    /// A comparison with a constant, 1 where it holds and 0 elsewhere (a mask for `Where`; it
    /// passes no gradient); `constant_first` for `constant < x` and the like.
    Compare {
        op: Comparison,
        constant: Constant,
        constant_first: bool,
    },
    Resize(Resize),
}

/// `dims` right-aligned in `R` axes.
fn aligned<const R: usize>(dims: &[usize]) -> [usize; R] {
    let mut a = [1usize; R];
    a[R - dims.len()..].copy_from_slice(dims);
    a
}

fn view<const R: usize>(x: Tensor<4>, dims: &[usize]) -> Tensor<R> {
    x.reshape(aligned::<R>(dims))
}

fn stored<const R: usize>(t: Tensor<R>) -> Tensor<4> {
    let dims = t.dims();
    t.reshape(physical(&dims))
}

macro_rules! by_rank {
    ($rank:expr, $f:ident ( $($arg:expr),* $(,)? )) => {
        match $rank {
            1 => $f::<1>($($arg),*),
            2 => $f::<2>($($arg),*),
            3 => $f::<3>($($arg),*),
            4 => $f::<4>($($arg),*),
            5 => $f::<5>($($arg),*),
            6 => $f::<6>($($arg),*),
            r => unreachable!("rank {r} is refused by shape inference"),
        }
    };
}

fn transpose<const R: usize>(x: Tensor<4>, dims: &[usize], perm: &[usize]) -> Tensor<4> {
    let mut p = [0usize; R];
    p.copy_from_slice(perm);
    stored(view::<R>(x, dims).permute(p))
}

fn slice<const R: usize>(x: Tensor<4>, dims: &[usize], axis: usize, idx: &[usize]) -> Tensor<4> {
    let t = view::<R>(x, dims);
    let contiguous = idx.windows(2).all(|w| w[1] == w[0] + 1);
    let t = if contiguous && !idx.is_empty() {
        t.narrow(axis, idx[0], idx.len())
    } else {
        let ints: Vec<i64> = idx.iter().map(|&i| i as i64).collect();
        let n = ints.len();
        let device = t.device();
        t.select(
            axis,
            Tensor::<1, Int>::from_data(TensorData::new(ints, [n]), &device),
        )
    };
    stored(t)
}

fn reduce<const R: usize>(x: Tensor<4>, dims: &[usize], axes: &[usize], how: Reduction) -> Tensor<4> {
    let mut t = view::<R>(x, dims);
    for &a in axes {
        t = match how {
            Reduction::Mean => t.mean_dim(a),
            Reduction::Max => t.max_dim(a),
            Reduction::Sum => t.sum_dim(a),
        };
    }
    stored(t)
}

fn softmax_at<const R: usize>(x: Tensor<4>, dims: &[usize], axis: usize) -> Tensor<4> {
    stored(softmax(view::<R>(x, dims), axis))
}

fn concat<const R: usize>(xs: Vec<Tensor<4>>, dims: &[Vec<usize>], axis: usize) -> Tensor<4> {
    let views = xs.into_iter().zip(dims).map(|(x, d)| view::<R>(x, d)).collect();
    stored(Tensor::cat(views, axis))
}

fn expand<const R: usize>(x: Tensor<4>, dims: &[usize], out: &[usize]) -> Tensor<4> {
    stored(view::<R>(x, dims).expand(aligned::<R>(out)))
}

fn arithmetic<const R: usize>(
    op: Arithmetic,
    a: Tensor<4>,
    da: &[usize],
    b: Tensor<4>,
    db: &[usize],
) -> Tensor<4> {
    stored(op.on(view::<R>(a, da), view::<R>(b, db)))
}

fn with_constant<const R: usize>(
    op: Arithmetic,
    x: Tensor<4>,
    dims: &[usize],
    c: &Constant,
    constant_first: bool,
) -> Tensor<4> {
    let (x, c) = (view::<R>(x, dims), c.view::<R>());
    stored(if constant_first { op.on(c, x) } else { op.on(x, c) })
}

fn compare<const R: usize>(
    op: Comparison,
    x: Tensor<4>,
    dims: &[usize],
    c: &Constant,
    constant_first: bool,
    out: &[usize],
) -> Tensor<4> {
    let shape = aligned::<R>(out);
    let (x, c) = (
        view::<R>(x, dims).detach().expand(shape),
        c.view::<R>().expand(shape),
    );
    let (a, b) = if constant_first { (c, x) } else { (x, c) };
    let m = match op {
        Comparison::Greater => a.greater(b),
        Comparison::GreaterOrEqual => a.greater_equal(b),
        Comparison::Less => a.lower(b),
        Comparison::LessOrEqual => a.lower_equal(b),
        Comparison::Equal => a.equal(b),
    };
    stored(m.float())
}

fn prelu<const R: usize>(x: Tensor<4>, dims: &[usize], slope: &Constant) -> Tensor<4> {
    let x = view::<R>(x, dims);
    stored(x.clone().clamp_min(0.0) + x.clamp_max(0.0) * slope.view::<R>())
}

fn select<const R: usize>(
    mask: (Tensor<4>, &[usize]),
    a: (Tensor<4>, &[usize]),
    b: (Tensor<4>, &[usize]),
    out: &[usize],
) -> Tensor<4> {
    let shape = aligned::<R>(out);
    let m: Tensor<R, Bool> = view::<R>(mask.0, mask.1).expand(shape).not_equal_elem(0.0);
    let a = view::<R>(a.0, a.1).expand(shape);
    let b = view::<R>(b.0, b.1).expand(shape);
    stored(b.mask_where(m, a))
}

impl Arithmetic {
    pub(crate) fn on<const D: usize>(self, a: Tensor<D>, b: Tensor<D>) -> Tensor<D> {
        match self {
            Arithmetic::Add => a + b,
            Arithmetic::Sub => a - b,
            Arithmetic::Mul => a * b,
            Arithmetic::Div => a / b,
        }
    }
}

impl TensorOp {
    /// Short name, as `deepsight layers` prints it.
    pub fn kind(&self) -> &'static str {
        match self {
            TensorOp::Transpose(_) => "Transpose",
            TensorOp::Reshape(_) => "Reshape",
            TensorOp::Slice { .. } => "Slice",
            TensorOp::Gather { .. } => "Gather",
            TensorOp::Reduce {
                reduction: Reduction::Mean,
                ..
            } => "ReduceMean",
            TensorOp::Reduce {
                reduction: Reduction::Max,
                ..
            } => "ReduceMax",
            TensorOp::Reduce {
                reduction: Reduction::Sum,
                ..
            } => "ReduceSum",
            TensorOp::Softmax { .. } => "Softmax",
            TensorOp::Concat { .. } => "Concat",
            TensorOp::Expand(_) => "Expand",
            TensorOp::LayerNorm { .. } => "LayerNorm",
            TensorOp::GroupNorm { .. } => "GroupNorm",
            TensorOp::MatMul { .. } | TensorOp::MatMulLeft { .. } => "MatMul",
            TensorOp::PRelu(_) => "PRelu",
            TensorOp::Binary(_) | TensorOp::WithConstant { .. } => "Arithmetic",
            TensorOp::Where { .. } => "Where",
            TensorOp::Compare { .. } => "Compare",
            TensorOp::Resize(_) => "Resize",
        }
    }

    /// Learned parameters.
    pub fn params(&self) -> usize {
        let n = |t: &Option<Tensor<1>>| t.as_ref().map_or(0, |t| t.dims()[0]);
        match self {
            TensorOp::LayerNorm { scale, bias, .. } => n(scale) + n(bias),
            TensorOp::GroupNorm { scale, .. } => 2 * scale.dims()[0],
            TensorOp::MatMul { weight, bias } => weight.shape().num_elements() + n(bias),
            TensorOp::MatMulLeft { weight } => weight.shape().num_elements(),
            TensorOp::PRelu(c) => c.dims.iter().product(),
            _ => 0,
        }
    }

    /// Number of activation inputs, `None` for any number of at least one.
    pub(crate) fn arity(&self) -> Option<usize> {
        match self {
            TensorOp::Binary(_) => Some(2),
            TensorOp::Concat { .. } => None,
            TensorOp::Where {
                then_value,
                else_value,
                mask,
            } => Some(
                3 - mask.is_some() as usize - then_value.is_some() as usize - else_value.is_some() as usize,
            ),
            _ => Some(1),
        }
    }

    /// Runs the operation on stored tensors whose logical shapes are `dims`; `out` is the
    /// output's logical shape.
    pub(crate) fn apply(&self, mut args: Vec<Tensor<4>>, dims: &[Vec<usize>], out: &[usize]) -> Tensor<4> {
        let x = args.remove(0);
        let d = dims[0].as_slice();
        let r = d.len();
        match self {
            TensorOp::Transpose(perm) => by_rank!(r, transpose(x, d, perm)),
            TensorOp::Reshape(_) => x.reshape(physical(out)),
            TensorOp::Slice {
                axis,
                start,
                end,
                step,
            } => {
                let idx: Vec<usize> = (*start..*end).step_by(*step).collect();
                by_rank!(r, slice(x, d, *axis, &idx))
            }
            TensorOp::Gather { axis, indices, .. } => {
                let t = by_rank!(r, slice(x, d, *axis, indices));
                t.reshape(physical(out))
            }
            TensorOp::Reduce { reduction, axes, .. } => {
                by_rank!(r, reduce(x, d, axes, *reduction)).reshape(physical(out))
            }
            TensorOp::Softmax { axis } => by_rank!(r, softmax_at(x, d, *axis)),
            TensorOp::Concat { axis } => {
                args.insert(0, x);
                by_rank!(r, concat(args, dims, *axis))
            }
            TensorOp::Expand(_) => by_rank!(out.len(), expand(x, d, out)),
            TensorOp::LayerNorm {
                axis,
                scale,
                bias,
                eps,
            } => {
                let m: usize = d[*axis..].iter().product();
                let rows = d.iter().product::<usize>() / m;
                let t = x.reshape([rows, m]);
                let mean = t.clone().mean_dim(1);
                let centred = t - mean;
                let var = centred.clone().powi_scalar(2).mean_dim(1);
                let mut y = centred / (var + *eps).sqrt();
                if let Some(s) = scale {
                    y = y * s.clone().reshape([1, m]);
                }
                if let Some(b) = bias {
                    y = y + b.clone().reshape([1, m]);
                }
                y.reshape(physical(d))
            }
            TensorOp::GroupNorm {
                groups,
                scale,
                bias,
                eps,
            } => {
                let (n, c) = (d[0], d[1]);
                let per = d.iter().product::<usize>() / n / c;
                let t = x.reshape([n, *groups, c / groups * per]);
                let mean = t.clone().mean_dim(2);
                let centred = t - mean;
                let var = centred.clone().powi_scalar(2).mean_dim(2);
                let y = (centred / (var + *eps).sqrt()).reshape([n, c, per]);
                let y = y * scale.clone().reshape([1, c, 1]) + bias.clone().reshape([1, c, 1]);
                y.reshape(physical(d))
            }
            TensorOp::MatMul { weight, bias } => {
                let [k, m] = weight.dims();
                let rows = d.iter().product::<usize>() / k;
                let mut y = x.reshape([rows, k]).matmul(weight.clone());
                if let Some(b) = bias {
                    y = y + b.clone().reshape([1, m]);
                }
                y.reshape(physical(out))
            }
            TensorOp::MatMulLeft { weight } => {
                let [m, k] = weight.dims();
                let l = d[r - 1];
                let batch = d.iter().product::<usize>() / (k * l);
                let w = weight.clone().reshape([1, m, k]).expand([batch, m, k]);
                w.matmul(x.reshape([batch, k, l])).reshape(physical(out))
            }
            TensorOp::PRelu(slope) => by_rank!(r.max(slope.dims.len()), prelu(x, d, slope)),
            TensorOp::Binary(op) => {
                let y = args.remove(0);
                by_rank!(out.len(), arithmetic(*op, x, d, y, &dims[1]))
            }
            TensorOp::WithConstant {
                op,
                constant,
                constant_first,
            } => by_rank!(out.len(), with_constant(*op, x, d, constant, *constant_first)),
            TensorOp::Where {
                mask,
                then_value,
                else_value,
            } => {
                let materialise =
                    |c: &Constant| (c.values.clone().reshape(physical(&c.dims)), c.dims.clone());
                let mut inputs =
                    std::iter::once((x, d.to_vec())).chain(args.into_iter().zip(dims[1..].iter().cloned()));
                let m = mask
                    .as_ref()
                    .map(materialise)
                    .unwrap_or_else(|| inputs.next().expect("arity"));
                let a = then_value
                    .as_ref()
                    .map(materialise)
                    .unwrap_or_else(|| inputs.next().expect("arity"));
                let b = else_value
                    .as_ref()
                    .map(materialise)
                    .unwrap_or_else(|| inputs.next().expect("arity"));
                by_rank!(out.len(), select((m.0, &m.1), (a.0, &a.1), (b.0, &b.1), out))
            }
            TensorOp::Compare {
                op,
                constant,
                constant_first,
            } => by_rank!(out.len(), compare(*op, x, d, constant, *constant_first, out)),
            TensorOp::Resize(rs) => {
                let [n, c, h, w] = x.dims();
                let device = x.device();
                let ah = resize_matrix(rs, 0, h, &device);
                let aw = resize_matrix(rs, 1, w, &device);
                let [oh, ow] = rs.size;
                let t = x.reshape([n * c * h, w]).matmul(aw.transpose());
                let t = t.reshape([n * c, h, ow]);
                let ah = ah.reshape([1, oh, h]).expand([n * c, oh, h]);
                ah.matmul(t).reshape([n, c, oh, ow])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resize::{CoordinateMode, Interpolation};

    fn t(v: Vec<f32>, dims: &[usize]) -> Tensor<4> {
        let d = crate::default_device();
        let n = v.len();
        Tensor::<1>::from_data(TensorData::new(v, [n]), &d).reshape(physical(dims))
    }

    #[test]
    fn channel_shuffle_moves_channels() {
        let x = t((0..6).map(|v| v as f32).collect(), &[1, 6, 1, 1]);
        let split =
            TensorOp::Reshape(vec![1, 2, 3, 1, 1]).apply(vec![x], &[vec![1, 6, 1, 1]], &[1, 2, 3, 1, 1]);
        let moved = TensorOp::Transpose(vec![0, 2, 1, 3, 4]).apply(
            vec![split],
            &[vec![1, 2, 3, 1, 1]],
            &[1, 3, 2, 1, 1],
        );
        assert_eq!(crate::to_vec(moved), [0.0, 3.0, 1.0, 4.0, 2.0, 5.0]);
    }

    #[test]
    fn linear_resize_half_pixel_matches_hand_values() {
        let r = Resize {
            size: [1, 4],
            scales: None,
            mode: Interpolation::Linear,
            coordinates: CoordinateMode::HalfPixel,
        };
        let x = t(vec![0.0, 4.0], &[1, 1, 1, 2]);
        let y = TensorOp::Resize(r).apply(vec![x], &[vec![1, 1, 1, 2]], &[1, 1, 1, 4]);
        // sources -0.25, 0.25, 0.75, 1.25 clamped: 0, 1, 3, 4.
        assert_eq!(crate::to_vec(y), [0.0, 1.0, 3.0, 4.0]);
    }
}
