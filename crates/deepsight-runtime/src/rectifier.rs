//! Rectifiers (ReLU, ReLU6, any clamp) whose backward pass is a run-time switch.
//!
//! Guided backpropagation and the deconvnet differ from plain backprop only in how a rectifier
//! passes the gradient back. Rather than patching the user's model, every rectifier in a graph
//! runs through [`rectify`], a backend extension with its own backward step; the rule is an
//! argument of the call, so the same model serves all three rules at once.

use burn::backend::TensorMetadata;
use burn::backend::autodiff::Autodiff;
use burn::backend::autodiff::checkpoint::{base::Checkpointer, strategy::CheckpointStrategy};
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Backend, Dispatch, Flex, backend_extension, get_or_init_device_settings};
use burn::tensor::Tensor;

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

fn clamp_forward<B: Backend>(x: FloatTensor<B>, lo: f32, hi: f32) -> FloatTensor<B> {
    if hi.is_nan() {
        B::float_clamp_min(x, lo.into())
    } else {
        B::float_clamp(x, lo.into(), hi.into())
    }
}

impl RectifierBackend for Flex {
    fn rectify(x: FloatTensor<Self>, lo: f32, hi: f32, _rule: u8) -> FloatTensor<Self> {
        clamp_forward::<Flex>(x, lo, hi)
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
    if rule == 2 {
        return B::float_clamp_min(grad, 0.0f32.into());
    }
    let mut dead = B::float_lower_equal_elem(x.clone(), lo.into(), bool_dtype);
    if !hi.is_nan() {
        let above = B::float_greater_equal_elem(x, hi.into(), bool_dtype);
        dead = B::bool_or(dead, above);
    }
    let grad = B::float_mask_fill(grad, dead, 0.0f32.into());
    if rule == 1 {
        B::float_clamp_min(grad, 0.0f32.into())
    } else {
        grad
    }
}

impl<B: Backend + RectifierBackend, C: CheckpointStrategy> RectifierBackend for Autodiff<B, C> {
    fn rectify(x: FloatTensor<Self>, lo: f32, hi: f32, rule: u8) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct RectifyBackward {
            lo: f32,
            hi: f32,
            rule: u8,
        }

        impl<B: Backend> Backward<B, 1> for RectifyBackward {
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
                    let g = rectify_backward::<B>(ops.state, grad, self.lo, self.hi, self.rule);
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
        RectifierRule::Plain => 0,
        RectifierRule::Guided => 1,
        RectifierRule::Deconv => 2,
    };
    let hi = bounds.hi.unwrap_or(f32::NAN);
    Tensor::from_dispatch(<Dispatch as RectifierBackend>::rectify(
        x.into_dispatch(),
        bounds.lo,
        hi,
        code,
    ))
}
