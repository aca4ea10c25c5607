//! DeepSight's pipeline, which every front end (the CLI, the web server) shares: a [`Pipeline`]
//! holds a loaded model and its preprocessing, and answers "explain these images with these
//! methods for these classes" ([`ExplainRequest`]) with maps, rendered pictures, JSON-ready
//! metadata and pass counts ([`ImageReport`]), without touching the file system. Progress and
//! cancellation come in through [`Hooks`]; options are the typed [`Settings`], checked against
//! their schema.

mod error;
mod extras;
pub mod methods;
mod picture;
mod report;
mod request;
mod run;
pub mod settings;

pub use error::{PipelineError, Result};
pub use picture::Heat;
pub use report::{ClassScore, ExtraPicture, ImageReport, MethodResult, Timing};
pub use request::{Classes, Drawing, ExplainRequest, Hooks, LearnedWeights};
pub use run::Prepared;
pub use settings::Settings;

use deepsight_models::{LoadedModel, Preprocess, RgbImage};
use deepsight_runtime::{Classifier, GraphModel, LayeredClassifier, Tensor, TensorData, to_vec};

/// A loaded model and everything needed to explain its decisions.
pub struct Pipeline {
    loaded: LoadedModel,
}

impl Pipeline {
    pub fn new(loaded: LoadedModel) -> Pipeline {
        Pipeline { loaded }
    }

    pub fn model(&self) -> &GraphModel {
        &self.loaded.model
    }

    /// The input normalisation, owned here (resize, crop, mean and std; and their inverse).
    pub fn preprocess(&self) -> &Preprocess {
        &self.loaded.pipeline
    }

    /// What was loaded, for messages and reports.
    pub fn description(&self) -> &str {
        &self.loaded.description
    }

    pub fn class_names(&self) -> &[String] {
        &self.loaded.class_names
    }

    /// Class `c`'s name (`class c` where the model has none).
    pub fn class_name(&self, c: usize) -> String {
        self.loaded
            .class_names
            .get(c)
            .cloned()
            .unwrap_or_else(|| format!("class {c}"))
    }

    /// The model's input `[height, width]`.
    pub fn input_size(&self) -> [usize; 2] {
        self.loaded.pipeline.size()
    }

    /// Decodes image bytes (any format the `image` crate reads; over-large images refused by
    /// their header before decoding), named `input` in errors.
    pub fn decode(&self, input: &str, bytes: &[u8]) -> Result<RgbImage> {
        deepsight_models::preprocess::decode_rgb(bytes).map_err(|reason| PipelineError::Image {
            input: input.to_string(),
            reason,
        })
    }

    /// Resized and normalised images as one batch `[N, 3, H, W]` on the model's device.
    pub fn batch(&self, images: &[RgbImage]) -> Result<Tensor<4>> {
        let p = &self.loaded.pipeline;
        let [h, w] = p.size();
        let mut data: Vec<f32> = Vec::with_capacity(images.len() * 3 * h * w);
        for i in images {
            data.extend(p.normalise(&p.resize(i)?));
        }
        Ok(Tensor::from_data(
            TensorData::new(data, [images.len(), 3, h, w]),
            &self.model().device(),
        ))
    }

    /// Each image's `k` most probable classes.
    pub fn classify(&self, x: Tensor<4>, k: usize) -> Result<Vec<Vec<ClassScore>>> {
        let classes = self.model().num_classes();
        let logits = to_vec(self.model().logits(x)?);
        finite_scores(&logits, classes)?;
        Ok(logits
            .chunks(classes)
            .map(|row| {
                top_k(row, k.min(classes))
                    .into_iter()
                    .map(|(index, probability, logit)| ClassScore {
                        index,
                        name: self.class_name(index),
                        probability,
                        logit,
                    })
                    .collect()
            })
            .collect())
    }

    /// The layer table (`deepsight layers`) and the default CAM layer.
    pub fn layers(&self) -> (Vec<deepsight_runtime::LayerInfo>, Option<String>) {
        (self.model().layers(), self.model().default_cam_layer())
    }
}

/// Refuses class scores that are not all finite (rows of `classes` per image): a probability
/// of "NaN%" is never shown.
pub fn finite_scores(logits: &[f32], classes: usize) -> Result<()> {
    for (image, row) in logits.chunks(classes.max(1)).enumerate() {
        let count = row.iter().filter(|v| !v.is_finite()).count();
        if count > 0 {
            return Err(PipelineError::NonFinite { image, count });
        }
    }
    Ok(())
}

/// The `k` largest logits as `(index, softmax probability, logit)`, ties by lower index.
pub fn top_k(logits: &[f32], k: usize) -> Vec<(usize, f32, f32)> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let z: f32 = logits.iter().map(|v| (v - max).exp()).sum();
    let mut idx: Vec<usize> = (0..logits.len()).collect();
    idx.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    idx.into_iter()
        .take(k)
        .map(|i| (i, (logits[i] - max).exp() / z, logits[i]))
        .collect()
}
