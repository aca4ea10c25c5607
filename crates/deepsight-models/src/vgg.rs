//! VGG (Simonyan & Zisserman 2015) exactly as torchvision builds it, configurations "A" (VGG-11)
//! and "D" (VGG-16), with and without BatchNorm, with torchvision's names (`features.N`,
//! `avgpool`, `classifier.N`) so that a torchvision state dict loads as it is.
//!
//! Dropout (`classifier.2`, `classifier.5`) is the identity at inference and is left out; the
//! indices of the other layers keep torchvision's numbering.

use crate::builder::{Builder, ConvSpec};
use crate::error::Result;
use crate::source::WeightSource;
use deepsight_runtime::{Bounds, Device, Graph, Op, Padding, Pool};

/// Configuration "A" (VGG-11): channel counts, 0 for a 2x2 max-pool.
const CFG_A: &[usize] = &[64, 0, 128, 0, 256, 256, 0, 512, 512, 0, 512, 512, 0];

/// Configuration "D" (VGG-16).
const CFG_D: &[usize] = &[
    64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
];

/// torchvision's `nn.BatchNorm2d` default.
const BN_EPS: f64 = 1e-5;

/// Builds torchvision's VGG-11 (configuration "A", no BatchNorm) for `classes` classes.
pub fn vgg11<W: WeightSource>(weights: &W, device: &Device, classes: usize) -> Result<Graph> {
    vgg(weights, device, CFG_A, false, classes)
}

/// Builds torchvision's VGG-11 with BatchNorm after every convolution.
pub fn vgg11_bn<W: WeightSource>(weights: &W, device: &Device, classes: usize) -> Result<Graph> {
    vgg(weights, device, CFG_A, true, classes)
}

/// Builds torchvision's VGG-16 (configuration "D", no BatchNorm) for `classes` classes.
pub fn vgg16<W: WeightSource>(weights: &W, device: &Device, classes: usize) -> Result<Graph> {
    vgg(weights, device, CFG_D, false, classes)
}

/// Builds torchvision's VGG-16 with BatchNorm after every convolution.
pub fn vgg16_bn<W: WeightSource>(weights: &W, device: &Device, classes: usize) -> Result<Graph> {
    vgg(weights, device, CFG_D, true, classes)
}

/// torchvision's `make_layers` and `VGG`: each entry of `cfg` is a 3x3 convolution (then
/// BatchNorm if `batch_norm`, then ReLU), each numbered like its `nn.Sequential` index, or a
/// 2x2 max-pool; then the adaptive 7x7 average pool, which is the identity at 224x224 and makes
/// any other input size give the classifier its 25088 features, as in torchvision.
fn vgg<W: WeightSource>(
    weights: &W,
    device: &Device,
    cfg: &[usize],
    batch_norm: bool,
    classes: usize,
) -> Result<Graph> {
    let mut b = Builder::new(weights, device);
    let mut x = 0;
    let mut cin = 3;
    let mut i = 0;
    let features = |i: usize| format!("features.{i}");
    for &c in cfg {
        if c == 0 {
            x = b.push(&features(i), Op::MaxPool(Pool::square(2, 2, 0)), &[x])?;
            i += 1;
            continue;
        }
        let spec = ConvSpec::new([cin, c], 3, 1, Padding::symmetric(1)).bias();
        x = b.conv(&features(i), x, spec)?;
        i += 1;
        if batch_norm {
            x = b.bn(&features(i), x, c, BN_EPS)?;
            i += 1;
        }
        x = b.rectifier(&features(i), x, Bounds::RELU)?;
        i += 1;
        cin = c;
    }
    x = b.push("avgpool", Op::AdaptiveAvgPool([7, 7]), &[x])?;
    x = b.push("flatten", Op::Flatten, &[x])?;
    x = b.linear("classifier.0", x, [512 * 7 * 7, 4096])?;
    x = b.rectifier("classifier.1", x, Bounds::RELU)?;
    x = b.linear("classifier.3", x, [4096, 4096])?;
    x = b.rectifier("classifier.4", x, Bounds::RELU)?;
    b.linear("classifier.6", x, [4096, classes])?;
    Ok(b.g)
}
