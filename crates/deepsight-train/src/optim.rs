//! Optimisers and learning-rate schedules, on burn's optimisers: SGD (momentum, Nesterov), Adam
//! and AdamW, weight decay, and separate learning rates and decays for weights and biases (the L-CAM
//! authors' parameter groups).

use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::module::ParamGroup;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{AdamConfig, AdamWConfig, ModuleOptimizer, Optimizer, SgdConfig};

/// Which optimiser.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OptimizerKind {
    /// SGD with momentum (PyTorch's form, no dampening), optionally Nesterov.
    Sgd { momentum: f64, nesterov: bool },
    /// Adam with L2 weight decay added to the gradient.
    Adam { beta1: f32, beta2: f32, epsilon: f32 },
    /// AdamW (decoupled weight decay).
    AdamW { beta1: f32, beta2: f32, epsilon: f32 },
}

/// How the learning rate changes over the run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Schedule {
    Constant,
    /// Multiplied by `gamma` at the start of every epoch after the first (L-CAM's `reduce_lr`).
    StepDecay {
        gamma: f64,
    },
    /// PyTorch's `OneCycleLR` (cosine, two phases), stepped per iteration: from `max / div` up to
    /// the base rate over `pct_start` of the run, then down to `max / (div * final_div)`.
    OneCycle {
        pct_start: f64,
        div: f64,
        final_div: f64,
    },
}

/// An optimiser with its parameter groups and schedule.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OptimConfig {
    pub kind: OptimizerKind,
    /// Base learning rate of the weights and of the biases.
    pub weight_lr: f64,
    pub bias_lr: f64,
    pub weight_decay: f64,
    pub bias_weight_decay: f64,
    pub schedule: Schedule,
}

impl OptimConfig {
    /// L-CAM's ResNet-50 settings (`Train_L_CAM_ResNet50.py`, `my_optim.py`): SGD, momentum 0.9,
    /// Nesterov, weight decay 5e-4, weights 1e-4 and biases 2e-4, x0.95 per epoch.
    pub fn lcam_resnet50() -> Self {
        OptimConfig {
            kind: OptimizerKind::Sgd {
                momentum: 0.9,
                nesterov: true,
            },
            weight_lr: 1e-4,
            bias_lr: 2e-4,
            weight_decay: 5e-4,
            bias_weight_decay: 5e-4,
            schedule: Schedule::StepDecay { gamma: 0.95 },
        }
    }

    /// L-CAM's VGG-16 settings: as ResNet-50's, but weights 1e-2 and biases 2e-2 (the reference
    /// code's `if '' in name` multiplies every group), x0.75 per epoch.
    pub fn lcam_vgg16() -> Self {
        OptimConfig {
            weight_lr: 1e-2,
            bias_lr: 2e-2,
            schedule: Schedule::StepDecay { gamma: 0.75 },
            ..Self::lcam_resnet50()
        }
    }

    /// The optimiser: one group for the weights, one for parameters whose path names a bias.
    pub fn build(&self) -> ModuleOptimizer {
        fn grouped<O: Optimizer>(weights: O, biases: O) -> ModuleOptimizer {
            ModuleOptimizer::from(weights).with_group(bias_group(), biases, None)
        }
        let wd = |decay: f64| {
            (decay > 0.0).then_some(WeightDecayConfig {
                penalty: decay as f32,
            })
        };
        let (w, b) = (self.weight_decay, self.bias_weight_decay);
        match self.kind {
            OptimizerKind::Sgd { momentum, nesterov } => {
                let sgd = |decay| {
                    SgdConfig::new()
                        .with_momentum(Some(MomentumConfig {
                            momentum,
                            dampening: 0.0,
                            nesterov,
                        }))
                        .with_weight_decay(wd(decay))
                        .build()
                };
                grouped(sgd(w), sgd(b))
            }
            OptimizerKind::Adam {
                beta1,
                beta2,
                epsilon,
            } => {
                let adam = |decay| {
                    AdamConfig::new()
                        .with_beta_1(beta1)
                        .with_beta_2(beta2)
                        .with_epsilon(epsilon)
                        .with_weight_decay(wd(decay))
                        .build()
                };
                grouped(adam(w), adam(b))
            }
            OptimizerKind::AdamW {
                beta1,
                beta2,
                epsilon,
            } => {
                let adamw = |decay: f64| {
                    AdamWConfig::new()
                        .with_beta_1(beta1)
                        .with_beta_2(beta2)
                        .with_epsilon(epsilon)
                        .with_weight_decay(decay as f32)
                        .build()
                };
                grouped(adamw(w), adamw(b))
            }
        }
    }

    /// The factor the schedule applies at iteration `step` of `total` (`steps_per_epoch` per
    /// epoch).
    pub fn factor(&self, step: usize, steps_per_epoch: usize, total: usize) -> f64 {
        match self.schedule {
            Schedule::Constant => 1.0,
            Schedule::StepDecay { gamma } => gamma.powi((step / steps_per_epoch.max(1)) as i32),
            Schedule::OneCycle {
                pct_start,
                div,
                final_div,
            } => {
                let initial = 1.0 / div;
                let min = initial / final_div;
                let end1 = pct_start * total as f64 - 1.0;
                let end2 = total as f64 - 1.0;
                let cos = |start: f64, end: f64, pct: f64| {
                    end + (start - end) / 2.0 * (1.0 + (std::f64::consts::PI * pct).cos())
                };
                let t = step as f64;
                if t <= end1 {
                    cos(initial, 1.0, if end1 > 0.0 { t / end1 } else { 1.0 })
                } else {
                    cos(1.0, min, ((t - end1) / (end2 - end1).max(1e-12)).min(1.0))
                }
            }
        }
    }

    /// The learning rates `(weights, biases)` at iteration `step`.
    pub fn rates(&self, step: usize, steps_per_epoch: usize, total: usize) -> (f64, f64) {
        let f = self.factor(step, steps_per_epoch, total);
        (self.weight_lr * f, self.bias_lr * f)
    }

    /// burn's per-group learning rate for `(weights, biases)`.
    pub fn module_rate(rates: (f64, f64)) -> ModuleLearningRate {
        ModuleLrScheduler::new(rates.0)
            .with_group(bias_group(), rates.1)
            .step()
    }
}

fn bias_group() -> ParamGroup {
    ParamGroup::from_predicate("bias")
}
