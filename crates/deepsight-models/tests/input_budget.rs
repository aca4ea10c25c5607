//! Hostile inputs get one-line refusals within the process budget: images that would resize to
//! gigabytes, truncated JPEGs, and pickles that copy themselves or nest without end.

use deepsight_models::Preset;
use deepsight_models::preprocess::decode_rgb;
use deepsight_models::pth::parse_pth;
use std::time::{Duration, Instant};

fn png(width: u32, height: u32) -> Vec<u8> {
    use image::ImageEncoder;
    use image::codecs::png::{CompressionType, FilterType, PngEncoder};
    let mut out = Vec::new();
    let img = image::RgbImage::from_fn(width, height, |x, y| image::Rgb([x as u8, (y / 4096) as u8, 7]));
    PngEncoder::new_with_quality(&mut out, CompressionType::Best, FilterType::NoFilter)
        .write_image(&img, width, height, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

fn jpeg(width: u32, height: u32) -> Vec<u8> {
    let mut out = Vec::new();
    image::RgbImage::from_fn(width, height, |x, y| {
        image::Rgb([(x * 4) as u8, (y * 5) as u8, (x * y) as u8])
    })
    .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Jpeg)
    .unwrap();
    out
}

#[test]
fn a_long_thin_png_is_refused_before_its_resize_allocates() {
    let bytes = png(1, 60_000);
    assert!(bytes.len() < 4096, "{} bytes", bytes.len());
    let img = decode_rgb(&bytes).unwrap();
    let start = Instant::now();
    let err = Preset::TorchvisionImagenet
        .pipeline()
        .resize(&img)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the resized image is 256x15360000") && err.contains("--max-pixels"),
        "{err}"
    );
    assert!(start.elapsed() < Duration::from_secs(1));
    // The same image resizes fine to an exact size.
    let out = Preset::EfficientNetLite.pipeline().resize(&img).unwrap();
    assert_eq!(
        (out.width, out.height, out.pixels.len()),
        (224, 224, 224 * 224 * 3)
    );
}

#[test]
fn an_inconsistent_or_empty_image_is_an_error_not_a_panic() {
    let p = Preset::TorchvisionImagenet.pipeline();
    for (width, height, len) in [(0, 5, 0), (5, 0, 0), (4, 4, 10)] {
        let img = deepsight_models::RgbImage {
            width,
            height,
            pixels: vec![0; len],
        };
        assert!(p.resize(&img).is_err(), "{width}x{height}");
    }
}

#[test]
fn a_truncated_jpeg_is_refused_like_pillow_does() {
    let full = jpeg(64, 48);
    assert_eq!(&full[full.len() - 2..], [0xff, 0xd9]);
    let img = decode_rgb(&full).unwrap();
    assert_eq!((img.width, img.height), (64, 48));
    // Trailing bytes after the end marker are fine.
    let mut trailing = full.clone();
    trailing.extend_from_slice(b"trailing junk");
    assert_eq!(decode_rgb(&trailing).unwrap(), img);
    for cut in [
        full.len() * 3 / 10,
        full.len() - 10,
        full.len() - 2,
        full.len() - 1,
    ] {
        let err = decode_rgb(&full[..cut]).unwrap_err();
        assert!(err.contains("the image is truncated"), "cut at {cut}: {err}");
    }
}

#[test]
fn a_truncated_png_is_an_error() {
    let full = png(64, 48);
    for cut in [full.len() / 3, full.len() - 13] {
        assert!(decode_rgb(&full[..cut]).is_err(), "cut at {cut}");
    }
}

/// A legacy-format file whose state-dict pickle is `body`: the magic number, protocol version
/// and (empty) system info pickles before it, an empty storage key list after.
fn legacy(body: &[u8]) -> Vec<u8> {
    let mut out = vec![0x80, 0x02, 0x8a, 0x0a];
    out.extend_from_slice(&[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19]);
    out.push(b'.');
    out.extend_from_slice(&[0x80, 0x02, b'M', 0xe9, 0x03, b'.', 0x80, 0x02, b'}', b'.']);
    out.extend_from_slice(body);
    out.extend_from_slice(&[0x80, 0x02, b']', b'.']);
    out
}

fn refused(body: &[u8]) -> String {
    let start = Instant::now();
    let err = parse_pth(&legacy(body)).unwrap_err().to_string();
    assert!(start.elapsed() < Duration::from_secs(2), "{err}");
    err
}

#[test]
fn deeply_nested_pickles_are_refused_without_recursion() {
    let n = 400_000;
    // 400k empty lists, each appended into the one below it.
    let mut lists = vec![0x80, 0x02];
    lists.extend(std::iter::repeat_n(b']', n));
    lists.extend(std::iter::repeat_n(b'a', n - 1));
    lists.push(b'.');
    let err = refused(&lists);
    assert!(err.contains("nests deeper than 1000 levels"), "{err}");
    // 400k MARKs closed into tuples of tuples.
    let mut tuples = vec![0x80, 0x02];
    tuples.extend(std::iter::repeat_n(b'(', n));
    tuples.extend(std::iter::repeat_n(b't', n));
    tuples.push(b'.');
    let err = refused(&tuples);
    assert!(err.contains("nests deeper than 1000 levels"), "{err}");
    // A list appended into itself, over and over.
    let mut cycle = vec![0x80, 0x02, b']', b'q', 0];
    for _ in 0..5000 {
        cycle.extend_from_slice(&[b'h', 0, b'a']);
    }
    cycle.push(b'.');
    let err = refused(&cycle);
    assert!(err.contains("nests deeper than 1000 levels"), "{err}");
}

#[test]
fn self_copying_pickles_stay_small() {
    // `a = []; for _ in range(60): a = [a, a]`: 2^60 lists if a memo GET copied its value.
    let mut doubling = vec![0x80, 0x02, b']', b'q', 0];
    for level in 1..=60u8 {
        doubling.extend_from_slice(&[b']', b'q', level, b'(', b'h', level - 1, b'h', level - 1, b'e']);
    }
    doubling.push(b'.');
    let err = refused(&doubling);
    assert!(err.contains("no state dict"), "{err}");
    // A big list shared into another a million times.
    let mut fan = vec![0x80, 0x02, b']', b'q', 0, b'('];
    fan.extend(std::iter::repeat_n(b'N', 1000));
    fan.push(b'e');
    fan.push(b']');
    for _ in 0..1_100_000 {
        fan.extend_from_slice(&[b'h', 0, b'a']);
    }
    fan.push(b'.');
    let err = refused(&fan);
    assert!(err.contains("builds more than 1000000 objects"), "{err}");
}

#[test]
fn a_huge_memo_is_bounded() {
    let mut memo = vec![0x80, 0x02, b'N'];
    for k in 0..1_100_000u32 {
        memo.push(b'r');
        memo.extend_from_slice(&k.to_le_bytes());
    }
    memo.push(b'.');
    let err = refused(&memo);
    assert!(err.contains("builds more than 1000000 objects"), "{err}");
}

#[test]
fn truncated_files_of_every_format_are_errors() {
    use image::ImageFormat as F;
    let img = image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(40, 30, |x, y| {
        image::Rgb([(x * 6) as u8, (y * 8) as u8, (x * y) as u8])
    }));
    let mut accepted = Vec::new();
    for format in [
        F::Png,
        F::Bmp,
        F::Gif,
        F::Tiff,
        F::Qoi,
        F::WebP,
        F::Pnm,
        F::Farbfeld,
        F::Ico,
    ] {
        let mut full = Vec::new();
        let img = match format {
            F::Farbfeld => img.to_rgba16().into(),
            F::Ico => img.to_rgba8().into(),
            _ => img.clone(),
        };
        img.write_to(&mut std::io::Cursor::new(&mut full), format)
            .unwrap();
        if let Err(e) = decode_rgb(&full) {
            panic!("{format:?} complete: {e}");
        }
        // Cut within the pixel data. (Cut in the trailer only, e.g. PNG's IEND CRC or GIF's
        // terminator, every pixel is there, and the image crate decodes it.)
        for cut in [full.len() / 2, full.len() * 9 / 10] {
            if decode_rgb(&full[..cut]).is_ok() {
                accepted.push(format!("{format:?} cut at {cut} of {}", full.len()));
            }
        }
    }
    assert!(accepted.is_empty(), "truncated files decoded: {accepted:?}");
}

#[test]
fn a_png_palette_of_a_partial_entry_is_an_error_not_a_panic() {
    // Found by the fuzzer: a 6x5 palette PNG whose PLTE has 586 bytes (195 entries and one
    // byte), CRCs valid; png 0.18.1 indexes past it.
    let bytes = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../deepsight-fuzz/tests/__fuzz__/image/corpus/png_plte_586_bytes.png"),
    )
    .unwrap();
    let err = decode_rgb(&bytes).unwrap_err();
    assert!(err.contains("palette has 586 bytes"), "{err}");
}
