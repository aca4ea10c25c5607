//! [`GraphModel`]: any [`Graph`] as a [`LayeredClassifier`].

use crate::classifier::{
    Capture, Classifier, GradientRequest, Gradients, LayerGradient, LayerInfo, LayeredClassifier, Objective,
};
use crate::error::{Result, RuntimeError};
use crate::exec::{RunSpec, run};
use crate::graph::{Graph, NodeId, Op};
use crate::incremental::Incremental;
use crate::plan::Plan;
use crate::resume::Resume;
use crate::value::ValueShape;
use burn::tensor::activation::softmax;
use burn::tensor::{Device, Tensor, TensorData};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

/// A graph with its weights on a device, ready to classify and to be opened up.
///
/// The graph itself is never changed: BatchNorm folding and backward rules live in per-run plans.
#[derive(Debug)]
pub struct GraphModel {
    graph: Graph,
    input_size: [usize; 2],
    num_classes: usize,
    cam_layer: Option<String>,
    device: Device,
    plans: Mutex<HashMap<Vec<NodeId>, Arc<Plan>>>,
}

impl GraphModel {
    /// Wraps `graph`, checking that it runs on `[1, C, input_size]` images and ends in a flat
    /// vector of class scores.
    pub fn new(graph: Graph, input_size: [usize; 2], device: Device) -> Result<Self> {
        let values = graph.infer_values([1, graph.input_channels(), input_size[0], input_size[1]])?;
        let shapes: Vec<[usize; 4]> = values.iter().map(ValueShape::canonical).collect();
        let out = shapes[graph.output()];
        if out[2] * out[3] != 1 {
            return Err(RuntimeError::InvalidGraph {
                node: graph.nodes()[graph.output()].name.clone(),
                reason: format!("the last node must give class scores [N, K], it gives {out:?}"),
            });
        }
        let cam_layer = (0..graph.nodes().len())
            .rev()
            // A pooling head (VGG's adaptive 7x7 average) is not a feature map of its own.
            .find(|&i| values[i].is_feature_map() && !matches!(graph.nodes()[i].op, Op::AdaptiveAvgPool(_)))
            .filter(|&i| i > 0)
            .map(|i| graph.nodes()[i].name.clone());
        Ok(GraphModel {
            num_classes: out[1],
            graph,
            input_size,
            cam_layer,
            device,
            plans: Mutex::new(HashMap::new()),
        })
    }

    /// The graph this model runs.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// The input size the model was built for, `[height, width]`.
    pub fn input_size(&self) -> [usize; 2] {
        self.input_size
    }

    fn plan(&self, wanted: &[NodeId]) -> Arc<Plan> {
        let mut key: Vec<NodeId> = wanted
            .iter()
            .copied()
            .filter(|&i| matches!(self.graph.nodes()[i].op, Op::Conv2d(_)))
            .collect();
        key.sort_unstable();
        key.dedup();
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        plans
            .entry(key.clone())
            .or_insert_with(|| Arc::new(Plan::compile(&self.graph, &key)))
            .clone()
    }

    /// The logical shape of every node for `images`.
    fn check_input(&self, images: &Tensor<4>) -> Result<Vec<ValueShape>> {
        self.graph.infer_values(images.dims())
    }

    /// A captured value of node `id` in its canonical `[N, C, H, W]` form.
    fn canonical(values: &[ValueShape], id: NodeId, t: Tensor<4>) -> Tensor<4> {
        match values[id].to_canonical() {
            Some(perm) => t.permute(perm),
            None => t,
        }
    }

    fn find_all(&self, names: &[String]) -> Result<Vec<NodeId>> {
        names.iter().map(|n| self.graph.find(n)).collect()
    }

    fn check_classes(&self, classes: &[usize], batch: usize) -> Result<()> {
        if classes.len() != batch {
            return Err(RuntimeError::BatchMismatch {
                what: "target classes",
                got: classes.len(),
                batch,
            });
        }
        match classes.iter().find(|&&c| c >= self.num_classes) {
            Some(&index) => Err(RuntimeError::ClassIndex {
                index,
                num_classes: self.num_classes,
            }),
            None => Ok(()),
        }
    }

    fn one_hot(&self, classes: &[usize], device: &Device) -> Tensor<2> {
        let mut v = vec![0f32; classes.len() * self.num_classes];
        for (i, &c) in classes.iter().enumerate() {
            v[i * self.num_classes + c] = 1.0;
        }
        Tensor::from_data(TensorData::new(v, [classes.len(), self.num_classes]), device)
    }

    fn logits_of(&self, out: Tensor<4>) -> Tensor<2> {
        let [n, k, _, _] = out.dims();
        out.reshape([n, k])
    }

    fn name(&self, id: NodeId) -> String {
        self.graph.nodes()[id].name.clone()
    }

    /// A run's logits, captures and switches under the layers' names.
    fn named(&self, out: crate::exec::RunOutput, values: &[ValueShape]) -> Capture {
        let captured = out
            .captured
            .into_iter()
            .map(|(id, t)| (id, Self::canonical(values, id, t)))
            .collect();
        Capture {
            logits: self.logits_of(out.output),
            activations: self.by_name(captured),
            switches: self.by_name(out.switches),
        }
    }

    fn by_name<T>(&self, values: HashMap<NodeId, T>) -> BTreeMap<String, T> {
        values.into_iter().map(|(id, t)| (self.name(id), t)).collect()
    }
}

impl Classifier for GraphModel {
    fn num_classes(&self) -> usize {
        self.num_classes
    }

    fn device(&self) -> Device {
        self.device.clone()
    }

    fn logits(&self, images: Tensor<4>) -> Result<Tensor<2>> {
        let values = self.check_input(&images)?;
        let images = images.to_device(&self.device);
        let spec = RunSpec {
            values: &values,
            ..Default::default()
        };
        let out = run(&self.plan(&[]), images, &spec);
        Ok(self.logits_of(out.output))
    }
}

impl LayeredClassifier for GraphModel {
    fn layers(&self) -> Vec<LayerInfo> {
        let values = self
            .graph
            .infer_values([
                1,
                self.graph.input_channels(),
                self.input_size[0],
                self.input_size[1],
            ])
            .expect("checked when the model was built");
        let shapes: Vec<[usize; 4]> = values.iter().map(ValueShape::canonical).collect();
        // A value is shown as a flat [N, F] where it is one: the output of a flatten, a linear
        // layer or a global pool, and whatever is computed only from such values.
        let mut flat = vec![false; shapes.len()];
        for (i, node) in self.graph.nodes().iter().enumerate() {
            let pooled = matches!(node.op, Op::Flatten | Op::Linear(_) | Op::GlobalAvgPool);
            let from_flat = !node.inputs.is_empty() && node.inputs.iter().all(|&j| flat[j]);
            flat[i] = shapes[i][2] * shapes[i][3] == 1 && (pooled || from_flat);
        }
        self.graph
            .nodes()
            .iter()
            .zip(shapes)
            .zip(flat)
            .zip(&values)
            .map(|(((node, s), flat), v)| LayerInfo {
                name: node.name.clone(),
                op: node.op.kind(),
                // Feature maps in their canonical [N, C, H, W]; other ranks as they are.
                shape: match (flat, v.rank()) {
                    (true, _) => vec![s[0], s[1]],
                    (false, 4) => s.to_vec(),
                    _ => v.dims.clone(),
                },
                params: node.op.params(),
                inputs: node.inputs.iter().map(|&i| self.name(i)).collect(),
            })
            .collect()
    }

    fn default_cam_layer(&self) -> Option<String> {
        self.cam_layer.clone()
    }

    fn capture(&self, images: Tensor<4>, layers: &[&str], switches: bool) -> Result<Capture> {
        let values = self.check_input(&images)?;
        let ids: Vec<NodeId> = layers.iter().map(|n| self.graph.find(n)).collect::<Result<_>>()?;
        let images = images.to_device(&self.device);
        let spec = RunSpec {
            capture: &ids,
            switches,
            values: &values,
            ..Default::default()
        };
        Ok(self.named(run(&self.plan(&ids), images, &spec), &values))
    }

    fn forward_tracked(&self, images: Tensor<4>, layers: &[&str]) -> Result<Capture> {
        let values = self.check_input(&images)?;
        let ids: Vec<NodeId> = layers.iter().map(|n| self.graph.find(n)).collect::<Result<_>>()?;
        // `autodiff` keeps a tensor that already has autodiff (and its tape) as it is.
        let spec = RunSpec {
            rule: Some(crate::RectifierRule::Plain),
            capture: &ids,
            values: &values,
            ..Default::default()
        };
        Ok(self.named(run(&self.plan(&ids), images.autodiff(), &spec), &values))
    }

    fn resume(&self, images: Tensor<4>, layer: &str) -> Result<Resume> {
        let values = self.check_input(&images)?;
        let id = self.graph.find(layer)?;
        Resume::new(
            self.plan(&[id]),
            images.to_device(&self.device),
            id,
            layer.to_string(),
            values,
        )
    }

    fn macs_per_image(&self) -> Option<u64> {
        let size = [
            1,
            self.graph.input_channels(),
            self.input_size[0],
            self.input_size[1],
        ];
        let shapes = self.graph.infer_shapes(size).ok()?;
        Some(crate::incremental::plan_macs(&self.plan(&[]), &shapes))
    }

    fn incremental(&self, image: Tensor<4>, taps: &[&str]) -> Result<Incremental> {
        let values = self.check_input(&image)?;
        let dims = values[0].physical();
        if dims[0] != 1 {
            return Err(RuntimeError::InputShape {
                got: dims.to_vec(),
                reason: "incremental inference starts from one image".into(),
            });
        }
        let ids: Vec<NodeId> = taps.iter().map(|n| self.graph.find(n)).collect::<Result<_>>()?;
        if let Some(&id) = ids.iter().find(|&&id| values[id].to_canonical().is_some()) {
            return Err(RuntimeError::LayerIndex {
                layer: self.name(id),
                reason: "incremental inference taps layers stored as [N, C, H, W] only".into(),
            });
        }
        let image = image.to_device(&self.device);
        Ok(Incremental::new(self.plan(&ids), image, ids, values))
    }

    fn gradients(&self, images: Tensor<4>, request: &GradientRequest) -> Result<Gradients> {
        let values = self.check_input(&images)?;
        let shapes: Vec<[usize; 4]> = values.iter().map(ValueShape::canonical).collect();
        let batch = images.dims()[0];
        let wrt = self.find_all(&request.wrt_layers)?;
        let mut capture = self.find_all(&request.capture)?;
        capture.extend(&wrt);
        let objective_layer = match &request.objective {
            Some(Objective::Logit(c)) | Some(Objective::Probability(c)) => {
                self.check_classes(c, batch)?;
                None
            }
            Some(Objective::Activation {
                layer,
                channel,
                position,
            }) => {
                let id = self.graph.find(layer)?;
                let [_, c, h, w] = shapes[id];
                let bad = |reason: String| RuntimeError::LayerIndex {
                    layer: layer.clone(),
                    reason,
                };
                if *channel >= c {
                    return Err(bad(format!(
                        "channel {channel} is out of range: the layer has {c} channels"
                    )));
                }
                if let Some([r, q]) = position
                    && (*r >= h || *q >= w)
                {
                    return Err(bad(format!("position [{r}, {q}] is outside its {h}x{w} map")));
                }
                capture.push(id);
                Some(id)
            }
            None => None,
        };
        let ad = self.device.clone().autodiff();
        let input = images.to_device(&self.device).autodiff();
        let input = if request.wrt_input {
            input.require_grad()
        } else {
            input
        };
        let probes: Vec<(NodeId, Tensor<4>)> = wrt
            .iter()
            .map(|&id| (id, Tensor::zeros(values[id].physical(), &ad).require_grad()))
            .collect();
        let mut keep = capture.clone();
        keep.extend(probes.iter().map(|p| p.0));
        let overrides: Vec<(NodeId, _)> = request
            .rule_overrides
            .iter()
            .map(|(name, rule)| Ok((self.graph.find(name)?, *rule)))
            .collect::<Result<_>>()?;
        let spec = RunSpec {
            rule: Some(request.rule),
            overrides: &overrides,
            capture: &capture,
            probes: &probes,
            switches: request.switches,
            values: &values,
        };
        let out = run(&self.plan(&keep), input.clone(), &spec);
        let logits = self.logits_of(out.output);
        let scalar = match &request.objective {
            Some(Objective::Logit(c)) => Some((logits.clone() * self.one_hot(c, &ad)).sum()),
            Some(Objective::Probability(c)) => {
                Some((softmax(logits.clone(), 1) * self.one_hot(c, &ad)).sum())
            }
            Some(Objective::Activation {
                channel, position, ..
            }) => {
                let id = objective_layer.expect("set with the objective");
                let a = Self::canonical(&values, id, out.captured[&id].clone());
                let [n, _, h, w] = a.dims();
                let a = a.slice([0..n, *channel..channel + 1, 0..h, 0..w]);
                Some(match position {
                    Some([r, q]) => a.slice([0..n, 0..1, *r..r + 1, *q..q + 1]).sum(),
                    None => a.sum(),
                })
            }
            None => None,
        };
        let grads = scalar.map(|s| s.backward());
        let grad_of = |t: &Tensor<4>| -> Tensor<4> {
            grads
                .as_ref()
                .and_then(|g| t.grad(g))
                .unwrap_or_else(|| Tensor::zeros(t.dims(), &self.device))
        };
        let input_grad = request.wrt_input.then(|| grad_of(&input));
        let mut captured: BTreeMap<String, Tensor<4>> = out
            .captured
            .into_iter()
            .map(|(id, t)| (self.name(id), Self::canonical(&values, id, t.detach().inner())))
            .collect();
        let layers = probes
            .iter()
            .map(|(id, probe)| {
                let name = self.name(*id);
                let activation = captured.get(&name).cloned().expect("probed layers are captured");
                (
                    name,
                    LayerGradient {
                        activation,
                        gradient: Self::canonical(&values, *id, grad_of(probe)),
                    },
                )
            })
            .collect();
        captured.retain(|k, _| request.capture.contains(k));
        Ok(Gradients {
            logits: logits.detach().inner(),
            input: input_grad,
            layers,
            activations: captured,
            switches: out
                .switches
                .into_iter()
                .map(|(id, t)| (self.name(id), t.inner()))
                .collect(),
        })
    }
}
