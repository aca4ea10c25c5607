//! What L-CAM-Img and L-CAM-Fm share: the variant, the explainer over trained weights (one
//! forward pass: the layer's activation, then the 1x1 convolution), and the class masks that the
//! training forwards of both variants start from.

use crate::learned::{AttentionModule, LcamWeights, MaskPairing};
use crate::map::Map;
use crate::shared::{Need, SharedPasses};
use crate::{ExplainError, Explainer, Explanation, Passes, Request, Result};
use burn::tensor::activation::sigmoid;
use deepsight_runtime::{LayeredClassifier, Tensor};
use std::sync::Arc;

/// Where the learned mask is applied while training (at inference both are one forward pass).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LcamVariant {
    /// The upsampled mask multiplies the `[0, 1]` image, which the classifier sees again.
    Img,
    /// The mask multiplies the layer's feature maps, which the rest of the classifier sees.
    Fm,
}

impl LcamVariant {
    /// The method's CLI name.
    pub fn name(self) -> &'static str {
        match self {
            LcamVariant::Img => "l-cam-img",
            LcamVariant::Fm => "l-cam-fm",
        }
    }

    /// The short code used in weight files and `--variant`.
    pub fn code(self) -> &'static str {
        match self {
            LcamVariant::Img => "img",
            LcamVariant::Fm => "fm",
        }
    }
}

/// A variant's marker type (its file holds its docs and its training forward).
pub trait LcamKind: Send + Sync + 'static {
    const VARIANT: LcamVariant;
}

/// L-CAM over trained weights.
#[derive(Debug, Clone)]
pub struct Lcam<V> {
    pub kind: V,
    /// `None`: no weights for this model were given or shipped (explaining is then refused).
    pub weights: Option<Arc<LcamWeights>>,
}

impl<V: LcamKind> Lcam<V> {
    fn weights_for(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<&LcamWeights> {
        let name = V::VARIANT.name();
        let w = self.weights.as_deref().ok_or_else(|| ExplainError::Invalid {
            method: name,
            reason: "no weights: DeepSight ships them for the embedded lite0 only; train them with `deepsight train lcam` and pass --lcam-weights FILE".into(),
        })?;
        let layer = request.layer.clone().unwrap_or_else(|| w.layer.clone());
        w.check_fits(model, V::VARIANT, &layer)?;
        Ok(w)
    }
}

impl<V: LcamKind> Explainer for Lcam<V> {
    fn name(&self) -> &'static str {
        V::VARIANT.name()
    }

    fn needs(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<Vec<Need>> {
        let w = self.weights_for(model, request)?;
        Ok(vec![Need {
            rule: None,
            input: false,
            layers: vec![w.layer.clone()],
        }])
    }

    fn explain_shared(
        &self,
        model: &dyn LayeredClassifier,
        request: &Request,
        shared: &SharedPasses,
    ) -> Result<Explanation> {
        let w = self.weights_for(model, request)?;
        let features = shared.activation(&w.layer);
        let device = features.device();
        let am = AttentionModule::from_values(w.weight.clone(), w.bias.clone(), w.channels, &device);
        let classes: Vec<Vec<usize>> = request.classes.iter().map(|&c| vec![c]).collect();
        if let Some(&c) = request.classes.iter().find(|&&c| c >= w.classes) {
            return Err(ExplainError::Invalid {
                method: V::VARIANT.name(),
                reason: format!(
                    "class {c} is out of range: the weights have {} classes",
                    w.classes
                ),
            });
        }
        let scores = am.scores_of(features, &classes);
        let [n, _, height, width] = request.images.dims();
        let raw = Map::from_batch(scores);
        Ok(Explanation {
            maps: raw.iter().map(|m| m.resize(height, width)).collect(),
            raw: Some(raw),
            passes: Passes {
                forward: n,
                backward: 0,
            },
            extra: Vec::new(),
        })
    }
}

/// The sigmoid maps of a batch: each image's map of its own label `[B, 1, h, w]` (what masks the
/// image or the features), and the maps the loss's area and smoothness terms see.
pub fn class_masks(
    am: &AttentionModule,
    features: Tensor<4>,
    labels: &[usize],
    pairing: MaskPairing,
) -> (Tensor<4>, Tensor<4>) {
    let own: Vec<Vec<usize>> = labels.iter().map(|&l| vec![l]).collect();
    let mask = sigmoid(am.scores_of(features.clone(), &own));
    let for_loss = match pairing {
        MaskPairing::OwnLabel => mask.clone(),
        MaskPairing::BatchLabels => {
            let all = vec![labels.to_vec(); labels.len()];
            sigmoid(am.scores_of(features, &all))
        }
    };
    (mask, for_loss)
}

/// A training batch: augmented images in `[0, 1]` and their labels, with the model's
/// normalisation (`(255 x - mean) / std` per channel).
pub struct TrainBatch<'a> {
    pub images01: Tensor<4>,
    pub labels: &'a [usize],
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl TrainBatch<'_> {
    /// `x` (in `[0, 1]`) in the model's input space; stays on the tape if `x` is on it.
    pub fn normalise(&self, x: Tensor<4>) -> Tensor<4> {
        let device = x.device();
        let scale: Vec<f32> = (0..3).map(|c| 255.0 / self.std[c]).collect();
        let shift: Vec<f32> = (0..3).map(|c| -self.mean[c] / self.std[c]).collect();
        let t = |v: Vec<f32>| {
            Tensor::<4>::from_data(deepsight_runtime::TensorData::new(v, [1, 3, 1, 1]), &device)
        };
        x * t(scale) + t(shift)
    }
}

/// What one training forward gives the loss.
pub struct TrainForward {
    /// The classifier's logits of the masked input, on the tape.
    pub logits: Tensor<2>,
    /// The maps the area and smoothness terms see.
    pub loss_masks: Tensor<4>,
}
