//! AlexNet (Krizhevsky et al. 2012) exactly as torchvision builds it, and a ZF-Net-style variant
//! (Zeiler & Fergus 2014) for deconvnet experiments, both with torchvision's names (`features.N`,
//! `avgpool`, `classifier.N`) so that a torchvision-layout state dict loads as it is.
//!
//! Dropout (`classifier.0`, `classifier.3`) is the identity at inference and is left out; the
//! other layers keep torchvision's indices.

use crate::builder::{Builder, ConvSpec};
use crate::error::Result;
use crate::source::WeightSource;
use deepsight_runtime::{Bounds, Device, Graph, Op, Padding, Pool};

/// One convolution of the feature extractor: `[in, out]` channels, kernel, stride, padding, and
/// the max-pool that follows its ReLU, if any (`Some(ceil_mode)`).
struct Stage {
    io: [usize; 2],
    k: usize,
    stride: usize,
    pad: usize,
    pool: Option<bool>,
}

const fn stage(io: [usize; 2], k: usize, stride: usize, pad: usize, pool: Option<bool>) -> Stage {
    Stage {
        io,
        k,
        stride,
        pad,
        pool,
    }
}

/// torchvision's AlexNet (the "one weird trick" variant with 64/192 first channels).
const ALEXNET: [Stage; 5] = [
    stage([3, 64], 11, 4, 2, Some(false)),
    stage([64, 192], 5, 1, 2, Some(false)),
    stage([192, 384], 3, 1, 1, None),
    stage([384, 256], 3, 1, 1, None),
    stage([256, 256], 3, 1, 1, Some(false)),
];

/// ZF-Net's Fig. 3: 7x7/2 and 5x5/2 first convolutions, 3x3/2 pools in ceil mode (feature maps
/// 110, 55, 26, 13, 13, 13, 6 at 224x224).
const ZFNET: [Stage; 5] = [
    stage([3, 96], 7, 2, 1, Some(true)),
    stage([96, 256], 5, 2, 0, Some(true)),
    stage([256, 384], 3, 1, 1, None),
    stage([384, 384], 3, 1, 1, None),
    stage([384, 256], 3, 1, 1, Some(false)),
];

/// Builds torchvision's AlexNet for `classes` classes.
pub fn alexnet<W: WeightSource>(weights: &W, device: &Device, classes: usize) -> Result<Graph> {
    build(weights, device, &ALEXNET, classes)
}

/// Builds a ZF-Net-style network (Zeiler & Fergus 2014, Fig. 3) in AlexNet's layout: the smaller
/// 7x7 stride-2 first filters and the stride-2 second convolution that the deconvnet study
/// introduced to avoid AlexNet's aliasing and dead first-layer filters, 3x3/2 overlapping
/// max-pools (ceil mode, so 110 -> 55 -> 26 -> 13 -> 6 as in the paper), then AlexNet's
/// classifier (9216 -> 4096 -> 4096 -> `classes`).
///
/// Deviation from the paper: no local response (contrast) normalisation after the first two
/// pools. torchvision's AlexNet dropped it too, so the two networks differ only in their first
/// layers and share one layout and one set of names; LRN has no weights, so a state dict trained
/// with it still loads, but runs without the normalisation it was trained with. Layers 3-5 have
/// the paper's 384, 384, 256 channels. The same network as a PyTorch module is `ZFNet` in
/// `tests/data/make_torchvision_refs.py`.
pub fn zfnet<W: WeightSource>(weights: &W, device: &Device, classes: usize) -> Result<Graph> {
    build(weights, device, &ZFNET, classes)
}

fn build<W: WeightSource>(weights: &W, device: &Device, stages: &[Stage], classes: usize) -> Result<Graph> {
    let mut b = Builder::new(weights, device);
    let mut x = 0;
    let mut i = 0;
    let features = |i: usize| format!("features.{i}");
    for s in stages {
        let spec = ConvSpec::new(s.io, s.k, s.stride, Padding::symmetric(s.pad)).bias();
        x = b.conv(&features(i), x, spec)?;
        x = b.rectifier(&features(i + 1), x, Bounds::RELU)?;
        i += 2;
        if let Some(ceil_mode) = s.pool {
            let pool = Pool {
                ceil_mode,
                ..Pool::square(3, 2, 0)
            };
            x = b.push(&features(i), Op::MaxPool(pool), &[x])?;
            i += 1;
        }
    }
    // Identity at 224x224 for both networks; other sizes still give the classifier 6x6 maps.
    x = b.push("avgpool", Op::AdaptiveAvgPool([6, 6]), &[x])?;
    x = b.push("flatten", Op::Flatten, &[x])?;
    x = b.linear("classifier.1", x, [256 * 6 * 6, 4096])?;
    x = b.rectifier("classifier.2", x, Bounds::RELU)?;
    x = b.linear("classifier.4", x, [4096, 4096])?;
    x = b.rectifier("classifier.5", x, Bounds::RELU)?;
    b.linear("classifier.6", x, [4096, classes])?;
    Ok(b.g)
}
