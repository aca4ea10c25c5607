//! The perturbation methods' benchmark tasks (`deepsight bench --heavy`): minutes per model, so
//! they run fewer times (a third of `--repeats`, one warm-up), as `peers.py --heavy` does.

use crate::bench::Task;
use deepsight_explain::perturbation::ablation_cam::AblationCam;
use deepsight_explain::perturbation::occlusion::{
    FeatureChoice, Fill, Inference, Occlusion, OcclusionProfile,
};
use deepsight_explain::perturbation::rise::Rise;
use deepsight_explain::perturbation::score_cam::ScoreCam;
use deepsight_explain::{Explainer, Request};
use deepsight_runtime::LayeredClassifier;

/// Whether `task` is one of these (timed with fewer repeats).
pub fn is_heavy(task: &str) -> bool {
    ["occlusion", "scorecam", "rise", "ablationcam"]
        .iter()
        .any(|p| task.starts_with(p))
}

fn occlusion(stride: usize, inference: Inference) -> Occlusion {
    // Captum's settings in peers.py: 32x32 window, baseline 0, the logit, 64 images per forward.
    Occlusion {
        profile: OcclusionProfile::Captum,
        window: [32, 32],
        stride: [stride, stride],
        fill: Fill::Constant(0.0),
        inference,
        batch_size: 64,
        // Captum tracks no feature map (Zeiler & Fergus's feature grid is extra work).
        feature: FeatureChoice::Off,
        ..Default::default()
    }
}

/// The heavy tasks on one image's request.
pub fn tasks<'a>(m: &'a dyn LayeredClassifier, req: &'a Request) -> Vec<Task<'a>> {
    let methods: Vec<(&'static str, Box<dyn Explainer>)> = vec![
        (
            "occlusion w32 s16",
            Box::new(occlusion(16, Inference::Incremental)),
        ),
        (
            "occlusion w32 s16, full inference",
            Box::new(occlusion(16, Inference::Full)),
        ),
        ("occlusion w32 s8", Box::new(occlusion(8, Inference::Incremental))),
        (
            "occlusion w32 s8, full inference",
            Box::new(occlusion(8, Inference::Full)),
        ),
        // pytorch-grad-cam's batch in peers.py.
        (
            "scorecam",
            Box::new(ScoreCam {
                batch_size: 64,
                ..Default::default()
            }),
        ),
        (
            "ablationcam",
            Box::new(AblationCam {
                batch_size: 64,
                ..Default::default()
            }),
        ),
        (
            "rise (1000 masks)",
            Box::new(Rise {
                masks: 1000,
                batch_size: 64,
                ..Default::default()
            }),
        ),
    ];
    methods
        .into_iter()
        .map(|(task, e)| -> Task<'a> {
            (
                task,
                1,
                0.0,
                Box::new(move || drop(e.explain(m, req).expect("runs"))),
            )
        })
        .collect()
}
