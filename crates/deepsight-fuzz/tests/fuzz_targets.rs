//! The fuzz targets as bolero tests. Under plain `cargo test` each one replays its committed
//! corpus (`tests/__fuzz__/<target>/corpus`, and `crashes` when there is one), then runs random
//! inputs for a bounded time ([`TEST_TIME`]; `BOLERO_RANDOM_TEST_TIME_MS` or
//! `BOLERO_RANDOM_ITERATIONS` override it). A panic fails the test with the input that caused
//! it. The long runs use the same functions through libFuzzer (see the README).

use deepsight_fuzz as targets;
use std::time::Duration;

/// Random inputs per target in a plain `cargo test`, after the corpus.
const TEST_TIME: Duration = Duration::from_millis(1500);

/// Pseudo-random inputs per ONNX target in a plain `cargo test`, after the corpus: drawn from a
/// fixed seed (not bolero's, which draws a new one per run), so that CI is deterministic; the
/// long libFuzzer runs explore the rest (BENCHMARKS.md, "Fuzzing": the panics they found are
/// fixed and in the corpus). `BOLERO_RANDOM_ITERATIONS=N` adds bolero's random inputs.
const ONNX_SEEDED_INPUTS: u64 = 2000;
const ONNX_RANDOM_ITERATIONS: usize = 0;

/// The `k`-th seeded input: 1 to 600 bytes of a linear congruential stream.
fn seeded_input(k: u64) -> Vec<u8> {
    let mut s = k.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5DEE_CE66;
    let mut next = || {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (s >> 33) as u8
    };
    let len = 1 + (next() as usize * 600) / 256;
    (0..len).map(|_| next()).collect()
}

#[test]
fn image() {
    bolero::check!()
        .with_test_time(TEST_TIME)
        .for_each(|data: &[u8]| targets::image(data));
}

#[test]
fn pth() {
    bolero::check!()
        .with_test_time(TEST_TIME)
        .for_each(|data: &[u8]| targets::pth(data));
}

#[test]
fn safetensors() {
    bolero::check!()
        .with_test_time(TEST_TIME)
        .for_each(|data: &[u8]| targets::safetensors(data));
}

#[test]
fn onnx() {
    // The structure-aware target's seed models are this one's corpus too.
    for (_, seed) in targets::onnx_mutate::SEEDS {
        targets::onnx(seed);
    }
    for k in 0..ONNX_SEEDED_INPUTS {
        targets::onnx(&seeded_input(k));
    }
    bolero::check!()
        .with_iterations(ONNX_RANDOM_ITERATIONS)
        .for_each(|data: &[u8]| targets::onnx(data));
}

#[test]
fn onnx_structured() {
    for k in 0..ONNX_SEEDED_INPUTS {
        targets::onnx_structured(&seeded_input(k));
    }
    bolero::check!()
        .with_iterations(ONNX_RANDOM_ITERATIONS)
        .for_each(|data: &[u8]| targets::onnx_structured(data));
}

#[test]
fn every_seed_model_imports_and_runs() {
    let device = deepsight_runtime::default_device();
    for (name, seed) in targets::onnx_mutate::SEEDS {
        let imported =
            deepsight_onnx::import_bytes(seed, &device, None).unwrap_or_else(|e| panic!("seed {name}: {e}"));
        let [h, w] = imported.input_size;
        let c = imported.graph.input_channels();
        let model = deepsight_runtime::GraphModel::new(imported.graph, [h, w], device.clone())
            .unwrap_or_else(|e| panic!("seed {name}: {e}"));
        let x = deepsight_runtime::Tensor::<4>::zeros([1, c, h, w], &device);
        deepsight_runtime::Classifier::logits(&model, x).unwrap_or_else(|e| panic!("seed {name}: {e}"));
    }
}

/// The crashing inputs found in other crates' code, kept out of the corpus so that CI stays
/// green until they are fixed: `cargo test -p deepsight-fuzz -- --ignored` fails while any
/// still panics, naming each with its panic.
#[test]
#[ignore]
fn known_crashes_are_fixed() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("known-crashes");
    let mut still = Vec::new();
    for (name, f) in targets::TARGETS {
        let Ok(dir) = std::fs::read_dir(root.join(name)) else {
            continue;
        };
        for entry in dir {
            let path = entry.unwrap().path();
            let bytes = std::fs::read(&path).unwrap();
            if std::panic::catch_unwind(|| f(&bytes)).is_err() {
                still.push(path.display().to_string());
            }
        }
    }
    assert!(
        still.is_empty(),
        "{} still panic:\n{}",
        still.len(),
        still.join("\n")
    );
}
