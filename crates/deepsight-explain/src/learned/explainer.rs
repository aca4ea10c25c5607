//! Explainer network: a trained segmenter that outputs every class's mask of the pixels the frozen
//! classifier needs, in one forward pass for all classes.
//!
//! # Computes
//! A second network, the explainer, trained on the frozen classifier, gives `K` class logits per
//! pixel at a reduced resolution; the map of class `c` is `sigmoid(up(S_c))`, a mask in `[0, 1]`
//! at the input resolution. One pass of the explainer serves every class of an image (asking for
//! further classes of the same images reuses it: `--json` reports the passes). Training: the
//! image masked by its targets' mask must still be classified as its targets, the image masked by
//! the inverted mask must leave the classifier undecided, and each class's mask must cover between
//! 5% and 30% of the image and be smooth.
//!
//! # Equation
//! `m = sigmoid(max_{c ∈ T} up(S_c))`, `m_nt = sigmoid(up(max_{c ∉ T} S_c))`;
//! `L = cls(f(m ⊙ x), T) + λ_ent mean_{b,c} p log p |_{p = softmax f((1 - m) ⊙ x)} +
//! λ_tv (TV(m) + TV(m_nt)) + λ_ar Σ_{c ∈ T} [mean relu(1[k < 0.05 n] - s_k) +
//! mean relu(s_k - 1[k < 0.3 n])] + λ_tot mean(m) + λ_nc mean(m_nt)`, with `x` the *normalised* image (masked
//! pixels take the mean colour), `s` a class's mask sorted in descending order, `TV` the mean
//! absolute difference to the right and lower neighbours (reflect padding), and `cls` BCE for a
//! multi-label classifier or `-log Σ_{c ∈ T} softmax_c` for a softmax one.
//!
//! # Paper
//! Stalder, Perraudin, Achanta, Perez-Cruz, Volpi, *What You See is What You Classify: Black Box
//! Attributions*, NeurIPS 2022 (arXiv 2205.11266; code: stevenstalder/NN-Explainer,
//! `utils/loss.py`, `models/explainer_classifier.py`).
//!
//! # Deviations
//! The authors' explainer is DeepLabv3 with a ResNet-50 encoder trained whole; the shipped light
//! explainer ([`crate::learned::segmenter::TapDecoder`]) keeps the *classifier's own layers* frozen
//! as its pretrained encoder (Lite0: `_blocks.4` at stride 8, `_blocks.10` at 16, `features` at
//! 32) and trains only a small decoder, so one explainer pass costs about one classifier pass.
//! The non-target mask takes the maximum over the other classes before upsampling (the target mask
//! upsamples first, as the authors do). For a single-label softmax classifier the classification
//! term is the cross-entropy of the target set (one class: the authors' CUB loss), and by default
//! the targets are the classifier's own top-1. The shipped Lite0 weights were trained on 1000
//! ImageNet images (one per class) with the `imagenet-lite0` profile (BENCHMARKS.md has the
//! command, the curve and the tuning); the authors train on VOC / COCO with ground-truth labels.
//! The authors' architecture is there too ([`crate::learned::deeplab::DeepLabV3`], weight files
//! with `architecture = deeplabv3-resnet50`, `deepsight train explainer --architecture
//! deeplabv3-resnet50 --encoder-weights resnet50.pth`), for those with the time or a GPU to train
//! it; no such weights are shipped.

use crate::learned::explainer_weights::ExplainerWeights;
use crate::learned::segmenter::Segmenter;
use crate::map::Map;
use crate::{ExplainError, Explainer, Explanation, Passes, Request, Result};
use deepsight_runtime::{LayeredClassifier, to_vec};
use std::sync::{Arc, Mutex};

/// The class logits of the last images explained: `(fingerprint of the images, [n, K, h, w], values)`.
type Cached = (u64, [usize; 4], Arc<Vec<f32>>);

/// The explainer network over trained weights (`explainer`).
#[derive(Debug, Clone, Default)]
pub struct NnExplainer {
    /// `None`: no weights for this model were given or shipped (explaining is then refused).
    pub weights: Option<Arc<ExplainerWeights>>,
    cache: Arc<Mutex<Option<Cached>>>,
}

impl NnExplainer {
    pub fn new(weights: Option<Arc<ExplainerWeights>>) -> Self {
        NnExplainer {
            weights,
            cache: Arc::default(),
        }
    }

    fn weights_for(&self, model: &dyn LayeredClassifier) -> Result<&ExplainerWeights> {
        let w = self.weights.as_deref().ok_or_else(|| ExplainError::Invalid {
            method: "explainer",
            reason: "no weights: DeepSight ships them for the embedded lite0 only; train them with `deepsight train explainer` and pass --explainer-weights FILE".into(),
        })?;
        w.check_fits(model)?;
        Ok(w)
    }

    /// The class logits of `request`'s images and the explainer passes run for them (0 when the
    /// same images were explained just before, for other classes).
    fn logits(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<(Cached, usize)> {
        let w = self.weights_for(model)?;
        let pixels = to_vec(request.images.clone());
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for v in &pixels {
            h ^= v.to_bits() as u64;
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= Arc::as_ptr(self.weights.as_ref().expect("checked above")) as usize as u64;
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = cache.as_ref().filter(|c| c.0 == h) {
            return Ok((c.clone(), 0));
        }
        let net = w
            .net(&request.images.device())
            .ok_or_else(|| ExplainError::Invalid {
                method: "explainer",
                reason: format!("the weights do not make a {} explainer", w.architecture),
            })?;
        let s = net.class_logits(model, request.images.clone())?;
        let entry = (h, s.dims(), Arc::new(to_vec(s)));
        *cache = Some(entry.clone());
        Ok((entry, request.images.dims()[0]))
    }
}

impl Explainer for NnExplainer {
    fn name(&self) -> &'static str {
        "explainer"
    }

    fn explain(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<Explanation> {
        let k = model.num_classes();
        if let Some(&c) = request.classes.iter().find(|&&c| c >= k) {
            return Err(ExplainError::Invalid {
                method: "explainer",
                reason: format!("class {c} is out of range: the model has {k} classes"),
            });
        }
        let ((_, [_, kk, h, w], values), forward) = self.logits(model, request)?;
        let [_, _, height, width] = request.images.dims();
        let mut maps = Vec::new();
        let mut raw = Vec::new();
        for (i, &c) in request.classes.iter().enumerate() {
            let at = (i * kk + c) * h * w;
            let logits = Map {
                channels: 1,
                height: h,
                width: w,
                data: values[at..at + h * w].to_vec(),
            };
            let sig = |m: Map| Map {
                data: m.data.iter().map(|&z| 1.0 / (1.0 + (-z).exp())).collect(),
                ..m
            };
            maps.push(sig(logits.resize(height, width)));
            raw.push(sig(logits));
        }
        Ok(Explanation {
            maps,
            raw: Some(raw),
            passes: Passes { forward, backward: 0 },
            extra: Vec::new(),
        })
    }
}
