//! EfficientNet-Lite0 (Tan & Le 2019, the "lite" variant for mobile accelerators): the embedded
//! default model, with the real ImageNet-1k weights.
//!
//! Facts that matter for exactness: TensorFlow "SAME" padding (odd pixel bottom/right), BatchNorm
//! eps 1e-3, ReLU6, no squeeze-excitation, stem 32 and head 1280 channels, global average pool,
//! linear 1280 -> 1000. Layer names follow the PyTorch module names of
//! `efficientnet-lite-pytorch` (`_conv_stem`, `_blocks.N._depthwise_conv`, ...); each rectifier,
//! which PyTorch shares as one `_swish` module, gets a name of its own (`_blocks.N._act1`), each
//! block output is `_blocks.N`, and the last feature map (1280x7x7) is also `features`.

use crate::builder::{Builder, ConvSpec};
use crate::error::Result;
use crate::source::WeightSource;
use deepsight_runtime::{Bounds, Device, Graph, NodeId, Op, Padding};

/// The seven stages: (repeats, kernel, stride, expand ratio, in, out).
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// BatchNorm epsilon of the TensorFlow original.
pub const BN_EPS: f64 = 1e-3;

fn conv_bn_act<W: WeightSource>(
    b: &mut Builder<W>,
    [conv, bn, act]: [&str; 3],
    x: NodeId,
    spec: ConvSpec,
) -> Result<NodeId> {
    let x = b.conv(conv, x, spec)?;
    let x = b.bn(bn, x, spec.io[1], BN_EPS)?;
    if act.is_empty() {
        Ok(x)
    } else {
        b.rectifier(act, x, Bounds::RELU6)
    }
}

/// Builds EfficientNet-Lite0 from its PyTorch state dict.
pub fn lite0<W: WeightSource>(weights: &W, device: &Device) -> Result<Graph> {
    let same = |io, k, s| ConvSpec::new(io, k, s, Padding::SameUpper);
    let mut b = Builder::new(weights, device);
    let mut x = conv_bn_act(
        &mut b,
        ["_conv_stem", "_bn0", "_stem_act"],
        0,
        same([3, 32], 3, 2),
    )?;
    let mut index = 0;
    for &(repeats, k, stride, expand, cin, cout) in &STAGES {
        for r in 0..repeats {
            let (inp, s) = if r == 0 { (cin, stride) } else { (cout, 1) };
            let p = format!("_blocks.{index}");
            let n = |s: &str| format!("{p}.{s}");
            let mid = inp * expand;
            let block_in = x;
            if expand != 1 {
                x = conv_bn_act(
                    &mut b,
                    [&n("_expand_conv"), &n("_bn0"), &n("_act0")],
                    x,
                    same([inp, mid], 1, 1),
                )?;
            }
            let dw = same([mid, mid], k, s).groups(mid);
            x = conv_bn_act(&mut b, [&n("_depthwise_conv"), &n("_bn1"), &n("_act1")], x, dw)?;
            x = conv_bn_act(
                &mut b,
                [&n("_project_conv"), &n("_bn2"), ""],
                x,
                same([mid, cout], 1, 1),
            )?;
            x = if s == 1 && inp == cout {
                b.push(&p, Op::Add, &[x, block_in])?
            } else {
                b.push(&p, Op::Identity, &[x])?
            };
            index += 1;
        }
    }
    x = conv_bn_act(
        &mut b,
        ["_conv_head", "_bn1", "_head_act"],
        x,
        same([320, 1280], 1, 1),
    )?;
    x = b.push("features", Op::Identity, &[x])?;
    x = b.push("_avg_pooling", Op::GlobalAvgPool, &[x])?;
    b.linear("_fc", x, [1280, 1000])?;
    Ok(b.g)
}
