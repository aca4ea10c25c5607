//! `deepsight train lcam` and the L-CAM methods end to end.

mod common;

use common::{fails, ok, read_f32, shared, tmp};
use std::path::PathBuf;

#[test]
fn lcam_explains_in_one_forward_pass_and_refuses_weights_of_another_model() {
    let out = tmp("lcam");
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples/dog.jpg");
    let json = ok(&[
        "explain",
        sample.to_str().unwrap(),
        "--method",
        "l-cam-img,l-cam-fm",
        "--raw",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    for m in v["methods"].as_array().unwrap() {
        assert_eq!(m["forward_passes"], 1, "{json}");
        assert_eq!(m["backward_passes"], 0, "{json}");
    }
    // The raw map is the pre-sigmoid score at the layer's 7x7 resolution.
    let (shape, raw) = read_f32(&out.join("dog.maps.safetensors"), "l-cam-img.raw");
    assert_eq!(shape, [7, 7]);
    assert!(
        raw.iter().any(|&x| x < 0.0) || raw.iter().any(|&x| x > 1.0),
        "unnormalised"
    );
    // The shipped weights belong to lite0: another model is refused, naming both.
    let err = fails(&[
        "explain",
        sample.to_str().unwrap(),
        "--model",
        "resnet18",
        "--random-weights",
        "1",
        "--method",
        "l-cam-img",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        err.contains("'lite0'") && err.contains("not for this model"),
        "{err}"
    );
    let bad = tmp("bad-lcam.safetensors");
    std::fs::write(&bad, b"garbage").unwrap();
    let err = fails(&[
        "explain",
        sample.to_str().unwrap(),
        "--method",
        "l-cam-img",
        "--lcam-weights",
        bad.to_str().unwrap(),
    ]);
    assert!(err.contains("bad-lcam.safetensors"), "{err}");
}

#[test]
fn train_lcam_writes_weights_log_curve_and_resumes() {
    // Ten images of the sample set, one epoch each way, at lite0's real size.
    let dir = tmp("train-lcam");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let list = std::fs::read_to_string(shared().join("data/imagenet-sample-1000/dataset.txt")).unwrap();
    for line in list.lines().take(10) {
        let file = line.split(',').next().unwrap().trim().trim_start_matches("./");
        let src = shared().join("data/imagenet-sample-1000").join(file);
        std::fs::copy(&src, data.join(src.file_name().unwrap())).unwrap();
    }
    let weights = dir.join("fm.safetensors");
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "train",
            "lcam",
            "--variant",
            "fm",
            "--init",
            "cam",
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--lr",
            "0.03",
            "--data",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.push(data.to_str().unwrap().into());
        v.push("--out".into());
        v.push(weights.to_str().unwrap().into());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&str]| {
        let a = args(extra);
        ok(&a.iter().map(String::as_str).collect::<Vec<_>>())
    };
    let stopped = run(&["--stop-after", "1"]);
    assert!(stopped.contains("continue with --resume"), "{stopped}");
    assert!(!weights.exists());
    let done = run(&["--resume"]);
    assert!(done.contains("l-cam-fm weights for layer 'features'"), "{done}");
    let run_dir = dir.join("fm.run");
    for f in [
        "checkpoint.safetensors",
        "epoch-1.safetensors",
        "epoch-2.safetensors",
        "train.jsonl",
        "loss.png",
        "labels.json",
    ] {
        assert!(run_dir.join(f).is_file(), "{f} missing");
    }
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples/dog.jpg");
    let json = ok(&[
        "explain",
        sample.to_str().unwrap(),
        "--method",
        "l-cam-fm",
        "--lcam-weights",
        weights.to_str().unwrap(),
        "--json",
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    assert!(json.contains("l-cam-fm"), "{json}");
    let err = fails(&[
        "train",
        "lcam",
        "--data",
        data.to_str().unwrap(),
        "--val-fraction",
        "1.5",
    ]);
    assert!(err.contains("--val-fraction"), "{err}");
}
