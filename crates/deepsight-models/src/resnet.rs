//! ResNet-50 (He et al. 2016) exactly as torchvision builds it (v1.5: stride in the 3x3 conv),
//! with torchvision's parameter names so that a torchvision state dict loads as it is.
//!
//! Layer names: torchvision's module paths (`conv1`, `layer3.2.conv2`, `layer4`, `fc`); each
//! block's rectifiers, which torchvision shares as one `relu` module, are `relu1`, `relu2` and,
//! after the residual add, the block itself (`layer4.2`); each stage's output is also `layerN`.

use crate::builder::{Builder, ConvSpec};
use crate::error::Result;
use crate::source::WeightSource;
use deepsight_runtime::{Bounds, Device, Graph, NodeId, Op, Padding, Pool};

const EPS: f64 = 1e-5;

fn conv_bn<W: WeightSource>(
    b: &mut Builder<W>,
    [conv, bn]: [&str; 2],
    x: NodeId,
    spec: ConvSpec,
) -> Result<NodeId> {
    let x = b.conv(conv, x, spec)?;
    b.bn(bn, x, spec.io[1], EPS)
}

fn bottleneck<W: WeightSource>(
    b: &mut Builder<W>,
    p: &str,
    x: NodeId,
    cin: usize,
    width: usize,
    stride: usize,
) -> Result<NodeId> {
    let n = |s: &str| format!("{p}.{s}");
    let out = width * 4;
    let pad = Padding::symmetric;
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
    y = conv_bn(
        b,
        [&n("conv3"), &n("bn3")],
        y,
        ConvSpec::new([width, out], 1, 1, pad(0)),
    )?;
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

/// Builds torchvision's ResNet-50 for `classes` classes.
pub fn resnet50<W: WeightSource>(weights: &W, device: &Device, classes: usize) -> Result<Graph> {
    let mut b = Builder::new(weights, device);
    let mut x = conv_bn(
        &mut b,
        ["conv1", "bn1"],
        0,
        ConvSpec::new([3, 64], 7, 2, Padding::symmetric(3)),
    )?;
    x = b.rectifier("relu", x, Bounds::RELU)?;
    let pool = Pool::square(3, 2, 1);
    x = b.push("maxpool", Op::MaxPool(pool), &[x])?;
    let mut cin = 64;
    for (stage, (blocks, width)) in [(3, 64), (4, 128), (6, 256), (3, 512)].into_iter().enumerate() {
        for i in 0..blocks {
            let stride = if i == 0 && stage > 0 { 2 } else { 1 };
            x = bottleneck(&mut b, &format!("layer{}.{i}", stage + 1), x, cin, width, stride)?;
            cin = width * 4;
        }
        x = b.push(&format!("layer{}", stage + 1), Op::Identity, &[x])?;
    }
    x = b.push("avgpool", Op::GlobalAvgPool, &[x])?;
    b.linear("fc", x, [2048, classes])?;
    Ok(b.g)
}
