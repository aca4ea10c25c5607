//! `visualize class` and `visualize feature` through the CLI: the files, the verdicts on the
//! decoded PNGs, and one-line refusals of bad requests.

mod common;

use common::{fails, ok, tmp};

#[test]
fn class_models_write_images_verdicts_and_curves() {
    let out = tmp("class-models");
    let stdout = ok(&[
        "visualize",
        "class",
        "--class",
        "1,flamingo",
        "--steps",
        "3",
        "--judge",
        "lite0",
        "--out",
        out.to_str().unwrap(),
    ]);
    for f in [
        "class-0001-goldfish.png",
        "class-0130-flamingo.png",
        "montage.png",
        "curve.png",
        "curve.csv",
    ] {
        assert!(out.join(f).is_file(), "{f} missing: {stdout}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["settings"]["recipe"], "simonyan");
    assert_eq!(json["settings"]["steps"], 3);
    let classes = json["classes"].as_array().unwrap();
    assert_eq!(classes[1]["class"], 130);
    // The judge is the model itself here: the two verdicts on the same decoded PNG agree.
    for c in classes {
        assert_eq!(c["model"], c["judge"]);
        assert!(c["model"]["target_probability"].as_f64().unwrap() > 0.0);
    }
    let csv = std::fs::read_to_string(out.join("curve.csv")).unwrap();
    assert_eq!(csv.lines().count(), 4, "a header and one row per step");
}

#[test]
fn feature_visualisation_starts_from_an_image() {
    let out = tmp("feature-vis");
    let sample = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples/dog.jpg");
    ok(&[
        "visualize",
        "feature",
        "--layer",
        "_blocks.4",
        "--objective",
        "deepdream",
        "--start",
        sample.to_str().unwrap(),
        "--recipe",
        "lucent",
        "--steps",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(out.join("_blocks_4-deepdream.png").is_file());
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let t = &json["targets"][0];
    assert!(t["final"].as_f64().unwrap() > t["start"].as_f64().unwrap(), "{t}");
}

#[test]
fn bad_class_model_requests_are_refused_in_one_line() {
    let out = tmp("class-models-bad");
    let o = out.to_str().unwrap();
    for (args, needle) in [
        (vec!["visualize", "class", "--class", "1000", "--out", o], "1000"),
        (
            vec!["visualize", "class", "--class", "no such thing", "--out", o],
            "no such thing",
        ),
        (
            vec![
                "visualize",
                "class",
                "--class",
                "1",
                "--recipe",
                "lucent",
                "--l2",
                "0.1",
                "--out",
                o,
            ],
            "--l2",
        ),
        (
            vec![
                "visualize",
                "class",
                "--class",
                "1",
                "--judge-arch",
                "lite2",
                "--out",
                o,
            ],
            "--judge",
        ),
        (
            vec![
                "visualize",
                "feature",
                "--layer",
                "nope",
                "--channel",
                "0",
                "--out",
                o,
            ],
            "nope",
        ),
        (
            vec![
                "visualize",
                "feature",
                "--layer",
                "_blocks.4",
                "--channel",
                "999",
                "--out",
                o,
            ],
            "999",
        ),
    ] {
        let err = fails(&args);
        assert!(err.contains(needle), "{args:?}: {err}");
    }
    assert!(!out.join("montage.png").exists(), "no partial output");
}
