//! PyTorch's `nn.LocalResponseNorm` as the exporters write it. `F.local_response_norm` is
//! Python, so an exported graph holds its steps rather than an `LRN` operator:
//!
//! ```text
//! sq  = Mul(x, x)                                 (or Pow(x, 2))
//! v   = Reshape(sq, [N, 1, C, H, W])              (or Unsqueeze(sq, 1))
//! p   = Pad(v, channel axis: size/2 before, (size-1)/2 after, zeros)
//! avg = AveragePool(p, kernel [size, 1, 1], strides 1)
//! a   = Squeeze(avg, 1), Reshape to [N, C, H, W]  (the TorchScript exporter writes the squeeze
//!                                                  as If(Shape(avg)[1] == 1, Squeeze, Identity))
//! y   = Div(x, Pow(Add(Mul(a, alpha), k), beta))
//! ```
//!
//! That is `x / (k + alpha / size * sum_{window} x^2)^beta`, one [`Lrn`]. At the `Mul(x, x)` the
//! chain is matched by its wiring: each intermediate read only by the next step (and by `Shape`).
//! As the import loop reaches each step, its constants are checked against that meaning, and the
//! `Div` becomes the LRN, named by its output; the steps in between leave no node in the graph.
//! Once a chain reaches a 3-D average pool, any departure from the pattern (another kernel, a
//! padding that the pool's divisor would not count, a nonzero pad value, an intermediate read
//! elsewhere) is refused with the reason, never imported as some other LRN.

use super::{Importer, Value};
use crate::constant::{Const, resolve_reshape};
use crate::error::{OnnxError, Result};
use crate::fold::squeeze_dims;
use crate::node::NodeRef;
use deepsight_runtime::{ExtOp, Lrn, Op};
use onnx_protobuf::{GraphProto, NodeProto};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// The longest chain looked through (the TorchScript exporter's has 9 steps).
const MAX_STEPS: usize = 16;
/// Steps that only re-shape the intermediate.
const LAYOUT: &[&str] = &["Reshape", "Unsqueeze", "Squeeze", "Identity"];
/// Every step the pattern can have between its `Mul(x, x)` and its `Div`.
const STEPS: &[&str] = &[
    "Reshape",
    "Unsqueeze",
    "Squeeze",
    "Identity",
    "If",
    "Pad",
    "AveragePool",
    "Mul",
    "Add",
    "Pow",
];
const PATTERN: &str = "x / (k + alpha * AveragePool(Pad(x * x)))^beta over [N, 1, C, H, W]";

/// How far a chain has got: each arithmetic step comes once, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    Squared,
    Padded,
    Pooled,
    Scaled,
    Biased,
    Powered,
}

#[derive(Debug, Clone)]
struct Chain {
    /// The activation normalised, and its ONNX dims.
    x: String,
    x_dims: Vec<usize>,
    /// The latest intermediate and its dims.
    cur: String,
    dims: Vec<usize>,
    stage: Stage,
    /// Zero channels before and after.
    pads: [usize; 2],
    size: usize,
    alpha: f32,
    bias: f32,
    beta: f32,
    /// The `Div` that ends the chain, for messages.
    end: String,
}

/// The chains found so far and what finding them needs: who reads each value.
pub(crate) struct LrnPatterns<'a> {
    nodes: &'a [NodeProto],
    graph_outputs: HashSet<&'a str>,
    /// The nodes reading each value, directly or from inside their subgraphs (`If` branches).
    readers: HashMap<&'a str, Vec<usize>>,
    producers: HashMap<&'a str, usize>,
    /// Steps still to come: node output -> chain.
    steps: HashMap<String, usize>,
    /// Every intermediate's dims, for the `Shape` nodes that read it.
    intermediate_dims: HashMap<String, Vec<usize>>,
    /// `Equal` nodes giving the condition of a chain's `If`.
    guards: HashSet<String>,
    chains: Vec<Chain>,
}

fn reads<'a>(n: &'a NodeProto, out: &mut Vec<&'a str>) {
    out.extend(n.input.iter().map(String::as_str).filter(|s| !s.is_empty()));
    for a in &n.attribute {
        for g in a.g.as_ref().into_iter().chain(&a.graphs) {
            for sub in &g.node {
                reads(sub, out);
            }
        }
    }
}

/// A placeholder for an intermediate: only the chain's own steps read it (checked), and an empty
/// constant fails loudly anywhere else.
fn intermediate() -> Value {
    Value::Const(Arc::new(Const::f32(vec![0], vec![])))
}

fn near_miss(node: &NodeRef, end: &str, why: impl std::fmt::Display) -> OnnxError {
    node.unsupported(format!(
        "part of what looks like PyTorch's LocalResponseNorm (ending at '{end}'), but {why}; \
         DeepSight imports only the exact pattern {PATTERN}"
    ))
}

impl<'a> LrnPatterns<'a> {
    pub(crate) fn new(g: &'a GraphProto) -> Self {
        let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
        let mut producers = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            let mut names = Vec::new();
            reads(n, &mut names);
            names.sort_unstable();
            names.dedup();
            for name in names {
                readers.entry(name).or_default().push(i);
            }
            for o in &n.output {
                producers.insert(o.as_str(), i);
            }
        }
        LrnPatterns {
            nodes: &g.node,
            graph_outputs: g.output.iter().map(|o| o.name.as_str()).collect(),
            readers,
            producers,
            steps: HashMap::new(),
            intermediate_dims: HashMap::new(),
            guards: HashSet::new(),
            chains: Vec::new(),
        }
    }

    /// The steps after `head` (= `Mul(x, x)`) up to the `Div(x, ...)`, by node index: `None` when
    /// no 3-D average pool is on the way (not an LRN: imported as it is), an error for a near miss.
    fn walk(&self, head: &NodeRef, x: &str) -> Result<Option<Vec<usize>>> {
        let mut cur = head.name.as_str();
        let mut at = head.name.clone();
        let (mut path, mut pool3d, mut problem) = (Vec::new(), false, None);
        let end = loop {
            if self.graph_outputs.contains(cur) {
                problem.get_or_insert(format!("its intermediate '{cur}' is a graph output"));
            }
            let rs: Vec<usize> = self
                .readers
                .get(cur)
                .map(|r| {
                    let shape_of =
                        |i: &usize| self.nodes[*i].op_type == "Shape" && self.nodes[*i].input[0] == cur;
                    r.iter().copied().filter(|i| !shape_of(i)).collect()
                })
                .unwrap_or_default();
            let Some(&next) = rs.first() else {
                break None;
            };
            if let Some(&other) = rs.get(1) {
                problem.get_or_insert(format!(
                    "its intermediate '{cur}' is also read by '{}' ({})",
                    NodeRef::new(&self.nodes[other], other).name,
                    self.nodes[other].op_type
                ));
            }
            let n = &self.nodes[next];
            if n.op_type == "Div" && n.input.len() == 2 && n.input[0] == x && n.input[1] == cur {
                path.push(next);
                break Some(NodeRef::new(n, next).name);
            }
            if !STEPS.contains(&n.op_type.as_str()) || n.output.len() != 1 || path.len() == MAX_STEPS {
                problem.get_or_insert(format!(
                    "'{cur}' goes on to '{}' ({}) instead of the next step of the pattern",
                    NodeRef::new(n, next).name,
                    n.op_type
                ));
                break None;
            }
            let kernel = n.attribute.iter().find(|a| a.name == "kernel_shape");
            pool3d |= n.op_type == "AveragePool" && kernel.is_some_and(|k| k.ints.len() == 3);
            path.push(next);
            cur = &n.output[0];
            at = cur.to_string();
        };
        if !pool3d {
            return Ok(None);
        }
        let end = end.unwrap_or_else(|| at.clone());
        match problem {
            Some(why) => Err(near_miss(head, &end, why)),
            None if path.is_empty() => Ok(None),
            None => Ok(Some(path)),
        }
    }
}

impl Importer<'_> {
    /// Handles `node` if it belongs to a PyTorch LocalResponseNorm chain (`None`: it does not).
    pub(super) fn lrn_pattern(&mut self, node: &NodeRef) -> Result<Option<Value>> {
        if let Some(&c) = self.lrn.steps.get(&node.name) {
            return self.lrn_step(node, c).map(Some);
        }
        match node.op() {
            "Shape" => {
                let Some(dims) = node.input(0).and_then(|i| self.lrn.intermediate_dims.get(i)) else {
                    return Ok(None);
                };
                let dims: Vec<i64> = dims.iter().map(|&d| d as i64).collect();
                let r = dims.len() as i64;
                let clampi = |a: i64| (if a < 0 { a + r } else { a }).clamp(0, r) as usize;
                let (s, e) = (clampi(node.int("start", 0)?), clampi(node.int("end", r)?));
                let dims = if s < e { dims[s..e].to_vec() } else { vec![] };
                Ok(Some(Value::Const(Arc::new(Const::i64(vec![dims.len()], dims)))))
            }
            "Equal" if self.lrn.guards.contains(&node.name) => {
                let (a, b) = (self.constant(node, 0)?, self.constant(node, 1)?);
                let (a, b, dims) = (
                    a.to_f32(),
                    b.to_f32(),
                    if a.len() >= b.len() { &a.dims } else { &b.dims },
                );
                if a.len() != b.len() && a.len().min(b.len()) != 1 {
                    return Err(node.unsupported("comparing constants of different lengths"));
                }
                let n = a.len().max(b.len());
                let pick = |v: &[f32], i: usize| v[if v.len() == 1 { 0 } else { i }];
                let eq = (0..n).map(|i| (pick(&a, i) == pick(&b, i)) as i64).collect();
                Ok(Some(Value::Const(Arc::new(Const::i64(dims.clone(), eq)))))
            }
            "Mul" | "Pow" => self.lrn_head(node),
            _ => Ok(None),
        }
    }

    fn lrn_head(&mut self, node: &NodeRef) -> Result<Option<Value>> {
        let Some(x) = node.input(0) else {
            return Ok(None);
        };
        let squares = match node.op() {
            "Mul" => node.input(1) == Some(x),
            _ => matches!(node.input(1).and_then(|e| self.values.get(e)),
                          Some(Value::Const(c)) if c.to_f32() == [2.0]),
        };
        let xv = match self.values.get(x) {
            Some(v @ (Value::Node { rank: 4, .. } | Value::Padded { .. })) if squares => v.clone(),
            _ => return Ok(None),
        };
        let Some(path) = self.lrn.walk(node, x)? else {
            return Ok(None);
        };
        let c = self.lrn.chains.len();
        for &i in &path {
            self.lrn.steps.insert(NodeRef::new(&self.lrn.nodes[i], i).name, c);
            let n = &self.lrn.nodes[i];
            if n.op_type == "If"
                && let Some(&p) = n
                    .input
                    .first()
                    .and_then(|cond| self.lrn.producers.get(cond.as_str()))
                && self.lrn.nodes[p].op_type == "Equal"
            {
                self.lrn.guards.insert(n.input[0].clone());
            }
        }
        let last = *path.last().expect("a matched chain ends in its Div");
        let dims = self.dims(&xv);
        self.lrn.intermediate_dims.insert(node.name.clone(), dims.clone());
        self.lrn.chains.push(Chain {
            x: x.to_string(),
            x_dims: dims.clone(),
            cur: node.name.clone(),
            dims,
            stage: Stage::Squared,
            pads: [0, 0],
            size: 0,
            alpha: 0.0,
            bias: 0.0,
            beta: 0.0,
            end: NodeRef::new(&self.lrn.nodes[last], last).name,
        });
        Ok(Some(intermediate()))
    }

    /// One scalar constant operand of an elementwise step; the other must be the intermediate.
    fn lrn_scalar(&self, node: &NodeRef, ch: &Chain, either: bool) -> Result<f32> {
        let k = match (node.input(0), node.input(1)) {
            (Some(a), Some(_)) if a == ch.cur => 1,
            (Some(_), Some(b)) if b == ch.cur && either => 0,
            _ => {
                return Err(near_miss(
                    node,
                    &ch.end,
                    "it does not combine the intermediate with a constant",
                ));
            }
        };
        let c = self.constant(node, k)?;
        match c.to_f32()[..] {
            [v] => Ok(v),
            _ => Err(near_miss(
                node,
                &ch.end,
                format!("its constant has shape {:?}, not one value", c.dims),
            )),
        }
    }

    /// The dims after a layout step on the intermediate.
    fn lrn_relayout(&self, node: &NodeRef, ch: &Chain) -> Result<Vec<usize>> {
        if node.input(0) != Some(ch.cur.as_str()) {
            return Err(near_miss(node, &ch.end, "it does not re-shape the intermediate"));
        }
        match node.op() {
            "Reshape" => {
                let t = self.constant(node, 1)?.to_i64();
                if node.int("allowzero", 0)? != 0 && t.contains(&0) {
                    return Err(near_miss(
                        node,
                        &ch.end,
                        format!("it reshapes to the empty shape {t:?}"),
                    ));
                }
                resolve_reshape(&ch.dims, &t).map_err(|e| node.invalid(e))
            }
            "Squeeze" | "Unsqueeze" => {
                let axes = match self.optional_constant(node, 1)? {
                    Some(a) => a.to_i64(),
                    None => node.ints("axes")?.unwrap_or_default(),
                };
                squeeze_dims(&ch.dims, &axes, node.op() == "Unsqueeze").map_err(|e| node.invalid(e))
            }
            _ => Ok(ch.dims.clone()),
        }
    }

    /// The exporter's guarded squeeze: the branch that the (folded) condition takes.
    fn lrn_if(&mut self, node: &NodeRef, ch: &Chain) -> Result<Vec<usize>> {
        let cond = match self.value(node, 0)? {
            Value::Const(c) if c.len() == 1 => c.to_f32()[0] != 0.0,
            _ => {
                return Err(near_miss(
                    node,
                    &ch.end,
                    "its condition is not known at import time",
                ));
            }
        };
        let name = if cond { "then_branch" } else { "else_branch" };
        let Some(branch) = node.attr(name).and_then(|a| a.g.as_ref()) else {
            return Err(node.invalid(format!("attribute '{name}' is missing")));
        };
        let mut out = None;
        for (i, b) in branch.node.iter().enumerate() {
            let bn = NodeRef::new(b, i);
            if b.op_type == "Constant" {
                let v = crate::fold::fold(self, &bn)?;
                self.values.insert(bn.name.clone(), v);
            } else if out.is_none() && LAYOUT.contains(&bn.op()) {
                out = Some((bn.name.clone(), self.lrn_relayout(&bn, ch)?));
            } else {
                return Err(near_miss(
                    node,
                    &ch.end,
                    format!("its {name} holds a {} step", b.op_type),
                ));
            }
        }
        match (out, branch.output.as_slice()) {
            (Some((o, dims)), [result]) if result.name == o => Ok(dims),
            _ => Err(near_miss(
                node,
                &ch.end,
                format!("its {name} is not one re-shape of the intermediate"),
            )),
        }
    }

    fn lrn_step(&mut self, node: &NodeRef, c: usize) -> Result<Value> {
        let mut ch = self.lrn.chains[c].clone();
        let fail = |why: String| Err(near_miss(node, &ch.end, why));
        // The intermediate as [N, 1, channels, H, W]: what the channel pad and pool work on.
        let x = &ch.x_dims;
        let as_5d = |channels: usize| vec![x[0], 1, channels, x[2], x[3]];
        let (stage, ok) = match node.op() {
            "Pad" => (Stage::Padded, ch.stage == Stage::Squared),
            "AveragePool" => (Stage::Pooled, ch.stage <= Stage::Padded),
            "Mul" => (Stage::Scaled, ch.stage == Stage::Pooled),
            "Add" => (Stage::Biased, ch.stage == Stage::Scaled),
            "Pow" => (Stage::Powered, ch.stage == Stage::Biased),
            "Div" => (Stage::Powered, ch.stage == Stage::Powered),
            _ => (ch.stage, true),
        };
        if !ok {
            return fail(format!("a {} comes after the {:?} step", node.op(), ch.stage));
        }
        match node.op() {
            "Pad" => {
                if ch.dims != as_5d(x[1]) {
                    return fail(format!(
                        "it pads {:?}, not the squares viewed as {:?}",
                        ch.dims,
                        as_5d(x[1])
                    ));
                }
                let mode = node.string("mode")?.unwrap_or_else(|| "constant".into());
                let (pads, value) = if self.opset >= 11 {
                    let mut pads = self.constant(node, 1)?.to_i64();
                    if let Some(axes) = self.optional_constant(node, 3)? {
                        let axes = axes.to_i64();
                        let mut full = vec![0; 10];
                        for (k, &a) in axes.iter().enumerate() {
                            let a = crate::constant::axis(a, 5).map_err(|e| node.invalid(e))?;
                            full[a] = *pads.get(k).unwrap_or(&0);
                            full[a + 5] = *pads.get(k + axes.len()).unwrap_or(&0);
                        }
                        pads = full;
                    }
                    let value = match self.optional_constant(node, 2)? {
                        Some(v) => v.scalar_f32().map_err(|e| node.invalid(e))?,
                        None => 0.0,
                    };
                    (pads, value)
                } else {
                    (node.ints("pads")?.unwrap_or_default(), node.float("value", 0.0)?)
                };
                let only_channels = pads.len() == 10
                    && pads
                        .iter()
                        .enumerate()
                        .all(|(k, &p)| p == 0 || (k % 5 == 2 && p > 0));
                if mode != "constant" || value != 0.0 || !only_channels {
                    return fail(format!(
                        "it pads {pads:?} with {mode} {value} (PyTorch: zeros on the channel axis)"
                    ));
                }
                ch.pads = [pads[2] as usize, pads[7] as usize];
                ch.dims[2] += ch.pads[0] + ch.pads[1];
            }
            "AveragePool" => {
                let padded = x[1] + ch.pads[0] + ch.pads[1];
                if ch.dims != as_5d(padded) {
                    return fail(format!(
                        "it pools {:?}, not the squares viewed as {:?}",
                        ch.dims,
                        as_5d(padded)
                    ));
                }
                let size = match node.ints("kernel_shape")?.as_deref() {
                    Some(&[s, 1, 1]) if s >= 1 => s as usize,
                    k => return fail(format!("its kernel is {k:?}, not [size, 1, 1]")),
                };
                let ones = |name: &str| -> Result<bool> {
                    Ok(node.ints(name)?.is_none_or(|v| v.iter().all(|&s| s == 1)))
                };
                if !ones("strides")? || !ones("dilations")? {
                    return fail("its strides or dilations are not 1".into());
                }
                let auto = node.string("auto_pad")?.unwrap_or_else(|| "NOTSET".into());
                let own = node.ints("pads")?.unwrap_or_else(|| vec![0; 6]);
                if !matches!(auto.as_str(), "NOTSET" | "VALID")
                    || own.len() != 6
                    || own.iter().any(|&p| p < 0)
                {
                    return fail(format!("its padding is auto_pad {auto}, pads {own:?}"));
                }
                if own.iter().enumerate().any(|(k, &p)| p != 0 && k % 3 != 0) {
                    return fail(format!("it pads height or width ({own:?})"));
                }
                // Zeros from its own pads count in the mean only with count_include_pad (those of
                // the Pad before it are values and always count).
                if own.iter().any(|&p| p != 0) && !node.flag("count_include_pad", false)? {
                    return fail(format!(
                        "its own channel pads {own:?} are left out of the mean (count_include_pad = 0), \
                         so the divisor is not the window size at the edges"
                    ));
                }
                let [front, back] = [ch.pads[0] + own[0] as usize, ch.pads[1] + own[3] as usize];
                if front + back + 1 != size {
                    return fail(format!(
                        "a window of {size} channels padded by {front} before and {back} after \
                         changes the channel count (an LRN pads size - 1 in all)"
                    ));
                }
                ch.size = size;
                ch.pads = [front, back];
                ch.dims = as_5d(x[1]);
            }
            "Mul" => ch.alpha = self.lrn_scalar(node, &ch, true)?,
            "Add" => ch.bias = self.lrn_scalar(node, &ch, true)?,
            "Pow" => ch.beta = self.lrn_scalar(node, &ch, false)?,
            "Div" => {
                if node.input(0) != Some(ch.x.as_str()) || node.input(1) != Some(ch.cur.as_str()) {
                    return fail("it does not divide the normalised activation by the normaliser".into());
                }
                if ch.dims != ch.x_dims {
                    return fail(format!(
                        "the normaliser has shape {:?}, not {:?}",
                        ch.dims, ch.x_dims
                    ));
                }
                let lrn = Lrn {
                    size: ch.size,
                    front: ch.pads[0],
                    alpha: ch.alpha,
                    beta: ch.beta,
                    bias: ch.bias,
                };
                let (id, _) = self.activation(node, 0)?;
                let id = self.push(node.name.clone(), Op::Ext(ExtOp::Lrn(lrn)), &[id])?;
                return Ok(Value::Node { id, rank: 4 });
            }
            "If" => ch.dims = self.lrn_if(node, &ch)?,
            _ => ch.dims = self.lrn_relayout(node, &ch)?,
        }
        ch.stage = stage;
        ch.cur = node.name.clone();
        self.lrn
            .intermediate_dims
            .insert(node.name.clone(), ch.dims.clone());
        self.lrn.chains[c] = ch;
        Ok(intermediate())
    }
}
