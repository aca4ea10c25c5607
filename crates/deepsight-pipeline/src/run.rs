//! A checked, built request ([`Prepared`]) and its run over batches of images: one shared
//! forward+backward per backward rule for the gradient and CAM methods, then every method, then
//! the pictures.

use crate::Pipeline;
use crate::error::{PipelineError, Result};
use crate::extras;
use crate::methods;
use crate::picture::Heat;
use crate::report::{ClassScore, ExtraPicture, ImageReport, MethodResult, Timing};
use crate::request::{Classes, ExplainRequest, Hooks};
use deepsight_explain::perturbation::occlusion::{FeatureChoice, FeatureTap};
use deepsight_explain::registry::{MethodOptions, methods as registered};
use deepsight_explain::{Explainer, Explanation, ExtraKind, Request, Score, SharedPasses};
use deepsight_render::Canvas;
use deepsight_runtime::{Classifier, LayeredClassifier, RuntimeError, Tensor, to_vec};
use std::sync::Mutex;
use std::time::Instant;

/// A request checked against the model and its methods built: nothing of it can fail for a
/// reason the request could have told beforehand.
pub struct Prepared {
    explainers: Vec<Box<dyn Explainer>>,
    request: ExplainRequest,
    /// Notes for the user (methods left out of `all`).
    pub notes: Vec<String>,
    timings: Mutex<(Vec<Timing>, Timing)>,
}

fn applies(option: &str, to: &str, names: &[&str], methods: &[&'static str]) -> Result<()> {
    if methods.iter().any(|m| names.contains(m)) {
        return Ok(());
    }
    Err(PipelineError::invalid(
        option,
        format!(" applies to the {to}: add one to the methods (--method)"),
    ))
}

impl Pipeline {
    /// Checks `request` against the model and builds its methods with `hooks`' progress.
    pub fn prepare(&self, request: &ExplainRequest, hooks: &Hooks) -> Result<Prepared> {
        let all = request.methods.iter().any(|m| m == "all");
        let names: Vec<&'static str> = if all {
            registered().iter().map(|m| m.name).collect()
        } else {
            request
                .methods
                .iter()
                .map(|n| methods::known_name(n))
                .collect::<Result<_>>()?
        };
        if names.is_empty() {
            return Err(PipelineError::invalid("method", ": no method given"));
        }
        request.settings.check()?;
        let alpha = request.drawing.alpha;
        if !(0.0..=1.0).contains(&alpha) {
            return Err(PipelineError::invalid(
                "alpha",
                format!(" {alpha}: must be between 0 and 1"),
            ));
        }
        let k = self.model().num_classes();
        match &request.classes {
            Classes::Top(0) => return Err(PipelineError::invalid("top", " must be at least 1")),
            Classes::Top(r) if *r > k => {
                return Err(PipelineError::invalid(
                    "top",
                    format!(" {r}: the model has {k} classes"),
                ));
            }
            Classes::Top(_) => {}
            Classes::Given(c) if c.is_empty() => {
                return Err(PipelineError::invalid("class", ": no class given"));
            }
            Classes::Given(c) => {
                if let Some(&bad) = c.iter().find(|&&c| c >= k) {
                    let reason = format!(" {bad}: the model has {k} classes (0..={})", k - 1);
                    return Err(PipelineError::invalid("class", reason));
                }
            }
        }
        if request.feature.is_some() {
            applies(
                "feature",
                "deconvnet and occlusion methods",
                &["deconvnet", "occlusion"],
                &names,
            )?;
        }
        if request.feature_layer.is_some() {
            applies("feature-layer", "occlusion method", &["occlusion"], &names)?;
        }
        if request.settings.gradient_sign != crate::settings::Sign::Absolute {
            applies(
                "gradient-sign",
                "saliency and smoothgrad methods",
                &["saliency", "smoothgrad"],
                &names,
            )?;
        }
        let layers = self.model().layers();
        let flags = [
            ("layer", &request.layer),
            ("feature_layer", &request.feature_layer),
        ];
        for (flag, layer) in flags.into_iter().filter_map(|(f, l)| Some((f, l.as_ref()?))) {
            let hint = self.model().default_cam_layer().unwrap_or_default();
            let Some(info) = layers.iter().find(|l| &l.name == layer) else {
                return Err(RuntimeError::UnknownLayer {
                    name: layer.clone(),
                    hint,
                }
                .into());
            };
            // A map over a flat vector has one position: it would be a uniform picture.
            if info.shape.len() != 4 || info.shape[2] * info.shape[3] < 2 {
                return Err(PipelineError::invalid(
                    flag,
                    format!(
                        " '{layer}' is a flat layer of shape {:?}: maps need a feature map [N, C, H, W] \
                         with more than one position (e.g. '{hint}')",
                        info.shape
                    ),
                ));
            }
        }
        if let Some(f) = &request.feature {
            let hint = self.model().default_cam_layer().unwrap_or_default();
            let Some(info) = layers.iter().find(|l| l.name == f.layer) else {
                return Err(RuntimeError::UnknownLayer {
                    name: f.layer.clone(),
                    hint,
                }
                .into());
            };
            let channels = info.shape.get(1).copied().unwrap_or(0);
            if f.channel >= channels {
                return Err(PipelineError::invalid(
                    "feature",
                    format!(
                        " {}:{}: layer '{}' has {channels} channels (0..={})",
                        f.layer,
                        f.channel,
                        f.layer,
                        channels.saturating_sub(1)
                    ),
                ));
            }
        }
        let feature = match (&request.feature, &request.feature_layer) {
            (Some(f), _) => FeatureChoice::Channel(FeatureTap {
                layer: f.layer.clone(),
                channel: f.channel,
            }),
            (None, layer) => FeatureChoice::Strongest {
                layer: layer.clone().or_else(|| request.layer.clone()),
            },
        };
        let base = MethodOptions {
            lcam_img: request.learned.lcam_img.clone(),
            lcam_fm: request.learned.lcam_fm.clone(),
            explainer: request.learned.explainer.clone(),
            ..request.settings.method_options(self.preprocess(), feature)
        };
        let mut notes = Vec::new();
        let mut explainers = Vec::new();
        for name in names {
            if let (Some(f), "deconvnet") = (&request.feature, name) {
                explainers.push(Box::new(f.clone()) as Box<dyn Explainer>);
                continue;
            }
            let options = MethodOptions {
                progress: hooks.progress(name),
                ..base.clone()
            };
            if let Some(e) = methods::build(name, &options, self.model(), all, &mut notes)? {
                explainers.push(e);
            }
        }
        let timings = explainers
            .iter()
            .map(|e| Timing {
                method: e.name().to_string(),
                ..Timing::default()
            })
            .collect();
        Ok(Prepared {
            explainers,
            request: request.clone(),
            notes,
            timings: Mutex::new((timings, Timing::default())),
        })
    }

    /// Explains a batch `[N, 3, H, W]` of model inputs as `prepared` says.
    pub fn explain(&self, prepared: &Prepared, x: Tensor<4>, hooks: &Hooks) -> Result<Vec<ImageReport>> {
        let model = self.model();
        let request = &prepared.request;
        let [n, _, h, w] = x.dims();
        let k = model.num_classes();
        let ranks = match &request.classes {
            Classes::Top(r) => *r,
            Classes::Given(c) => c.len(),
        };
        let logits = to_vec(model.logits(x.clone())?);
        crate::finite_scores(&logits, k)?;
        let probabilities: Vec<Vec<f32>> = logits.chunks(k).map(deepsight_eval::adic::softmax).collect();
        let score = |i: usize, c: usize| ClassScore {
            index: c,
            name: self.class_name(c),
            probability: probabilities[i][c],
            logit: logits[i * k + c],
        };
        let tops: Vec<Vec<ClassScore>> = (0..n)
            .map(|i| {
                crate::top_k(&logits[i * k..(i + 1) * k], (ranks.max(5)).min(k))
                    .into_iter()
                    .map(|t| score(i, t.0))
                    .collect()
            })
            .collect();
        let classes_of = |i: usize| -> Vec<usize> {
            match &request.classes {
                Classes::Top(r) => tops[i].iter().take(*r).map(|t| t.index).collect(),
                Classes::Given(c) => c.clone(),
            }
        };
        let views: Vec<Canvas> = {
            let pixels = to_vec(x.clone());
            (0..n)
                .map(|i| {
                    let v = self
                        .preprocess()
                        .denormalise(&pixels[i * 3 * h * w..(i + 1) * 3 * h * w], [h, w]);
                    Canvas {
                        width: v.width,
                        height: v.height,
                        pixels: v.pixels,
                    }
                })
                .collect()
        };
        let mut reports: Vec<ImageReport> = (0..n)
            .map(|i| ImageReport {
                top: tops[i].clone(),
                classes: classes_of(i).into_iter().map(|c| score(i, c)).collect(),
                view: views[i].clone(),
                results: Vec::new(),
                several_classes: ranks > 1,
            })
            .collect();
        let total = ranks * prepared.explainers.len() * n;
        let mut done = 0;
        for r in 0..ranks {
            let req = Request {
                images: x.clone(),
                classes: (0..n).map(|i| classes_of(i)[r]).collect(),
                score: if request.probability {
                    Score::Probability
                } else {
                    Score::Logit
                },
                layer: request.layer.clone(),
            };
            let started = Instant::now();
            let mut needs = Vec::new();
            for (m, e) in prepared.explainers.iter().enumerate() {
                let n = e.needs(model, &req)?;
                prepared.lock().0[m].reads_shared |= !n.is_empty();
                needs.extend(n);
            }
            let shared = SharedPasses::run(model, &req, &needs)?;
            prepared
                .lock()
                .1
                .add(started.elapsed().as_secs_f64(), shared.passes);
            for (m, e) in prepared.explainers.iter().enumerate() {
                if hooks.is_cancelled() {
                    return Err(PipelineError::Cancelled);
                }
                let started = Instant::now();
                let Explanation {
                    maps,
                    raw,
                    passes,
                    extra,
                } = e.explain_shared(model, &req, &shared)?;
                prepared.lock().0[m].add(started.elapsed().as_secs_f64(), passes);
                let mut raw = raw.map(|r| r.into_iter());
                for (i, map) in maps.into_iter().enumerate() {
                    let class = req.classes[i];
                    let report = &mut reports[i];
                    let heat = Heat::of(&map, e.signed(), request.drawing.colormap);
                    let overlay = heat.over(&report.view, request.drawing.alpha);
                    let title = match (&request.feature, e.name()) {
                        (Some(f), "deconvnet") => vec![
                            "deconvnet".into(),
                            format!("{}:{}", f.layer, f.channel),
                            "top activation".into(),
                        ],
                        _ => vec![
                            e.name().into(),
                            self.class_name(class),
                            format!("p = {:.3}", score(i, class).probability),
                        ],
                    };
                    let extras = extra
                        .iter()
                        .filter_map(|x| {
                            let grid = x.maps.get(i)?.clone();
                            let caption = x.captions.get(i).cloned();
                            Some(self.extra_picture(
                                e.name(),
                                x.name,
                                x.kind,
                                grid,
                                caption,
                                class,
                                &report.view,
                                request,
                            ))
                        })
                        .collect();
                    report.results.push(MethodResult {
                        method: e.name(),
                        signed: e.signed(),
                        class,
                        map,
                        raw: raw.as_mut().and_then(|r| r.next()),
                        heat,
                        overlay,
                        title,
                        extras,
                    });
                }
                done += n;
                if let Some(f) = &hooks.explained {
                    f(done, total);
                }
            }
        }
        Ok(reports)
    }

    #[allow(clippy::too_many_arguments)]
    fn extra_picture(
        &self,
        method: &'static str,
        name: &'static str,
        kind: ExtraKind,
        map: deepsight_explain::Map,
        caption: Option<String>,
        class: usize,
        view: &Canvas,
        request: &ExplainRequest,
    ) -> ExtraPicture {
        let (cmap, alpha) = (request.drawing.colormap, request.drawing.alpha);
        let (picture, range) = match kind {
            ExtraKind::Attribution => (Heat::of(&map, true, cmap).over(view, alpha), String::new()),
            _ => extras::picture(view, &map, kind, cmap, alpha, &|c| self.class_name(c)),
        };
        // A caption (occlusion's feature map) says more than the class name.
        let what = caption.unwrap_or_else(|| self.class_name(class));
        let title = match kind {
            ExtraKind::Attribution => vec![format!("{method} {name}"), what, "deconvnet".into()],
            _ => vec![format!("{method} {name}"), what, range],
        };
        ExtraPicture {
            name,
            kind,
            map,
            picture,
            title,
        }
    }
}

impl Prepared {
    fn lock(&self) -> std::sync::MutexGuard<'_, (Vec<Timing>, Timing)> {
        self.timings.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Each method's seconds and passes so far, and those of the passes they shared (timed once;
    /// a method's own passes say what it would cost alone).
    pub fn timings(&self) -> (Vec<Timing>, Timing) {
        self.lock().clone()
    }

    /// The passes really run so far: the shared ones and those of the methods that read none.
    pub fn passes_run(&self) -> (usize, usize) {
        let (methods, shared) = self.timings();
        let own = methods.iter().filter(|t| !t.reads_shared);
        let forward = shared.forward_passes + own.clone().map(|t| t.forward_passes).sum::<usize>();
        (
            forward,
            shared.backward_passes + own.map(|t| t.backward_passes).sum::<usize>(),
        )
    }

    /// The methods to run, in order.
    pub fn method_names(&self) -> Vec<&'static str> {
        self.explainers.iter().map(|e| e.name()).collect()
    }

    /// Explanations per image (methods x classes).
    pub fn per_image(&self) -> usize {
        self.explainers.len()
            * match &self.request.classes {
                Classes::Top(r) => *r,
                Classes::Given(c) => c.len(),
            }
    }

    pub fn request(&self) -> &ExplainRequest {
        &self.request
    }
}
