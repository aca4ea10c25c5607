//! Two small Zeiler & Fergus-style CNNs for 28x28 grey Fashion-MNIST, differing only in their
//! first layer, for the feature-evolution, filter and layer-probe figures (`deepsight train zf`,
//! `deepsight visualize evolution|filters|probes`).
//!
//! Layout (the names are those of a PyTorch module with these attributes):
//!
//! | layer | ZF (`fmnist-zf`) | AlexNet-style (`fmnist-alex`) |
//! |---|---|---|
//! | `conv1` + `relu1` | 32 filters 7x7 stride 2 pad 3: 28 -> 14 | 32 filters 11x11 stride 4 pad 5: 28 -> 7 |
//! | `pool1` | max 3x3/2 pad 1: 14 -> 7 | max 3x3/2 pad 1: 7 -> 4 |
//! | `conv2` + `relu2` + `pool2` | 64 3x3 pad 1, max 3x3/2: 7 -> 4 | 4 -> 2 |
//! | `conv3` + `relu3` + `pool3` | 128 3x3 pad 1, max 3x3/2: 4 -> 2 | 2 -> 1 |
//! | `flatten`, `fc1` + `relu4` | 512 -> 128 | 128 -> 128 |
//! | `fc2` | 128 -> 10 | 128 -> 10 |
//!
//! ZF-Net's first layer (Zeiler & Fergus 2014, fig. 3) is 7x7 stride 2 where AlexNet's is 11x11
//! stride 4; every other layer here is shared, so the two differ where the paper's fig. 6
//! compares them (aliasing and dead filters from the large stride). The overall downsampling of
//! the first stage (4x for ZF: 224 -> 55; here 28 -> 7) is the paper's; the later stages are
//! scaled down to what a 28x28 image leaves. Every convolution and linear layer has a bias (ZF's
//! biases start at 0); there is no local contrast normalisation and no dropout (see the
//! trainer's Deviations).
//!
//! Input: the graph takes the runtime's usual `[N, 3, 28, 28]`; the images are grey, so the
//! weight file's `conv1.weight` is `[32, 1, k, k]` (what is trained) and the graph uses it as
//! `[32, 3, k, k]` with each channel `w / 3`: on a grey image (R = G = B) that is exactly the
//! trained convolution, on a colour image the convolution of its channel mean. The preset is
//! EfficientNet-Lite's `(x - 127) / 128` at exactly 28x28 (no resize of Fashion-MNIST items).

use crate::builder::Builder;
use crate::error::Result;
use crate::source::WeightSource;
use deepsight_runtime::{Bounds, Conv2d, Device, Graph, Op, Padding, Pool};

/// Which first layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FirstLayer {
    /// Zeiler & Fergus: 7x7, stride 2.
    Zf,
    /// AlexNet (Krizhevsky et al. 2012): 11x11, stride 4.
    Alex,
}

impl FirstLayer {
    /// `(kernel, stride, padding)` of `conv1`; the padding is `kernel / 2`, so that only the
    /// stride sets the output size.
    pub fn conv1(self) -> (usize, usize, usize) {
        match self {
            FirstLayer::Zf => (7, 2, 3),
            FirstLayer::Alex => (11, 4, 5),
        }
    }

    /// The side of `pool3`'s output (what `fc1` reads, per channel).
    pub fn final_side(self) -> usize {
        let (k, s, p) = self.conv1();
        let conv = |n: usize| (n + 2 * p - k) / s + 1;
        let pool = |n: usize| (n + 2 - 3) / 2 + 1;
        pool(pool(pool(conv(INPUT_SIZE[0]))))
    }

    /// `fc1`'s input size.
    pub fn features(self) -> usize {
        CHANNELS[2] * self.final_side() * self.final_side()
    }
}

/// The input `[height, width]`: Fashion-MNIST's.
pub const INPUT_SIZE: [usize; 2] = [28, 28];

/// Channels of `conv1`, `conv2`, `conv3`.
pub const CHANNELS: [usize; 3] = [32, 64, 128];

/// Units of `fc1`.
pub const HIDDEN: usize = 128;

/// Fashion-MNIST's ten classes.
pub const CLASSES: usize = 10;

/// The convolution and fully connected layers in order of depth: what the layer probes take by
/// default (the rectified outputs `relu1`..`relu4`).
pub const PROBE_LAYERS: [&str; 4] = ["relu1", "relu2", "relu3", "relu4"];

/// Builds the network with weights from `weights`.
pub fn fmnist_cnn<W: WeightSource>(weights: &W, device: &Device, first: FirstLayer) -> Result<Graph> {
    let mut b = Builder::new(weights, device);
    let (k, s, p) = first.conv1();
    let c = CHANNELS;
    // Trained on one grey channel: used on three, each a third (see the module docs).
    let w1 = b.w.tensor("conv1.weight", [c[0], 1, k, k], device)?;
    let conv1 = Conv2d {
        weight: w1.repeat_dim(1, 3) / 3.0,
        bias: Some(b.w.tensor("conv1.bias", [c[0]], device)?),
        stride: [s, s],
        dilation: [1, 1],
        groups: 1,
        padding: Padding::symmetric(p),
    };
    let mut x = b.push("conv1", Op::Conv2d(conv1), &[0])?;
    x = b.rectifier("relu1", x, Bounds::RELU)?;
    x = b.push("pool1", Op::MaxPool(Pool::square(3, 2, 1)), &[x])?;
    for (i, io) in [[c[0], c[1]], [c[1], c[2]]].into_iter().enumerate() {
        let n = i + 2;
        let conv = Conv2d {
            weight: b
                .w
                .tensor(&format!("conv{n}.weight"), [io[1], io[0], 3, 3], device)?,
            bias: Some(b.w.tensor(&format!("conv{n}.bias"), [io[1]], device)?),
            stride: [1, 1],
            dilation: [1, 1],
            groups: 1,
            padding: Padding::symmetric(1),
        };
        x = b.push(&format!("conv{n}"), Op::Conv2d(conv), &[x])?;
        x = b.rectifier(&format!("relu{n}"), x, Bounds::RELU)?;
        x = b.push(&format!("pool{n}"), Op::MaxPool(Pool::square(3, 2, 1)), &[x])?;
    }
    x = b.push("flatten", Op::Flatten, &[x])?;
    x = b.linear("fc1", x, [first.features(), HIDDEN])?;
    x = b.rectifier("relu4", x, Bounds::RELU)?;
    b.linear("fc2", x, [HIDDEN, CLASSES])?;
    Ok(b.g)
}

/// Every tensor of the weight file, with its shape, in the order of the layers (what the trainer
/// writes; `conv1.weight` has one input channel).
pub fn tensor_shapes(first: FirstLayer) -> Vec<(String, Vec<usize>)> {
    let (k, _, _) = first.conv1();
    let c = CHANNELS;
    vec![
        ("conv1.weight".into(), vec![c[0], 1, k, k]),
        ("conv1.bias".into(), vec![c[0]]),
        ("conv2.weight".into(), vec![c[1], c[0], 3, 3]),
        ("conv2.bias".into(), vec![c[1]]),
        ("conv3.weight".into(), vec![c[2], c[1], 3, 3]),
        ("conv3.bias".into(), vec![c[2]]),
        ("fc1.weight".into(), vec![HIDDEN, first.features()]),
        ("fc1.bias".into(), vec![HIDDEN]),
        ("fc2.weight".into(), vec![CLASSES, HIDDEN]),
        ("fc2.bias".into(), vec![CLASSES]),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::RandomWeights;

    #[test]
    fn shapes_follow_the_first_layer() {
        assert_eq!(FirstLayer::Zf.final_side(), 2);
        assert_eq!(FirstLayer::Alex.final_side(), 1);
        let device = Device::default();
        for first in [FirstLayer::Zf, FirstLayer::Alex] {
            let g = fmnist_cnn(&RandomWeights { seed: 1 }, &device, first).unwrap();
            let shapes = g.infer_shapes([1, 3, 28, 28]).unwrap();
            assert_eq!(*shapes.last().unwrap(), [1, CLASSES, 1, 1]);
            let pool1 = g.find("pool1").unwrap();
            let side = if first == FirstLayer::Zf { 7 } else { 4 };
            assert_eq!(shapes[pool1], [1, 32, side, side]);
        }
    }
}
