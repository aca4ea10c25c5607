//! `deepsight train zf`, then `visualize evolution` and `visualize probes` on its snapshots, on a
//! tiny synthetic Fashion-MNIST-format set whose two classes a linear probe separates.

mod common;

use common::{fails, ok, tmp};
use deepsight_train::mosaic::write_idx_gz;

/// `n` 28x28 items: class 0 bright in the top half, class 1 in the bottom half, with a seeded
/// speckle so that images differ.
fn write_split(dir: &std::path::Path, prefix: &str, n: usize, seed: u64) {
    let mut pixels = Vec::with_capacity(n * 784);
    let mut labels = Vec::with_capacity(n);
    let mut state = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    for i in 0..n {
        let class = i % 2;
        for y in 0..28 {
            for _ in 0..28 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let bright = (y < 14) == (class == 0);
                let base: u8 = if bright { 200 } else { 20 };
                pixels.push(base.saturating_add((state % 40) as u8));
            }
        }
        labels.push(class as u8);
    }
    write_idx_gz(
        &dir.join(format!("{prefix}-images-idx3-ubyte.gz")),
        &[n, 28, 28],
        &pixels,
    )
    .unwrap();
    write_idx_gz(&dir.join(format!("{prefix}-labels-idx1-ubyte.gz")), &[n], &labels).unwrap();
}

#[test]
fn train_zf_then_evolution_and_probes() {
    let data = tmp("zf-data");
    std::fs::create_dir_all(&data).unwrap();
    write_split(&data, "train", 64, 1);
    write_split(&data, "t10k", 32, 2);
    let out = tmp("zf.safetensors");
    let run = tmp("zf.run");
    let d = data.to_str().unwrap();
    let printed = ok(&[
        "train",
        "zf",
        "--data",
        d,
        "--epochs",
        "2",
        "--batch-size",
        "16",
        "--init",
        "kaiming",
        "--half",
        "--out",
        out.to_str().unwrap(),
        "--run-dir",
        run.to_str().unwrap(),
    ]);
    assert!(printed.contains("snapshot 64 of 64"), "{printed}");
    let snaps: Vec<String> = [1, 5, 64]
        .iter()
        .map(|m| {
            run.join(format!("snapshots/at-{m}-of-64.safetensors"))
                .display()
                .to_string()
        })
        .collect();
    for s in &snaps {
        assert!(std::path::Path::new(s).is_file(), "{s}");
    }
    assert!(run.join("loss.png").is_file() && run.join("summary.json").is_file());

    let evo = tmp("evo");
    ok(&[
        "visualize",
        "evolution",
        "--checkpoints",
        &snaps.join(","),
        "--arch",
        "fmnist-zf",
        "--data",
        d,
        "--layer",
        "relu2",
        "--channels",
        "0,3",
        "--out",
        evo.to_str().unwrap(),
    ]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(evo.join("evolution.json")).unwrap()).unwrap();
    assert_eq!(json["checkpoints"], serde_json::json!(["1/64", "5/64", "64/64"]));
    assert_eq!(json["channels"][1]["channel"], 3);
    assert!(evo.join("evolution.relu2.png").is_file());

    let probes = tmp("probes");
    ok(&[
        "visualize",
        "probes",
        "--data",
        d,
        "--model",
        out.to_str().unwrap(),
        "--arch",
        "fmnist-zf",
        "--layers",
        "relu1,relu4",
        "--epochs",
        "40",
        "--batch",
        "64",
        "--lr",
        "0.01",
        "--out",
        probes.to_str().unwrap(),
    ]);
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(probes.join("probes.json")).unwrap()).unwrap();
    for l in json["layers"].as_array().unwrap() {
        assert!(l["test_accuracy"].as_f64().unwrap() >= 0.95, "{l}");
    }
    assert!(probes.join("probes.png").is_file() && probes.join("probes.csv").is_file());

    let err = fails(&["train", "zf", "--arch", "lite0", "--data", d]);
    assert!(err.contains("fmnist-zf or fmnist-alex"), "{err}");
}
