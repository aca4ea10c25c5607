//! The torchvision model zoo (`scripts/make_torchvision_zoo.py`): 20 classifiers with every
//! tensor random, exported by PyTorch, against PyTorch's logits, saliency and Grad-CAM. Ignored
//! by default (it needs the script's 1.6 GB of exports):
//!
//! ```text
//! python3 scripts/make_torchvision_zoo.py /tmp/zoo
//! DEEPSIGHT_ZOO_DIR=/tmp/zoo cargo test --release -p deepsight-onnx --test torchvision_zoo -- --ignored --nocapture
//! ```

mod common;

#[test]
#[ignore]
fn torchvision_zoo_matches_pytorch() {
    let dir = std::path::PathBuf::from(std::env::var("DEEPSIGHT_ZOO_DIR").expect("DEEPSIGHT_ZOO_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            (p.extension()? == "json").then(|| p.file_stem().unwrap().to_string_lossy().into_owned())
        })
        .collect();
    names.sort();
    assert!(!names.is_empty(), "no references in {}", dir.display());
    println!("| model | logits diff / max | saliency r | Grad-CAM r | import s | logits s | gradients s |");
    println!("|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for name in &names {
        let r: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join(format!("{name}.json"))).unwrap()).unwrap();
        let row = common::zoo::check(name, &dir.join(format!("{name}.onnx")), &r);
        rows.push(format!(
            "| {name} | {:.1e} | {:.6} | {:.6} | {:.2} | {:.3} | {:.3} |",
            row.logits_rel,
            row.saliency_r,
            row.grad_cam_r,
            row.seconds_import,
            row.seconds_logits,
            row.seconds_gradients
        ));
    }
    println!("{}", rows.join("\n"));
}
