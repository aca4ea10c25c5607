//! Helpers for the fuzzing runs:
//!
//! `deepsight-fuzz-tool replay TARGET PATH...` runs each file (a folder: each file in it)
//! through TARGET, reporting per file whether it panicked (with the panic's location) and its
//! peak resident memory; it exits 1 if any panicked.
//!
//! `deepsight-fuzz-tool mutated INPUT OUT.onnx` writes the model that the `onnx_structured`
//! target builds from INPUT, for a crash report that does not depend on the seed models.

use deepsight_fuzz::{onnx_mutate, rss, target};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

static LAST_PANIC: Mutex<String> = Mutex::new(String::new());

fn files(path: &Path) -> Vec<PathBuf> {
    match std::fs::read_dir(path) {
        Ok(dir) => {
            let mut v: Vec<PathBuf> = dir
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            v.sort();
            v
        }
        Err(_) => vec![path.to_path_buf()],
    }
}

fn replay(name: &str, paths: &[String]) -> i32 {
    let Some(f) = target(name) else {
        eprintln!("unknown target '{name}'");
        return 2;
    };
    std::panic::set_hook(Box::new(|info| {
        let msg = info
            .payload()
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| info.payload().downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let at = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        *LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()) = format!("{at}: {msg}");
    }));
    let (mut panics, mut max_peak) = (0, 0u64);
    for path in paths.iter().flat_map(|p| files(Path::new(p))) {
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!("cannot read {}", path.display());
            continue;
        };
        rss::reset_peak();
        let start = std::time::Instant::now();
        let outcome = std::panic::catch_unwind(|| f(&bytes));
        let peak = rss::peak_bytes().unwrap_or(0);
        max_peak = max_peak.max(peak);
        let verdict = match outcome {
            Ok(()) => "ok".to_string(),
            Err(_) => {
                panics += 1;
                format!(
                    "PANIC at {}",
                    LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner())
                )
            }
        };
        println!(
            "{:>8.1} MiB {:>7} ms  {}  {verdict}",
            peak as f64 / 1048576.0,
            start.elapsed().as_millis(),
            path.display()
        );
    }
    println!(
        "max peak RSS {:.1} MiB; {panics} panicked",
        max_peak as f64 / 1048576.0
    );
    i32::from(panics > 0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let code = match args.as_slice() {
        [cmd, name, paths @ ..] if cmd == "replay" && !paths.is_empty() => replay(name, paths),
        [cmd, input, out] if cmd == "mutated" => match std::fs::read(input) {
            Ok(bytes) => {
                let (model, size) = onnx_mutate::mutated(&bytes);
                match std::fs::write(out, model) {
                    Ok(()) => {
                        println!("wrote {out} (import at input size {size:?})");
                        0
                    }
                    Err(e) => {
                        eprintln!("cannot write {out}: {e}");
                        1
                    }
                }
            }
            Err(e) => {
                eprintln!("cannot read {input}: {e}");
                1
            }
        },
        _ => {
            eprintln!("usage: deepsight-fuzz-tool replay TARGET PATH... | mutated INPUT OUT.onnx");
            2
        }
    };
    std::process::exit(code);
}
