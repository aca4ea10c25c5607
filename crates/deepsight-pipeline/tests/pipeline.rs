//! The pipeline as a front end uses it: checks before any work, the maps equal to the methods'
//! own, pictures and raw tensors named as the CLI names them, unfitted trained weights, progress
//! and cancellation.

use deepsight_explain::Explainer;
use deepsight_explain::cam::{Cam, GradCam};
use deepsight_models::{Arch, ModelSource};
use deepsight_pipeline::{Classes, ExplainRequest, Hooks, Pipeline, PipelineError, Settings};
use deepsight_runtime::default_device;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

fn lite0() -> &'static Pipeline {
    static P: OnceLock<Pipeline> = OnceLock::new();
    P.get_or_init(|| {
        let loaded = ModelSource::Builtin {
            arch: Arch::Lite0,
            random_seed: None,
        }
        .load(&default_device())
        .unwrap();
        Pipeline::new(loaded)
    })
}

fn dog(p: &Pipeline) -> deepsight_runtime::Tensor<4> {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../samples/dog.jpg")).unwrap();
    p.batch(&[p.decode("dog.jpg", &bytes).unwrap()]).unwrap()
}

fn request(methods: &[&str]) -> ExplainRequest {
    ExplainRequest {
        methods: methods.iter().map(|m| m.to_string()).collect(),
        ..ExplainRequest::default()
    }
}

fn invalid_option(e: PipelineError) -> String {
    match e {
        PipelineError::Invalid { option, .. } => option,
        e => panic!("not an invalid option: {e}"),
    }
}

#[test]
fn prepare_refuses_a_bad_request_before_any_work_naming_the_option() {
    let p = lite0();
    let hooks = Hooks::default();
    let refuse = |r: ExplainRequest| p.prepare(&r, &hooks).err().expect("refused");
    assert_eq!(invalid_option(refuse(request(&["nope"]))), "method");
    assert_eq!(invalid_option(refuse(request(&[]))), "method");
    let r = ExplainRequest {
        classes: Classes::Given(vec![3, 1000]),
        ..request(&["gradcam"])
    };
    assert!(
        refuse(r)
            .to_string()
            .contains("class 1000: the model has 1000 classes")
    );
    let mut r = request(&["gradcam"]);
    r.classes = Classes::Top(0);
    assert_eq!(invalid_option(refuse(r)), "top");
    let mut r = request(&["gradcam"]);
    r.classes = Classes::Top(1001);
    assert!(refuse(r).to_string().contains("1001: the model has 1000 classes"));
    let mut r = request(&["gradcam"]);
    r.drawing.alpha = 1.5;
    assert_eq!(invalid_option(refuse(r)), "alpha");
    let mut r = request(&["gradcam"]);
    r.settings.gradient_sign = deepsight_pipeline::settings::Sign::Positive;
    assert_eq!(invalid_option(refuse(r)), "gradient-sign");
    let mut r = request(&["gradcam"]);
    r.feature_layer = Some("features".into());
    assert_eq!(invalid_option(refuse(r)), "feature-layer");
    let r = ExplainRequest {
        settings: Settings {
            rise_p: 1.5,
            ..Settings::default()
        },
        ..request(&["rise"])
    };
    assert_eq!(invalid_option(refuse(r)), "rise_p");
    let mut r = request(&["gradcam"]);
    r.layer = Some("nolayer".into());
    assert!(refuse(r).to_string().contains("unknown layer 'nolayer'"));
}

#[test]
fn the_report_holds_the_methods_own_maps_with_pictures_and_raw_tensors() {
    let p = lite0();
    let x = dog(p);
    let r = ExplainRequest {
        classes: Classes::Given(vec![235, 671]),
        settings: Settings {
            occlusion_window: 56,
            occlusion_stride: 56,
            ..Settings::default()
        },
        ..request(&["gradcam", "occlusion"])
    };
    let explained = Arc::new(AtomicUsize::new(0));
    let seen = explained.clone();
    let hooks = Hooks {
        explained: Some(Arc::new(move |done, total| {
            assert_eq!(total, 4);
            seen.store(done, Ordering::Relaxed);
        })),
        ..Hooks::default()
    };
    let prepared = p.prepare(&r, &hooks).unwrap();
    assert_eq!(prepared.method_names(), ["gradcam", "occlusion"]);
    let report = p.explain(&prepared, x.clone(), &hooks).unwrap().remove(0);
    assert_eq!(explained.load(Ordering::Relaxed), 4);
    let order: Vec<(&str, usize)> = report.results.iter().map(|m| (m.method, m.class)).collect();
    assert_eq!(
        order,
        [
            ("gradcam", 235),
            ("occlusion", 235),
            ("gradcam", 671),
            ("occlusion", 671)
        ]
    );
    assert_eq!(report.classes[0].name, "German shepherd");
    assert_eq!(report.top[0].index, 235);
    // The pipeline adds nothing to the method's own map.
    let direct = Cam(GradCam)
        .explain(
            p.model(),
            &deepsight_explain::Request {
                images: x,
                classes: vec![671],
                score: deepsight_explain::Score::Logit,
                layer: None,
            },
        )
        .unwrap();
    assert_eq!(report.results[2].map.data, direct.maps[0].data);
    let raw = report.raw_tensors();
    for name in [
        "gradcam@235",
        "gradcam@671",
        "gradcam.raw@235",
        "occlusion@671",
        "occlusion.probability@235",
    ] {
        let key = name.replace(".raw@235", "@235.raw");
        assert!(raw.tensors.contains_key(&key), "{key}: {:?}", raw.tensors.keys());
    }
    let occlusion = &report.results[1];
    assert!(
        occlusion.extras.iter().any(|e| e.name == "top-class"),
        "the top-class legend"
    );
    assert_eq!((occlusion.overlay.width, occlusion.overlay.height), (224, 224));
    let heat = report.results[0].heat.png();
    assert_eq!(&heat[1..4], b"PNG");
    assert_eq!(heat[25], 6, "colour type RGBA");
    let (timings, shared) = prepared.timings();
    assert_eq!(timings.len(), 2);
    assert_eq!(
        (shared.forward_passes, shared.backward_passes),
        (2, 2),
        "one pass per class"
    );
    let montage = report.montage();
    assert!(montage.width > 224 * 4, "{}", montage.width);
}

#[test]
fn a_cancelled_request_stops_a_long_method_at_its_next_report() {
    let p = lite0();
    let cancel = Arc::new(AtomicBool::new(false));
    let reports = Arc::new(AtomicUsize::new(0));
    let (flag, count) = (cancel.clone(), reports.clone());
    let hooks = Hooks {
        progress_of: Some(Arc::new(move |method| {
            assert_eq!(method, "occlusion");
            let (flag, count) = (flag.clone(), count.clone());
            deepsight_explain::Progress::new(move |_, _| {
                // A user presses cancel as the first batch finishes.
                count.fetch_add(1, Ordering::Relaxed);
                flag.store(true, Ordering::Relaxed);
            })
        })),
        cancel: Some(cancel),
        ..Hooks::default()
    };
    let r = ExplainRequest {
        settings: Settings {
            occlusion_window: 8,
            occlusion_stride: 2,
            ..Settings::default()
        },
        ..request(&["occlusion"])
    };
    let prepared = p.prepare(&r, &hooks).unwrap();
    let started = std::time::Instant::now();
    let e = p.explain(&prepared, dog(p), &hooks).expect_err("cancelled");
    assert!(matches!(e, PipelineError::Cancelled), "{e}");
    assert_eq!(reports.load(Ordering::Relaxed), 1, "stopped at the next report");
    // 109 x 109 positions would take minutes; one batch takes well under a second or two.
    assert!(started.elapsed().as_secs() < 30, "{:?}", started.elapsed());
}

#[test]
fn unfitted_trained_weights_are_refused_by_name_and_left_out_of_all() {
    let loaded = ModelSource::Builtin {
        arch: Arch::MosaicCnn,
        random_seed: Some(1),
    }
    .load(&default_device())
    .unwrap();
    let p = Pipeline::new(loaded);
    let e = p
        .prepare(&request(&["l-cam-img"]), &Hooks::default())
        .err()
        .expect("refused");
    assert!(e.to_string().contains("l-cam-img"), "{e}");
    let prepared = p.prepare(&request(&["all"]), &Hooks::default()).unwrap();
    let names = prepared.method_names();
    assert!(names.contains(&"gradcam") && !names.contains(&"l-cam-img") && !names.contains(&"explainer"));
    assert!(
        prepared.notes.iter().any(|n| n.contains("leaves out l-cam-fm")),
        "{:?}",
        prepared.notes
    );
}
