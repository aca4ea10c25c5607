//! `deepsight train explainer` then `deepsight explain --method explainer`, end to end on a few
//! mosaics and the mosaic CNN with seeded random weights: early stopping writes weights, one
//! explainer pass serves two classes, weights for another model and unknown profiles are refused
//! in one line.

mod common;

use common::{fails, ok, shared, tmp};

#[test]
fn train_then_explain_two_classes_in_one_pass() {
    let fm = shared().join("data/fashion-mnist");
    if !fm.join("train-images-idx3-ubyte.gz").is_file() {
        eprintln!("skipped: no {}", fm.display());
        return;
    }
    let data = tmp("explainer-mosaic");
    let d = data.display().to_string();
    ok(&[
        "mosaic",
        "--fashion-mnist",
        &fm.display().to_string(),
        "--out",
        &d,
        "--train",
        "12",
        "--val",
        "4",
        "--test",
        "2",
    ]);
    let weights = tmp("explainer-mosaic.safetensors");
    let w = weights.display().to_string();
    let model = ["--model", "mosaic-cnn", "--random-weights", "0"];
    let (train, val) = (format!("{d}/train"), format!("{d}/val"));
    let mut args = vec!["train", "explainer"];
    args.extend(model);
    args.extend([
        "--data",
        &train,
        "--val-data",
        &val,
        "--labels",
        "dataset",
        "--multi-label",
        "--profile",
        "voc-vgg16",
        "--taps",
        "relu2,features",
        "--width",
        "8",
        "--epochs",
        "2",
        "--patience",
        "1",
        "--out",
        &w,
    ]);
    let out = ok(&args);
    assert!(out.contains("explainer weights"), "{out}");
    assert!(weights.is_file());
    let image = format!("{d}/test/images/00000.png");
    let mut args = vec!["explain", &image];
    args.extend(model);
    let out_dir = tmp("explainer-out").display().to_string();
    args.extend([
        "--method",
        "explainer",
        "--explainer-weights",
        &w,
        "--class",
        "1",
        "--class",
        "7",
        "--json",
        "--out",
        &out_dir,
    ]);
    let json: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    let m = &json["methods"][0];
    assert_eq!(m["method"], "explainer");
    assert_eq!(m["forward_passes"], 1, "two classes from one explainer pass: {m}");
    assert_eq!(m["backward_passes"], 0);
    // The weights belong to the mosaic CNN: Lite0 refuses them, naming the model.
    let err = fails(&[
        "explain",
        &image,
        "--method",
        "explainer",
        "--explainer-weights",
        &w,
    ]);
    assert!(err.contains("mosaic-cnn"), "{err}");
    let err = fails(&["train", "explainer", "--data", &d, "--profile", "nope"]);
    assert!(err.contains("--profile 'nope'"), "{err}");
}
