//! A small multi-label CNN for the Fashion-MNIST mosaic benchmark (112x112 RGB images holding one
//! to three garments on clutter), trained by `deepsight train classifier`.
//!
//! Four blocks of a 3x3 convolution (no bias: each feeds a BatchNorm, whose beta is the bias),
//! BatchNorm and ReLU, with 16, 64, 128 and 128 channels: the first of stride 2 and the first two
//! followed by a 2x2 max-pool, so 112 -> 56 -> 28 -> 14. The mosaics' garments are
//! Fashion-MNIST's 28x28 items upscaled 2x (nearest), so the stride-2 first layer loses next to
//! nothing and its pool brings them back to their native resolution, where the wider layers
//! work. The last block's 128x14x14 map (receptive field 49 pixels) is also `features`, the CAM
//! layer; a global average pool and one linear layer `fc` give one logit per class, so CAM,
//! Grad-CAM and the learned explainers apply as they are. 233k parameters (0.9 MB as F32), about
//! 52M multiply-adds per image: small enough to train in minutes on two CPU cores, where the
//! 112x112 layers of a plainer design cost three times as much.
//!
//! [`BLOCKS`] fixes what the weight file does not say (strides, dilations, pools): a change there
//! keeps every tensor's shape, so old weights would still load into a different network. Change
//! it only together with the weights that ship (`assets/mosaic-cnn.safetensors`).
//!
//! The names are those of a PyTorch module with attributes `conv1`..`conv4`, `bn1`..`bn4` and
//! `fc`, so a state dict saved from such a module loads as it is; the number of classes is read
//! from `fc.weight`. The trainer (`deepsight_train::classifier`) builds the same network from
//! [`BLOCKS`] and writes exactly [`tensor_shapes`].

use crate::builder::Builder;
use crate::error::{ModelError, Result};
use crate::source::WeightSource;
use crate::weights::Weights;
use deepsight_runtime::{Bounds, Conv2d, Device, Graph, Op, Padding, Pool};

/// One block: a 3x3 convolution of `stride` and `dilation` (padding `dilation`, so that only the
/// stride changes the size), BatchNorm, ReLU, then a 2x2 max-pool where `pool`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSpec {
    pub channels: usize,
    pub stride: usize,
    pub dilation: usize,
    pub pool: bool,
}

const fn block(channels: usize, stride: usize, dilation: usize, pool: bool) -> BlockSpec {
    BlockSpec {
        channels,
        stride,
        dilation,
        pool,
    }
}

/// The blocks, `conv1`/`bn1`/`relu1` first.
pub const BLOCKS: [BlockSpec; 4] = [
    block(16, 2, 1, true),
    block(64, 1, 1, true),
    block(128, 1, 1, false),
    block(128, 1, 1, false),
];

/// The input the network was designed for, `[height, width]`: the mosaics' size, so the preset
/// resizes nothing.
pub const INPUT_SIZE: [usize; 2] = [112, 112];

/// PyTorch's `nn.BatchNorm2d` default, which the trainer uses too.
pub const BN_EPS: f64 = 1e-5;

/// The classes of random weights (Fashion-MNIST's ten).
pub const DEFAULT_CLASSES: usize = 10;

/// Fashion-MNIST's class names, in its label order (Xiao, Rasul & Vollgraf 2017).
pub const FASHION_MNIST_CLASSES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// The name of the CAM layer (the last feature map).
pub const CAM_LAYER: &str = "features";

/// Channels of the feature map the head reads.
pub const FEATURES: usize = BLOCKS[BLOCKS.len() - 1].channels;

/// Builds the network for `classes` classes with weights from `weights`.
pub fn mosaic_cnn<W: WeightSource>(weights: &W, device: &Device, classes: usize) -> Result<Graph> {
    let mut b = Builder::new(weights, device);
    let mut x = 0;
    let mut cin = 3;
    for (i, spec) in BLOCKS.iter().enumerate() {
        let (n, c) = (i + 1, spec.channels);
        let name = format!("conv{n}");
        let conv = Conv2d {
            weight: b.w.tensor(&format!("{name}.weight"), [c, cin, 3, 3], device)?,
            bias: None,
            stride: [spec.stride; 2],
            dilation: [spec.dilation; 2],
            groups: 1,
            padding: Padding::symmetric(spec.dilation),
        };
        x = b.push(&name, Op::Conv2d(conv), &[x])?;
        x = b.bn(&format!("bn{n}"), x, c, BN_EPS)?;
        x = b.rectifier(&format!("relu{n}"), x, Bounds::RELU)?;
        if spec.pool {
            x = b.push(&format!("pool{n}"), Op::MaxPool(Pool::square(2, 2, 0)), &[x])?;
        }
        cin = c;
    }
    x = b.push(CAM_LAYER, Op::Identity, &[x])?;
    x = b.push("avgpool", Op::GlobalAvgPool, &[x])?;
    b.linear("fc", x, [FEATURES, classes])?;
    Ok(b.g)
}

/// Every tensor the network reads, with its shape, in the order of the layers: what a weight file
/// for it must hold (and what the trainer writes).
pub fn tensor_shapes(classes: usize) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    let mut cin = 3;
    for (i, spec) in BLOCKS.iter().enumerate() {
        let (n, c) = (i + 1, spec.channels);
        out.push((format!("conv{n}.weight"), vec![c, cin, 3, 3]));
        for s in ["weight", "bias", "running_mean", "running_var"] {
            out.push((format!("bn{n}.{s}"), vec![c]));
        }
        cin = c;
    }
    out.push(("fc.weight".into(), vec![classes, FEATURES]));
    out.push(("fc.bias".into(), vec![classes]));
    out
}

/// The number of classes of a state dict: the rows of `fc.weight` (`[K, 128]`).
pub fn classes_in(w: &Weights) -> Result<usize> {
    let bad = |reason: String| ModelError::Weight {
        name: "fc.weight".into(),
        reason,
    };
    let t = w
        .tensors
        .get("fc.weight")
        .ok_or_else(|| bad("missing from the weight file".into()))?;
    match t.shape[..] {
        [k, FEATURES] if k > 0 => Ok(k),
        _ => Err(bad(format!(
            "has shape {:?}, the architecture needs [classes, {FEATURES}]",
            t.shape
        ))),
    }
}

/// Class names for `classes` outputs: Fashion-MNIST's for ten, else `class K`.
pub fn class_names(classes: usize) -> Vec<String> {
    if classes == FASHION_MNIST_CLASSES.len() {
        FASHION_MNIST_CLASSES.iter().map(|s| s.to_string()).collect()
    } else {
        (0..classes).map(|k| format!("class {k}")).collect()
    }
}
