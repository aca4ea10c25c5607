//! Resuming a forward pass from one layer: the class scores when that layer's value is replaced,
//! running only the layers that depend on it. Everything upstream (and every side branch that
//! joins later, such as a residual shortcut taken before the layer) is computed once, kept, and
//! reused for any number of replaced values. Ablation-CAM replaces the last feature map thousands
//! of times: from there on only the head runs.

use crate::error::{Result, RuntimeError};
use crate::exec::{RunSpec, apply, run};
use crate::graph::NodeId;
use crate::plan::{Plan, StepOp};
use crate::value::ValueShape;
use burn::tensor::{Int, Tensor, TensorData};
use std::sync::Arc;

/// A batch of images run up to (and including) one layer, ready to be resumed from it.
pub struct Resume {
    plan: Arc<Plan>,
    layer: NodeId,
    layer_name: String,
    /// Steps that depend on the layer, in order.
    downstream: Vec<usize>,
    /// Values of the nodes outside the downstream set that downstream steps read, `[N, ...]`.
    kept: Vec<Option<Tensor<4>>>,
    activation: Tensor<4>,
    logits: Tensor<2>,
    /// Every node's logical shape, for the operations on values of other ranks.
    values: Vec<ValueShape>,
}

impl Resume {
    pub(crate) fn new(
        plan: Arc<Plan>,
        images: Tensor<4>,
        layer: NodeId,
        layer_name: String,
        values: Vec<ValueShape>,
    ) -> Result<Resume> {
        let n = plan.last_use.len();
        let mut depends = vec![false; n];
        depends[layer] = true;
        let mut downstream = Vec::new();
        for (s, step) in plan.steps.iter().enumerate() {
            if step.node != layer && step.inputs.iter().any(|&i| depends[i]) {
                depends[step.node] = true;
                downstream.push(s);
            }
        }
        if !depends[plan.output] || layer == plan.output {
            return Err(RuntimeError::LayerIndex {
                layer: layer_name,
                reason: "the class scores do not depend on it through other layers".into(),
            });
        }
        let mut needed: Vec<NodeId> = downstream
            .iter()
            .flat_map(|&s| plan.steps[s].inputs.iter().copied())
            .filter(|&i| !depends[i])
            .collect();
        needed.push(layer);
        needed.sort_unstable();
        needed.dedup();
        let out = run(
            &plan,
            images,
            &RunSpec {
                capture: &needed,
                values: &values,
                ..Default::default()
            },
        );
        let [b, k, _, _] = out.output.dims();
        let mut kept: Vec<Option<Tensor<4>>> = vec![None; n];
        let mut activation = None;
        for (id, t) in out.captured {
            if id == layer {
                activation = Some(t);
            } else {
                kept[id] = Some(t);
            }
        }
        Ok(Resume {
            plan,
            layer,
            layer_name,
            downstream,
            kept,
            activation: activation.expect("the layer is captured"),
            values,
            logits: out.output.reshape([b, k]),
        })
    }

    /// The layer's value for the images, `[N, C, h, w]`.
    pub fn activation(&self) -> Tensor<4> {
        match self.values[self.layer].to_canonical() {
            Some(perm) => self.activation.clone().permute(perm),
            None => self.activation.clone(),
        }
    }

    /// The images' class scores, `[N, K]`.
    pub fn logits(&self) -> Tensor<2> {
        self.logits.clone()
    }

    /// Class scores `[B, K]` when the layer's value is `values[b]` (`[B, C, h, w]`) for image
    /// `images[b]` (an index into the images this was built from). Values with autodiff keep
    /// their tape: the scores are then differentiable with respect to them (L-CAM-Fm trains so).
    pub fn logits_with(&self, images: &[usize], values: Tensor<4>) -> Result<Tensor<2>> {
        let [n, ..] = self.activation.dims();
        let want = self.values[self.layer].canonical();
        let got = values.dims();
        if got[0] != images.len() || got[1..] != want[1..] || images.iter().any(|&i| i >= n) {
            return Err(RuntimeError::LayerIndex {
                layer: self.layer_name.clone(),
                reason: format!(
                    "replacement values of shape {got:?} for images {images:?} do not fit a value of shape {want:?}"
                ),
            });
        }
        // The kept values' device: `values` may be on its autodiff twin (a trainable module's output).
        let device = self.activation.device();
        let rows: Vec<i64> = images.iter().map(|&i| i as i64).collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(rows, [images.len()]), &device);
        let mut values_of: Vec<Option<Tensor<4>>> = vec![None; self.kept.len()];
        values_of[self.layer] = Some(match self.values[self.layer].from_canonical() {
            Some(perm) => values.permute(perm),
            None => values,
        });
        let spec = RunSpec {
            values: &self.values,
            ..Default::default()
        };
        for &s in &self.downstream {
            let step = &self.plan.steps[s];
            let args = step
                .inputs
                .iter()
                .map(|&i| match (&values_of[i], &self.kept[i]) {
                    (Some(v), _) => v.clone(),
                    (None, Some(k)) => k.clone().select(0, index.clone()),
                    (None, None) => unreachable!("every input is downstream or kept"),
                })
                .collect();
            let y = match &step.op {
                StepOp::Input => unreachable!("the input depends on nothing"),
                op => apply(op, step.node, &step.inputs, args, &spec),
            };
            values_of[step.node] = Some(y);
        }
        let out = values_of[self.plan.output]
            .take()
            .expect("the output depends on every layer that leads to it");
        let [b, k, _, _] = out.dims();
        Ok(out.reshape([b, k]))
    }
}
