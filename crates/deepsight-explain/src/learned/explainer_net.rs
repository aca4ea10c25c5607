//! The explainer's segmenter, whichever architecture: the light [`TapDecoder`] on the frozen
//! classifier (the default, shipped for Lite0) or the authors' [`DeepLabV3`] with a ResNet-50
//! encoder trained whole.

use crate::Result;
use crate::learned::deeplab::DeepLabV3;
use crate::learned::segmenter::{NamedTensors, Segmenter, TapDecoder, TapSpec};
use burn::module::Module;
use deepsight_runtime::{LayeredClassifier, Tensor};

/// Which segmenter an explainer weight file holds (its `architecture` metadata key; a file
/// without one is a tap decoder).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Architecture {
    /// [`TapDecoder`]: the classifier's own layers, frozen, and a small trained decoder.
    #[default]
    Taps,
    /// [`DeepLabV3`]: torchvision's `deeplabv3_resnet50` (Stalder et al.'s explainer).
    DeepLabV3ResNet50,
}

impl Architecture {
    pub const ALL: [Architecture; 2] = [Architecture::Taps, Architecture::DeepLabV3ResNet50];

    /// The name in weight files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Architecture::Taps => "taps",
            Architecture::DeepLabV3ResNet50 => "deeplabv3-resnet50",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == name)
    }
}

impl std::fmt::Display for Architecture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// The [`TapSpec`] that goes with a DeepLabv3 of `classes` classes in weight files and training
/// tasks: no taps, width 0.
pub fn deeplab_spec(classes: usize) -> TapSpec {
    TapSpec {
        taps: Vec::new(),
        channels: Vec::new(),
        width: 0,
        classes,
        skip: false,
    }
}

/// A trained (or training) explainer network. (The DeepLabv3 variant's handles are a few KB
/// larger than the decoder's; the tensors are behind them either way.)
#[allow(clippy::large_enum_variant)]
#[derive(Module, Debug)]
pub enum ExplainerNet {
    Taps(TapDecoder),
    DeepLab(DeepLabV3),
}

impl ExplainerNet {
    pub fn architecture(&self) -> Architecture {
        match self {
            ExplainerNet::Taps(_) => Architecture::Taps,
            ExplainerNet::DeepLab(_) => Architecture::DeepLabV3ResNet50,
        }
    }

    /// The tensors by name (for weight files).
    pub fn to_named(&self) -> NamedTensors {
        match self {
            ExplainerNet::Taps(d) => d.to_named(),
            ExplainerNet::DeepLab(d) => d.to_named(),
        }
    }
}

impl From<TapDecoder> for ExplainerNet {
    fn from(d: TapDecoder) -> Self {
        ExplainerNet::Taps(d)
    }
}

impl From<DeepLabV3> for ExplainerNet {
    fn from(d: DeepLabV3) -> Self {
        ExplainerNet::DeepLab(d)
    }
}

impl Segmenter for ExplainerNet {
    fn class_logits(&self, model: &dyn LayeredClassifier, x: Tensor<4>) -> Result<Tensor<4>> {
        match self {
            ExplainerNet::Taps(d) => d.class_logits(model, x),
            ExplainerNet::DeepLab(d) => d.class_logits(model, x),
        }
    }
}
