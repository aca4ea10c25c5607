//! One image through every pending method and every chosen metric: the records of one image.

use super::{KEEPS, Metric, dataset, errors, saliency, segmentation};
use anyhow::{Context, Result};
use deepsight_eval::adic::{self, AdIcProfile};
use deepsight_eval::causal::{CausalMode, causal_curve};
use deepsight_eval::road::{RoadOrder, road};
use deepsight_eval::sanity::cascading_randomisation;
use deepsight_eval::{Normaliser, localisation, pointing};
use deepsight_explain::{Explainer, Explanation, Map, Request, Score};
use deepsight_runtime::{Classifier, LayeredClassifier, Tensor, to_vec};
use serde_json::json;
use std::path::Path;
use std::time::Instant;

/// The map the metrics rank: per-channel attributions (guided backprop, gradient x input) as the
/// max over channels of their absolute values (Simonyan's convention); one-channel maps as they are.
fn one_channel(m: &Map) -> Map {
    if m.channels == 1 {
        m.clone()
    } else {
        m.max_abs_over_channels()
    }
}

fn top1(logits: &[f32]) -> usize {
    (0..logits.len()).fold(0, |b, i| if logits[i] > logits[b] { i } else { b })
}

/// The model fed images in [0, 1]: ROAD imputes there, as its reference code does (its noise of
/// 0.01 is in [0, 1] units), and the model sees them normalised.
struct InUnitRange<'a>(&'a dyn LayeredClassifier, Normaliser);

impl Classifier for InUnitRange<'_> {
    fn num_classes(&self) -> usize {
        self.0.num_classes()
    }
    fn device(&self) -> deepsight_runtime::Device {
        self.0.device()
    }
    fn logits(&self, images: Tensor<4>) -> deepsight_runtime::Result<Tensor<2>> {
        let dims = images.dims();
        let per = dims[1] * dims[2] * dims[3];
        let x: Vec<f32> = to_vec(images)
            .chunks(per)
            .flat_map(|im| self.1.apply(im))
            .collect();
        self.0.logits(Tensor::from_data(
            deepsight_runtime::TensorData::new(x, dims),
            &self.0.device(),
        ))
    }
}

pub struct Ctx<'a> {
    pub model: &'a dyn LayeredClassifier,
    pub graph_model: &'a deepsight_runtime::GraphModel,
    pub sanity_depth: usize,
    pub normaliser: Normaliser,
    pub profile: AdIcProfile,
    pub metrics: &'a [Metric],
    pub batch_size: usize,
    pub causal_step: usize,
    pub seed: u64,
    pub out: &'a Path,
    pub class_names: &'a [String],
}

impl Ctx<'_> {
    fn has(&self, m: Metric) -> bool {
        self.metrics.contains(&m)
    }

    /// Every pending method's record for one image, then those of the pending segmentation
    /// `baselines` (when the image has `truths`).
    pub fn evaluate_image(
        &self,
        item: &dataset::Item,
        image: Tensor<4>,
        methods: &[&dyn Explainer],
        truths: Option<&segmentation::Truths>,
        baselines: &[&str],
    ) -> Result<Vec<serde_json::Value>> {
        let dims = image.dims();
        let [_, c, h, w] = dims;
        let x = to_vec(image.clone());
        let x01 = self.normaliser.invert(&x);
        let logits = to_vec(self.model.logits(image.clone())?);
        let class = top1(&logits);
        let request = |class: usize| Request {
            images: image.clone(),
            classes: vec![class],
            score: Score::Logit,
            layer: None,
        };
        let mut out = Vec::new();
        let mut maps: Vec<Map> = Vec::new();
        for e in methods {
            let started = Instant::now();
            let ex: Explanation = e
                .explain(self.model, &request(class))
                .with_context(|| format!("{}: {}", item.name, e.name()))?;
            let seconds = started.elapsed().as_secs_f64();
            let map = one_channel(&ex.maps[0]);
            let mut r = json!({
                "image": item.name, "method": e.name(), "label": item.label, "class": class,
                "forward_passes": ex.passes.forward, "backward_passes": ex.passes.backward,
                "seconds": seconds,
            });
            let mut metric_passes = 0;
            let needs_truth =
                self.has(Metric::Errors) || (self.has(Metric::Pointing) && item.boxes.is_some());
            // The map of the ground-truth class, when it is not the predicted one.
            let truth = if needs_truth && item.label != class {
                let gt = e
                    .explain(self.model, &request(item.label))
                    .with_context(|| format!("{}: {} for the label", item.name, e.name()))?;
                r["forward_passes_ground_truth"] = json!(gt.passes.forward);
                Some(one_channel(&gt.maps[0]))
            } else {
                None
            };
            if let Some((size, boxes)) = &item.boxes {
                let size_hw = [size[1], size[0]];
                if self.has(Metric::Localisation) {
                    let pred = match ex.extra.iter().find(|x| x.name == "box") {
                        Some(b) if b.maps[0].data.len() == 4 && b.maps[0].data[0] >= 0.0 => {
                            // A box at the model's input size, scaled to the stored image.
                            let d = &b.maps[0].data;
                            let (sx, sy) = (size[0] as f32 / w as f32, size[1] as f32 / h as f32);
                            [d[0] * sx, d[1] * sy, d[2] * sx, d[3] * sy]
                        }
                        _ => localisation::checked_box_from_map(&map, size_hw, 0.15)?,
                    };
                    let correct = class == item.label && localisation::localised(pred, boxes);
                    r["box"] = json!(pred);
                    r["localised"] = json!(correct);
                }
                if self.has(Metric::Pointing) {
                    let gt_map = truth.as_ref().unwrap_or(&map);
                    let p = pointing::checked_point(gt_map, size_hw)?;
                    r["pointing_hit"] = json!(pointing::is_hit(p, boxes, size_hw, 15.0));
                    let centre = pointing::centre(size_hw);
                    r["centre_hit"] = json!(pointing::is_hit(centre, boxes, size_hw, 15.0));
                }
            }
            if let (true, Some(truth)) = (self.has(Metric::Errors), &truth) {
                let case = errors::Case {
                    image: &item.name,
                    method: e.name(),
                    label_name: errors::class_name(self.class_names, item.label),
                    class_name: errors::class_name(self.class_names, class),
                    x01: &x01,
                    hw: [h, w],
                };
                for (key, value) in errors::analyse(self.out, &case, &map, truth)? {
                    r[key] = value;
                }
            }
            for (mode, metric, name) in [
                (CausalMode::Deletion, Metric::Deletion, "deletion"),
                (CausalMode::Insertion, Metric::Insertion, "insertion"),
            ] {
                if self.has(metric) {
                    let (curve, passes) = causal_curve(
                        self.model,
                        &x,
                        [c, h, w],
                        &map,
                        class,
                        mode,
                        self.causal_step,
                        self.batch_size,
                    )?;
                    metric_passes += passes;
                    r[format!("{name}_auc")] = json!(curve.auc);
                    r[format!("{name}_curve")] = json!(curve.scores);
                }
            }
            if self.has(Metric::Road) {
                for (order, name) in [
                    (RoadOrder::MostRelevantFirst, "road_morf"),
                    (RoadOrder::LeastRelevantFirst, "road_lerf"),
                ] {
                    let (curve, passes) = road(
                        &InUnitRange(self.model, self.normaliser),
                        &x01,
                        [c, h, w],
                        &map,
                        class,
                        order,
                        self.seed,
                        self.batch_size,
                    )?;
                    metric_passes += passes;
                    r[name] = json!(curve.scores);
                }
            }
            if self.has(Metric::Sanity) {
                let (steps, passes) = cascading_randomisation(
                    self.graph_model,
                    &request(class),
                    *e,
                    self.seed,
                    Some(self.sanity_depth),
                )?;
                metric_passes += passes;
                r["sanity_layers"] = json!(steps.iter().map(|s| s.layer.clone()).collect::<Vec<_>>());
                r["sanity_spearman"] = json!(steps.iter().map(|s| s.spearman).collect::<Vec<_>>());
            }
            if let (true, Some(t)) = (self.has(Metric::Segmentation), truths) {
                // One map per ground-truth class; the predicted class's is the one above.
                let (mut fwd, mut bwd, mut class_maps) = (0, 0, Vec::new());
                for &g in &t.labels {
                    let m = if g == class {
                        map.clone()
                    } else {
                        let ex = e
                            .explain(self.model, &request(g))
                            .with_context(|| format!("{}: {} for label {g}", item.name, e.name()))?;
                        fwd += ex.passes.forward;
                        bwd += ex.passes.backward;
                        one_channel(&ex.maps[0])
                    };
                    class_maps.push(segmentation::normalised(&m, h, w));
                }
                let merged = deepsight_eval::segmentation::merge_max(&class_maps);
                r["labels"] = json!(t.labels);
                r["segmentation_forward_passes"] = json!(fwd);
                r["segmentation_backward_passes"] = json!(bwd);
                metric_passes += segmentation::score(
                    self.model,
                    &x,
                    [c, h, w],
                    (merged, class_maps),
                    t,
                    self.batch_size,
                    &mut r,
                )
                .with_context(|| format!("{}: {}", item.name, e.name()))?;
            }
            r["metric_passes"] = json!(metric_passes);
            maps.push(map);
            out.push(r);
        }
        if self.has(Metric::Adic) && !maps.is_empty() {
            // Every method's map of this image in one batch per keep level; Y comes from the
            // clean forward pass above, run once for all of them.
            let n = maps.len();
            let images: Vec<f32> = (0..n).flat_map(|_| x01.iter().copied()).collect();
            let classes = vec![class; n];
            let y = adic::softmax(&logits)[class];
            for keep in KEEPS {
                let (conf, passes) = adic::confidences_given_y(
                    self.model,
                    &images,
                    [n, c, h, w],
                    self.normaliser,
                    &maps,
                    &classes,
                    &vec![y; n],
                    keep,
                    self.profile,
                )?;
                let tag = format!("keep{}", (keep * 100.0).round() as u32);
                for (r, cf) in out.iter_mut().zip(conf) {
                    r[format!("{tag}_y")] = json!(cf.y);
                    r[format!("{tag}_o")] = json!(cf.o);
                    let mp = r["metric_passes"].as_u64().unwrap_or(0) as usize;
                    r["metric_passes"] = json!(mp + passes / n);
                }
            }
        }
        if self.has(Metric::Saliency) && !maps.is_empty() {
            // Every method's masked image of this image in batches of --batch-size.
            let passes = saliency::score(self.model, &x, [c, h, w], &maps, class, self.batch_size, &mut out)
                .with_context(|| format!("{}: saliency metric", item.name))?;
            for r in out.iter_mut() {
                let mp = r["metric_passes"].as_u64().unwrap_or(0) as usize;
                r["metric_passes"] = json!(mp + passes / maps.len());
            }
        }
        for &name in baselines.iter().filter(|_| self.has(Metric::Segmentation)) {
            let Some(t) = truths else { break };
            let mut r = json!({
                "image": item.name, "method": name, "label": item.label, "labels": t.labels,
                "class": class, "baseline": true, "forward_passes": 0, "backward_passes": 0, "seconds": 0.0,
            });
            let maps = segmentation::baseline(name, &x01, t);
            let passes = segmentation::score(self.model, &x, [c, h, w], maps, t, self.batch_size, &mut r)
                .with_context(|| format!("{}: baseline {name}", item.name))?;
            r["metric_passes"] = json!(passes);
            out.push(r);
        }
        Ok(out)
    }
}
