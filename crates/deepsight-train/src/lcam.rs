//! L-CAM on the engine: the [`Task`] that trains an attention module on a frozen classifier, its
//! initialisations, and the classifier's own labels (computed once, cached).

use crate::data::Item;
use crate::engine::Task;
use crate::error::{Result, TrainError};
use deepsight_explain::cam::{CamVariant, ClassActivationMap};
use deepsight_explain::learned::lcam::TrainBatch;
use deepsight_explain::learned::{
    AttentionModule, LcamFm, LcamImg, LcamLoss, LcamVariant, LcamWeights, ModelIdentity,
};
use deepsight_models::preprocess::Preprocess;
use deepsight_runtime::{Device, LayeredClassifier, Tensor, TensorData, to_vec};
use std::collections::BTreeMap;
use std::path::Path;

/// How the attention module starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Init {
    /// PyTorch's default `Conv2d` initialisation, seeded (the authors').
    PyTorchDefault { seed: u64 },
    /// The classifier's own GAP + linear head, so that training starts from CAM:
    /// `c = α (W F − W F̄)`, with the head's `W`, the mean feature vector `F̄` and `α` one over the
    /// spread of the label class's CAM values on sample images. Its min-max normalised maps are
    /// exactly CAM's (normalisation removes `α` and per-class offsets), and its sigmoid masks start
    /// around 0.5 instead of saturated at 1 (where the raw head's large scores put them, with no
    /// gradient). Refused where the layer does not feed such a head.
    Cam,
}

/// Training L-CAM-Img or L-CAM-Fm at one layer of a frozen classifier.
pub struct LcamTask<'a> {
    pub model: &'a dyn LayeredClassifier,
    pub variant: LcamVariant,
    pub layer: String,
    pub loss: LcamLoss,
    /// The model's normalisation, `(255 x - mean) / std`.
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub identity: ModelIdentity,
    /// Facts recorded in the weight file (command, data, epochs).
    pub info: BTreeMap<String, String>,
}

impl LcamTask<'_> {
    /// The weights of `module` as a weight file's contents.
    pub fn weights(&self, module: &AttentionModule) -> LcamWeights {
        let [classes, channels] = module.dims();
        LcamWeights {
            variant: self.variant,
            layer: self.layer.clone(),
            model: self.identity.clone(),
            channels,
            classes,
            weight: to_vec(module.weight.val().inner()),
            bias: to_vec(module.bias.val().inner()),
            info: self.info.clone(),
        }
    }

    /// The layer's channel count.
    pub fn channels(&self) -> Result<usize> {
        let shape = self
            .model
            .layers()
            .into_iter()
            .find(|l| l.name == self.layer)
            .map(|l| l.shape)
            .ok_or_else(|| TrainError::Config(format!("the model has no layer '{}'", self.layer)))?;
        match shape[..] {
            [_, c, _, _] => Ok(c),
            _ => Err(TrainError::Config(format!(
                "layer '{}' is flat ({shape:?}): L-CAM needs a spatial feature map",
                self.layer
            ))),
        }
    }

    /// The initial module, on `device` (the autodiff device for training); `sample` (model
    /// inputs) sets the scale of the CAM initialisation.
    pub fn initial(&self, init: Init, sample: Tensor<4>, device: &Device) -> Result<AttentionModule> {
        let channels = self.channels()?;
        let classes = self.model.num_classes();
        Ok(match init {
            Init::PyTorchDefault { seed } => {
                AttentionModule::pytorch_default(channels, classes, seed, device)
            }
            Init::Cam => {
                let (mut w, _) = cam_head(self.model, &self.layer)?;
                let capture = self.model.capture(sample, &[&self.layer], false)?;
                let logits = to_vec(capture.logits.clone());
                let f = capture.activations[&self.layer].clone();
                let [n, c, h, wd] = f.dims();
                let fv = to_vec(f);
                let hw = h * wd;
                let mut mean = vec![0f64; c];
                for i in 0..n {
                    for (ch, m) in mean.iter_mut().enumerate() {
                        let plane = &fv[(i * c + ch) * hw..(i * c + ch + 1) * hw];
                        *m += plane.iter().map(|&v| v as f64).sum::<f64>() / (n * hw) as f64;
                    }
                }
                // The spread of each image's top-1 CAM around its own mean, pooled.
                let mut var = 0f64;
                for i in 0..n {
                    let row = &logits[i * classes..(i + 1) * classes];
                    let k = (0..classes)
                        .max_by(|&a, &b| row[a].total_cmp(&row[b]))
                        .unwrap_or(0);
                    let cam: Vec<f64> = (0..hw)
                        .map(|p| {
                            (0..c)
                                .map(|ch| w[k * c + ch] as f64 * fv[(i * c + ch) * hw + p] as f64)
                                .sum()
                        })
                        .collect();
                    let m = cam.iter().sum::<f64>() / hw as f64;
                    var += cam.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n * hw) as f64;
                }
                let alpha = if var > 0.0 { 1.0 / var.sqrt() } else { 1.0 };
                let bias: Vec<f32> = (0..classes)
                    .map(|k| (-alpha * (0..c).map(|ch| w[k * c + ch] as f64 * mean[ch]).sum::<f64>()) as f32)
                    .collect();
                w.iter_mut().for_each(|v| *v = (*v as f64 * alpha) as f32);
                AttentionModule::from_values(w, bias, channels, device)
            }
        })
    }
}

impl Task for LcamTask<'_> {
    type Module = AttentionModule;

    fn terms(&self) -> &'static [&'static str] {
        &["ce", "area", "tv"]
    }

    fn term_weights(&self) -> Vec<f32> {
        vec![self.loss.ce, self.loss.area, self.loss.tv]
    }

    fn loss(
        &self,
        module: &AttentionModule,
        images01: Tensor<4>,
        labels: &[Vec<usize>],
    ) -> Result<(Tensor<1>, Vec<Tensor<1>>)> {
        // L-CAM explains one class per image: the first of its labels.
        let labels: Vec<usize> = labels.iter().map(|l| l.first().copied().unwrap_or(0)).collect();
        let labels = &labels[..];
        let batch = TrainBatch {
            images01,
            labels,
            mean: self.mean,
            std: self.std,
        };
        let f = match self.variant {
            LcamVariant::Img => LcamImg::forward(self.model, module, &self.layer, &batch, self.loss.pairing)?,
            LcamVariant::Fm => LcamFm::forward(self.model, module, &self.layer, &batch, self.loss.pairing)?,
        };
        let t = self.loss.terms(f.logits, labels, f.loss_masks);
        Ok((t.total, vec![t.ce, t.area, t.tv]))
    }

    fn encode(&self, module: &AttentionModule, extra: &[(&str, &[u8])], meta: &[(&str, String)]) -> Vec<u8> {
        self.weights(module).to_bytes(false, extra, meta)
    }

    fn decode(&self, bytes: &[u8], source: &str, device: &Device) -> Result<AttentionModule> {
        let w = LcamWeights::from_bytes(bytes, source)?;
        w.check_fits(self.model, self.variant, &self.layer)?;
        Ok(AttentionModule::from_values(w.weight, w.bias, w.channels, device))
    }
}

/// The weights `[K, C]` and bias `[K]` of the GAP + linear head that reads `layer`, read off the
/// model by resuming from the layer with spatially constant one-hot values (exact for such a head,
/// which [`ClassActivationMap`] checks first).
pub fn cam_head(model: &dyn LayeredClassifier, layer: &str) -> Result<(Vec<f32>, Vec<f32>)> {
    ClassActivationMap.check(model, layer)?;
    let info = model
        .layers()
        .into_iter()
        .next()
        .expect("a model has an input layer");
    let device = model.device();
    let [_, c_in, h_in, w_in] = info.shape[..] else {
        return Err(TrainError::Config("the model's input is not an image".into()));
    };
    let zero = Tensor::<4>::zeros([1, c_in, h_in, w_in], &device);
    let resume = model.resume(zero, layer)?;
    let [_, c, h, w] = resume.activation().dims();
    let k = model.num_classes();
    let bias = to_vec(resume.logits_with(&[0], Tensor::zeros([1, c, h, w], &device))?);
    let mut weight = vec![0f32; k * c];
    let chunk = 64;
    for start in (0..c).step_by(chunk) {
        let n = chunk.min(c - start);
        let mut v = vec![0f32; n * c * h * w];
        for j in 0..n {
            let ch = start + j;
            v[(j * c + ch) * h * w..(j * c + ch + 1) * h * w].fill(1.0);
        }
        let values = Tensor::from_data(TensorData::new(v, [n, c, h, w]), &device);
        let logits = to_vec(resume.logits_with(&vec![0; n], values)?);
        for j in 0..n {
            for class in 0..k {
                weight[class * c + start + j] = logits[j * k + class] - bias[class];
            }
        }
    }
    Ok((weight, bias))
}

/// The frozen classifier's top-1 for every item (its evaluation preprocessing), read from and
/// added to the JSON cache at `cache` (keyed by the model's fingerprint and the image path).
pub fn predicted_labels(
    model: &dyn LayeredClassifier,
    identity: &ModelIdentity,
    pipeline: &Preprocess,
    items: &[Item],
    cache: &Path,
    progress: &dyn Fn(usize, usize),
) -> Result<Vec<usize>> {
    let mut known: BTreeMap<String, usize> = std::fs::read_to_string(cache)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .filter(|v| v["model_fingerprint"] == identity.fingerprint.as_str())
        .and_then(|v| serde_json::from_value(v["labels"].clone()).ok())
        .unwrap_or_default();
    let missing: Vec<&Item> = items
        .iter()
        .filter(|i| !known.contains_key(&i.path.display().to_string()))
        .collect();
    let device = model.device();
    for (b, chunk) in missing.chunks(16).enumerate() {
        let paths: Vec<&Path> = chunk.iter().map(|i| i.path.as_path()).collect();
        let logits = model.logits(pipeline.load_batch(&paths, &device)?)?;
        let k = model.num_classes();
        let v = to_vec(logits);
        for (j, item) in chunk.iter().enumerate() {
            let row = &v[j * k..(j + 1) * k];
            let top = (0..k).max_by(|&a, &b| row[a].total_cmp(&row[b])).unwrap_or(0);
            known.insert(item.path.display().to_string(), top);
        }
        progress(((b + 1) * 16).min(missing.len()), missing.len());
    }
    if !missing.is_empty() {
        let json = serde_json::json!({
            "model": identity.name, "model_fingerprint": identity.fingerprint, "labels": known,
        });
        deepsight_models::write_atomic(cache, json.to_string().as_bytes())?;
    }
    Ok(items
        .iter()
        .map(|i| known[&i.path.display().to_string()])
        .collect())
}
