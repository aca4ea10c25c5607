//! VGG-16 (Simonyan & Zisserman 2015) exactly as torchvision builds it, with torchvision's names
//! (`features.N`, `classifier.N`) so that a torchvision state dict loads as it is.

use crate::builder::{Builder, ConvSpec};
use crate::error::Result;
use crate::source::WeightSource;
use deepsight_runtime::{Bounds, Device, Graph, Op, Padding, Pool};

/// Configuration "D": channel counts, 0 for a 2x2 max-pool.
const VGG16: [usize; 18] = [
    64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0, 512, 512, 512, 0,
];

/// Builds torchvision's VGG-16 (without BatchNorm) for `classes` classes; the adaptive 7x7
/// average pool is exact for 224x224 inputs, where it is the identity.
pub fn vgg16<W: WeightSource>(weights: &W, device: &Device, classes: usize) -> Result<Graph> {
    let mut b = Builder::new(weights, device);
    let mut x = 0;
    let mut cin = 3;
    let mut i = 0;
    for &c in &VGG16 {
        if c == 0 {
            let pool = Pool::square(2, 2, 0);
            x = b.push(&format!("features.{i}"), Op::MaxPool(pool), &[x])?;
            i += 1;
        } else {
            x = b.conv(
                &format!("features.{i}"),
                x,
                ConvSpec::new([cin, c], 3, 1, Padding::symmetric(1)).bias(),
            )?;
            x = b.rectifier(&format!("features.{}", i + 1), x, Bounds::RELU)?;
            cin = c;
            i += 2;
        }
    }
    x = b.push("flatten", Op::Flatten, &[x])?;
    x = b.linear("classifier.0", x, [512 * 7 * 7, 4096])?;
    x = b.rectifier("classifier.1", x, Bounds::RELU)?;
    x = b.linear("classifier.3", x, [4096, 4096])?;
    x = b.rectifier("classifier.4", x, Bounds::RELU)?;
    b.linear("classifier.6", x, [4096, classes])?;
    Ok(b.g)
}
