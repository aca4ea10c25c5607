//! The explainer network's objective (Stalder et al. 2022, `utils/loss.py`) and the real-time
//! saliency baseline's (Dabkowski & Gal 2017 as adapted in `utils/rtsal_loss.py`), as typed
//! profiles of coefficients, each term a small function tested against hand-computed values.

use burn::tensor::activation::{log_sigmoid, log_softmax, relu, sigmoid, softmax};
use deepsight_runtime::{Device, Tensor, TensorData};

/// How the frozen classifier's scores of the masked image are judged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClassifierKind {
    /// A multi-label classifier (independent sigmoids): `BCEWithLogits(f(m ⊙ x), y)` averaged
    /// over the batch and the classes, the authors' loss for VOC and COCO.
    MultiLabel,
    /// A single-label softmax classifier (ImageNet): `-log Σ_{c ∈ T} softmax(f(m ⊙ x))_c`, the
    /// probability mass on the image's target set. With one target it is the cross-entropy the
    /// authors use for CUB; with several it asks that the masked image be classified as *one of*
    /// its targets, which is what a softmax classifier can do (BCE would ask every target to
    /// reach probability 1 at once, which softmax forbids).
    #[default]
    Softmax,
}

/// The coefficients of the explainer's loss.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ExplainerCoefficients {
    pub entropy: f32,
    pub tv: f32,
    pub area: f32,
    /// `λ_tot`: the mean of the target mask.
    pub target_mean: f32,
    /// `λ_nc`: the mean of the non-target mask.
    pub non_target_mean: f32,
    /// The per-class area bounds (fractions of the image).
    pub min_area: f32,
    pub max_area: f32,
}

/// A named set of coefficients and learning rate: the authors' four configurations
/// (`src/config_files/explainer_training/*.cfg`), ours for ImageNet on Lite0, and the real-time
/// saliency baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExplainerProfile {
    VocVgg16,
    VocResnet50,
    CocoVgg16,
    CocoResnet50,
    /// Tuned here for the embedded Lite0 on ImageNet (BENCHMARKS.md records the search).
    ImagenetLite0,
    /// Dabkowski & Gal's real-time saliency loss (the authors' RTIS baseline): no entropy, area
    /// or non-target terms; see [`rtis_loss`].
    Rtis,
}

impl ExplainerProfile {
    pub const ALL: [(ExplainerProfile, &'static str); 6] = [
        (ExplainerProfile::VocVgg16, "voc-vgg16"),
        (ExplainerProfile::VocResnet50, "voc-resnet50"),
        (ExplainerProfile::CocoVgg16, "coco-vgg16"),
        (ExplainerProfile::CocoResnet50, "coco-resnet50"),
        (ExplainerProfile::ImagenetLite0, "imagenet-lite0"),
        (ExplainerProfile::Rtis, "rtis"),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(p, _)| *p == self)
            .map(|(_, n)| *n)
            .expect("listed")
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(p, _)| *p)
    }

    /// The profile's coefficients (RTIS: its own loss, these are unused).
    pub fn coefficients(self) -> ExplainerCoefficients {
        let c = |entropy, tv, area, target_mean, non_target_mean| ExplainerCoefficients {
            entropy,
            tv,
            area,
            target_mean,
            non_target_mean,
            min_area: 0.05,
            max_area: 0.3,
        };
        match self {
            ExplainerProfile::VocVgg16 | ExplainerProfile::Rtis => c(1.0, 1.0, 1.0, 0.1, 0.3),
            ExplainerProfile::VocResnet50 => c(3.0, 1.0, 0.8, 0.01, 0.3),
            ExplainerProfile::CocoVgg16 => c(1.0, 0.3, 0.3, 0.03, 0.1),
            ExplainerProfile::CocoResnet50 => c(3.0, 0.05, 0.1, 0.01, 0.03),
            // voc-vgg16's, with the entropy term scaled by K / 20 = 50: `mean_{b,c} p log p` is
            // bounded by log(K) / K, 50 times smaller for ImageNet's 1000 classes than for VOC's 20.
            ExplainerProfile::ImagenetLite0 => c(50.0, 1.0, 1.0, 0.1, 0.3),
        }
    }

    /// The authors' learning rate (Adam, constant).
    pub fn learning_rate(self) -> f64 {
        match self {
            ExplainerProfile::VocResnet50 => 1e-4,
            ExplainerProfile::ImagenetLite0 | ExplainerProfile::Rtis => 1e-3,
            _ => 1e-5,
        }
    }

    /// The authors' early-stopping patience in epochs.
    pub fn patience(self) -> usize {
        match self {
            ExplainerProfile::CocoVgg16 | ExplainerProfile::CocoResnet50 => 2,
            _ => 5,
        }
    }
}

fn constant<const D: usize>(v: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// Multi-hot targets `[B, K]`.
pub fn multi_hot(labels: &[Vec<usize>], classes: usize, device: &Device) -> Tensor<2> {
    let mut y = vec![0f32; labels.len() * classes];
    for (i, l) in labels.iter().enumerate() {
        for &c in l {
            y[i * classes + c] = 1.0;
        }
    }
    constant(y, [labels.len(), classes], device)
}

/// `BCEWithLogits(z, y)`, the mean over all entries: `mean(-y log σ(z) - (1-y) log(1-σ(z)))`.
pub fn bce_with_logits(logits: Tensor<2>, labels: &[Vec<usize>]) -> Tensor<1> {
    let [_, k] = logits.dims();
    let y = multi_hot(labels, k, &logits.device());
    let neg = logits.clone().neg();
    let loss = y.clone().neg() * log_sigmoid(logits) - (y.neg() + 1.0) * log_sigmoid(neg);
    loss.mean()
}

/// `mean_b -log Σ_{c ∈ T_b} softmax(z_b)_c` (log-sum-exp over the targets, stable).
pub fn softmax_set_ce(logits: Tensor<2>, labels: &[Vec<usize>]) -> Tensor<1> {
    let [b, k] = logits.dims();
    let device = logits.device();
    let logp = log_softmax(logits, 1);
    // -inf-like offset on non-targets, then log Σ exp over each row.
    let mut off = vec![-1e30f32; b * k];
    for (i, l) in labels.iter().enumerate() {
        for &c in l {
            off[i * k + c] = 0.0;
        }
    }
    let masked = logp + constant(off, [b, k], &device);
    let max = masked.clone().detach().max_dim(1);
    let lse = (masked - max.clone()).exp().sum_dim(1).log() + max;
    lse.neg().mean()
}

/// The classification term for `kind`.
pub fn classification(kind: ClassifierKind, logits: Tensor<2>, labels: &[Vec<usize>]) -> Tensor<1> {
    match kind {
        ClassifierKind::MultiLabel => bce_with_logits(logits, labels),
        ClassifierKind::Softmax => softmax_set_ce(logits, labels),
    }
}

/// `entropy_loss`: `mean_{b,c} p log p` with `p = max(softmax(z), 1e-16)`: the negative entropy
/// of the inverted-mask image's prediction divided by `K` (minimising it flattens the prediction).
pub fn negative_entropy(logits: Tensor<2>) -> Tensor<1> {
    let p = softmax(logits, 1).clamp_min(1e-16);
    (p.clone() * p.log()).mean()
}

/// `TotalVariationConv`: `mean(|m(i,j) - m(i,j+1)| + |m(i,j) - m(i+1,j)|)` over `[B, 1, H, W]`,
/// with reflect padding, so the last column's right difference is `m(i,W-1) - m(i,W-2)` (and
/// likewise for the last row). `square` gives RTIS's squared variant.
pub fn total_variation(mask: Tensor<4>, square: bool) -> Tensor<1> {
    let [b, c, h, w] = mask.dims();
    let f = |t: Tensor<4>| if square { t.clone() * t } else { t.abs() };
    let mut sum = mask.clone().sum() * 0.0;
    if w > 1 {
        let right = mask.clone().slice([0..b, 0..c, 0..h, 1..w]);
        let left = mask.clone().slice([0..b, 0..c, 0..h, 0..w - 1]);
        let edge = mask.clone().slice([0..b, 0..c, 0..h, w - 2..w - 1]);
        let last = mask.clone().slice([0..b, 0..c, 0..h, w - 1..w]);
        sum = sum + f(left - right).sum() + f(last - edge).sum();
    }
    if h > 1 {
        let down = mask.clone().slice([0..b, 0..c, 1..h, 0..w]);
        let up = mask.clone().slice([0..b, 0..c, 0..h - 1, 0..w]);
        let edge = mask.clone().slice([0..b, 0..c, h - 2..h - 1, 0..w]);
        let last = mask.clone().slice([0..b, 0..c, h - 1..h, 0..w]);
        sum = sum + f(up - down).sum() + f(last - edge).sum();
    }
    sum / (b * c * h * w) as f32
}

/// `ClassMaskArea`: for each (image, target class) pair, `s` = that class's mask sorted
/// descending; `mean_k relu(1[k < ⌊a_min n⌋] - s_k) + mean_k relu(s_k - 1[k < ⌊a_max n⌋])`;
/// summed over the image's target classes, averaged over the batch: the sum over all pairs
/// divided by `batch`, the number of images. `masks` `[P, n]` holds one row per pair.
pub fn class_mask_area(masks: Tensor<2>, batch: usize, min_area: f32, max_area: f32) -> Tensor<1> {
    let [p, n] = masks.dims();
    let device = masks.device();
    // The sort order is a constant of the step: gather by host-sorted indices keeps the tape.
    let values = deepsight_runtime::to_vec(masks.clone().detach().inner());
    let mut order = Vec::with_capacity(p * n);
    for r in 0..p {
        let row = &values[r * n..(r + 1) * n];
        let mut idx: Vec<usize> = (0..n).collect();
        idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
        order.extend(idx.into_iter().map(|i| (r * n + i) as i64));
    }
    let index = Tensor::<1, deepsight_runtime::Int>::from_data(TensorData::new(order, [p * n]), &device);
    let sorted = masks.reshape([p * n]).select(0, index).reshape([p, n]);
    let ones = |a: f32| {
        let k = (n as f32 * a) as usize;
        let row: Vec<f32> = (0..n).map(|i| if i < k { 1.0 } else { 0.0 }).collect();
        constant(row, [1, n], &device)
    };
    let per_pair = (relu(ones(min_area) - sorted.clone()) + relu(sorted - ones(max_area))).mean_dim(1);
    per_pair.sum() / batch as f32
}

/// The explainer's loss terms, unweighted.
pub struct ExplainerTerms {
    pub classification: Tensor<1>,
    pub entropy: Tensor<1>,
    pub tv: Tensor<1>,
    pub area: Tensor<1>,
    pub target_mean: Tensor<1>,
    pub non_target_mean: Tensor<1>,
}

impl ExplainerTerms {
    /// `L = cls + λ_ent ent + λ_tv (TV(m) + TV(m_nt)) + λ_ar area + λ_tot mean(m) + λ_nc mean(m_nt)`
    /// (the TV term here already holds the sum of both masks' variations).
    pub fn total(&self, c: &ExplainerCoefficients) -> Tensor<1> {
        self.classification.clone()
            + self.entropy.clone() * c.entropy
            + self.tv.clone() * c.tv
            + self.area.clone() * c.area
            + self.target_mean.clone() * c.target_mean
            + self.non_target_mean.clone() * c.non_target_mean
    }
}

/// Dabkowski & Gal's objective as the NN-Explainer authors adapted it to several targets
/// (`explainer_classifier_rtsal.py`): `10 TV²(m) + mean(m) + preserver + 5 destroyer^0.3`, with
/// preserver `-mean log p_c(Φ(x, m))` and destroyer `mean p_c(Φ(x, 1 - m))` over the (image,
/// target) pairs; `p` is the sigmoid of a multi-label classifier, the softmax of a single-label
/// one. Returns `(total, [tv², area, preserver, destroyer])`.
pub fn rtis_loss(
    kind: ClassifierKind,
    mask: Tensor<4>,
    logits_preserved: Tensor<2>,
    logits_destroyed: Tensor<2>,
    labels: &[Vec<usize>],
) -> (Tensor<1>, [Tensor<1>; 4]) {
    let [_, k] = logits_preserved.dims();
    let device = mask.device();
    let y = multi_hot(labels, k, &device);
    let pairs = labels.iter().map(Vec::len).sum::<usize>().max(1) as f32;
    let (log_p, p) = match kind {
        ClassifierKind::MultiLabel => (log_sigmoid(logits_preserved), sigmoid(logits_destroyed)),
        ClassifierKind::Softmax => (log_softmax(logits_preserved, 1), softmax(logits_destroyed, 1)),
    };
    let preserver = (log_p * y.clone()).sum().neg() / pairs;
    let destroyer = (p * y).sum() / pairs;
    let tv = total_variation(mask.clone(), true);
    let area = mask.mean();
    let total = tv.clone() * 10.0
        + area.clone()
        + preserver.clone()
        + (destroyer.clone().clamp_min(1e-12).log() * 0.3).exp() * 5.0;
    (total, [tv, area, preserver, destroyer])
}
