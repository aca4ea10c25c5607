//! EfficientNet-Lite (Tan & Le 2019, the "lite" variants for mobile accelerators), any width and
//! depth multiplier: Lite0 (1.0, 1.0, the embedded default model) and Lite2 (1.1, 1.2), with the
//! real ImageNet-1k weights.
//!
//! Facts that matter for exactness: TensorFlow "SAME" padding (odd pixel bottom/right), BatchNorm
//! eps 1e-3, ReLU6, no squeeze-excitation, stem 32 and head 1280 channels whatever the width
//! (`fix_head_stem` of the TensorFlow `efficientnet_lite_builder`), global average pool, linear
//! 1280 -> 1000. Layer names follow the PyTorch module names of `efficientnet-lite-pytorch`
//! (`_conv_stem`, `_blocks.N._depthwise_conv`, ...); each rectifier, which PyTorch shares as one
//! `_swish` module, gets a name of its own (`_blocks.N._act1`), each block output is
//! `_blocks.N`, and the last feature map (1280x7x7 for Lite0, 1280x9x9 for Lite2) is also
//! `features`.

use crate::builder::{Builder, ConvSpec};
use crate::error::Result;
use crate::source::WeightSource;
use deepsight_runtime::{Bounds, Device, Graph, NodeId, Op, Padding};

/// The seven stages of the B0 baseline: (repeats, kernel, stride, expand ratio, in, out).
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// Stem and head widths, kept fixed by every Lite variant.
const STEM: usize = 32;
const HEAD: usize = 1280;

/// BatchNorm epsilon of the TensorFlow original.
pub const BN_EPS: f64 = 1e-3;

/// The compound-scaling multipliers of one EfficientNet-Lite variant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LiteScaling {
    /// Channel multiplier (`width_coefficient`).
    pub width: f64,
    /// Block-count multiplier (`depth_coefficient`).
    pub depth: f64,
}

impl LiteScaling {
    /// EfficientNet-Lite0: the unscaled B0 layout.
    pub const LITE0: LiteScaling = LiteScaling {
        width: 1.0,
        depth: 1.0,
    };
    /// EfficientNet-Lite2 (input 260x260).
    pub const LITE2: LiteScaling = LiteScaling {
        width: 1.1,
        depth: 1.2,
    };

    /// EfficientNet's `round_filters` (divisor 8): the scaled width rounded to the nearest
    /// multiple of 8, never below 8 and never more than 10% below the unrounded width.
    pub fn round_filters(self, filters: usize) -> usize {
        const DIVISOR: usize = 8;
        let scaled = filters as f64 * self.width;
        // `int(filters + divisor / 2) // divisor * divisor` of the Python original.
        let mut rounded = DIVISOR.max((scaled + DIVISOR as f64 / 2.0) as usize / DIVISOR * DIVISOR);
        if (rounded as f64) < 0.9 * scaled {
            rounded += DIVISOR;
        }
        rounded
    }

    /// EfficientNet's `round_repeats`: `ceil(depth * repeats)`.
    pub fn round_repeats(self, repeats: usize) -> usize {
        // Plain f64 `ceil`, as Python's `math.ceil(multiplier * repeats)`, rounding error
        // included, so that the block count matches the published weights.
        (self.depth * repeats as f64).ceil() as usize
    }

    /// The scaled stages: (repeats, kernel, stride, expand ratio, in, out). The first and the
    /// last stage keep their repeats (`fix_head_stem` of the Lite builder), and the first stage
    /// reads the fixed 32-channel stem.
    pub fn stages(self) -> Vec<(usize, usize, usize, usize, usize, usize)> {
        let last = STAGES.len() - 1;
        STAGES
            .iter()
            .enumerate()
            .map(|(i, &(repeats, k, stride, expand, cin, cout))| {
                let repeats = if i == 0 || i == last {
                    repeats
                } else {
                    self.round_repeats(repeats)
                };
                let cin = if i == 0 { STEM } else { self.round_filters(cin) };
                (repeats, k, stride, expand, cin, self.round_filters(cout))
            })
            .collect()
    }
}

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

/// Builds the EfficientNet-Lite variant `scaling` from its PyTorch state dict, for `classes`
/// outputs.
pub fn efficientnet_lite<W: WeightSource>(
    weights: &W,
    device: &Device,
    scaling: LiteScaling,
    classes: usize,
) -> Result<Graph> {
    let same = |io, k, s| ConvSpec::new(io, k, s, Padding::SameUpper);
    let mut b = Builder::new(weights, device);
    let mut x = conv_bn_act(
        &mut b,
        ["_conv_stem", "_bn0", "_stem_act"],
        0,
        same([3, STEM], 3, 2),
    )?;
    let mut index = 0;
    let mut last_out = STEM;
    for (repeats, k, stride, expand, cin, cout) in scaling.stages() {
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
        last_out = cout;
    }
    x = conv_bn_act(
        &mut b,
        ["_conv_head", "_bn1", "_head_act"],
        x,
        same([last_out, HEAD], 1, 1),
    )?;
    x = b.push("features", Op::Identity, &[x])?;
    x = b.push("_avg_pooling", Op::GlobalAvgPool, &[x])?;
    b.linear("_fc", x, [HEAD, classes])?;
    Ok(b.g)
}

/// Builds EfficientNet-Lite0 (1000 classes) from its PyTorch state dict.
pub fn lite0<W: WeightSource>(weights: &W, device: &Device) -> Result<Graph> {
    efficientnet_lite(weights, device, LiteScaling::LITE0, 1000)
}

/// Builds EfficientNet-Lite2 (1000 classes, input 260x260) from its PyTorch state dict.
pub fn lite2<W: WeightSource>(weights: &W, device: &Device) -> Result<Graph> {
    efficientnet_lite(weights, device, LiteScaling::LITE2, 1000)
}

/// The input size `[height, width]` of EfficientNet-Lite2.
pub const LITE2_INPUT_SIZE: [usize; 2] = [260, 260];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lite2_stage_layout_follows_round_filters_and_round_repeats() {
        // Hand-computed from the Python rules: 16*1.1=17.6 -> 16, 24*1.1=26.4 -> 24, 40 -> 48,
        // 80 -> 88, 112 -> 120, 192 -> 208, 320 -> 352; repeats ceil(1.2 r) except the first
        // and last stage.
        let outs: Vec<(usize, usize)> = LiteScaling::LITE2.stages().iter().map(|s| (s.0, s.5)).collect();
        assert_eq!(
            outs,
            [(1, 16), (3, 24), (3, 48), (4, 88), (4, 120), (5, 208), (1, 352)]
        );
        let lite0: Vec<_> = LiteScaling::LITE0.stages();
        assert_eq!(lite0, STAGES.to_vec());
    }
}
