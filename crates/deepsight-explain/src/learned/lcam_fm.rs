//! L-CAM-Fm: a class activation map in one forward pass, from an attention module trained so
//! that the layer's feature maps masked by the map still give the class.
//!
//! # Computes
//! The same map as L-CAM-Img (a trained 1x1 convolution on one layer's feature maps: one forward
//! pass, no backward pass), trained differently: the sigmoid map of the image's label multiplies
//! the layer's feature maps (every channel), and the rest of the frozen classifier must still
//! find the label from them. No second pass through the layers before the masked one.
//!
//! # Equation
//! `c = W F + b`, `M_c = c_c` (pre-sigmoid, the raw map). Training: `A = sigmoid(c)`,
//! `F_masked = A_y ⊙ F`, loss `1.5 CE(head(F_masked), y) + 2 mean((A_y + 0.0005)^0.3)
//! + 0.01 TV(A_y)` (TV as for L-CAM-Img), `y` the classifier's own top-1.
//!
//! # Paper
//! Gkartzonika, Gkalelis, Mezaris, *Learning Visual Explanations for DCNN-Based Image
//! Classifiers Using an Attention Mechanism*, ECCV Workshops 2022 (code: bmezaris/L-CAM,
//! `ResNet50_L_CAM_Fm.py`, `VGG16_L_CAM_Fm.py`).
//!
//! # Deviations
//! As L-CAM-Img: the loss's maps pair every image with all the batch's labels (the reference
//! code's `B x B`; `--mask-pairing own` gives `B x 1`), the layer is the model's CAM layer, and
//! the shipped Lite0 weights start from the classifier's GAP + linear head (CAM, rescaled) and
//! were trained on 1000 ImageNet images labelled by Lite0 (BENCHMARKS.md). The layers after the
//! masked one run from a kept forward pass ([`deepsight_runtime::Resume`]), so side branches that
//! join later see the clean values.

use crate::Result;
use crate::learned::lcam::{LcamKind, LcamVariant, TrainBatch, TrainForward, class_masks};
use crate::learned::{AttentionModule, MaskPairing};
use deepsight_runtime::LayeredClassifier;

/// L-CAM-Fm (`l-cam-fm`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LcamFm;

impl LcamKind for LcamFm {
    const VARIANT: LcamVariant = LcamVariant::Fm;
}

impl LcamFm {
    /// The training forward: one pass up to the layer (off the tape), the masked features through
    /// the layers after it (on the tape).
    pub fn forward(
        model: &dyn LayeredClassifier,
        am: &AttentionModule,
        layer: &str,
        batch: &TrainBatch,
        pairing: MaskPairing,
    ) -> Result<TrainForward> {
        let clean = batch.normalise(batch.images01.clone());
        let resume = model.resume(clean, layer)?;
        let features = resume.activation();
        let (mask, loss_masks) = class_masks(am, features.clone(), batch.labels, pairing);
        let rows: Vec<usize> = (0..batch.labels.len()).collect();
        let logits = resume.logits_with(&rows, features * mask)?;
        Ok(TrainForward { logits, loss_masks })
    }
}
