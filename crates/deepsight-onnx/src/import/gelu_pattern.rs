//! Exact GELU as exporters write it before ONNX had a `Gelu` operator (PyTorch's TorchScript
//! exporter, opsets below 20):
//!
//! ```text
//! y = Mul(Mul(x, Add(Erf(Div(x, sqrt 2)), 1)), 0.5)     (or Mul(x, 1/sqrt 2) for the Div)
//! ```
//!
//! The chain is found by its wiring when the importer starts (each intermediate read only by the
//! next step); when the import loop reaches its first step, the constants are checked, and the
//! chain becomes one [`Activation::Gelu`] named by its output. A chain whose constants differ is
//! imported step by step, which computes the same function.

use super::{Importer, Value};
use crate::error::Result;
use crate::node::NodeRef;
use deepsight_runtime::{Activation, ExtOp, Op};
use onnx_protobuf::GraphProto;
use std::collections::{HashMap, HashSet};

#[derive(Debug, Clone)]
struct Chain {
    /// The steps after the first, in order: Erf, Add, Mul (by x), Mul (by 1/2).
    rest: [usize; 4],
    /// The constant operand of the first step, the Add and the last Mul.
    constants: [String; 3],
    output: String,
}

#[derive(Debug, Default)]
pub(crate) struct GeluPatterns {
    /// Chains by the index of their first step.
    chains: HashMap<usize, Chain>,
    /// Steps of the chains already fused, skipped by the import loop.
    inside: HashSet<usize>,
}

fn other<'a>(inputs: &'a [String], known: &str) -> Option<&'a str> {
    match inputs {
        [a, b] if a == known => Some(b),
        [a, b] if b == known => Some(a),
        _ => None,
    }
}

impl GeluPatterns {
    pub(crate) fn new(g: &GraphProto) -> Self {
        let mut readers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            for input in &n.input {
                readers.entry(input.as_str()).or_default().push(i);
            }
        }
        let outputs: HashSet<&str> = g.output.iter().map(|o| o.name.as_str()).collect();
        let sole = |name: &str, op: &str| -> Option<usize> {
            match readers.get(name).map(Vec::as_slice) {
                Some([i]) if g.node[*i].op_type == op && !outputs.contains(name) => Some(*i),
                _ => None,
            }
        };
        let out = |i: usize| g.node[i].output.first().map(String::as_str).unwrap_or_default();
        let mut chains = HashMap::new();
        for (i, n) in g.node.iter().enumerate() {
            if !matches!(n.op_type.as_str(), "Div" | "Mul") || n.input.len() != 2 {
                continue;
            }
            let x = n.input[0].as_str();
            let found = (|| {
                let erf = sole(out(i), "Erf")?;
                let add = sole(out(erf), "Add")?;
                let one = other(&g.node[add].input, out(erf))?;
                let mul = sole(out(add), "Mul")?;
                (other(&g.node[mul].input, out(add))? == x).then_some(())?;
                let half = sole(out(mul), "Mul")?;
                let c = other(&g.node[half].input, out(mul))?;
                Some(Chain {
                    rest: [erf, add, mul, half],
                    constants: [n.input[1].clone(), one.to_string(), c.to_string()],
                    output: out(half).to_string(),
                })
            })();
            if let Some(chain) = found {
                chains.insert(i, chain);
            }
        }
        GeluPatterns {
            chains,
            inside: HashSet::new(),
        }
    }

    /// Whether step `i` belongs to a chain already imported as one GELU.
    pub(crate) fn is_inside(&self, i: usize) -> bool {
        self.inside.contains(&i)
    }
}

impl Importer<'_> {
    pub(super) fn gelu_pattern(&mut self, node: &NodeRef) -> Result<Option<Value>> {
        let Some(chain) = self.gelu.chains.get(&node.index).cloned() else {
            return Ok(None);
        };
        let scalar = |name: &str| match self.values.get(name) {
            Some(Value::Const(c)) if c.len() == 1 => Some(c.to_f32()[0]),
            _ => None,
        };
        let [first, one, half] = [0, 1, 2].map(|k| scalar(&chain.constants[k]));
        let near = |v: Option<f32>, want: f64| v.is_some_and(|v| (v as f64 - want).abs() < 1e-6);
        let scaled = match node.op() {
            "Div" => near(first, std::f64::consts::SQRT_2),
            _ => near(first, std::f64::consts::FRAC_1_SQRT_2),
        };
        if !(scaled && near(one, 1.0) && near(half, 0.5)) {
            return Ok(None);
        }
        let (x, rank) = self.activation(node, 0)?;
        let id = self.push(
            chain.output.clone(),
            Op::Ext(ExtOp::Activation(Activation::Gelu)),
            &[x],
        )?;
        let v = Value::Node { id, rank };
        self.values.insert(chain.output.clone(), v.clone());
        self.gelu.inside.extend(chain.rest);
        Ok(Some(v))
    }
}
