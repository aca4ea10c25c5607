//! L-CAM-Img: a class activation map in one forward pass, from an attention module trained so
//! that the image masked by the map is still classified as the class.
//!
//! # Computes
//! The map of class `c` is the score map of a 1x1 convolution (the attention module, trained on
//! the frozen classifier) applied to the feature maps of one layer: one forward pass, no
//! backward pass, for any class. Training: the module's sigmoid map of the image's label is
//! upsampled to the input, multiplies the `[0, 1]` image, and the frozen classifier must still
//! find the label in the masked image, with a small and smooth mask.
//!
//! # Equation
//! `c = W F + b` (`W` `[K, C]`, `F` the layer's `C` feature maps), `M_c = c_c` (pre-sigmoid,
//! the raw map). Training: `A = sigmoid(c)`, `x_masked = up(A_y) ⊙ x`, loss
//! `1.5 CE(f(norm(x_masked)), y) + 2 mean((A_y + 0.0005)^0.3) + 0.01 TV(A_y)`, with
//! `TV(A) = [Σ Δ_h² + Σ Δ_w² + 0.3 Σ border²] / (2B)`; `y` is the classifier's own top-1.
//!
//! # Paper
//! Gkartzonika, Gkalelis, Mezaris, *Learning Visual Explanations for DCNN-Based Image
//! Classifiers Using an Attention Mechanism*, ECCV Workshops 2022 (code: bmezaris/L-CAM,
//! `ResNet50_L_CAM_Img.py`, `VGG16_L_CAM_Img.py`).
//!
//! # Deviations
//! The area and smoothness terms follow the reference code, not the paper's text: `get_a(labels)`
//! gives every image the maps of *all* the batch's labels (`B x B x h x w`), so each label's map is
//! also pushed down on the other images of the batch; on Lite0 this measured better on held-out
//! AD/IC than each image's own map (`B x 1`, `MaskPairing::OwnLabel`, `--mask-pairing own`). The
//! layer is the model's CAM layer (for Lite0 the 1280x7x7 `features`; the authors used VGG-16's
//! conv5_3 and ResNet-50's layer4). The shipped Lite0 weights start from the classifier's own
//! GAP + linear head rescaled to unsaturated masks (`--init cam`: the same min-max normalised maps
//! as CAM) instead of PyTorch's random initialisation, were trained on 1000 ImageNet images (one
//! per class) labelled by Lite0 itself, for 2 epochs at a learning rate of 0.03 (the authors':
//! 1.28M images, 8-26 epochs; BENCHMARKS.md has the command, the curve and the search). The raw
//! map is the pre-sigmoid score (unnormalised); the authors' min-max normalisation is the named
//! post-processing step (`Normalisation::MinMax`) for display and AD/IC.

use crate::Result;
use crate::learned::lcam::{LcamKind, LcamVariant, TrainBatch, TrainForward, class_masks};
use crate::learned::upsample::upsample_bilinear;
use crate::learned::{AttentionModule, MaskPairing};
use deepsight_runtime::LayeredClassifier;

/// L-CAM-Img (`l-cam-img`).
#[derive(Debug, Clone, Copy, Default)]
pub struct LcamImg;

impl LcamKind for LcamImg {
    const VARIANT: LcamVariant = LcamVariant::Img;
}

impl LcamImg {
    /// The training forward: a clean pass (off the tape) for the features, then the masked image
    /// through the whole frozen classifier (on the tape).
    pub fn forward(
        model: &dyn LayeredClassifier,
        am: &AttentionModule,
        layer: &str,
        batch: &TrainBatch,
        pairing: MaskPairing,
    ) -> Result<TrainForward> {
        let [_, _, h, w] = batch.images01.dims();
        let clean = batch.normalise(batch.images01.clone());
        let features = model.capture(clean, &[layer], false)?.activations.remove(layer);
        let features = features.expect("the captured layer is returned");
        let (mask, loss_masks) = class_masks(am, features, batch.labels, pairing);
        let up = upsample_bilinear(mask, h, w, &batch.images01.device());
        let masked = batch.normalise(batch.images01.clone() * up);
        let logits = model.forward_tracked(masked, &[])?.logits;
        Ok(TrainForward { logits, loss_masks })
    }
}
