//! `deepsight bench --lcam`: one L-CAM-Img training step on the frozen model at batch 32 (the
//! issue's speed target, beside `scripts/lcam_train_step_torch.py`), and its parts.

use crate::bench::Task;
use deepsight_explain::learned::lcam::TrainBatch;
use deepsight_explain::learned::{AttentionModule, LcamLoss, LcamVariant, ModelIdentity};
use deepsight_models::Preset;
use deepsight_runtime::{Classifier, GraphModel, LayeredClassifier, Tensor, TensorData, to_vec};
use deepsight_train::lcam::LcamTask;
use deepsight_train::{OptimConfig, TrainError, train_step};
use std::cell::RefCell;
use std::collections::BTreeMap;

/// The batch the issue measures.
pub const BATCH: usize = 32;

fn images01(n: usize, device: &deepsight_runtime::Device) -> Tensor<4> {
    let mut state = 0x9e3779b97f4a7c15u64;
    let v: Vec<f32> = (0..n * 3 * 224 * 224)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    Tensor::from_data(TensorData::new(v, [n, 3, 224, 224]), device)
}

/// The step and its parts, on `model` (Lite0's normalisation).
pub fn tasks<'a>(model: &'a GraphModel, layer: &str) -> Result<Vec<Task<'a>>, TrainError> {
    let p = Preset::EfficientNetLite.pipeline();
    let task = LcamTask {
        model,
        variant: LcamVariant::Img,
        layer: layer.to_string(),
        loss: LcamLoss::default(),
        mean: p.mean,
        std: p.std,
        identity: ModelIdentity::of(model, "bench"),
        info: BTreeMap::new(),
    };
    let device = model.device();
    let ad = device.clone().autodiff();
    let channels = task.channels()?;
    let module = AttentionModule::pytorch_default(channels, model.num_classes(), 0, &ad);
    let x = images01(BATCH, &device);
    let (mean, std) = (p.mean, p.std);
    let norm = move |x: Tensor<4>| {
        TrainBatch {
            images01: x.clone(),
            labels: &[],
            mean,
            std,
        }
        .normalise(x)
    };
    let logits = to_vec(model.logits(norm(x.clone()))?);
    let k = model.num_classes();
    let labels: Vec<Vec<usize>> = (0..BATCH)
        .map(|i| {
            vec![
                (0..k)
                    .max_by(|&a, &b| logits[i * k + a].total_cmp(&logits[i * k + b]))
                    .unwrap_or(0),
            ]
        })
        .collect();
    let clean_layer = layer.to_string();
    let optim = OptimConfig::lcam_resnet50();
    let state = RefCell::new((Some(module), optim.build()));
    let xb = x.clone();
    Ok(vec![
        (
            "l-cam-img train step (clean pass, masked forward, backward, SGD)",
            BATCH,
            0.0,
            Box::new(move || {
                let mut s = state.borrow_mut();
                let module = s.0.take().expect("put back after every step");
                let rates = (optim.weight_lr, optim.bias_lr);
                let (module, _) =
                    train_step(&task, module, &mut s.1, rates, x.clone(), &labels).expect("runs");
                s.0 = Some(module);
            }),
        ),
        (
            "l-cam-img clean pass (features, no tape)",
            BATCH,
            0.0,
            Box::new(move || {
                let c = model
                    .capture(norm(xb.clone()), &[&clean_layer], false)
                    .expect("runs");
                drop(to_vec(c.logits));
            }),
        ),
    ])
}
