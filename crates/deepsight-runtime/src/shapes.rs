//! Shape inference: checks a whole graph against an input size before any tensor is touched, so
//! a wrong input gives an error naming the layer instead of a panic deep inside a kernel.

use crate::error::{Result, RuntimeError};
use crate::graph::{Graph, Op, Pool};
use crate::ops::ExtOp;
use crate::value::ValueShape;

fn window_out(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: [usize; 2],
    dilation: usize,
    ceil: bool,
) -> Option<usize> {
    // Checked throughout: the parameters come from the user's file (validated to be >= 1, but
    // not bounded above).
    let span = dilation.checked_mul(kernel.checked_sub(1)?)?.checked_add(1)?;
    let padded = input.checked_add(pad[0])?.checked_add(pad[1])?;
    let steps = padded.checked_sub(span)?;
    if stride == 0 {
        return None;
    }
    let mut out = if ceil {
        steps.div_ceil(stride)
    } else {
        steps / stride
    } + 1;
    // PyTorch: the last window must start inside the input or the left padding.
    if ceil && (out - 1).saturating_mul(stride) >= input.saturating_add(pad[0]) {
        out -= 1;
    }
    Some(out)
}

fn pool_out(p: &Pool, h: usize, w: usize) -> Option<[usize; 2]> {
    Some([
        window_out(
            h,
            p.kernel[0],
            p.stride[0],
            [p.padding[0], p.padding[2]],
            p.dilation[0],
            p.ceil_mode,
        )?,
        window_out(
            w,
            p.kernel[1],
            p.stride[1],
            [p.padding[1], p.padding[3]],
            p.dilation[1],
            p.ceil_mode,
        )?,
    ])
}

/// The tensor budget applied to the padded input a window operation's kernel builds, which
/// shape inference would not otherwise see (a fuzzed pooling of a 2^31 window with as much
/// padding has a 1x1 output but asked the allocator for 2^64 bytes).
fn padded_budget(
    node: &crate::graph::Node,
    input: [usize; 4],
    [n, c, h, w]: [usize; 4],
    pad: [usize; 4],
) -> Result<()> {
    let grow = |x: usize, a: usize, b: usize| x.checked_add(a)?.checked_add(b);
    let padded = match (grow(h, pad[0], pad[2]), grow(w, pad[1], pad[3])) {
        (Some(ph), Some(pw)) => [n, c, ph, pw],
        _ => [usize::MAX, 2, 1, 1],
    };
    crate::limits::check_tensor_of(&padded, || {
        format!("layer '{}' ({}) padded input", node.name, node.op.kind())
    })
    .map_err(|reason| RuntimeError::InputShape {
        got: input.to_vec(),
        reason,
    })
}

pub(crate) fn infer(graph: &Graph, input: [usize; 4]) -> Result<Vec<ValueShape>> {
    let mut shapes: Vec<ValueShape> = Vec::with_capacity(graph.nodes().len());
    infer_from(graph, input, &mut shapes)?;
    Ok(shapes)
}

/// Infers the shapes of the nodes after the `shapes.len()` already known.
pub(crate) fn infer_from(graph: &Graph, input: [usize; 4], shapes: &mut Vec<ValueShape>) -> Result<()> {
    for node in &graph.nodes()[shapes.len()..] {
        let fail = |reason: String| RuntimeError::InputShape {
            got: input.to_vec(),
            reason: format!("layer '{}' ({}): {reason}", node.name, node.op.kind()),
        };
        let value = node
            .inputs
            .first()
            .map(|&i| shapes[i].clone())
            .unwrap_or_else(|| ValueShape::nchw(input));
        let x = value.physical();
        let [n, c, h, w] = x;
        let image_like = |what: &str| {
            if value.rank() == 4 {
                Ok(())
            } else {
                Err(fail(format!(
                    "{what} needs an [N, C, H, W] input, got {:?}",
                    value.dims
                )))
            }
        };
        let out = match &node.op {
            Op::Input => {
                if c != graph.input_channels() {
                    return Err(fail(format!(
                        "expects {} channels, got {c}",
                        graph.input_channels()
                    )));
                }
                if n == 0 || h == 0 || w == 0 {
                    return Err(fail("empty batch or image".into()));
                }
                value
            }
            Op::Conv2d(conv) => {
                image_like("a convolution")?;
                let [o, i, kh, kw] = conv.dims();
                if c != i * conv.groups {
                    return Err(fail(format!(
                        "expects {} input channels, got {c}",
                        i * conv.groups
                    )));
                }
                let p = conv.padding.resolve([h, w], [kh, kw], conv.stride, conv.dilation);
                let oh = window_out(h, kh, conv.stride[0], [p[0], p[2]], conv.dilation[0], false);
                let ow = window_out(w, kw, conv.stride[1], [p[1], p[3]], conv.dilation[1], false);
                match (oh, ow) {
                    (Some(oh), Some(ow)) => {
                        padded_budget(node, input, [n, c, h, w], p)?;
                        ValueShape::nchw([n, o, oh, ow])
                    }
                    _ => return Err(fail(format!("a {kh}x{kw} kernel does not fit a {h}x{w} input"))),
                }
            }
            Op::BatchNorm(bn) => {
                if value.rank() < 2 || bn.gamma.dims()[0] != c {
                    return Err(fail(format!(
                        "has {} channels, input has {c}",
                        bn.gamma.dims()[0]
                    )));
                }
                value
            }
            Op::MaxPool(p) | Op::AvgPool(p) => {
                image_like("pooling")?;
                match pool_out(p, h, w) {
                    Some([oh, ow]) => {
                        padded_budget(node, input, [n, c, h, w], p.padding)?;
                        ValueShape::nchw([n, c, oh, ow])
                    }
                    None => {
                        return Err(fail(format!(
                            "a {:?} window does not fit a {h}x{w} input",
                            p.kernel
                        )));
                    }
                }
            }
            Op::GlobalAvgPool => ValueShape::nchw([n, c, 1, 1]),
            Op::Flatten => match c.checked_mul(h).and_then(|v| v.checked_mul(w)) {
                Some(f) => ValueShape::flat(n, f),
                None => return Err(fail(format!("{c}x{h}x{w} features overflow"))),
            },
            Op::Linear(l) => {
                let [out, inp] = l.weight.dims();
                if c * h * w != inp || h * w != 1 {
                    return Err(fail(format!("expects {inp} features, got {:?}", [c, h, w])));
                }
                ValueShape::flat(n, out)
            }
            Op::Add => {
                let y = &shapes[node.inputs[1]];
                if value.dims != y.dims {
                    return Err(fail(format!("adds {:?} to {:?}", value.dims, y.dims)));
                }
                value
            }
            Op::Rectifier(_) | Op::Identity => value,
            Op::AdaptiveAvgPool([oh, ow]) => {
                image_like("adaptive pooling")?;
                if *oh == 0 || *ow == 0 {
                    return Err(fail("output size must be positive".into()));
                }
                ValueShape::nchw([n, c, *oh, *ow])
            }
            Op::Ext(ExtOp::Tensor(t)) => {
                let xs: Vec<ValueShape> = node.inputs.iter().map(|&i| shapes[i].clone()).collect();
                t.output_shape(&xs).map_err(fail)?
            }
            Op::Ext(e) => {
                if matches!(e, ExtOp::ConvTranspose2d(_) | ExtOp::Pad(_) | ExtOp::Lrn(_)) {
                    image_like(e.kind())?;
                }
                // Window entries past the channels are zeros: a larger window only costs memory
                // and time (a fuzzed size of 2^30 asked for a 4 GiB padding), so it is refused.
                if let ExtOp::Lrn(l) = e
                    && l.size > 2 * c + 1
                {
                    return Err(fail(format!("a window of {} for {c} channels", l.size)));
                }
                let xs: Vec<[usize; 4]> = node.inputs.iter().map(|&i| shapes[i].physical()).collect();
                let p = e.output_shape(&xs).map_err(fail)?;
                match e {
                    ExtOp::Activation(_) | ExtOp::Softmax => value,
                    _ if value.rank() == 4 => ValueShape {
                        dims: p.to_vec(),
                        axes: value.axes,
                    },
                    _ if p == x => value,
                    _ => ValueShape::conventional(p[..value.rank().max(2)].to_vec()),
                }
            }
        };
        // One budget for every activation, checked before anything is allocated: a padding of
        // 100000 is refused here rather than by the allocator.
        crate::limits::check_tensor_of(&out.dims, || {
            format!("layer '{}' ({})", node.name, node.op.kind())
        })
        .map_err(|reason| RuntimeError::InputShape {
            got: input.to_vec(),
            reason,
        })?;
        shapes.push(out);
    }
    Ok(())
}
