//! The input pixels one unit of a layer can see.
//!
//! # Computes
//! For the unit at `[row, col]` of a named layer, the box of input pixels its value depends on,
//! read off the graph: every windowed operation (convolution, max and average pooling,
//! transposed convolution, padding) widens the box by its kernel, stride, padding and dilation;
//! position-wise operations keep it; operations reading several nodes (residual adds,
//! concatenation, broadcasting arithmetic) send it to each, and a node reached along several
//! branches of the DAG gets the union of their boxes. Global pools, flattening and linear layers
//! see their whole input.
//!
//! Two boxes come back: [`ReceptiveField::pixels`], clipped to each intermediate map and to the
//! image (the exact support: outside it the unit's input gradient is zero whatever the weights),
//! and [`ReceptiveField::nominal`], the same arithmetic without any clipping, whose size is the
//! textbook receptive field even for a unit at the border (where part of it lies in padding).
//!
//! # Equation
//! A window of kernel `k`, stride `s`, dilation `d` and leading padding `p` maps the output rows
//! `[a, b]` to the input rows `[a s - p, b s - p + (k - 1) d]` (columns alike). A transposed
//! convolution maps `[a, b]` to `[ceil((a + p - (k - 1) d) / s), floor((b + p) / s)]`; an
//! adaptive average pool from `H` to `h` maps row `i` to `[floor(i H / h), ceil((i + 1) H / h) - 1]`.
//! Boxes are propagated from the layer down to the input in reverse topological order, uniting
//! them where branches meet.
//!
//! # Paper
//! Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks*, ECCV 2014, Fig. 2
//! (each projection shown beside "the corresponding image patch"); the boxes are those the
//! deep-visualization-toolbox's `find_maxes` crops (`RegionComputer.convert_region`, which chains
//! the same per-layer formula by hand for a fixed CaffeNet).
//!
//! # Deviations
//! The box of a max pool is its whole window (the switches that pick one input per window are a
//! property of an image, not of the graph). The union of two branches' boxes is their bounding
//! box, so a box can hold pixels that no branch reads (never where branches are aligned, as in
//! residual networks).

use crate::error::{Result, invalid};
use deepsight_runtime::{ExtOp, Graph, Op, Padding};

/// A box of input pixels: rows `top..bottom`, columns `left..right` (half-open).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct PixelBox {
    pub top: usize,
    pub left: usize,
    pub bottom: usize,
    pub right: usize,
}

impl PixelBox {
    pub fn height(&self) -> usize {
        self.bottom - self.top
    }

    pub fn width(&self) -> usize {
        self.right - self.left
    }

    pub fn contains(&self, row: usize, col: usize) -> bool {
        (self.top..self.bottom).contains(&row) && (self.left..self.right).contains(&col)
    }
}

/// The receptive field of one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ReceptiveField {
    /// The pixels the unit depends on, inside the image.
    pub pixels: PixelBox,
    /// `[top, left, bottom, right]` (half-open) without clipping: may start before 0 and end
    /// past the image where the unit's window reaches into padding.
    pub nominal: [i64; 4],
}

/// Inclusive row and column spans `[[r0, r1], [c0, c1]]`.
type Span = [[i64; 2]; 2];

fn unite(a: Option<Span>, b: Span) -> Span {
    match a {
        None => b,
        Some(a) => [0, 1].map(|i| [a[i][0].min(b[i][0]), a[i][1].max(b[i][1])]),
    }
}

/// Receptive fields of the units of one graph at one input size.
pub struct ReceptiveFields<'g> {
    graph: &'g Graph,
    shapes: Vec<[usize; 4]>,
}

impl<'g> ReceptiveFields<'g> {
    /// Prepares `graph` for inputs of `[height, width]`.
    pub fn new(graph: &'g Graph, input_size: [usize; 2]) -> Result<Self> {
        let [h, w] = input_size;
        let shapes = graph.infer_shapes([1, graph.input_channels(), h, w])?;
        Ok(ReceptiveFields { graph, shapes })
    }

    /// `[channels, height, width]` of a layer's output.
    pub fn layer_shape(&self, layer: &str) -> Result<[usize; 3]> {
        let [_, c, h, w] = self.shapes[self.graph.find(layer)?];
        Ok([c, h, w])
    }

    /// The receptive field of the unit at `unit = [row, col]` of `layer`.
    pub fn of(&self, layer: &str, unit: [usize; 2]) -> Result<ReceptiveField> {
        let target = self.graph.find(layer)?;
        let [_, _, h, w] = self.shapes[target];
        if unit[0] >= h || unit[1] >= w {
            return Err(invalid(
                "receptive field",
                format!(
                    "unit [{}, {}] is outside layer '{layer}' ({h}x{w})",
                    unit[0], unit[1]
                ),
            ));
        }
        let n = self.graph.nodes().len();
        let mut exact: Vec<Option<Span>> = vec![None; n];
        let mut nominal: Vec<Option<Span>> = vec![None; n];
        let start = [[unit[0] as i64; 2], [unit[1] as i64; 2]];
        exact[target] = Some(start);
        nominal[target] = Some(start);
        for id in (1..=target).rev() {
            let node = &self.graph.nodes()[id];
            for (slot, clip) in [(&mut exact, true), (&mut nominal, false)] {
                let Some(out) = slot[id] else { continue };
                for &input in &node.inputs {
                    let span = self.back(&node.op, out, self.shapes[input], self.shapes[id]);
                    let span = if clip {
                        clip_to(span, self.shapes[input])
                    } else {
                        Some(span)
                    };
                    if let Some(span) = span {
                        slot[input] = Some(unite(slot[input], span));
                    }
                }
            }
        }
        let [_, _, ih, iw] = self.shapes[0];
        let e = exact[0].and_then(|s| clip_to(s, self.shapes[0]));
        let (Some(e), Some(nom)) = (e, nominal[0]) else {
            return Err(invalid(
                "receptive field",
                format!("layer '{layer}' does not depend on the input"),
            ));
        };
        debug_assert!(e[0][1] < ih as i64 && e[1][1] < iw as i64);
        Ok(ReceptiveField {
            pixels: PixelBox {
                top: e[0][0] as usize,
                left: e[1][0] as usize,
                bottom: e[0][1] as usize + 1,
                right: e[1][1] as usize + 1,
            },
            nominal: [nom[0][0], nom[1][0], nom[0][1] + 1, nom[1][1] + 1],
        })
    }

    /// The span of one input of `op` that the output span `out` reads.
    fn back(&self, op: &Op, out: Span, input: [usize; 4], output: [usize; 4]) -> Span {
        let whole = [[0, input[2] as i64 - 1], [0, input[3] as i64 - 1]];
        let window = |kernel: [usize; 2], stride: [usize; 2], dilation: [usize; 2], lead: [usize; 2]| {
            [0, 1].map(|i| {
                let (k, s, d, p) = (
                    kernel[i] as i64,
                    stride[i] as i64,
                    dilation[i] as i64,
                    lead[i] as i64,
                );
                [out[i][0] * s - p, out[i][1] * s - p + (k - 1) * d]
            })
        };
        match op {
            Op::Conv2d(c) => {
                let [_, _, kh, kw] = c.dims();
                let pads = match c.padding {
                    Padding::Explicit(p) => p,
                    same => same.resolve([input[2], input[3]], [kh, kw], c.stride, c.dilation),
                };
                window([kh, kw], c.stride, c.dilation, [pads[0], pads[1]])
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                window(p.kernel, p.stride, p.dilation, [p.padding[0], p.padding[1]])
            }
            Op::Ext(ExtOp::ConvTranspose2d(t)) => {
                let [_, _, kh, kw] = t.weight.dims();
                let k = [kh, kw];
                [0, 1].map(|i| {
                    let (s, d, p) = (t.stride[i] as i64, t.dilation[i] as i64, t.padding[i] as i64);
                    let lo = (out[i][0] + p - (k[i] as i64 - 1) * d).div_euclid(s)
                        + i64::from((out[i][0] + p - (k[i] as i64 - 1) * d).rem_euclid(s) != 0);
                    [lo, (out[i][1] + p).div_euclid(s)]
                })
            }
            Op::Ext(ExtOp::Pad(p)) => {
                let lead = [p.pads[0] as i64, p.pads[1] as i64];
                [0, 1].map(|i| [out[i][0] - lead[i], out[i][1] - lead[i]])
            }
            Op::AdaptiveAvgPool(size) | Op::Ext(ExtOp::AdaptiveAvgPool(size)) => [0, 1].map(|i| {
                let (big, small) = (input[2 + i] as i64, size[i] as i64);
                [
                    out[i][0] * big / small,
                    ((out[i][1] + 1) * big + small - 1) / small - 1,
                ]
            }),
            Op::BatchNorm(_)
            | Op::Rectifier(_)
            | Op::Identity
            | Op::Add
            | Op::Ext(
                ExtOp::Activation(_)
                | ExtOp::Lrn(_)
                | ExtOp::Softmax
                | ExtOp::Concat
                | ExtOp::Binary(_)
                | ExtOp::WithConstant { .. },
            ) => {
                // Broadcasting reads the single row (or column) of a size-1 input for every output row.
                [0, 1].map(|i| {
                    if input[2 + i] == 1 && output[2 + i] > 1 {
                        [0, 0]
                    } else {
                        out[i]
                    }
                })
            }
            // Operations on values of other ranks and layouts move values between positions:
            // the whole input, a bound that is always safe.
            Op::Input | Op::GlobalAvgPool | Op::Flatten | Op::Linear(_) | Op::Ext(ExtOp::Tensor(_)) => whole,
        }
    }
}

/// `span` cut to the map `[_, _, h, w]`, `None` when nothing of it is left.
fn clip_to(span: Span, shape: [usize; 4]) -> Option<Span> {
    let dims = [shape[2] as i64, shape[3] as i64];
    let s = [0, 1].map(|i| [span[i][0].max(0), span[i][1].min(dims[i] - 1)]);
    (s[0][0] <= s[0][1] && s[1][0] <= s[1][1]).then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepsight_runtime::{Conv2d, Device, Pool, Tensor, default_device};

    fn conv(d: &Device, io: [usize; 2], k: usize, stride: usize, dilation: usize, padding: Padding) -> Op {
        Op::Conv2d(Conv2d {
            weight: Tensor::ones([io[1], io[0], k, k], d),
            bias: None,
            stride: [stride; 2],
            dilation: [dilation; 2],
            groups: 1,
            padding,
        })
    }

    fn rf(g: &Graph, size: [usize; 2], layer: &str, unit: [usize; 2]) -> ReceptiveField {
        ReceptiveFields::new(g, size).unwrap().of(layer, unit).unwrap()
    }

    #[test]
    fn two_3x3_convolutions_see_5x5() {
        let d = default_device();
        let mut g = Graph::new("input", 1);
        let a = g
            .push("a", conv(&d, [1, 1], 3, 1, 1, Padding::symmetric(1)), &[0])
            .unwrap();
        g.push("b", conv(&d, [1, 1], 3, 1, 1, Padding::symmetric(1)), &[a])
            .unwrap();
        let r = rf(&g, [16, 16], "b", [5, 9]);
        assert_eq!(
            r.pixels,
            PixelBox {
                top: 3,
                left: 7,
                bottom: 8,
                right: 12
            }
        );
        assert_eq!(r.nominal, [3, 7, 8, 12]);
        // The corner: two rows and columns of the nominal 5x5 lie in padding.
        let r = rf(&g, [16, 16], "b", [0, 15]);
        assert_eq!(
            r.pixels,
            PixelBox {
                top: 0,
                left: 13,
                bottom: 3,
                right: 16
            }
        );
        assert_eq!(r.nominal, [-2, 13, 3, 18]);
    }

    #[test]
    fn stride_dilation_and_pooling_compose() {
        // conv 3x3/2 pad 1 -> maxpool 3x3/2 pad 1 -> conv 3x3 dilation 2 pad 2.
        // The jump is 1, 2, 4; sizes 3, 3 + 2*2 = 7, 7 + (5 - 1)*4 = 23.
        let d = default_device();
        let mut g = Graph::new("input", 1);
        let a = g
            .push("a", conv(&d, [1, 1], 3, 2, 1, Padding::symmetric(1)), &[0])
            .unwrap();
        let p = g.push("p", Op::MaxPool(Pool::square(3, 2, 1)), &[a]).unwrap();
        g.push("c", conv(&d, [1, 1], 3, 1, 2, Padding::symmetric(2)), &[p])
            .unwrap();
        // Unit 4 of c: rows 2..=6 of p, rows 3..=13 of a, rows 5..=27 of the input.
        let r = rf(&g, [64, 64], "c", [4, 4]);
        assert_eq!(r.nominal, [5, 5, 28, 28]);
        assert_eq!(r.pixels.height(), 23);
        // Unit 0 of p reads a's rows -1..=1 (clipped to 0..=1), i.e. input rows -1..=3.
        let r = rf(&g, [64, 64], "p", [0, 0]);
        assert_eq!(r.nominal, [-3, -3, 4, 4]);
        assert_eq!(
            r.pixels,
            PixelBox {
                top: 0,
                left: 0,
                bottom: 4,
                right: 4
            }
        );
    }

    #[test]
    fn branches_unite_and_same_padding_resolves() {
        // A 1x1 branch and a 5x5 branch added: the union is the 5x5 one; TF-SAME stride 2 on an
        // even input pads 0 on top and 1 below, so unit r of a reads input rows 2r..=2r+2.
        let d = default_device();
        let mut g = Graph::new("input", 1);
        let a = g
            .push("a", conv(&d, [1, 1], 3, 2, 1, Padding::SameUpper), &[0])
            .unwrap();
        let b1 = g
            .push("b1", conv(&d, [1, 1], 1, 1, 1, Padding::symmetric(0)), &[a])
            .unwrap();
        let b5 = g
            .push("b5", conv(&d, [1, 1], 5, 1, 1, Padding::symmetric(2)), &[a])
            .unwrap();
        g.push("sum", Op::Add, &[b1, b5]).unwrap();
        assert_eq!(rf(&g, [16, 16], "a", [3, 3]).nominal, [6, 6, 9, 9]);
        // sum unit 3 reads a rows 1..=5, so input rows 2..=12.
        assert_eq!(rf(&g, [16, 16], "sum", [3, 3]).nominal, [2, 2, 13, 13]);
        assert_eq!(rf(&g, [16, 16], "b1", [3, 3]).nominal, [6, 6, 9, 9]);
    }

    #[test]
    fn a_unit_outside_the_layer_is_refused() {
        let d = default_device();
        let mut g = Graph::new("input", 1);
        g.push("a", conv(&d, [1, 1], 3, 1, 1, Padding::symmetric(1)), &[0])
            .unwrap();
        let fields = ReceptiveFields::new(&g, [8, 8]).unwrap();
        assert!(fields.of("a", [8, 0]).is_err());
        assert!(fields.of("nope", [0, 0]).is_err());
    }
}
