//! ResNet-18 and ResNet-50 (He et al. 2016) exactly as torchvision builds them (v1.5: a
//! bottleneck's stride is in its 3x3 conv), with torchvision's parameter names so that a
//! torchvision state dict loads as it is.
//!
//! Layer names: torchvision's module paths (`conv1`, `layer3.2.conv2`, `layer4`, `fc`); each
//! block's rectifiers, which torchvision shares as one `relu` module, are `relu1` (and `relu2` in
//! a bottleneck) and, after the residual sum `add`, the block itself (`layer4.1`); each stage's
//! output is also `layerN`.

use crate::builder::{Builder, ConvSpec};
use crate::error::Result;
use crate::source::WeightSource;
use deepsight_runtime::{Bounds, Device, Graph, NodeId, Op, Padding, Pool};

/// torchvision's `nn.BatchNorm2d` default.
const EPS: f64 = 1e-5;

/// torchvision's two residual blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Block {
    /// Two 3x3 convolutions (ResNet-18/34); output width = the stage's width.
    Basic,
    /// 1x1 down, 3x3, 1x1 up by 4 (ResNet-50/101/152).
    Bottleneck,
}

impl Block {
    fn expansion(self) -> usize {
        match self {
            Block::Basic => 1,
            Block::Bottleneck => 4,
        }
    }
}

fn conv_bn<W: WeightSource>(
    b: &mut Builder<W>,
    [conv, bn]: [&str; 2],
    x: NodeId,
    spec: ConvSpec,
) -> Result<NodeId> {
    let x = b.conv(conv, x, spec)?;
    b.bn(bn, x, spec.io[1], EPS)
}

/// One residual block named `p` (`layer2.0`), from `cin` channels at `stride`.
fn block<W: WeightSource>(
    b: &mut Builder<W>,
    kind: Block,
    p: &str,
    x: NodeId,
    cin: usize,
    width: usize,
    stride: usize,
) -> Result<NodeId> {
    let n = |s: &str| format!("{p}.{s}");
    let out = width * kind.expansion();
    let pad = Padding::symmetric;
    let y = match kind {
        Block::Basic => {
            let mut y = conv_bn(
                b,
                [&n("conv1"), &n("bn1")],
                x,
                ConvSpec::new([cin, width], 3, stride, pad(1)),
            )?;
            y = b.rectifier(&n("relu1"), y, Bounds::RELU)?;
            conv_bn(
                b,
                [&n("conv2"), &n("bn2")],
                y,
                ConvSpec::new([width, out], 3, 1, pad(1)),
            )?
        }
        Block::Bottleneck => {
            let mut y = conv_bn(
                b,
                [&n("conv1"), &n("bn1")],
                x,
                ConvSpec::new([cin, width], 1, 1, pad(0)),
            )?;
            y = b.rectifier(&n("relu1"), y, Bounds::RELU)?;
            y = conv_bn(
                b,
                [&n("conv2"), &n("bn2")],
                y,
                ConvSpec::new([width, width], 3, stride, pad(1)),
            )?;
            y = b.rectifier(&n("relu2"), y, Bounds::RELU)?;
            conv_bn(
                b,
                [&n("conv3"), &n("bn3")],
                y,
                ConvSpec::new([width, out], 1, 1, pad(0)),
            )?
        }
    };
    let skip = if stride != 1 || cin != out {
        conv_bn(
            b,
            [&n("downsample.0"), &n("downsample.1")],
            x,
            ConvSpec::new([cin, out], 1, stride, pad(0)),
        )?
    } else {
        x
    };
    let sum = b.push(&n("add"), Op::Add, &[y, skip])?;
    b.rectifier(p, sum, Bounds::RELU)
}

/// torchvision's `ResNet`: the 7x7/2 stem and 3x3/2 max-pool, four stages of `blocks[i]` blocks
/// of width 64, 128, 256, 512 (the first block of stages 2-4 halving the resolution), global
/// average pool and `fc`.
fn resnet<W: WeightSource>(
    weights: &W,
    device: &Device,
    kind: Block,
    blocks: [usize; 4],
    classes: usize,
) -> Result<Graph> {
    let mut b = Builder::new(weights, device);
    let mut x = conv_bn(
        &mut b,
        ["conv1", "bn1"],
        0,
        ConvSpec::new([3, 64], 7, 2, Padding::symmetric(3)),
    )?;
    x = b.rectifier("relu", x, Bounds::RELU)?;
    x = b.push("maxpool", Op::MaxPool(Pool::square(3, 2, 1)), &[x])?;
    let mut cin = 64;
    for (stage, (count, width)) in blocks.into_iter().zip([64, 128, 256, 512]).enumerate() {
        for i in 0..count {
            let stride = if i == 0 && stage > 0 { 2 } else { 1 };
            let name = format!("layer{}.{i}", stage + 1);
            x = block(&mut b, kind, &name, x, cin, width, stride)?;
            cin = width * kind.expansion();
        }
        x = b.push(&format!("layer{}", stage + 1), Op::Identity, &[x])?;
    }
    x = b.push("avgpool", Op::GlobalAvgPool, &[x])?;
    b.linear("fc", x, [cin, classes])?;
    Ok(b.g)
}

/// Builds torchvision's ResNet-18 (basic blocks, 2-2-2-2) for `classes` classes.
pub fn resnet18<W: WeightSource>(weights: &W, device: &Device, classes: usize) -> Result<Graph> {
    resnet(weights, device, Block::Basic, [2, 2, 2, 2], classes)
}

/// Builds torchvision's ResNet-50 (bottleneck blocks, 3-4-6-3) for `classes` classes.
pub fn resnet50<W: WeightSource>(weights: &W, device: &Device, classes: usize) -> Result<Graph> {
    resnet(weights, device, Block::Bottleneck, [3, 4, 6, 3], classes)
}
