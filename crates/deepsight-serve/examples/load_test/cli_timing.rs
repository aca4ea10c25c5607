//! The load test's yardsticks: percentiles, and the CLI's own time on the same image.

use crate::{Args, Result};
use serde_json::{Value, json};
use std::process::{Command, Stdio};
use std::time::Instant;

pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // Nearest rank.
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    if s.is_empty() {
        return f64::NAN;
    }
    let n = s.len();
    if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    }
}

/// The CLI's own time on the image: `explain` (wall, and its JSON's per-method and shared
/// seconds) and `classify` (wall: process start, model load, decode, one forward).
pub fn time_cli(a: &Args) -> Result<Value> {
    std::fs::create_dir_all(&a.cli_out).map_err(|e| format!("{}: {e}", a.cli_out.display()))?;
    let image = a.image.to_string_lossy().to_string();
    let out_dir = a.cli_out.to_string_lossy().to_string();
    let run = |args: &[&str]| -> Result<(f64, Vec<u8>)> {
        let t = Instant::now();
        let o = Command::new(&a.server)
            .args(args)
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run {}: {e}", a.server.display()))?;
        let wall = t.elapsed().as_secs_f64();
        if !o.status.success() {
            return Err(format!("`deepsight {}` failed: {}", args.join(" "), o.status));
        }
        Ok((wall, o.stdout))
    };
    let (mut explain_wall, mut classify_wall, mut shared, mut compute) = (vec![], vec![], vec![], vec![]);
    let mut per_method: Vec<(String, Vec<f64>)> = Vec::new();
    for _ in 0..a.cli_runs {
        let (wall, stdout) = run(&[
            "explain", &image, "--method", &a.methods, "--json", "--out", &out_dir,
        ])?;
        explain_wall.push(wall);
        let v: Value =
            serde_json::from_slice(&stdout).map_err(|e| format!("explain --json: not JSON: {e}"))?;
        let shared_s = v["shared_passes"]["seconds"].as_f64().unwrap_or(0.0);
        let mut total = shared_s;
        for m in v["methods"].as_array().into_iter().flatten() {
            let name = m["method"].as_str().unwrap_or("?").to_string();
            let ms = m["ms_per_image"].as_f64().unwrap_or(f64::NAN);
            total += m["seconds"].as_f64().unwrap_or(0.0);
            match per_method.iter_mut().find(|(n, _)| *n == name) {
                Some((_, v)) => v.push(ms),
                None => per_method.push((name, vec![ms])),
            }
        }
        shared.push(shared_s);
        compute.push(total);
        let (wall, _) = run(&["classify", &image])?;
        classify_wall.push(wall);
    }
    let methods: serde_json::Map<String, Value> = per_method
        .iter()
        .map(|(n, v)| (n.clone(), json!(median(v))))
        .collect();
    Ok(json!({
        "runs": a.cli_runs,
        "explain_wall_s": median(&explain_wall),
        "explain_wall_all_s": explain_wall,
        "classify_wall_s": median(&classify_wall),
        "classify_wall_all_s": classify_wall,
        "explain_compute_s": median(&compute),
        "shared_passes_s": median(&shared),
        "ms_per_image": methods,
    }))
}
