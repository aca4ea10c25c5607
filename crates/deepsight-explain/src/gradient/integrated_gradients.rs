//! Integrated Gradients.
//!
//! # Computes
//! Attribution that sums (completeness) to the score difference between the image and a
//! baseline: the gradient averaged along the straight path from the baseline to the image,
//! times the difference, per input value (signed).
//!
//! # Equation
//! `IG_i(x) = (x_i - x'_i) * sum_k w_k * dS_c/dx_i |_{x' + a_k (x - x')}`, with the nodes `a_k`
//! and weights `w_k` of the chosen quadrature over `[0, 1]` (trapezoid: `a_k = k/(m-1)`,
//! `w_k = 1/(m-1)`, halved at both ends).
//!
//! # Paper
//! Sundararajan, Taly & Yan, *Axiomatic Attribution for Deep Networks*, ICML 2017.
//!
//! # Deviations
//! Riemann rules only (trapezoid, left, right, middle); Captum's default Gauss-Legendre rule is
//! not implemented. Captum's `riemann_trapezoid` weights sum to `(m-1)/m`, not 1 (its attributions
//! are that fraction of the trapezoid rule's): DeepSight's trapezoid is the textbook rule, and
//! `Quadrature::CaptumTrapezoid` reproduces Captum's. The baseline is a constant value in the model's input
//! space (0 by default, as Captum's). All path points run as batches of `batch_size` images.

use crate::gradient::input_gradient;
use crate::{ExplainError, Explainer, Explanation, Map, Passes, Request, Result};
use deepsight_runtime::{LayeredClassifier, RectifierRule, Tensor};

/// How the path integral is approximated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Quadrature {
    /// The trapezoid rule: nodes `k/(m-1)`, weights `1/(m-1)` halved at both ends (sum 1).
    #[default]
    Trapezoid,
    /// Captum's `riemann_trapezoid`: the same nodes, but weights `1/m` halved at both ends, which
    /// sum to `(m-1)/m` (attributions `(m-1)/m` of the trapezoid rule's); for parity with Captum.
    CaptumTrapezoid,
    /// Captum's `riemann_left`.
    Left,
    /// Captum's `riemann_right`.
    Right,
    /// Captum's `riemann_middle`.
    Middle,
}

impl Quadrature {
    /// The nodes and weights for `m` points.
    pub fn rule(self, m: usize) -> Vec<(f32, f32)> {
        let mf = m as f32;
        match self {
            Quadrature::Trapezoid => (0..m)
                .map(|k| {
                    let w = if k == 0 || k == m - 1 { 0.5 } else { 1.0 } / (mf - 1.0);
                    (k as f32 / (mf - 1.0), w)
                })
                .collect(),
            Quadrature::CaptumTrapezoid => (0..m)
                .map(|k| {
                    let w = if k == 0 || k == m - 1 { 0.5 } else { 1.0 } / mf;
                    (k as f32 / (mf - 1.0), w)
                })
                .collect(),
            Quadrature::Left => (0..m).map(|k| (k as f32 / mf, 1.0 / mf)).collect(),
            Quadrature::Right => (1..=m).map(|k| (k as f32 / mf, 1.0 / mf)).collect(),
            Quadrature::Middle => (0..m).map(|k| ((k as f32 + 0.5) / mf, 1.0 / mf)).collect(),
        }
    }
}

/// Integrated Gradients (`integrated-gradients`).
#[derive(Debug, Clone, Copy)]
pub struct IntegratedGradients {
    pub steps: usize,
    pub quadrature: Quadrature,
    /// The baseline's constant value in the model's input space.
    pub baseline: f32,
    /// Images per forward/backward batch (path points of all images together).
    pub batch_size: usize,
}

impl Default for IntegratedGradients {
    fn default() -> Self {
        IntegratedGradients {
            steps: 50,
            quadrature: Quadrature::Trapezoid,
            baseline: 0.0,
            batch_size: 32,
        }
    }
}

impl Explainer for IntegratedGradients {
    fn name(&self) -> &'static str {
        "integrated-gradients"
    }

    fn signed(&self) -> bool {
        true
    }

    fn explain(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<Explanation> {
        let trapezoid = matches!(
            self.quadrature,
            Quadrature::Trapezoid | Quadrature::CaptumTrapezoid
        );
        let min_steps = if trapezoid { 2 } else { 1 };
        if self.steps < min_steps || self.batch_size == 0 {
            return Err(ExplainError::Invalid {
                method: "integrated-gradients",
                reason: format!("needs steps >= {min_steps} and a batch size >= 1"),
            });
        }
        let x = request.images.clone();
        let n = x.dims()[0];
        let baseline = x.zeros_like() + self.baseline;
        let delta = x.clone() - baseline.clone();
        let rule = self.quadrature.rule(self.steps);
        // Path points in chunks of whole steps, each chunk one batch.
        let per_batch = (self.batch_size / n).max(1);
        let mut total = x.zeros_like();
        let mut passes = Passes::default();
        for chunk in rule.chunks(per_batch) {
            let points: Vec<Tensor<4>> = chunk
                .iter()
                .map(|&(a, _)| baseline.clone() + delta.clone() * a)
                .collect();
            let sub = Request {
                images: Tensor::cat(points, 0),
                classes: chunk
                    .iter()
                    .flat_map(|_| request.classes.iter().copied())
                    .collect(),
                ..request.clone()
            };
            let (grad, p) = input_gradient(model, &sub, sub.images.clone(), RectifierRule::Plain)?;
            passes.forward += p.forward;
            passes.backward += p.backward;
            for (k, &(_, w)) in chunk.iter().enumerate() {
                total = total + grad.clone().narrow(0, k * n, n) * w;
            }
        }
        Ok(Explanation {
            maps: Map::from_batch(total * delta),
            raw: None,
            passes,
            extra: Vec::new(),
        })
    }
}
