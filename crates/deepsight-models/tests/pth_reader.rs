//! The restricted `.pth` reader: both torch formats, strided views, dtypes, and refusal of code.

use deepsight_models::pth::read_pth;
use std::path::PathBuf;

fn data(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn check(name: &str) {
    let w = read_pth(&data(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    let conv = &w.tensors["conv.weight"];
    assert_eq!(conv.shape, vec![2, 3, 2, 2]);
    assert_eq!(conv.data, (0..24).map(|i| i as f32 / 8.0).collect::<Vec<_>>());
    // fc.weight was saved as the transpose of arange(12).reshape(3, 4): a strided view.
    let fc = &w.tensors["fc.weight"];
    assert_eq!(fc.shape, vec![4, 3]);
    assert_eq!(
        fc.data,
        vec![0.0, 4.0, 8.0, 1.0, 5.0, 9.0, 2.0, 6.0, 10.0, 3.0, 7.0, 11.0]
    );
    assert_eq!(w.tensors["bn.running_var"].data, vec![0.5, 1.5]);
    assert_eq!(w.tensors["half"].data, vec![1.0, -2.5]);
    assert!(
        !w.tensors.contains_key("bn.num_batches_tracked"),
        "integer counters are not weights"
    );
}

#[test]
fn reads_the_legacy_format() {
    check("tiny_legacy.pth");
}

#[test]
fn reads_the_zip_format() {
    check("tiny_zip.pth");
}

#[test]
fn reads_the_real_lite0_weights() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("assets/efficientnet-lite0-57934424.pth");
    let w = read_pth(&path).unwrap();
    // 296 tensors of which 49 are BatchNorm's integer counters.
    assert_eq!(w.tensors.len(), 296 - 49);
    let params: usize = w.tensors.values().map(|t| t.data.len()).sum();
    assert_eq!(params, 4_694_073 - 49);
}

#[test]
fn refuses_a_pickle_that_would_run_code() {
    let e = read_pth(&data("malicious.pth")).unwrap_err().to_string();
    assert!(
        e.contains("malicious.pth") && e.contains("refusing to load") && e.contains("system"),
        "{e}"
    );
    assert!(!std::path::Path::new("/tmp/deepsight-pwned").exists());
}

#[test]
fn truncated_and_foreign_files_get_clear_errors() {
    let bytes = std::fs::read(data("tiny_legacy.pth")).unwrap();
    let dir = std::env::temp_dir().join(format!("deepsight-pth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    for (name, content, expect) in [
        ("cut.pth", bytes[..bytes.len() - 10].to_vec(), "truncated"),
        ("head.pth", bytes[..40].to_vec(), "truncated"),
        ("text.pth", b"hello, world".to_vec(), "not a PyTorch weight file"),
        ("empty.pth", vec![], "not a PyTorch weight file"),
    ] {
        let p = dir.join(name);
        std::fs::write(&p, content).unwrap();
        let e = read_pth(&p).unwrap_err().to_string();
        assert!(e.contains(name) && e.contains(expect), "{name}: {e}");
    }
}
