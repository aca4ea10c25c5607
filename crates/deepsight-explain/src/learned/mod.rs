//! Methods with learned parameters: an attention module trained on a frozen classifier (L-CAM)
//! and the explainer network of Stalder et al. (a segmenter trained on the frozen classifier).
//! The module definitions, their inference as [`crate::Explainer`]s and their losses live here;
//! the loop that fits them is `deepsight-train`'s.

pub mod attention;
pub mod deeplab;
pub mod explainer;
pub mod explainer_loss;
pub mod explainer_net;
pub mod explainer_train;
pub mod explainer_weights;
pub mod lcam;
pub mod lcam_fm;
pub mod lcam_img;
pub mod lcam_loss;
pub mod segmenter;
pub mod upsample;
pub mod weights;

pub use attention::AttentionModule;
pub use deeplab::DeepLabV3;
pub use explainer::NnExplainer;
pub use explainer_loss::{ClassifierKind, ExplainerCoefficients, ExplainerProfile};
pub use explainer_net::{Architecture, ExplainerNet};
pub use explainer_weights::ExplainerWeights;
pub use lcam::{Lcam, LcamKind, LcamVariant};
pub use lcam_fm::LcamFm;
pub use lcam_img::LcamImg;
pub use lcam_loss::{LcamLoss, LossTerms, MaskPairing};
pub use segmenter::{Segmenter, TapDecoder, TapSpec};
pub use weights::{LcamWeights, ModelIdentity};
