//! `deepsight mosaic` then `deepsight evaluate --metrics segmentation`, end to end: the baselines'
//! numbers follow from the masks alone (`perfect` has IoU 1 and MAE 0, `constant-0` has MAE equal
//! to the object fraction), whatever the classifier; Lite0 is only the plumbing's model.

mod common;

use common::{fails, ok, tmp};
use deepsight_train::mosaic::{ITEM, read_mask, write_idx_gz};
use serde_json::Value;
use std::path::Path;

/// A tiny Fashion-MNIST: `n` items, label `i % 10`, each a rectangle of visible values.
fn synthetic(dir: &Path, prefix: &str, n: usize) {
    let mut pixels = vec![0u8; n * ITEM * ITEM];
    for i in 0..n {
        let (w, h) = (6 + (i * 5) % 15, 8 + (i * 7) % 20);
        let (x0, y0) = ((i * 3) % (ITEM - w + 1), (i * 11) % (ITEM - h + 1));
        for y in y0..y0 + h {
            for x in x0..x0 + w {
                pixels[i * ITEM * ITEM + y * ITEM + x] = 80 + ((x * 5 + y * 9) % 170) as u8;
            }
        }
    }
    let labels: Vec<u8> = (0..n).map(|i| (i % 10) as u8).collect();
    write_idx_gz(
        &dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
        &[n, ITEM, ITEM],
        &pixels,
    )
    .unwrap();
    write_idx_gz(&dir.join(format!("{prefix}-labels-idx1-ubyte.gz")), &[n], &labels).unwrap();
}

fn records(out: &Path) -> Vec<Value> {
    std::fs::read_to_string(out.join("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn mosaic_then_evaluate_segmentation_gives_the_baselines_numbers() {
    let src = tmp("seg-src");
    std::fs::create_dir_all(&src).unwrap();
    synthetic(&src, "train", 60);
    synthetic(&src, "t10k", 30);
    let set = tmp("seg-mosaic");
    let s = set.to_str().unwrap();
    let src_s = src.to_str().unwrap();
    ok(&[
        "mosaic",
        "--fashion-mnist",
        src_s,
        "--out",
        s,
        "--train",
        "2",
        "--val",
        "1",
        "--test",
        "3",
    ]);
    for f in [
        "classes.txt",
        "README.md",
        "train/dataset.txt",
        "val/dataset.txt",
        "test/masks/00002.png",
    ] {
        assert!(set.join(f).exists(), "{f}");
    }
    let out = tmp("seg-eval");
    let table = ok(&[
        "evaluate",
        "--data",
        set.join("test").to_str().unwrap(),
        "--model",
        "lite0",
        "--methods",
        "gradcam",
        "--metrics",
        "segmentation",
        "--out",
        out.to_str().unwrap(),
    ]);
    for row in [
        "| gradcam | 3 |",
        "| perfect | 3 |",
        "| constant-0 | 3 |",
        "| intensity | 3 |",
    ] {
        assert!(table.contains(row), "{row}: {table}");
    }
    assert!(
        table.contains("mean IoU") && table.contains("`nn-explainer`"),
        "{table}"
    );
    let list = std::fs::read_to_string(set.join("test/dataset.txt")).unwrap();
    let recs = records(&out);
    assert_eq!(recs.len(), 3 * 6, "one record per (image, method or baseline)");
    for line in list.lines() {
        let (file, labels) = line.rsplit_once(',').unwrap();
        let labels: Vec<u64> = labels.split_whitespace().map(|l| l.parse().unwrap()).collect();
        let stem = Path::new(file.trim()).file_stem().unwrap().to_str().unwrap();
        let mask = read_mask(&set.join(format!("test/masks/{stem}.png"))).unwrap();
        let fraction = mask.values.iter().filter(|&&v| v > 0).count() as f64 / mask.values.len() as f64;
        let rec = |method: &str| {
            recs.iter()
                .find(|r| r["image"] == file.trim() && r["method"] == method)
                .unwrap_or_else(|| panic!("{file} {method}"))
        };
        let f = |method: &str, key: &str| {
            rec(method)[key]
                .as_f64()
                .unwrap_or_else(|| panic!("{method} {key}"))
        };
        let close = |a: f64, b: f64, what: &str| assert!((a - b).abs() < 1e-6, "{file} {what}: {a} vs {b}");
        close(f("perfect", "seg_mean_iou"), 1.0, "perfect IoU");
        close(f("perfect", "seg_class_iou"), 1.0, "perfect class IoU");
        close(f("perfect", "seg_continuous_iou"), 1.0, "perfect continuous IoU");
        close(f("perfect", "seg_mae"), 0.0, "perfect MAE");
        close(f("perfect", "seg_soft_accuracy"), 1.0, "perfect accuracy");
        close(f("perfect", "seg_area"), fraction, "perfect area");
        // Nearest-neighbour scaling 112 -> 224 keeps the fraction exactly.
        close(f("constant-0", "seg_mae"), fraction, "constant-0 MAE");
        close(f("constant-0", "seg_mean_iou"), 0.0, "constant-0 IoU");
        close(f("constant-1", "seg_mae"), 1.0 - fraction, "constant-1 MAE");
        close(f("constant-1", "seg_mean_iou"), fraction, "constant-1 IoU");
        close(f("constant-0.5", "seg_mae"), 0.5, "constant-0.5 MAE");
        assert_eq!(rec("gradcam")["labels"], serde_json::json!(labels));
        for key in [
            "seg_mean_iou",
            "seg_mean_f1",
            "seg_mae",
            "seg_p_thresholded",
            "seg_class_iou",
        ] {
            let v = f("gradcam", key);
            assert!((0.0..=1.0).contains(&v), "gradcam {key} {v}");
        }
        assert!(f("gradcam", "seg_saliency").is_finite());
        assert_eq!(rec("gradcam")["forward_passes"], 1);
    }
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let perfect = json["methods"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["method"] == "perfect")
        .unwrap();
    assert!((perfect["seg_mean_iou"].as_f64().unwrap() - 1.0).abs() < 1e-6);
    assert!(out.join("results.csv").exists());
    // Resuming recomputes nothing.
    ok(&[
        "evaluate",
        "--data",
        set.join("test").to_str().unwrap(),
        "--methods",
        "gradcam",
        "--metrics",
        "segmentation",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(records(&out).len(), 18);

    // A list without masks cannot be scored; a bad label line names the file and line.
    let bare = tmp("seg-bare");
    std::fs::create_dir_all(&bare).unwrap();
    let img = set.join("test/images/00000.png");
    std::fs::write(bare.join("dataset.txt"), format!("{}, 1 2\n", img.display())).unwrap();
    let err = fails(&[
        "evaluate",
        "--data",
        bare.to_str().unwrap(),
        "--metrics",
        "segmentation",
    ]);
    assert!(err.contains("needs ground-truth masks"), "{err}");
    std::fs::write(bare.join("dataset.txt"), format!("{}, 1 x\n", img.display())).unwrap();
    let err = fails(&[
        "evaluate",
        "--data",
        bare.to_str().unwrap(),
        "--metrics",
        "segmentation",
    ]);
    assert!(err.contains("dataset.txt:1") && err.contains("'x'"), "{err}");
    let err = fails(&[
        "mosaic",
        "--fashion-mnist",
        "/nonexistent",
        "--out",
        bare.to_str().unwrap(),
    ]);
    assert!(err.contains("/nonexistent/train-images-idx3-ubyte.gz"), "{err}");
}
