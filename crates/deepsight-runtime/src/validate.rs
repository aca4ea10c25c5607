//! Every operation's parameters checked against its domain when it enters a graph, so that a
//! stride of 0, an empty kernel or a pooling pad wider than its window is refused by name before
//! shape inference divides by it or a kernel of burn's asserts on it.

use crate::graph::{Op, Pool};
use crate::ops::ExtOp;

fn at_least_one(what: &str, v: &[usize]) -> Result<(), String> {
    if v.contains(&0) {
        return Err(format!("{what} must be at least 1, got {v:?}"));
    }
    Ok(())
}

fn finite(what: &str, v: f32) -> Result<(), String> {
    if !v.is_finite() {
        return Err(format!("{what} must be a finite number, got {v}"));
    }
    Ok(())
}

/// The largest exponent a power may have: beyond it every result is 0, 1 or infinite anyway, and
/// burn's `powf_scalar` panics on an integral exponent outside `i64` (found by the fuzzer).
const MAX_EXPONENT: f32 = 1e9;

fn exponent(what: &str, v: f32) -> Result<(), String> {
    finite(what, v)?;
    if v.abs() > MAX_EXPONENT {
        return Err(format!("{what} {v} is beyond +-{MAX_EXPONENT:e}"));
    }
    Ok(())
}

fn pool(p: &Pool) -> Result<(), String> {
    at_least_one("the kernel", &p.kernel)?;
    at_least_one("the stride", &p.stride)?;
    at_least_one("the dilation", &p.dilation)?;
    // As onnxruntime and PyTorch: a pad at least as wide as the window gives windows that see
    // only padding.
    for (i, &pad) in p.padding.iter().enumerate() {
        let span = p.dilation[i % 2].saturating_mul(p.kernel[i % 2] - 1) + 1;
        if pad >= span {
            return Err(format!(
                "padding {:?} must be smaller than the {}x{} window",
                p.padding, p.kernel[0], p.kernel[1]
            ));
        }
    }
    Ok(())
}

/// Why `op` cannot be an operation of a graph, if it cannot.
pub(crate) fn check(op: &Op) -> Result<(), String> {
    match op {
        Op::Conv2d(c) => {
            let [o, i, kh, kw] = c.dims();
            at_least_one("the weight's dimensions", &[o, i, kh, kw])?;
            at_least_one("the stride", &c.stride)?;
            at_least_one("the dilation", &c.dilation)?;
            at_least_one("the group count", &[c.groups])?;
            if o % c.groups != 0 {
                return Err(format!(
                    "{o} output channels do not split into {} groups",
                    c.groups
                ));
            }
            if let Some(b) = &c.bias
                && b.dims()[0] != o
            {
                return Err(format!("the bias has {} values for {o} channels", b.dims()[0]));
            }
            Ok(())
        }
        Op::BatchNorm(bn) => {
            if !(bn.eps.is_finite() && bn.eps >= 0.0) {
                return Err(format!("epsilon must be a finite number >= 0, got {}", bn.eps));
            }
            at_least_one("the channel count", &[bn.gamma.dims()[0]])
        }
        Op::Rectifier(b) => {
            if b.lo.is_nan() || b.hi.is_some_and(|h| h.is_nan() || h < b.lo) {
                return Err(format!("the bounds [{}, {:?}] are not an interval", b.lo, b.hi));
            }
            Ok(())
        }
        Op::MaxPool(p) | Op::AvgPool(p) => pool(p),
        Op::Linear(l) => {
            let [o, i] = l.weight.dims();
            at_least_one("the weight's dimensions", &[o, i])?;
            match &l.bias {
                Some(b) if b.dims()[0] != o => {
                    Err(format!("the bias has {} values for {o} outputs", b.dims()[0]))
                }
                _ => Ok(()),
            }
        }
        Op::AdaptiveAvgPool(s) => at_least_one("the output size", s),
        Op::Ext(e) => ext(e),
        Op::Input | Op::GlobalAvgPool | Op::Flatten | Op::Add | Op::Identity => Ok(()),
    }
}

fn ext(e: &ExtOp) -> Result<(), String> {
    match e {
        ExtOp::ConvTranspose2d(t) => {
            at_least_one("the weight's dimensions", &t.weight.dims())?;
            at_least_one("the stride", &t.stride)?;
            at_least_one("the dilation", &t.dilation)?;
            at_least_one("the group count", &[t.groups])?;
            if t.weight.dims()[0] % t.groups != 0 {
                return Err(format!(
                    "{} input channels do not split into {} groups",
                    t.weight.dims()[0],
                    t.groups
                ));
            }
            // PyTorch's rule: output padding must be smaller than the stride or the dilation.
            for i in 0..2 {
                if t.output_padding[i] >= t.stride[i].max(t.dilation[i]) {
                    return Err(format!(
                        "output padding {:?} must be smaller than the stride {:?} or the dilation {:?}",
                        t.output_padding, t.stride, t.dilation
                    ));
                }
            }
            Ok(())
        }
        ExtOp::AdaptiveAvgPool(s) => at_least_one("the output size", s),
        ExtOp::Lrn(l) => {
            at_least_one("the window size", &[l.size])?;
            if l.front >= l.size {
                return Err(format!(
                    "a window of {} channels cannot start {} channels before its centre",
                    l.size, l.front
                ));
            }
            finite("alpha", l.alpha)?;
            exponent("beta", l.beta)?;
            finite("bias", l.bias)
        }
        ExtOp::Activation(a) => {
            use crate::ops::Activation as A;
            match *a {
                A::LeakyRelu { alpha } => finite("alpha", alpha),
                A::HardSigmoid { alpha, beta } => finite("alpha", alpha).and(finite("beta", beta)),
                A::Elu { alpha } => finite("alpha", alpha),
                A::Selu { alpha, gamma } => finite("alpha", alpha).and(finite("gamma", gamma)),
                A::Pow { exponent: e } => exponent("the exponent", e),
                A::Sigmoid
                | A::HardSwish
                | A::Tanh
                | A::Erf
                | A::Gelu
                | A::Softplus
                | A::Mish
                | A::Sqrt
                | A::Exp
                | A::Neg
                | A::Abs
                | A::Reciprocal => Ok(()),
            }
        }
        ExtOp::Pad(p) => {
            if p.value.is_nan() {
                return Err("the padding value is NaN".into());
            }
            Ok(())
        }
        ExtOp::Softmax | ExtOp::Binary(_) | ExtOp::WithConstant { .. } | ExtOp::Concat => Ok(()),
        ExtOp::Tensor(t) => tensor_op(t),
    }
}

fn tensor_op(t: &crate::tensor_ops::TensorOp) -> Result<(), String> {
    use crate::tensor_ops::TensorOp as T;
    match t {
        T::LayerNorm { eps, .. } | T::GroupNorm { eps, .. } if !(eps.is_finite() && *eps >= 0.0) => {
            Err(format!("epsilon {eps} must be a finite non-negative number"))
        }
        T::GroupNorm { groups: 0, .. } => Err("the group count must be at least 1".into()),
        T::Slice { step: 0, .. } => Err("the slice step must be at least 1".into()),
        T::Resize(r)
            if r.scales
                .is_some_and(|s| s.iter().any(|v| !(v.is_finite() && *v > 0.0))) =>
        {
            Err(format!(
                "scales {:?} must be positive",
                r.scales.unwrap_or_default()
            ))
        }
        T::Resize(r) if r.size.contains(&0) => Err("the output size must be positive".into()),
        _ => Ok(()),
    }
}
