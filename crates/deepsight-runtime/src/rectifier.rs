//! Rectifiers (ReLU, ReLU6, any clamp) whose backward pass is a run-time switch.
//!
//! Guided backpropagation and the deconvnet differ from plain backprop only in how a rectifier
//! passes the gradient back. Rather than patching the user's model, every rectifier in a graph
//! runs through [`rectify`], a backend extension with its own backward step; the rule is an
//! argument of the call, so the same model serves all three rules at once.

use crate::flex::dense_f32;
use burn::backend::TensorMetadata;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension, get_or_init_device_settings};
use burn::tensor::{Tensor, TensorData};
use burn_flex::FlexTensor;
use rayon::prelude::*;

/// How a rectifier `y = clamp(x, lo, hi)` passes the gradient `g` back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RectifierRule {
    /// The true derivative: `g * [lo < x < hi]` (PyTorch's convention at the kinks).
    #[default]
    Plain,
    /// Guided backpropagation (Springenberg et al. 2015): `g * [lo < x < hi] * [g > 0]`.
    Guided,
    /// Deconvnet (Zeiler & Fergus 2014): the rectifier is applied to the signal going back,
    /// `max(g, 0)`, whatever the forward input was.
    Deconv,
}

/// Bounds of a rectifier: `lo = 0, hi = None` is ReLU, `hi = Some(6)` is ReLU6.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bounds {
    /// Lower clamp.
    pub lo: f32,
    /// Upper clamp, if any.
    pub hi: Option<f32>,
}

impl Bounds {
    /// `max(x, 0)`.
    pub const RELU: Bounds = Bounds { lo: 0.0, hi: None };
    /// `min(max(x, 0), 6)`.
    pub const RELU6: Bounds = Bounds {
        lo: 0.0,
        hi: Some(6.0),
    };
}

#[backend_extension(Autodiff, Flex)]
pub trait RectifierBackend: Backend {
    /// `clamp(x, lo, hi)` (no upper bound when `hi` is NaN), differentiated by `rule`
    /// (0 plain, 1 guided, 2 deconv).
    fn rectify(x: FloatTensor<Self>, lo: f32, hi: f32, rule: u8) -> FloatTensor<Self>;
}

// The extension macro passes plain integers: the rule travels as one of these codes.
const PLAIN: u8 = 0;
const GUIDED: u8 = 1;
const DECONV: u8 = 2;

fn clamp_forward<B: Backend>(x: FloatTensor<B>, lo: f32, hi: f32) -> FloatTensor<B> {
    if hi.is_nan() {
        B::float_clamp_min(x, lo.into())
    } else {
        B::float_clamp(x, lo.into(), hi.into())
    }
}

/// One pass, in place when the buffer is not shared: burn's generic clamp costs two comparisons
/// and two masked fills, four passes and two mask tensors.
impl RectifierBackend for Flex {
    fn rectify(x: FloatTensor<Self>, lo: f32, hi: f32, _rule: u8) -> FloatTensor<Self> {
        if !dense_f32(&x) {
            return clamp_forward::<Flex>(x, lo, hi);
        }
        let hi = if hi.is_nan() { f32::INFINITY } else { hi };
        // NaN passes through, as in PyTorch's clamp.
        let clamp = move |v: f32| {
            if v < lo {
                lo
            } else if v > hi {
                hi
            } else {
                v
            }
        };
        let mut x = x;
        if let Some(values) = x.try_storage_mut::<f32>() {
            values
                .par_chunks_mut(1 << 15)
                .for_each(|c| c.iter_mut().for_each(|v| *v = clamp(*v)));
            return x;
        }
        let n = x.layout().num_elements();
        let out: Vec<f32> = x.storage::<f32>()[..n].par_iter().map(|&v| clamp(v)).collect();
        FlexTensor::from_data(TensorData::new(out, x.layout().shape().clone()))
    }
}

/// The backward step, written once over burn's float ops so that every backend shares it.
fn rectify_backward<B: Backend>(
    x: FloatTensor<B>,
    grad: FloatTensor<B>,
    lo: f32,
    hi: f32,
    rule: u8,
) -> FloatTensor<B> {
    let bool_dtype = get_or_init_device_settings::<B>(&grad.device()).bool_dtype;
    if rule == DECONV {
        return B::float_clamp_min(grad, 0.0f32.into());
    }
    let mut dead = B::float_lower_equal_elem(x.clone(), lo.into(), bool_dtype);
    if !hi.is_nan() {
        let above = B::float_greater_equal_elem(x, hi.into(), bool_dtype);
        dead = B::bool_or(dead, above);
    }
    let grad = B::float_mask_fill(grad, dead, 0.0f32.into());
    if rule == GUIDED {
        B::float_clamp_min(grad, 0.0f32.into())
    } else {
        grad
    }
}

/// The backward step of [`rectify`]. The default body serves every backend; flex overrides it
/// with one fused pass.
pub trait RectifierGrad: Backend {
    /// `dL/dx` from the forward input `x` and `dL/dy`, for `rule` (0 plain, 1 guided, 2 deconv).
    fn rectify_grad(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        lo: f32,
        hi: f32,
        rule: u8,
    ) -> FloatTensor<Self> {
        rectify_backward::<Self>(x, grad, lo, hi, rule)
    }
}

impl RectifierGrad for Flex {
    fn rectify_grad(
        x: FloatTensor<Self>,
        grad: FloatTensor<Self>,
        lo: f32,
        hi: f32,
        rule: u8,
    ) -> FloatTensor<Self> {
        if !dense_f32(&x) || !dense_f32(&grad) || x.layout().shape() != grad.layout().shape() {
            return rectify_backward::<Flex>(x, grad, lo, hi, rule);
        }
        let hi = if hi.is_nan() { f32::INFINITY } else { hi };
        let pass = move |x: f32, g: f32| -> f32 {
            let open = x > lo && x < hi;
            match rule {
                DECONV => g.max(0.0),
                GUIDED if open && g > 0.0 => g,
                PLAIN if open => g,
                _ => 0.0,
            }
        };
        let n = x.layout().num_elements();
        let xs = &x.storage::<f32>()[..n];
        let mut grad = grad;
        if let Some(gs) = grad.try_storage_mut::<f32>() {
            gs[..n]
                .par_chunks_mut(1 << 15)
                .zip(xs.par_chunks(1 << 15))
                .for_each(|(g, x)| {
                    g.iter_mut().zip(x).for_each(|(g, x)| *g = pass(*x, *g));
                });
            return grad;
        }
        let out: Vec<f32> = grad.storage::<f32>()[..n]
            .par_iter()
            .zip(xs.par_iter())
            .map(|(g, x)| pass(*x, *g))
            .collect();
        FlexTensor::from_data(TensorData::new(out, grad.layout().shape().clone()))
    }
}

impl<B: Backend + RectifierBackend + RectifierGrad, C: CheckpointStrategy> RectifierBackend
    for Autodiff<B, C>
{
    fn rectify(x: FloatTensor<Self>, lo: f32, hi: f32, rule: u8) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct RectifyBackward {
            lo: f32,
            hi: f32,
            rule: u8,
        }

        impl<B: Backend + RectifierGrad> Backward<B, 1> for RectifyBackward {
            type State = FloatTensor<B>;

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                _checkpointer: &mut Checkpointer,
            ) {
                let [parent] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                if let Some(node) = parent {
                    let g = B::rectify_grad(ops.state, grad, self.lo, self.hi, self.rule);
                    grads.register::<B>(node.id, g);
                }
            }
        }

        match (RectifyBackward { lo, hi, rule })
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let input = x.primitive().clone();
                let output = B::rectify(input.clone(), lo, hi, rule);
                prep.finish(input, output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::rectify(x.into_primitive(), lo, hi, rule)),
        }
    }
}

/// Applies the rectifier `bounds` to `x`; on an autodiff device its backward follows `rule`.
pub fn rectify<const D: usize>(x: Tensor<D>, bounds: Bounds, rule: RectifierRule) -> Tensor<D> {
    let code = match rule {
        RectifierRule::Plain => PLAIN,
        RectifierRule::Guided => GUIDED,
        RectifierRule::Deconv => DECONV,
    };
    let hi = bounds.hi.unwrap_or(f32::NAN);
    Tensor::from_dispatch(<Dispatch as RectifierBackend>::rectify(
        x.into_dispatch(),
        bounds.lo,
        hi,
        code,
    ))
}
