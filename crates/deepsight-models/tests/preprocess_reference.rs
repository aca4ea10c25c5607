//! The EfficientNet-Lite preset against the exact model inputs PIL produced for the fixtures.

mod common;

use common::*;
use deepsight_models::Preset;
use deepsight_models::preprocess::load_rgb;

#[test]
fn lite0_preprocessing_is_bit_identical_to_pil() {
    let fx = fixture("lite0.safetensors");
    let reference = values(&fx, "input");
    let pipeline = Preset::EfficientNetLite.pipeline();
    let m = manifest();
    let mut ours = Vec::new();
    for f in m["lite0"]["images"].as_array().unwrap() {
        let path = shared()
            .join("data/imagenet-val-1300/data")
            .join(f.as_str().unwrap());
        ours.extend(pipeline.normalise(&pipeline.resize(&load_rgb(&path).unwrap()).unwrap()));
    }
    let levels: Vec<i32> = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| ((a - b) * 128.0).round() as i32)
        .collect();
    let exact = levels.iter().filter(|&&d| d == 0).count() as f64 / levels.len() as f64;
    let worst = levels.iter().map(|d| d.abs()).max().unwrap();
    println!(
        "pixels equal to PIL's: {:.3}%, worst difference {worst} grey levels",
        exact * 100.0
    );
    assert_eq!(worst, 0, "{:.3}% exact", exact * 100.0);
}

#[test]
fn denormalise_inverts_normalise_for_every_preset() {
    let img = deepsight_models::RgbImage {
        width: 4,
        height: 2,
        pixels: (0..24).map(|i| (i * 11 % 256) as u8).collect(),
    };
    for (preset, _) in Preset::ALL {
        let p = preset.pipeline_for([2, 4]);
        assert_eq!(p.denormalise(&p.normalise(&img), [2, 4]), img, "{preset:?}");
    }
    // Values outside the pixel range clip.
    let p = Preset::EfficientNetLite.pipeline();
    let out = p.denormalise(&[10.0, -10.0, 0.0], [1, 1]);
    assert_eq!(out.pixels, [255, 0, 127]);
}

/// CRC-32 (PNG's), for patching a chunk.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xffff_ffffu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 != 0 {
                0xedb8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn a_decompression_bomb_is_refused_by_its_header() {
    // A real 2x2 PNG whose IHDR is rewritten to claim 100000x100000 pixels.
    let mut png = Vec::new();
    image::RgbImage::new(2, 2)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    assert_eq!(&png[12..16], b"IHDR");
    png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
    png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let err = deepsight_models::preprocess::decode_rgb(&png).unwrap_err();
    assert!(err.contains("100000x100000") && err.contains("limit"), "{err}");
    // A normal image still decodes.
    let mut ok = Vec::new();
    image::RgbImage::new(3, 2)
        .write_to(&mut std::io::Cursor::new(&mut ok), image::ImageFormat::Png)
        .unwrap();
    let img = deepsight_models::preprocess::decode_rgb(&ok).unwrap();
    assert_eq!((img.width, img.height), (3, 2));
}
