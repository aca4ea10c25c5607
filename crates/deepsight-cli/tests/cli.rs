//! The `deepsight` binary end to end: classification against the reference, and bad input.

mod common;

use common::{fails, ok, read_f32, shared, tmp};
use std::path::PathBuf;

fn manifest() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(shared().join("fixtures/manifest.json")).unwrap()).unwrap()
}

fn top5(row: &[f32]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..row.len()).collect();
    idx.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    idx.truncate(5);
    idx
}

#[test]
fn classify_fixture_jpegs_gives_the_reference_top5() {
    let m = manifest();
    let images: Vec<String> = m["lite0"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            shared()
                .join("data/imagenet-val-1300/data")
                .join(v.as_str().unwrap())
                .display()
                .to_string()
        })
        .collect();
    let mut args = vec!["classify", "--json"];
    args.extend(images.iter().map(String::as_str));
    let json: serde_json::Value = serde_json::from_str(&ok(&args)).unwrap();
    let (_, logits) = read_f32(&shared().join("fixtures/lite0.safetensors"), "logits");
    for (i, result) in json["results"].as_array().unwrap().iter().enumerate() {
        let ours: Vec<usize> = result["top"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["class"].as_u64().unwrap() as usize)
            .collect();
        assert_eq!(
            ours,
            top5(&logits[i * 1000..(i + 1) * 1000]),
            "image {}",
            images[i]
        );
    }
}

#[test]
fn classify_tensor_writes_logits_matching_the_reference() {
    let input = shared().join("fixtures/lite0.safetensors");
    let out = tmp("logits.safetensors");
    let text = ok(&[
        "classify",
        "--tensor",
        input.to_str().unwrap(),
        "--logits-out",
        out.to_str().unwrap(),
        "--top",
        "1",
    ]);
    assert_eq!(text.lines().count(), 12, "{text}");
    let (shape, ours) = read_f32(&out, "logits");
    let (_, reference) = read_f32(&input, "logits");
    assert_eq!(shape, vec![6, 1000]);
    let diff = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max);
    assert!(diff <= 1e-4, "max abs diff {diff}");
}

#[test]
fn convert_then_load_the_safetensors_gives_the_same_model() {
    let st = tmp("lite0.safetensors");
    let pth = shared().join("models/efficientnet-lite0-57934424.pth");
    ok(&["convert", pth.to_str().unwrap(), st.to_str().unwrap()]);
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples/dog.jpg");
    let a = ok(&["classify", sample.to_str().unwrap()]);
    let b = ok(&[
        "classify",
        sample.to_str().unwrap(),
        "--model",
        st.to_str().unwrap(),
        "--arch",
        "lite0",
    ]);
    assert_eq!(a, b);
    let c = ok(&[
        "classify",
        sample.to_str().unwrap(),
        "--model",
        pth.to_str().unwrap(),
        "--arch",
        "lite0",
    ]);
    assert_eq!(a, c);
}

#[test]
fn layers_lists_lite0() {
    let text = ok(&["layers"]);
    assert!(
        text.contains("_blocks.15._depthwise_conv") && text.contains("DepthwiseConv2d"),
        "{text}"
    );
    assert!(text.contains("default CAM layer: features"), "{text}");
}

#[test]
fn bad_input_gets_one_line_naming_the_file() {
    let missing = fails(&["classify", "no/such/image.jpg"]);
    assert!(
        missing.contains("no/such/image.jpg") && missing.contains("cannot read"),
        "{missing}"
    );

    let corrupt = tmp("corrupt.jpg");
    std::fs::write(&corrupt, b"\xff\xd8\xff\xe0 definitely not a jpeg").unwrap();
    let e = fails(&["classify", corrupt.to_str().unwrap()]);
    assert!(
        e.contains("cannot decode image") && e.contains("corrupt.jpg"),
        "{e}"
    );

    let pth = shared().join("models/efficientnet-lite0-57934424.pth");
    let truncated = tmp("truncated.pth");
    std::fs::write(&truncated, &std::fs::read(&pth).unwrap()[..1_000_000]).unwrap();
    let e = fails(&[
        "classify",
        "--model",
        truncated.to_str().unwrap(),
        corrupt.to_str().unwrap(),
    ]);
    assert!(e.contains("truncated.pth") && e.contains("truncated"), "{e}");

    let garbage = tmp("garbage.safetensors");
    std::fs::write(&garbage, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}xxxxxx").unwrap();
    let e = fails(&["classify", "--tensor", garbage.to_str().unwrap()]);
    assert!(
        e.contains("garbage.safetensors") && e.contains("not a valid safetensors"),
        "{e}"
    );

    let e = fails(&["classify", "--model", "resnet51", corrupt.to_str().unwrap()]);
    assert!(
        e.contains("resnet51") && e.contains("neither a built-in model"),
        "{e}"
    );

    let e = fails(&[
        "classify",
        "--model",
        garbage.to_str().unwrap(),
        "--arch",
        "lite0",
        corrupt.to_str().unwrap(),
    ]);
    assert!(e.contains("garbage.safetensors"), "{e}");
}

#[test]
fn wrong_tensor_shapes_are_refused_and_leave_no_output() {
    let write = |name: &str, tensor: &str, shape: Vec<usize>| {
        let n: usize = shape.iter().product();
        let data: Vec<u8> = (0..n).flat_map(|_| 0.5f32.to_le_bytes()).collect();
        let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape, &data).unwrap();
        let path = tmp(name);
        std::fs::write(&path, safetensors::serialize([(tensor, view)], None).unwrap()).unwrap();
        path
    };
    let out = tmp("never-written.safetensors");
    let rank3 = write("rank3.safetensors", "input", vec![3, 224, 224]);
    let e = fails(&[
        "classify",
        "--tensor",
        rank3.to_str().unwrap(),
        "--logits-out",
        out.to_str().unwrap(),
    ]);
    assert!(
        e.contains("rank3.safetensors") && e.contains("[N, C, H, W]"),
        "{e}"
    );
    let channels = write("channels.safetensors", "input", vec![1, 4, 32, 32]);
    let e = fails(&[
        "classify",
        "--tensor",
        channels.to_str().unwrap(),
        "--logits-out",
        out.to_str().unwrap(),
    ]);
    assert!(
        e.contains("channels.safetensors") && e.contains("expects 3 channels, got 4"),
        "{e}"
    );
    let named = write("named.safetensors", "x", vec![1, 3, 32, 32]);
    let e = fails(&["classify", "--tensor", named.to_str().unwrap()]);
    assert!(e.contains("no tensor named 'input'"), "{e}");
    assert!(!out.exists(), "a failed run must not leave an output file");
}

#[test]
fn classify_labels_reports_accuracy() {
    let m = manifest();
    let classes = m["lite0"]["target_classes"].as_array().unwrap();
    let lines: Vec<String> = m["lite0"]["images"]
        .as_array()
        .unwrap()
        .iter()
        .zip(classes)
        .map(|(f, c)| {
            format!(
                "{}, {}",
                shared()
                    .join("data/imagenet-val-1300/data")
                    .join(f.as_str().unwrap())
                    .display(),
                c
            )
        })
        .collect();
    let labels = tmp("labels.txt");
    std::fs::write(&labels, lines.join("\n")).unwrap();
    // The target classes are the reference model's own top-1 predictions.
    let json: serde_json::Value =
        serde_json::from_str(&ok(&["classify", "--json", "--labels", labels.to_str().unwrap()])).unwrap();
    assert_eq!(json["images"], 6);
    assert_eq!(json["top1"], 100.0);
    std::fs::write(&labels, "no comma here\n").unwrap();
    let e = fails(&["classify", "--labels", labels.to_str().unwrap()]);
    assert!(
        e.contains("line 1") && e.contains("expected 'FILE, label'"),
        "{e}"
    );
}

#[test]
fn bench_runs_and_writes_json() {
    let out = tmp("bench.json");
    let text = ok(&[
        "bench",
        "--models",
        "lite0",
        "--repeats",
        "1",
        "--no-batch16",
        "--only",
        "forward",
        "--json",
        out.to_str().unwrap(),
    ]);
    assert!(
        text.contains("GEMM peak") && text.contains("| lite0 | forward | 1 |"),
        "{text}"
    );
    let rows: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert!(rows[0]["median_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn onnx_models_load_list_layers_and_refuse_bad_files() {
    let tiny = shared().join("fixtures/tiny_resnet.onnx");
    let table = ok(&["layers", tiny.to_str().unwrap()]);
    assert!(table.contains("/layer2/Relu_output_0"), "{table}");
    assert!(
        table.contains("default CAM layer: /layer2/Relu_output_0"),
        "{table}"
    );

    let bytes = std::fs::read(&tiny).unwrap();
    let cut = tmp("cut.onnx");
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let err = fails(&["layers", "--model", cut.to_str().unwrap()]);
    assert!(
        err.starts_with("error: ") && err.contains("cut.onnx") && err.contains("ONNX"),
        "{err}"
    );

    let err = fails(&["layers", tiny.to_str().unwrap(), "--input-size", "32x32"]);
    assert!(err.contains("fixed at 64x64, but 32x32 was asked for"), "{err}");
    let err = fails(&["layers", tiny.to_str().unwrap(), "--input-size", "32by32"]);
    assert!(err.contains("not a size like 224x224"), "{err}");
    let err = fails(&["layers", "--model", tiny.to_str().unwrap(), "--arch", "vgg16"]);
    assert!(
        err.contains("--arch 'vgg16' does not apply to an ONNX file"),
        "{err}"
    );
    let err = fails(&["classify", "x.jpg", "--preprocess", "imagenet"]);
    assert!(err.contains("--preprocess 'imagenet': unknown preset"), "{err}");
    let weights = tmp("w.safetensors");
    std::fs::write(&weights, b"").unwrap();
    let err = fails(&["layers", "--model", weights.to_str().unwrap()]);
    assert!(
        err.contains("say which architecture it is for with --arch"),
        "{err}"
    );
}

#[test]
fn explain_writes_montage_overlays_raw_maps_and_json() {
    let out = tmp("explain");
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples/dog.jpg");
    let json = ok(&[
        "explain",
        sample.to_str().unwrap(),
        "--method",
        "gradcam,saliency,guided-backprop",
        "--raw",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["images"][0]["classes"][0]["class"], 235, "{json}");
    let methods = v["methods"].as_array().unwrap();
    assert_eq!(methods.len(), 3);
    assert!(methods.iter().all(|m| m["forward_passes"] == 1), "{json}");
    // gradcam and saliency share one plain pass; guided-backprop needs its own.
    assert_eq!(v["shared_passes"]["forward_passes"], 2, "{json}");
    assert_eq!(v["shared_passes"]["backward_passes"], 2, "{json}");
    for f in [
        "dog.montage.png",
        "dog.gradcam.png",
        "dog.saliency.png",
        "dog.guided-backprop.png",
    ] {
        let bytes = std::fs::read(out.join(f)).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{f}");
    }
    let (shape, _) = read_f32(&out.join("dog.maps.safetensors"), "gradcam");
    assert_eq!(shape, [224, 224]);
    assert_eq!(
        read_f32(&out.join("dog.maps.safetensors"), "gradcam.raw").0,
        [7, 7]
    );
    assert_eq!(
        read_f32(&out.join("dog.maps.safetensors"), "saliency").0,
        [224, 224]
    );
    assert_eq!(
        read_f32(&out.join("dog.maps.safetensors"), "guided-backprop").0,
        [3, 224, 224]
    );

    let err = fails(&["explain", sample.to_str().unwrap(), "--method", "gradcam,nope"]);
    assert!(err.contains("--method 'nope': unknown method"), "{err}");
    let err = fails(&["explain", sample.to_str().unwrap(), "--class", "1000"]);
    assert!(err.contains("--class 1000: the model has 1000 classes"), "{err}");
    let err = fails(&[
        "explain",
        sample.to_str().unwrap(),
        "--layer",
        "nolayer",
        "--method",
        "gradcam",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(err.contains("unknown layer 'nolayer'"), "{err}");
    let err = fails(&[
        "explain",
        sample.to_str().unwrap(),
        "--method",
        "gradcam",
        "--feature",
        "features:1",
    ]);
    assert!(
        err.contains("--feature applies to the deconvnet and occlusion methods"),
        "{err}"
    );
    let err = fails(&[
        "explain",
        sample.to_str().unwrap(),
        "--method",
        "deconvnet",
        "--feature",
        "features",
    ]);
    assert!(err.contains("expected LAYER:CHANNEL"), "{err}");
    let doc = ok(&["methods", "--explain", "gradcam"]);
    assert!(doc.contains("# Equation") && doc.contains("Selvaraju"), "{doc}");
}

#[test]
fn evaluate_writes_the_table_and_resumes_without_recomputing() {
    let data = shared().join("data/imagenet-val-1300");
    let out = tmp("evaluate");
    let run = |limit: &str| {
        ok(&[
            "evaluate",
            "--data",
            data.to_str().unwrap(),
            "--limit",
            limit,
            "--methods",
            "gradcam,saliency",
            "--metrics",
            "adic,pointing,localisation,deletion,sanity",
            "--sanity-depth",
            "2",
            "--causal-step",
            "5000",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let table = run("2");
    assert!(
        table.contains("| gradcam | 2 |") && table.contains("| saliency | 2 |"),
        "{table}"
    );
    assert!(
        table.contains("AD/IC `lcam`") && table.contains("`torchray`"),
        "profiles named: {table}"
    );
    let first = std::fs::read_to_string(out.join("records.jsonl")).unwrap();
    assert_eq!(first.lines().count(), 4, "one record per (image, method)");
    // A stop in the middle of a write leaves a cut line: it is dropped and redone.
    let cut = &first[..first.len() - 40];
    std::fs::write(out.join("records.jsonl"), cut).unwrap();
    let table = run("3");
    assert!(table.contains("| gradcam | 3 |"), "{table}");
    let second = std::fs::read_to_string(out.join("records.jsonl")).unwrap();
    let lines: Vec<&str> = second.lines().collect();
    assert_eq!(lines.len(), 6);
    // The three complete records of the first run are kept as they were (not recomputed).
    for (a, b) in first.lines().take(3).zip(&lines) {
        assert_eq!(a, *b);
    }
    for name in ["results.md", "results.csv", "results.json", "deletion.png"] {
        assert!(out.join(name).exists(), "{name}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let gradcam = &json["methods"][0];
    assert_eq!(gradcam["method"], "gradcam");
    assert_eq!(gradcam["forward_passes"], 1.0);
    assert!(gradcam["AD_keep100"].as_f64().unwrap() >= 0.0);
    let err = fails(&["evaluate", "--data", "/nonexistent/list.txt"]);
    assert!(err.contains("/nonexistent/list.txt"), "{err}");
    let err = fails(&[
        "evaluate",
        "--data",
        data.to_str().unwrap(),
        "--methods",
        "nomethod",
        "--limit",
        "1",
    ]);
    assert!(err.contains("--methods 'nomethod': unknown method"), "{err}");
}

#[test]
fn evaluate_errors_compares_the_predicted_and_true_class_maps_of_misclassified_images() {
    let data = shared().join("data/imagenet-val-1300");
    let out = tmp("evaluate-errors");
    let table = ok(&[
        "evaluate",
        "--data",
        data.to_str().unwrap(),
        "--limit",
        "12",
        "--methods",
        "gradcam",
        "--metrics",
        "adic,errors",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(
        table.contains("misclassified images") && table.contains("mean IoU top 15%"),
        "{table}"
    );
    let records: Vec<serde_json::Value> = std::fs::read_to_string(out.join("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 12);
    let wrong: Vec<&serde_json::Value> = records.iter().filter(|r| r["class"] != r["label"]).collect();
    assert!(!wrong.is_empty(), "the first 12 images hold misclassified ones");
    for r in &records {
        let misclassified = r["class"] != r["label"];
        assert_eq!(r.get("error_pearson").is_some(), misclassified, "{r}");
        assert_eq!(r.get("error_iou15").is_some(), misclassified, "{r}");
    }
    let errors_md = std::fs::read_to_string(out.join("errors.md")).unwrap();
    for r in &wrong {
        let p = r["error_pearson"].as_f64().unwrap();
        let iou = r["error_iou15"].as_f64().unwrap();
        assert!((-1.0..=1.0).contains(&p) && (0.0..=1.0).contains(&iou), "{r}");
        assert_eq!(r["forward_passes_ground_truth"], 1);
        assert!(errors_md.contains(r["image"].as_str().unwrap()), "{errors_md}");
        assert!(
            errors_md.contains(r["label_name"].as_str().unwrap()),
            "{errors_md}"
        );
        assert!(out.join(r["error_png"].as_str().unwrap()).exists(), "{r}");
    }
    let listed = errors_md.lines().filter(|l| l.contains("](errors/")).count();
    assert_eq!(listed, wrong.len(), "{errors_md}");
    for name in ["errors-similar.gradcam.png", "errors-different.gradcam.png"] {
        assert!(out.join(name).exists(), "{name}");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(json["methods"][0]["misclassified"], wrong.len());
}
