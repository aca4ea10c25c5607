//! Sharded `deepsight evaluate` as a cluster runs it: N processes started like the pods of a
//! Kubernetes Indexed Job (`JOB_COMPLETION_INDEX=i`, `--shards N`, one shared `--out`), some of
//! them killed (SIGKILL) mid-run and started again (they resume), then `--merge`: the merged
//! report equals the one of a single unsharded run to 1e-6 in every number (timings aside).

mod common;

use common::{fails, ok, shared, tmp};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SHARDS: usize = 3;
const IMAGES: &str = "18";

fn args<'a>(data: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "evaluate",
        "--data",
        data,
        "--limit",
        IMAGES,
        "--methods",
        "gradcam,saliency",
        "--metrics",
        "adic,pointing,localisation,deletion,errors",
        "--causal-step",
        "10000",
        "--out",
        out,
    ]
}

fn spawn_shard(data: &str, out: &str, index: usize) -> Child {
    let n = SHARDS.to_string();
    let mut a = args(data, out);
    a.extend(["--shards", &n]);
    Command::new(env!("CARGO_BIN_EXE_deepsight"))
        .args(&a)
        .env("JOB_COMPLETION_INDEX", index.to_string())
        .env_remove("SLURM_ARRAY_TASK_ID")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts")
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path).map_or(0, |t| t.lines().count())
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .unwrap()
}

/// Every number of `a` and `b` equal to 1e-6 (relative for large ones), every other value equal;
/// `seconds` (wall time) skipped.
fn same(a: &Value, b: &Value, at: &str) {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= 1e-6 * x.abs().max(1.0), "{at}: {x} vs {y}");
        }
        (Value::Object(x), Value::Object(y)) => {
            let keys = |m: &serde_json::Map<String, Value>| m.keys().cloned().collect::<Vec<_>>();
            assert_eq!(keys(x), keys(y), "{at}");
            for (k, v) in x {
                if k != "seconds" {
                    same(v, &y[k], &format!("{at}.{k}"));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                same(v, w, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

fn by_key(dir: &Path) -> BTreeMap<String, Value> {
    std::fs::read_to_string(dir.join("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .map(|v| (v["key"].as_str().unwrap().to_string(), v))
        .collect()
}

#[test]
fn evaluate_shards_killed_and_resumed_merge_to_the_single_run() {
    let data = shared().join("data/imagenet-val-1300");
    let d = data.to_str().unwrap();
    let root = tmp("evaluate-shards");
    let _ = std::fs::remove_dir_all(&root);
    let (single, sharded, merged) = (root.join("single"), root.join("sharded"), root.join("merged"));
    let (so, sh, mo) = (
        single.to_str().unwrap(),
        sharded.to_str().unwrap(),
        merged.to_str().unwrap(),
    );

    // The controller: every index at once; 0 and 2 are killed once they have written a record.
    let mut pods: Vec<Child> = (0..SHARDS).map(|i| spawn_shard(d, sh, i)).collect();
    let folder = |i: usize| sharded.join(format!("shard-{i}-of-{SHARDS}"));
    let mut killed_mid_run = 0;
    for i in [0, 2] {
        let started = Instant::now();
        while lines(&folder(i).join("records.jsonl")) == 0
            && pods[i].try_wait().unwrap().is_none()
            && started.elapsed() < Duration::from_secs(120)
        {
            std::thread::sleep(Duration::from_millis(10));
        }
        if pods[i].try_wait().unwrap().is_none() {
            pods[i].kill().unwrap(); // SIGKILL
            killed_mid_run += 1;
        }
        pods[i].wait().unwrap();
    }
    // A pod is killed within a few ms of its first record, long before its sixth: both were
    // stopped mid-run.
    assert_eq!(killed_mid_run, 2);
    let finished = pods.remove(1).wait_with_output().unwrap();
    assert!(
        finished.status.success(),
        "{}",
        String::from_utf8_lossy(&finished.stderr)
    );

    // The unsharded run, meanwhile.
    ok(&args(d, so));

    let err = fails(&["evaluate", "--merge", sh, "--out", mo]);
    assert!(
        err.contains("incomplete") && err.contains("run it again (it resumes)"),
        "{err}"
    );
    // Only some shards given: the missing indices are named.
    let one = folder(1);
    let err = fails(&["evaluate", "--merge", one.to_str().unwrap(), "--out", mo]);
    assert!(err.contains("missing shards 0, 2 of 3 (0-based"), "{err}");

    // The controller restarts the killed indices: they resume.
    for i in [0, 2] {
        let before = lines(&folder(i).join("records.jsonl"));
        let out = spawn_shard(d, sh, i).wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        eprintln!("shard {i}: {before} records when killed");
        if before >= 2 {
            assert!(stderr.contains("resuming: "), "{stderr}");
        }
        let run = json(&folder(i).join("run.json"));
        assert_eq!(run["complete"], true);
        assert_eq!(run["shard"]["index"], i);
        assert_eq!(run["images"].as_array().unwrap().len(), 6);
    }
    ok(&["evaluate", "--merge", sh, "--out", mo]);

    // Every record of the single run, under the same key, with the same numbers.
    let (a, b) = (by_key(&single), by_key(&merged));
    assert_eq!(a.len(), 36);
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, v) in &a {
        same(v, &b[k], k);
    }
    // The summary: every number to 1e-6.
    same(
        &json(&single.join("results.json")),
        &json(&merged.join("results.json")),
        "results.json",
    );
    for name in ["results.md", "results.csv", "deletion.png", "errors.md"] {
        assert!(merged.join(name).exists(), "{name}");
    }
    let (ra, rb) = (json(&single.join("run.json")), json(&merged.join("run.json")));
    assert_eq!(ra["fingerprint"], rb["fingerprint"]);
    assert_eq!(ra["images"], rb["images"]);
    // The error pictures came along.
    for r in b.values().filter(|r| r.get("error_png").is_some()) {
        assert!(merged.join(r["error_png"].as_str().unwrap()).exists(), "{r}");
    }
    // The merged folder is the single run's: running it again there computes nothing.
    let again = Command::new(env!("CARGO_BIN_EXE_deepsight"))
        .args(args(d, mo))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(
        again.status.success() && stderr.contains("resuming: 18 of 18 images"),
        "{stderr}"
    );

    // More shards than images: the empty ones finish with nothing to do.
    let few = root.join("few");
    let f = few.to_str().unwrap();
    let mut a = args(d, f);
    a[4] = "2";
    a.extend(["--shard", "3/4"]);
    ok(&a);
    assert_eq!(
        json(&few.join("shard-3-of-4/run.json"))["images"],
        serde_json::json!([])
    );
}
