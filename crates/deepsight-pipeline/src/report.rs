//! What the pipeline answers per image: its classes, every (method, class) map with its
//! pictures, the montage, and the raw maps as tensors.

use crate::picture::Heat;
use deepsight_explain::{ExtraKind, Map, Passes};
use deepsight_models::{WeightTensor, Weights};
use deepsight_render::{Canvas, Panel, montage};
use serde::Serialize;

/// A class with its probability (and logit) for one image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassScore {
    pub index: usize,
    pub name: String,
    pub probability: f32,
    pub logit: f32,
}

/// One extra output of a method (occlusion's grids, GraphCut's seeds) drawn for one image.
#[derive(Debug, Clone)]
pub struct ExtraPicture {
    /// Stable name (`<method>.<name>` in file and tensor names).
    pub name: &'static str,
    pub kind: ExtraKind,
    pub map: Map,
    pub picture: Canvas,
    /// The montage panel's title lines.
    pub title: Vec<String>,
}

/// One method's explanation of one image for one class.
#[derive(Debug, Clone)]
pub struct MethodResult {
    pub method: &'static str,
    pub signed: bool,
    pub class: usize,
    pub map: Map,
    /// The method's own grid before spreading to pixels (occlusion, RISE), if any.
    pub raw: Option<Map>,
    pub heat: Heat,
    /// The heat layer over the image at the request's opacity.
    pub overlay: Canvas,
    pub title: Vec<String>,
    pub extras: Vec<ExtraPicture>,
}

/// Everything explained about one image.
#[derive(Debug, Clone)]
pub struct ImageReport {
    /// The most probable classes (at least the explained ranks, at most 5 more).
    pub top: Vec<ClassScore>,
    /// The explained classes, in the request's order.
    pub classes: Vec<ClassScore>,
    /// The model's view of the image (resized, cropped; RGB).
    pub view: Canvas,
    /// Per explained class (outer), per method (inner), flattened in that order.
    pub results: Vec<MethodResult>,
    /// Whether names carry the class (several classes explained).
    pub several_classes: bool,
}

/// Seconds and passes of one method (or of the passes shared by several).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Timing {
    pub method: String,
    pub seconds: f64,
    pub forward_passes: usize,
    pub backward_passes: usize,
    /// Whether the method read the shared passes (its passes are then what it would cost alone).
    pub reads_shared: bool,
}

impl Timing {
    pub(crate) fn add(&mut self, seconds: f64, passes: Passes) {
        self.seconds += seconds;
        self.forward_passes += passes.forward;
        self.backward_passes += passes.backward;
    }
}

impl ImageReport {
    /// `@<class>` when several classes were explained, else nothing (tensor names).
    pub fn class_suffix(&self, class: usize) -> String {
        if self.several_classes {
            format!("@{class}")
        } else {
            String::new()
        }
    }

    /// The input panel, then every map and extra picture, 5 to a row.
    pub fn montage(&self) -> Canvas {
        let top = &self.top[0];
        let mut panels = vec![Panel {
            canvas: self.view.clone(),
            title: vec![
                "input".into(),
                format!("top: {}", top.name),
                format!("p = {:.3}", top.probability),
            ],
        }];
        for r in &self.results {
            panels.push(Panel {
                canvas: r.overlay.clone(),
                title: r.title.clone(),
            });
            for x in &r.extras {
                panels.push(Panel {
                    canvas: x.picture.clone(),
                    title: x.title.clone(),
                });
            }
        }
        montage(&panels, 5)
    }

    /// The raw maps as tensors: `<method>[@class]` (channels x H x W, or H x W), its grid
    /// `<method>[@class].raw`, and each extra `<method>.<name>[@class]`.
    pub fn raw_tensors(&self) -> Weights {
        let tensor = |m: &Map| WeightTensor {
            shape: if m.channels == 1 {
                vec![m.height, m.width]
            } else {
                vec![m.channels, m.height, m.width]
            },
            data: m.data.clone(),
        };
        let mut out = Weights::default();
        for r in &self.results {
            let suffix = self.class_suffix(r.class);
            for x in &r.extras {
                out.tensors
                    .insert(format!("{}.{}{suffix}", r.method, x.name), tensor(&x.map));
            }
            let name = format!("{}{suffix}", r.method);
            out.tensors.insert(name.clone(), tensor(&r.map));
            if let Some(m) = &r.raw {
                let t = WeightTensor {
                    shape: vec![m.height, m.width],
                    data: m.data.clone(),
                };
                out.tensors.insert(format!("{name}.raw"), t);
            }
        }
        out
    }
}
