//! Replays every committed corpus file and seed model through its target, plus the hostile
//! inputs too big to commit (generated here), and measures each case's peak resident memory
//! (`VmHWM`, reset before each case): every one must stay under 2 GiB. One test in its own
//! binary, so that no other test shares the process while it measures.

use deepsight_fuzz::{onnx_mutate, rss, target};
use std::path::Path;

const LIMIT: u64 = 2 << 30;

struct Case {
    target: &'static str,
    name: String,
    bytes: Vec<u8>,
}

fn corpus() -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/__fuzz__");
    let mut cases = Vec::new();
    for (name, _) in deepsight_fuzz::TARGETS {
        for sub in ["corpus", "crashes"] {
            let Ok(dir) = std::fs::read_dir(root.join(name).join(sub)) else {
                continue;
            };
            let mut files: Vec<_> = dir.map(|e| e.unwrap().path()).collect();
            files.sort();
            for f in files {
                cases.push(Case {
                    target: name,
                    name: format!("{sub}/{}", f.file_name().unwrap().to_string_lossy()),
                    bytes: std::fs::read(&f).unwrap(),
                });
            }
        }
    }
    for (name, seed) in onnx_mutate::SEEDS {
        cases.push(Case {
            target: "onnx",
            name: format!("seeds/{name}.onnx"),
            bytes: seed.to_vec(),
        });
    }
    cases
}

/// A legacy `.pth` whose state-dict pickle is `body`.
fn legacy(body: &[u8]) -> Vec<u8> {
    let mut out = b"\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.".to_vec();
    out.extend_from_slice(b"\x80\x02M\xe9\x03.\x80\x02}.");
    out.extend_from_slice(body);
    out.extend_from_slice(b"\x80\x02].");
    out
}

fn png(img: image::DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .unwrap();
    out
}

/// Hostile inputs generated here rather than committed (each is hundreds of kilobytes).
fn generated() -> Vec<Case> {
    let n = 400_000;
    let mut lists = b"\x80\x02".to_vec();
    lists.extend(std::iter::repeat_n(b']', n));
    lists.extend(std::iter::repeat_n(b'a', n - 1));
    lists.push(b'.');
    let mut fan = b"\x80\x02]q\x00(".to_vec();
    fan.extend(std::iter::repeat_n(b'N', 1000));
    fan.extend_from_slice(b"e]");
    for _ in 0..1_100_000 {
        fan.extend_from_slice(b"h\x00a");
    }
    fan.push(b'.');
    // An image at the pixel budget (100 megapixels), and a 16-bit RGBA one: the decoders' own
    // buffers plus the RGB8 result plus the resize, all at once.
    let flat = image::RgbImage::from_fn(10_000, 10_000, |x, y| {
        image::Rgb([(x / 40) as u8, (y / 40) as u8, 9])
    });
    let wide =
        image::ImageBuffer::<image::Rgba<u16>, _>::from_fn(7000, 7000, |x, _| image::Rgba([x as u16; 4]));
    vec![
        Case {
            target: "pth",
            name: "generated/legacy_nested_400000.pth".into(),
            bytes: legacy(&lists),
        },
        Case {
            target: "pth",
            name: "generated/legacy_shared_fanout_1100000.pth".into(),
            bytes: legacy(&fan),
        },
        Case {
            target: "image",
            name: "generated/png_rgb_10000x10000.png".into(),
            bytes: png(flat.into()),
        },
        Case {
            target: "image",
            name: "generated/png_rgba16_7000x7000.png".into(),
            bytes: png(wide.into()),
        },
    ]
}

#[test]
fn every_corpus_case_stays_under_2_gib() {
    let mut results = Vec::new();
    let mut cases = corpus();
    cases.extend(generated());
    let can_reset = rss::reset_peak();
    for case in &cases {
        let f = target(case.target).unwrap();
        rss::reset_peak();
        let before = rss::current_bytes().unwrap_or(0);
        let start = std::time::Instant::now();
        f(&case.bytes);
        let elapsed = start.elapsed();
        let peak = rss::peak_bytes().unwrap_or(0);
        results.push((peak, peak.saturating_sub(before), elapsed, case));
    }
    results.sort_by_key(|r| std::cmp::Reverse(r.0));
    println!(
        "{} cases ({}); the 12 with the highest peak RSS:",
        results.len(),
        if can_reset {
            "peak reset before each"
        } else {
            "peak NOT resettable: process-wide"
        }
    );
    println!("{:>10} {:>10} {:>8}  case", "peak MiB", "+MiB", "ms");
    for (peak, grew, elapsed, case) in results.iter().take(12) {
        println!(
            "{:>10.1} {:>10.1} {:>8}  {} {} ({} bytes)",
            *peak as f64 / 1048576.0,
            *grew as f64 / 1048576.0,
            elapsed.as_millis(),
            case.target,
            case.name,
            case.bytes.len()
        );
    }
    let (worst, _, _, case) = &results[0];
    assert!(
        *worst < LIMIT,
        "{} {} peaked at {:.2} GiB",
        case.target,
        case.name,
        *worst as f64 / (1u64 << 30) as f64
    );
}
