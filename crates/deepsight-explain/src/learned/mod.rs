//! Methods with learned parameters: an attention module trained on a frozen classifier (L-CAM).
//! The module definitions, their inference as [`crate::Explainer`]s and their losses live here;
//! the loop that fits them is `deepsight-train`'s.

pub mod attention;
pub mod lcam;
pub mod lcam_fm;
pub mod lcam_img;
pub mod lcam_loss;
pub mod upsample;
pub mod weights;

pub use attention::AttentionModule;
pub use lcam::{Lcam, LcamKind, LcamVariant};
pub use lcam_fm::LcamFm;
pub use lcam_img::LcamImg;
pub use lcam_loss::{LcamLoss, LossTerms, MaskPairing};
pub use weights::{LcamWeights, ModelIdentity};
