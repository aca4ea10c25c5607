//! The operations beyond the core CNN set (convolution, BatchNorm, rectifiers, pooling, linear):
//! what imported ONNX graphs also contain. Each is written over burn's differentiable tensor ops,
//! so gradients, captures and probes work on them with no backward code of their own.

use burn::tensor::Tensor;
use burn::tensor::activation::{hard_sigmoid, leaky_relu, sigmoid, softmax, tanh};
use burn::tensor::module::{adaptive_avg_pool2d, conv_transpose2d};
use burn::tensor::ops::ConvTransposeOptions;

/// A transposed convolution, weights `[in, out / groups, kh, kw]` as in PyTorch and ONNX.
#[derive(Debug, Clone)]
pub struct ConvTranspose2d {
    pub weight: Tensor<4>,
    pub bias: Option<Tensor<1>>,
    pub stride: [usize; 2],
    /// Symmetric padding `[h, w]` taken off each side of the full output.
    pub padding: [usize; 2],
    /// Extra rows/columns added at the bottom/right of the output.
    pub output_padding: [usize; 2],
    pub dilation: [usize; 2],
    pub groups: usize,
}

impl ConvTranspose2d {
    /// Output channels.
    pub fn out_channels(&self) -> usize {
        self.weight.dims()[1] * self.groups
    }

    /// Output `[h, w]` for an input of `[h, w]`.
    pub fn out_size(&self, input: [usize; 2]) -> Option<[usize; 2]> {
        let [_, _, kh, kw] = self.weight.dims();
        let k = [kh, kw];
        let dim = |i: usize| {
            (input[i].checked_sub(1)?)
                .checked_mul(self.stride[i])?
                .checked_add(self.dilation[i].checked_mul(k[i].checked_sub(1)?)?)?
                .checked_add(1 + self.output_padding[i])?
                .checked_sub(self.padding[i].checked_mul(2)?)
                .filter(|&o| o > 0)
        };
        Some([dim(0)?, dim(1)?])
    }

    fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        let opts = ConvTransposeOptions {
            stride: self.stride,
            padding: self.padding,
            padding_out: self.output_padding,
            dilation: self.dilation,
            groups: self.groups,
        };
        conv_transpose2d(x, self.weight.clone(), self.bias.clone(), opts)
    }
}

/// A pointwise nonlinearity other than the clamp-type rectifiers (those have backward rules of
/// their own, see [`crate::RectifierRule`]; these always use their true derivative).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Activation {
    /// `x` if positive, else `alpha * x`.
    LeakyRelu {
        alpha: f32,
    },
    Sigmoid,
    /// `max(0, min(1, alpha * x + beta))`.
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// `x * hard_sigmoid(x; 1/6, 1/2)`.
    HardSwish,
    Tanh,
    /// The Gauss error function (exporters spell exact GELU with it).
    Erf,
    /// Exact GELU, `x * (1 + erf(x / sqrt 2)) / 2` (the exporters' Div/Erf/Add/Mul/Mul chain,
    /// fused).
    Gelu,
    /// `ln(1 + e^x)`.
    Softplus,
    /// `x * tanh(softplus(x))`.
    Mish,
    /// `x` if positive, else `alpha * (e^x - 1)`.
    Elu {
        alpha: f32,
    },
    /// `gamma * elu(x; alpha)`.
    Selu {
        alpha: f32,
        gamma: f32,
    },
    /// The pieces exporters decompose normalisations into.
    Sqrt,
    Exp,
    Neg,
    Abs,
    Reciprocal,
    /// `x ^ exponent`, a constant exponent.
    Pow {
        exponent: f32,
    },
}

impl Activation {
    fn apply(self, x: Tensor<4>) -> Tensor<4> {
        match self {
            Activation::LeakyRelu { alpha } => leaky_relu(x, alpha as f64),
            Activation::Sigmoid => sigmoid(x),
            Activation::HardSigmoid { alpha, beta } => hard_sigmoid(x, alpha as f64, beta as f64),
            Activation::HardSwish => x.clone() * hard_sigmoid(x, 1.0 / 6.0, 0.5),
            Activation::Tanh => tanh(x),
            Activation::Erf => x.erf(),
            Activation::Gelu => x.clone() * ((x * std::f64::consts::FRAC_1_SQRT_2).erf() + 1.0) * 0.5,
            Activation::Softplus => softplus(x),
            Activation::Mish => x.clone() * tanh(softplus(x)),
            Activation::Elu { alpha } => elu(x, alpha),
            Activation::Selu { alpha, gamma } => elu(x, alpha) * gamma as f64,
            Activation::Sqrt => x.sqrt(),
            Activation::Exp => x.exp(),
            Activation::Neg => x.neg(),
            Activation::Abs => x.abs(),
            Activation::Reciprocal => x.recip(),
            Activation::Pow { exponent: 2.0 } => x.clone() * x,
            Activation::Pow { exponent } => x.powf_scalar(exponent as f64),
        }
    }

    /// Short name, as `deepsight layers` prints it.
    pub fn kind(self) -> &'static str {
        match self {
            Activation::LeakyRelu { .. } => "LeakyReLU",
            Activation::Sigmoid => "Sigmoid",
            Activation::HardSigmoid { .. } => "HardSigmoid",
            Activation::HardSwish => "HardSwish",
            Activation::Tanh => "Tanh",
            Activation::Erf => "Erf",
            Activation::Gelu => "GELU",
            Activation::Softplus => "Softplus",
            Activation::Mish => "Mish",
            Activation::Elu { .. } => "ELU",
            Activation::Selu { .. } => "SELU",
            Activation::Sqrt => "Sqrt",
            Activation::Exp => "Exp",
            Activation::Neg => "Neg",
            Activation::Abs => "Abs",
            Activation::Reciprocal => "Reciprocal",
            Activation::Pow { .. } => "Pow",
        }
    }
}

/// `ln(1 + e^x)`, stable for large `|x|`: `max(x, 0) + ln(1 + e^-|x|)`.
fn softplus<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    x.clone().clamp_min(0.0) + (x.abs().neg().exp()).log1p()
}

/// `x` if positive, else `alpha * (e^x - 1)`; the negative branch is computed on `min(x, 0)` so
/// that a large positive `x` never overflows it.
fn elu<const D: usize>(x: Tensor<D>, alpha: f32) -> Tensor<D> {
    let neg = x.clone().clamp_max(0.0);
    x.clamp_min(0.0) + (neg.exp() - 1.0) * alpha as f64
}

/// An elementwise arithmetic operation with NumPy broadcasting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arithmetic {
    Add,
    Sub,
    Mul,
    Div,
}

/// Local response normalisation across channels (AlexNet; ONNX `LRN`, PyTorch
/// `LocalResponseNorm`): `y = x / (bias + alpha / size * sum_{window} x^2) ^ beta`, the window
/// covering channels `c - front ..= c - front + size - 1` (zeros past the first and the last).
/// ONNX centres it with `front = (size - 1) / 2` ([`Lrn::onnx_front`]), PyTorch with `size / 2`
/// ([`Lrn::torch_front`]): the same window for odd sizes, one channel apart for even ones.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lrn {
    pub size: usize,
    /// Channels of the window before `c`, below `size`.
    pub front: usize,
    pub alpha: f32,
    pub beta: f32,
    pub bias: f32,
}

impl Lrn {
    /// The window start of ONNX's `LRN`: `floor((size - 1) / 2)` channels before `c`.
    pub fn onnx_front(size: usize) -> usize {
        size.saturating_sub(1) / 2
    }

    /// The window start of PyTorch's `local_response_norm`, which zero-pads `size / 2` channels
    /// in front and `(size - 1) / 2` behind before averaging.
    pub fn torch_front(size: usize) -> usize {
        size / 2
    }

    fn apply(self, x: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = x.dims();
        let (front, back) = (self.front, self.size - 1 - self.front);
        let squared = x.clone().powf_scalar(2.0);
        let padded = Tensor::cat(
            vec![
                Tensor::zeros([n, front, h, w], &x.device()),
                squared,
                Tensor::zeros([n, back, h, w], &x.device()),
            ],
            1,
        );
        let mut sum = padded.clone().narrow(1, 0, c);
        for k in 1..self.size {
            sum = sum + padded.clone().narrow(1, k, c);
        }
        let denom =
            (sum * (self.alpha as f64 / self.size as f64) + self.bias as f64).powf_scalar(self.beta as f64);
        x / denom
    }
}

/// Constant padding of the spatial dimensions.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pad {
    /// `[top, left, bottom, right]`.
    pub pads: [usize; 4],
    pub value: f32,
}

impl Pad {
    fn apply(self, x: Tensor<4>) -> Tensor<4> {
        let [t, l, b, r] = self.pads;
        x.pad([(t, b), (l, r)], burn::tensor::ops::PadMode::Constant(self.value))
    }
}

/// The extended operations, as graph nodes carry them.
// Built once per model, a few per graph: boxing the weight-bearing variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum ExtOp {
    /// PyTorch's `adaptive_avg_pool2d` to `[h, w]`.
    AdaptiveAvgPool([usize; 2]),
    ConvTranspose2d(ConvTranspose2d),
    Activation(Activation),
    Lrn(Lrn),
    Pad(Pad),
    /// Softmax over the channel (feature) dimension.
    Softmax,
    /// Two nodes combined elementwise, broadcasting dimensions of size 1.
    Binary(Arithmetic),
    /// A node and a constant of shape `[1 | C, 1 | H, 1 | W]` (stored `[1, C|1, H|1, W|1]`);
    /// `constant_first` for `constant - x` and `constant / x`.
    WithConstant {
        op: Arithmetic,
        constant: Tensor<4>,
        constant_first: bool,
    },
    /// Concatenation along channels.
    Concat,
    /// An operation on values of any rank and layout.
    Tensor(crate::tensor_ops::TensorOp),
}

impl ExtOp {
    /// Runs the operation on its inputs, in order.
    pub fn apply(&self, mut args: Vec<Tensor<4>>) -> Tensor<4> {
        let mut one = || args.remove(0);
        match self {
            ExtOp::AdaptiveAvgPool(size) => adaptive_avg_pool2d(one(), *size),
            ExtOp::ConvTranspose2d(c) => c.apply(one()),
            ExtOp::Activation(a) => a.apply(one()),
            ExtOp::Lrn(l) => l.apply(one()),
            ExtOp::Pad(p) => p.apply(one()),
            ExtOp::Softmax => softmax(one(), 1),
            ExtOp::Binary(op) => {
                let a = one();
                op.on(a, one())
            }
            ExtOp::WithConstant {
                op,
                constant,
                constant_first,
            } => {
                let x = one();
                if *constant_first {
                    op.on(constant.clone(), x)
                } else {
                    op.on(x, constant.clone())
                }
            }
            ExtOp::Concat => Tensor::cat(args, 1),
            ExtOp::Tensor(_) => unreachable!("run by the executor, which knows the logical shapes"),
        }
    }

    /// Short name, as `deepsight layers` prints it.
    pub fn kind(&self) -> &'static str {
        match self {
            ExtOp::AdaptiveAvgPool(_) => "AdaptiveAvgPool",
            ExtOp::ConvTranspose2d(_) => "ConvTranspose2d",
            ExtOp::Activation(a) => a.kind(),
            ExtOp::Lrn(_) => "LRN",
            ExtOp::Pad(_) => "Pad",
            ExtOp::Softmax => "Softmax",
            ExtOp::Binary(Arithmetic::Add)
            | ExtOp::WithConstant {
                op: Arithmetic::Add, ..
            } => "Add",
            ExtOp::Binary(Arithmetic::Sub)
            | ExtOp::WithConstant {
                op: Arithmetic::Sub, ..
            } => "Sub",
            ExtOp::Binary(Arithmetic::Mul)
            | ExtOp::WithConstant {
                op: Arithmetic::Mul, ..
            } => "Mul",
            ExtOp::Binary(Arithmetic::Div)
            | ExtOp::WithConstant {
                op: Arithmetic::Div, ..
            } => "Div",
            ExtOp::Concat => "Concat",
            ExtOp::Tensor(t) => t.kind(),
        }
    }

    /// Learned parameters.
    pub fn params(&self) -> usize {
        match self {
            ExtOp::ConvTranspose2d(c) => {
                c.weight.shape().num_elements() + c.bias.as_ref().map_or(0, |b| b.dims()[0])
            }
            ExtOp::Tensor(t) => t.params(),
            _ => 0,
        }
    }

    /// Number of inputs, `None` for any number of at least one.
    pub(crate) fn arity(&self) -> Option<usize> {
        match self {
            ExtOp::Binary(_) => Some(2),
            ExtOp::Concat => None,
            ExtOp::Tensor(t) => t.arity(),
            _ => Some(1),
        }
    }

    /// Output shape for input shapes `xs`, or why they do not fit.
    pub(crate) fn output_shape(&self, xs: &[[usize; 4]]) -> Result<[usize; 4], String> {
        let [n, c, h, w] = xs[0];
        match self {
            ExtOp::AdaptiveAvgPool([oh, ow]) => {
                if *oh == 0 || *ow == 0 {
                    return Err("output size must be positive".into());
                }
                Ok([n, c, *oh, *ow])
            }
            ExtOp::ConvTranspose2d(t) => {
                if c != t.weight.dims()[0] {
                    return Err(format!("expects {} input channels, got {c}", t.weight.dims()[0]));
                }
                match t.out_size([h, w]) {
                    Some([oh, ow]) => Ok([n, t.out_channels(), oh, ow]),
                    None => Err(format!("gives an empty output for a {h}x{w} input")),
                }
            }
            ExtOp::Activation(_) | ExtOp::Lrn(_) | ExtOp::Softmax => Ok(xs[0]),
            ExtOp::Pad(p) => {
                let grow = |x: usize, a: usize, b: usize| x.checked_add(a)?.checked_add(b);
                match (grow(h, p.pads[0], p.pads[2]), grow(w, p.pads[1], p.pads[3])) {
                    (Some(oh), Some(ow)) => Ok([n, c, oh, ow]),
                    _ => Err(format!("padding {:?} overflows", p.pads)),
                }
            }
            ExtOp::Binary(_) => broadcast(xs[0], xs[1]),
            ExtOp::WithConstant { constant, .. } => {
                let out = broadcast(xs[0], constant.dims())?;
                if out != xs[0] {
                    return Err(format!(
                        "a constant of {:?} would grow the input {:?}",
                        constant.dims(),
                        xs[0]
                    ));
                }
                Ok(out)
            }
            ExtOp::Tensor(_) => unreachable!("shape inference reads the logical shapes"),
            ExtOp::Concat => {
                let mut channels = 0;
                for x in xs {
                    if [x[0], x[2], x[3]] != [n, h, w] {
                        return Err(format!("concatenates {x:?} with {:?}", xs[0]));
                    }
                    channels += x[1];
                }
                Ok([n, channels, h, w])
            }
        }
    }
}

/// NumPy broadcasting of two rank-4 shapes.
fn broadcast(a: [usize; 4], b: [usize; 4]) -> Result<[usize; 4], String> {
    let mut out = [0; 4];
    for i in 0..4 {
        out[i] = match (a[i], b[i]) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("cannot broadcast {a:?} with {b:?}")),
        };
    }
    Ok(out)
}
