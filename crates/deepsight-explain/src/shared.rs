//! Passes shared by several methods: every method that reads gradients says what it needs
//! ([`Need`]), and [`SharedPasses::run`] computes the union with one forward and one backward
//! pass per backward rule (plain, guided, deconv). Saliency, gradient x input and the whole CAM
//! family then share a single forward+backward; a forward-only method (Eigen-CAM) rides along.

use crate::{Passes, Request, Result};
use deepsight_runtime::{Capture, GradientRequest, Gradients, LayeredClassifier, RectifierRule, Tensor};

/// What one method reads from a pass.
#[derive(Debug, Clone, PartialEq)]
pub struct Need {
    /// The backward rule, or `None` for a forward pass only (activations).
    pub rule: Option<RectifierRule>,
    /// The gradient with respect to the input.
    pub input: bool,
    /// Layers whose activation (and, with a rule, gradient) is read.
    pub layers: Vec<String>,
}

const RULES: [RectifierRule; 3] = [RectifierRule::Plain, RectifierRule::Guided, RectifierRule::Deconv];

/// The passes run for a set of needs.
pub struct SharedPasses {
    grads: Vec<(RectifierRule, Gradients)>,
    capture: Option<Capture>,
    /// Passes actually run.
    pub passes: Passes,
}

impl SharedPasses {
    /// Runs the fewest passes that serve every need: one per backward rule, plus one forward
    /// pass if activations are needed and no plain pass runs anyway.
    pub fn run(model: &dyn LayeredClassifier, request: &Request, needs: &[Need]) -> Result<SharedPasses> {
        let n = request.images.dims()[0];
        let forward_layers: Vec<String> = needs
            .iter()
            .filter(|x| x.rule.is_none())
            .flat_map(|x| x.layers.clone())
            .collect();
        let mut out = SharedPasses {
            grads: Vec::new(),
            capture: None,
            passes: Passes::default(),
        };
        for rule in RULES {
            let mine: Vec<&Need> = needs.iter().filter(|x| x.rule == Some(rule)).collect();
            if mine.is_empty() {
                continue;
            }
            let mut layers: Vec<String> = mine.iter().flat_map(|x| x.layers.clone()).collect();
            let mut capture = Vec::new();
            if rule == RectifierRule::Plain {
                capture = forward_layers
                    .iter()
                    .filter(|l| !layers.contains(l))
                    .cloned()
                    .collect();
            }
            layers.sort();
            layers.dedup();
            capture.sort();
            capture.dedup();
            let req = GradientRequest {
                objective: Some(request.objective()),
                rule,
                wrt_input: mine.iter().any(|x| x.input),
                wrt_layers: layers,
                capture,
                ..Default::default()
            };
            out.grads
                .push((rule, model.gradients(request.images.clone(), &req)?));
            out.passes.forward += n;
            out.passes.backward += n;
        }
        let plain_ran = out.grads.iter().any(|(r, _)| *r == RectifierRule::Plain);
        if !forward_layers.is_empty() && !plain_ran {
            let names: Vec<&str> = forward_layers.iter().map(String::as_str).collect();
            out.capture = Some(model.capture(request.images.clone(), &names, false)?);
            out.passes.forward += n;
        }
        Ok(out)
    }

    fn pass(&self, rule: RectifierRule) -> &Gradients {
        &self
            .grads
            .iter()
            .find(|(r, _)| *r == rule)
            .expect("the method declared this rule among its needs")
            .1
    }

    /// The input gradient under `rule`.
    pub fn input_gradient(&self, rule: RectifierRule) -> Tensor<4> {
        self.pass(rule)
            .input
            .clone()
            .expect("the method declared the input gradient")
    }

    /// A layer's activation and plain gradient.
    pub fn layer(&self, layer: &str) -> (Tensor<4>, Tensor<4>) {
        let lg = &self.pass(RectifierRule::Plain).layers[layer];
        (lg.activation.clone(), lg.gradient.clone())
    }

    /// A layer's activation, from whichever pass has it.
    pub fn activation(&self, layer: &str) -> Tensor<4> {
        if let Some(c) = &self.capture
            && let Some(a) = c.activations.get(layer)
        {
            return a.clone();
        }
        for (_, g) in &self.grads {
            if let Some(lg) = g.layers.get(layer) {
                return lg.activation.clone();
            }
            if let Some(a) = g.activations.get(layer) {
                return a.clone();
            }
        }
        panic!("the method declared layer '{layer}' among its needs")
    }
}

/// What a method's needs cost when it runs alone (the per-method column of reports).
pub fn passes_alone(needs: &[Need], images: usize) -> Passes {
    let mut rules: Vec<RectifierRule> = Vec::new();
    for r in needs.iter().filter_map(|x| x.rule) {
        if !rules.contains(&r) {
            rules.push(r);
        }
    }
    let backward = rules.len();
    let forward = if needs.is_empty() { 0 } else { backward.max(1) };
    Passes {
        forward: forward * images,
        backward: backward * images,
    }
}
