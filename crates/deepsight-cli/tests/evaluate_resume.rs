//! `deepsight evaluate`'s output folder: records keyed by everything that determines them (a run
//! of another configuration is refused, saying what changed; `--fresh` starts over), one writer
//! at a time (the folder's lock), and the argument and dataset errors that come before any work.

mod common;

use common::{deepsight, fails, ok, shared, tmp};
use std::fs::File;
use std::path::{Path, PathBuf};

fn image(k: usize) -> PathBuf {
    let data = shared().join("data/imagenet-val-1300");
    let list = std::fs::read_to_string(data.join("dataset.txt")).unwrap();
    let line = list.lines().nth(k).unwrap();
    let file = line.split(',').next().unwrap().trim().trim_start_matches("./");
    data.join(file)
}

/// A list of `lines` (`FILE, LABEL`) in a fresh folder; returns the list's path.
fn list(dir: &Path, lines: &[String]) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("dataset.txt");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    path
}

fn cheap<'a>(data: &'a str, out: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "evaluate",
        "--data",
        data,
        "--methods",
        "gradcam",
        "--metrics",
        "adic",
        "--out",
        out,
    ];
    args.extend_from_slice(extra);
    args
}

#[test]
fn evaluate_limit_shard_and_label_errors_come_before_any_work() {
    let dir = tmp("evaluate-errors-first");
    let data = list(
        &dir,
        &[
            format!("{}, 1", image(0).display()),
            format!("{}, 5000", image(1).display()),
        ],
    );
    let d = data.to_str().unwrap();
    let out = dir.join("out");
    let o = out.to_str().unwrap();
    let err = fails(&cheap(d, o, &["--limit", "0"]));
    assert!(err.contains("--limit 0: must be at least 1"), "{err}");
    let err = fails(&cheap(d, o, &["--shard", "3/3"]));
    assert!(err.contains("--shard '3/3'") && err.contains("0-based"), "{err}");
    let err = fails(&cheap(d, o, &["--shard", "0/0"]));
    assert!(err.contains("at least 1"), "{err}");
    let e = std::process::Command::new(env!("CARGO_BIN_EXE_deepsight"))
        .args(cheap(d, o, &["--shards", "2"]))
        .env_remove("JOB_COMPLETION_INDEX")
        .env_remove("SLURM_ARRAY_TASK_ID")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(!e.status.success() && err.contains("no shard index"), "{err}");
    let e = std::process::Command::new(env!("CARGO_BIN_EXE_deepsight"))
        .args(cheap(d, o, &["--shards", "2"]))
        .env("JOB_COMPLETION_INDEX", "2")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&e.stderr);
    assert!(
        err.contains("JOB_COMPLETION_INDEX=2 is out of range for --shards 2"),
        "{err}"
    );
    // The label the model has no output for: the file and the line.
    let err = fails(&cheap(d, o, &[]));
    assert!(
        err.contains(&format!(
            "{}:2: label 5000 is out of range: the model has 1000 classes",
            data.display()
        )),
        "{err}"
    );
    assert!(!out.exists(), "nothing written before the checks pass");
    let empty = list(&dir, &["# nothing".to_string()]);
    let err = fails(&cheap(empty.to_str().unwrap(), o, &[]));
    assert!(
        err.contains(&format!("'{}': no images listed", empty.display())),
        "{err}"
    );
    let twice = list(
        &dir,
        &[
            format!("{}, 1", image(0).display()),
            format!("{}, 2", image(0).display()),
        ],
    );
    let err = fails(&cheap(twice.to_str().unwrap(), o, &[]));
    assert!(
        err.contains(&format!("{}:2:", twice.display())) && err.contains("listed already on line 1"),
        "{err}"
    );
    let err = fails(&["evaluate", "--merge", dir.to_str().unwrap(), "--out", o]);
    assert!(err.contains("neither an evaluate output"), "{err}");
}

#[test]
fn evaluate_refuses_records_of_another_configuration_and_starts_over_with_fresh() {
    let dir = tmp("evaluate-fingerprint");
    let picture = dir.join("pictures");
    let data = list(&dir, &[format!("{}, {}", picture.join("a.jpg").display(), 472)]);
    std::fs::create_dir_all(&picture).unwrap();
    std::fs::copy(image(0), picture.join("a.jpg")).unwrap();
    let (d, out) = (data.to_str().unwrap(), dir.join("out"));
    let o = out.to_str().unwrap();
    ok(&cheap(d, o, &[]));
    let run: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(run["complete"], true);
    assert_eq!(run["config"]["metrics"], "adic");
    assert_eq!(run["config"]["model"], "lite0 embedded weights");
    assert_eq!(run["config"]["model_sha256"].as_str().unwrap().len(), 64);
    let records = std::fs::read_to_string(out.join("records.jsonl")).unwrap();
    assert_eq!(records.lines().count(), 1);
    // The same run again: reused, not recomputed.
    let again = deepsight(&cheap(d, o, &[]));
    assert!(String::from_utf8_lossy(&again.stderr).contains("resuming: 1 of 1 images"));
    assert_eq!(
        std::fs::read_to_string(out.join("records.jsonl")).unwrap(),
        records
    );
    // Another method is added to the folder; the first one's record stays.
    ok(&[
        "evaluate",
        "--data",
        d,
        "--methods",
        "gradcam,saliency",
        "--metrics",
        "adic",
        "--out",
        o,
    ]);
    assert_eq!(
        std::fs::read_to_string(out.join("records.jsonl"))
            .unwrap()
            .lines()
            .count(),
        2
    );
    // Another metric set, model, preprocessing, seed: refused, saying what changed.
    for (extra, says) in [
        (
            vec!["--metrics", "adic,deletion"],
            "metrics: 'adic' -> 'adic,deletion'",
        ),
        (
            vec!["--random-weights", "3"],
            "model: 'lite0 embedded weights' -> 'lite0 random weights seed 3'",
        ),
        (
            vec!["--preprocess", "torchvision"],
            "preprocessing: 'efficientnet-lite preset",
        ),
        (vec!["--adic-profile", "pgc"], "adic_profile: 'lcam' -> 'pgc'"),
        (vec!["--batch-size", "4"], "batch_size: '16' -> '4'"),
    ] {
        let mut args = vec!["evaluate", "--data", d, "--methods", "gradcam", "--out", o];
        if extra[0] != "--metrics" {
            args.extend(["--metrics", "adic"]);
        }
        args.extend(extra.iter().copied());
        let err = fails(&args);
        assert!(
            err.contains(&format!("'{o}' holds records of another configuration")) && err.contains(says),
            "{extra:?}: {err}"
        );
        assert!(err.contains("--fresh"), "{err}");
    }
    // Another image under the same name: refused, never mixed.
    std::fs::copy(image(1), picture.join("a.jpg")).unwrap();
    let err = fails(&cheap(d, o, &[]));
    assert!(err.contains("'./a.jpg'") || err.contains("a.jpg'"), "{err}");
    assert!(err.contains("other image bytes or ground truth"), "{err}");
    // --fresh discards the folder's records and starts over.
    ok(&cheap(
        d,
        o,
        &["--metrics", "adic,deletion", "--causal-step", "20000", "--fresh"],
    ));
    let records = std::fs::read_to_string(out.join("records.jsonl")).unwrap();
    assert_eq!(records.lines().count(), 1);
    assert!(records.contains("deletion_auc"), "{records}");
    // A folder of an older deepsight (records, no run.json) is refused too.
    std::fs::remove_file(out.join("run.json")).unwrap();
    let err = fails(&cheap(d, o, &[]));
    assert!(err.contains("holds records but no run.json"), "{err}");
}

#[test]
fn evaluate_refuses_a_folder_another_process_holds_and_ignores_a_released_lock() {
    let dir = tmp("evaluate-lock");
    let data = list(&dir, &[format!("{}, 472", image(0).display())]);
    let out = dir.join("out");
    std::fs::create_dir_all(&out).unwrap();
    // Another process's lock: this test process holds the flock the CLI takes.
    let held = File::create(out.join("evaluate.lock")).unwrap();
    held.try_lock().unwrap();
    let (d, o) = (data.to_str().unwrap(), out.to_str().unwrap());
    let err = fails(&cheap(d, o, &[]));
    assert!(
        err.contains(&format!("'{o}' is in use by another deepsight evaluate")),
        "{err}"
    );
    assert!(!out.join("records.jsonl").exists() && !out.join("run.json").exists());
    // Released (as the kernel does when the holder dies): the lock file left behind is no obstacle.
    drop(held);
    ok(&cheap(d, o, &[]));
    assert!(out.join("results.json").exists());
}
