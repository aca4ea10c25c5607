//! Sanity check by cascading model-parameter randomisation (Adebayo, Gilmer, Muelly, Goodfellow,
//! Hardt & Kim, *Sanity Checks for Saliency Maps*, NeurIPS 2018, section 3.1).
//!
//! # Computes
//! The model's weighted layers are re-initialised from the top down, cumulatively: depth 1
//! randomises the classifier head, depth 2 the head and the layer below it, and so on. At every
//! depth the method explains the request's images with the randomised model, and the Spearman
//! rank correlation between that map and the trained model's map is averaged over the images. A
//! method whose maps depend on the learned weights passes: its correlation falls as layers are
//! randomised; a method that shows the same map for a random model is (partly) an edge detector.
//!
//! # Profile details
//! - Layers: every convolution (depthwise included), transposed convolution and linear layer, in
//!   reverse execution order (the head first). A BatchNorm belongs to the weighted layer that its
//!   input comes from (through any one-input nodes: `conv -> bn`, `conv -> relu -> bn`) and is
//!   re-initialised with it; a BatchNorm reached from no single weighted layer (it reads a sum, or
//!   the input) is never re-initialised.
//! - Re-initialisation: PyTorch's default (`reset_parameters`): weights and biases uniform in
//!   `±1/sqrt(fan_in)` (`fan_in` = in channels / groups x kernel area; for a transposed convolution
//!   PyTorch's own choice, the weight's second dimension x kernel area); BatchNorm gamma 1, beta 0,
//!   running mean 0, running variance 1. Each tensor is drawn from its own stream, named by the
//!   layer and the tensor (`<layer>.weight`, `<layer>.bias`) under `seed`, so that a layer gets the
//!   same random values at every depth.
//! - Similarity: Spearman's rank correlation with average ranks for ties, of the maps' *absolute
//!   values* (Adebayo et al. report both; the absolute-value version is the one of their figures
//!   for the saliency methods), over all values of the map (every channel of a per-channel map).
//! - Depth 0 is the explanation of a rebuilt, unrandomised copy of the model: its correlation is 1
//!   for a deterministic method, which checks that the rebuilt copy explains like the original.
//! - The user's model is never changed: every depth is a new [`GraphModel`] over a rebuilt graph
//!   sharing the untouched weight tensors.
//! - The class explained at every depth is the request's (the trained model's), as in the paper.
//! - Forward passes: the sum of the explanations' own counts (the trained model's, depth 0's and
//!   one per depth).

use crate::road::SplitMix64;
use crate::{EvalError, Result};
use deepsight_explain::{Explainer, Map, Request};
use deepsight_runtime::{
    BatchNorm, Classifier, Conv2d, ConvTranspose2d, ExtOp, Graph, GraphModel, Linear, NodeId, Op, Tensor,
    TensorData,
};

const METRIC: &str = "sanity";

/// The name of depth 0's step (no layer randomised).
pub const NO_LAYER: &str = "(none)";

/// One randomisation depth: the layer randomised last, and the mean correlation there.
#[derive(Debug, Clone, PartialEq)]
pub struct SanityStep {
    pub layer: String,
    pub spearman: f32,
}

fn invalid(reason: impl Into<String>) -> EvalError {
    EvalError::Invalid {
        metric: METRIC,
        reason: reason.into(),
    }
}

/// The weighted layers in randomisation order, top (the head) first.
pub fn randomisation_order(graph: &Graph) -> Vec<String> {
    weighted_nodes(graph)
        .into_iter()
        .map(|id| graph.nodes()[id].name.clone())
        .collect()
}

fn is_weighted(op: &Op) -> bool {
    matches!(
        op,
        Op::Conv2d(_) | Op::Linear(_) | Op::Ext(ExtOp::ConvTranspose2d(_))
    )
}

/// Weighted nodes, last executed first.
fn weighted_nodes(graph: &Graph) -> Vec<NodeId> {
    (0..graph.nodes().len())
        .rev()
        .filter(|&i| is_weighted(&graph.nodes()[i].op))
        .collect()
}

/// The weighted node a BatchNorm belongs to: the first weighted node up its chain of one-input
/// nodes.
fn owner_of_batchnorm(graph: &Graph, bn: NodeId) -> Option<NodeId> {
    let nodes = graph.nodes();
    let mut id = *nodes[bn].inputs.first()?;
    loop {
        let node = &nodes[id];
        if is_weighted(&node.op) {
            return Some(id);
        }
        if node.inputs.len() != 1 || matches!(node.op, Op::Input) {
            return None;
        }
        id = node.inputs[0];
    }
}

/// `graph` with the top `depth` weighted layers (and their BatchNorms) re-initialised from `seed`.
pub fn randomised_graph(graph: &Graph, depth: usize, seed: u64) -> Result<Graph> {
    let mut ops: Vec<Op> = graph.nodes().iter().map(|n| n.op.clone()).collect();
    let order = weighted_nodes(graph);
    if depth > order.len() {
        return Err(invalid(format!(
            "depth {depth} exceeds the model's {} weighted layers",
            order.len()
        )));
    }
    for &id in &order[..depth] {
        randomise_layer(graph, &mut ops, id, seed);
    }
    rebuild(graph, &ops)
}

/// Replaces node `id`'s weights, and those of the BatchNorms it owns, in `ops`.
fn randomise_layer(graph: &Graph, ops: &mut [Op], id: NodeId, seed: u64) {
    let name = &graph.nodes()[id].name;
    ops[id] = reinitialised(&graph.nodes()[id].op, name, seed);
    for (j, node) in graph.nodes().iter().enumerate() {
        if let Op::BatchNorm(bn) = &node.op
            && owner_of_batchnorm(graph, j) == Some(id)
        {
            ops[j] = Op::BatchNorm(reset_batchnorm(bn));
        }
    }
}

/// A new graph with the nodes of `graph` and the operations `ops`.
fn rebuild(graph: &Graph, ops: &[Op]) -> Result<Graph> {
    let nodes = graph.nodes();
    let mut out = Graph::new(&nodes[0].name, graph.input_channels());
    for (node, op) in nodes.iter().zip(ops).skip(1) {
        out.push(node.name.clone(), op.clone(), &node.inputs)?;
    }
    Ok(out)
}

/// Values uniform in `±1/sqrt(fan_in)` from the stream `name` under `seed`.
fn uniform_tensor<const D: usize>(
    seed: u64,
    name: &str,
    shape: [usize; D],
    fan_in: usize,
    like: &Tensor<D>,
) -> Tensor<D> {
    let bound = 1.0 / (fan_in.max(1) as f64).sqrt();
    let mut rng = SplitMix64::named(seed, name);
    let n: usize = shape.iter().product();
    let values: Vec<f32> = (0..n)
        .map(|_| ((2.0 * rng.uniform() - 1.0) * bound) as f32)
        .collect();
    Tensor::from_data(TensorData::new(values, shape), &like.device())
}

fn reinitialised(op: &Op, name: &str, seed: u64) -> Op {
    let weight = format!("{name}.weight");
    let bias = format!("{name}.bias");
    match op {
        Op::Conv2d(c) => {
            let dims = c.dims();
            let fan_in = dims[1] * dims[2] * dims[3];
            Op::Conv2d(Conv2d {
                weight: uniform_tensor(seed, &weight, dims, fan_in, &c.weight),
                bias: c
                    .bias
                    .as_ref()
                    .map(|b| uniform_tensor(seed, &bias, b.dims(), fan_in, b)),
                ..c.clone()
            })
        }
        Op::Linear(l) => {
            let dims = l.weight.dims();
            Op::Linear(Linear {
                weight: uniform_tensor(seed, &weight, dims, dims[1], &l.weight),
                bias: l
                    .bias
                    .as_ref()
                    .map(|b| uniform_tensor(seed, &bias, b.dims(), dims[1], b)),
            })
        }
        Op::Ext(ExtOp::ConvTranspose2d(t)) => {
            let dims = t.weight.dims();
            let fan_in = dims[1] * dims[2] * dims[3];
            Op::Ext(ExtOp::ConvTranspose2d(ConvTranspose2d {
                weight: uniform_tensor(seed, &weight, dims, fan_in, &t.weight),
                bias: t
                    .bias
                    .as_ref()
                    .map(|b| uniform_tensor(seed, &bias, b.dims(), fan_in, b)),
                ..t.clone()
            }))
        }
        other => other.clone(),
    }
}

/// PyTorch's `BatchNorm2d.reset_parameters`: gamma 1, beta 0, mean 0, variance 1.
fn reset_batchnorm(bn: &BatchNorm) -> BatchNorm {
    let dims = bn.gamma.dims();
    let device = bn.gamma.device();
    BatchNorm {
        gamma: Tensor::ones(dims, &device),
        beta: Tensor::zeros(dims, &device),
        mean: Tensor::zeros(dims, &device),
        var: Tensor::ones(dims, &device),
        eps: bn.eps,
    }
}

/// The correlation per randomisation depth (depth 0 first, then one step per randomised layer, at
/// most `max_depth` of them, all by default), each averaged over the request's images, and the
/// forward passes run. See the module documentation for the profile.
pub fn cascading_randomisation(
    model: &GraphModel,
    request: &Request,
    explainer: &dyn Explainer,
    seed: u64,
    max_depth: Option<usize>,
) -> Result<(Vec<SanityStep>, usize)> {
    let graph = model.graph();
    let order = weighted_nodes(graph);
    if order.is_empty() {
        return Err(invalid("the model has no weighted layer to randomise"));
    }
    let depth = max_depth.map_or(order.len(), |d| d.min(order.len()));
    let images = request.images.dims()[0];
    let trained = explainer.explain(model, request)?;
    let mut passes = trained.passes.forward;
    if trained.maps.len() != images {
        return Err(invalid(format!(
            "{} returned {} maps for {images} images",
            explainer.name(),
            trained.maps.len()
        )));
    }
    if let Some(i) = trained
        .maps
        .iter()
        .position(|m| m.data.iter().any(|v| !v.is_finite()))
    {
        return Err(invalid(format!(
            "{}'s map of image {i} on the trained model has NaN or infinite values",
            explainer.name()
        )));
    }
    let reference: Vec<Vec<f32>> = trained.maps.iter().map(absolute).collect();

    let mut ops: Vec<Op> = graph.nodes().iter().map(|n| n.op.clone()).collect();
    let mut steps = Vec::with_capacity(depth + 1);
    for d in 0..=depth {
        let layer = if d == 0 {
            NO_LAYER.to_string()
        } else {
            randomise_layer(graph, &mut ops, order[d - 1], seed);
            graph.nodes()[order[d - 1]].name.clone()
        };
        let randomised = GraphModel::new(rebuild(graph, &ops)?, model.input_size(), model.device())?;
        let e = explainer.explain(&randomised, request)?;
        passes += e.passes.forward;
        if e.maps.len() != images {
            return Err(invalid(format!(
                "{} returned {} maps for {images} images at layer {layer}",
                explainer.name(),
                e.maps.len()
            )));
        }
        let mut sum = 0.0f64;
        for (i, (m, r)) in e.maps.iter().zip(&reference).enumerate() {
            if m.data.len() != r.len() {
                return Err(invalid(format!(
                    "image {i}: the map has {} values at layer {layer}, {} on the trained model",
                    m.data.len(),
                    r.len()
                )));
            }
            // A randomised model's map with NaN gives NaN: reported, not hidden.
            sum += spearman(r, &absolute(m)) as f64;
        }
        steps.push(SanityStep {
            layer,
            spearman: (sum / images as f64) as f32,
        });
    }
    Ok((steps, passes))
}

fn absolute(m: &Map) -> Vec<f32> {
    m.data.iter().map(|v| v.abs()).collect()
}

/// Ranks 1..=n, ties given their average rank; -0.0 and 0.0 tie; NaN (if any) ranks above
/// everything, as in a total order.
fn ranks(v: &[f32]) -> Vec<f64> {
    let key = |x: f32| if x == 0.0 { 0.0 } else { x };
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| key(v[a]).total_cmp(&key(v[b])));
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i + 1;
        while j < idx.len() && key(v[idx[j]]).total_cmp(&key(v[idx[i]])).is_eq() {
            j += 1;
        }
        // Positions i..j (0-based) share the mean of ranks i+1..=j.
        let rank = (i + 1 + j) as f64 / 2.0;
        for &k in &idx[i..j] {
            out[k] = rank;
        }
        i = j;
    }
    out
}

/// Spearman's rank correlation: Pearson's correlation of the ranks, ties given their average
/// rank (`scipy.stats.spearmanr`). Where a vector is constant the correlation is undefined; this
/// returns 1 if both are constant (identical orderings) and 0 if only one is. NaN in either input
/// gives NaN, and so do vectors of different lengths.
pub fn spearman(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() || a.iter().chain(b).any(|v| v.is_nan()) {
        return f32::NAN;
    }
    let (ra, rb) = (ranks(a), ranks(b));
    let n = ra.len() as f64;
    let mean = (n + 1.0) / 2.0;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (x, y) in ra.iter().zip(&rb) {
        let (dx, dy) = (x - mean, y - mean);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    match (saa == 0.0, sbb == 0.0) {
        (true, true) => 1.0,
        (true, false) | (false, true) => 0.0,
        _ => (sab / (saa * sbb).sqrt()).clamp(-1.0, 1.0) as f32,
    }
}
