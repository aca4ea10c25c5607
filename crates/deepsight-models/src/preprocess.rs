//! Preprocessing presets: how an image file becomes the tensor a model expects.

use crate::error::{ModelError, Result};
use crate::resample::{Filter, resize_rgb8};
use deepsight_runtime::{Device, Tensor, TensorData, limits};
use std::path::Path;

/// How the image is brought to the model's input size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Resize {
    /// Straight to `[height, width]`, ignoring the aspect ratio.
    Exact { size: [usize; 2], filter: Filter },
    /// Shorter side to `shorter` (aspect kept), then a centre crop of `crop` (torchvision's
    /// `Resize(256)` + `CenterCrop(224)`).
    ShorterThenCrop {
        shorter: usize,
        crop: [usize; 2],
        filter: Filter,
    },
}

/// A preprocessing pipeline: decode to RGB, resize, then `(pixel - mean) / std` per channel, with
/// `pixel` in 0..=255.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocess {
    pub resize: Resize,
    /// Per-channel mean, in 0..=255 units.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, in 0..=255 units.
    pub std: [f32; 3],
}

/// Named presets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preset {
    /// EfficientNet-Lite: bicubic resize to 224x224, then `(x - 127) / 128`.
    EfficientNetLite,
    /// torchvision ImageNet: bilinear shorter side 256, centre crop 224, ImageNet mean/std.
    TorchvisionImagenet,
}

impl Preset {
    /// The pipeline of this preset.
    pub fn pipeline(self) -> Preprocess {
        match self {
            Preset::EfficientNetLite => Preprocess {
                resize: Resize::Exact {
                    size: [224, 224],
                    filter: Filter::Bicubic,
                },
                mean: [127.0; 3],
                std: [128.0; 3],
            },
            Preset::TorchvisionImagenet => Preprocess {
                resize: Resize::ShorterThenCrop {
                    shorter: 256,
                    crop: [224, 224],
                    filter: Filter::Bilinear,
                },
                mean: [0.485 * 255.0, 0.456 * 255.0, 0.406 * 255.0],
                std: [0.229 * 255.0, 0.224 * 255.0, 0.225 * 255.0],
            },
        }
    }
}

impl Preset {
    /// Every preset with its CLI name.
    pub const ALL: [(Preset, &'static str); 2] = [
        (Preset::EfficientNetLite, "efficientnet-lite"),
        (Preset::TorchvisionImagenet, "torchvision"),
    ];

    /// The CLI name.
    pub fn name(self) -> &'static str {
        Preset::ALL
            .iter()
            .find(|(p, _)| *p == self)
            .map(|(_, n)| *n)
            .expect("every preset is listed")
    }

    /// Parses a CLI name.
    pub fn from_name(name: &str) -> Option<Preset> {
        Preset::ALL.iter().find(|(_, n)| *n == name).map(|(p, _)| *p)
    }

    /// The pipeline for a model whose input is `[height, width]`: the preset's resize scaled to
    /// that size (torchvision's 256/224 resize-to-crop ratio kept), same normalisation.
    pub fn pipeline_for(self, size: [usize; 2]) -> Preprocess {
        let mut p = self.pipeline();
        p.resize = match p.resize {
            Resize::Exact { filter, .. } => Resize::Exact { size, filter },
            Resize::ShorterThenCrop {
                shorter,
                crop,
                filter,
            } => Resize::ShorterThenCrop {
                shorter: (size[0].min(size[1]) * shorter + crop[0] / 2) / crop[0],
                crop: size,
                filter,
            },
        };
        p
    }
}

/// A decoded RGB image, 8 bits per channel, interleaved.
#[derive(Debug, Clone, PartialEq)]
pub struct RgbImage {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// Decodes any format the `image` crate reads into RGB8.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
        path: path.into(),
        source,
    })?;
    decode_rgb(&bytes).map_err(|reason| ModelError::Image {
        path: path.into(),
        reason,
    })
}

/// How libjpeg-turbo fared with a JPEG.
enum Jpeg {
    Decoded(RgbImage),
    /// The data ended before libjpeg reached the end-of-image marker: libjpeg would have filled
    /// the rest of the image with grey and only warned.
    Truncated,
    /// libjpeg refused the file (a fatal error: corrupt headers, CMYK it cannot convert).
    Refused,
}

/// Zero bytes appended to a JPEG before libjpeg reads it: a decoder that reached the real
/// end-of-image marker leaves them unread, one that ran out of data has read them all.
const JPEG_PAD: usize = 16;

/// JPEG through libjpeg-turbo's decoder (as vendored by `mozjpeg`): the same IDCT and chroma
/// upsampling as Pillow, so the pixels are bit-identical to what PyTorch pipelines see (the pure
/// Rust decoders differ by up to 4 grey levels). Like Pillow ("image file is truncated"), a file
/// that ends before its end-of-image marker is refused, not decoded with a grey remainder.
fn decode_jpeg(bytes: &[u8]) -> std::result::Result<Jpeg, String> {
    let mut padded = Vec::with_capacity(bytes.len() + JPEG_PAD);
    padded.extend_from_slice(bytes);
    padded.extend_from_slice(&[0; JPEG_PAD]);
    let decoded = std::panic::catch_unwind(|| -> std::result::Result<Option<Jpeg>, String> {
        let Ok(d) = mozjpeg::Decompress::new_mem(&padded) else {
            return Ok(None);
        };
        limits::check_pixels("the image", d.width() as u64, d.height() as u64)?;
        let Ok(mut img) = d.rgb() else {
            return Ok(None);
        };
        let (width, height) = (img.width(), img.height());
        let Ok(pixels) = img.read_scanlines::<u8>() else {
            return Ok(None);
        };
        let Ok(rest) = img.finish_into_inner() else {
            return Ok(None);
        };
        if rest.len() < JPEG_PAD {
            return Ok(Some(Jpeg::Truncated));
        }
        Ok(
            (pixels.len() == width * height * 3).then_some(Jpeg::Decoded(RgbImage {
                width,
                height,
                pixels,
            })),
        )
    });
    match decoded {
        Ok(r) => Ok(r?.unwrap_or(Jpeg::Refused)),
        Err(_) => Ok(Jpeg::Refused),
    }
}

/// The widest pixel a decoder may hold before the conversion to RGB8: 16-bit RGBA. The image
/// crate's `max_alloc` is the pixel budget times this, so a 16-bit image at the full budget
/// still decodes while a float one is held to half of it.
const DECODE_BYTES_PER_PIXEL: u64 = 8;

/// The image crate's own decoder limits, from the process budget
/// ([`limits::max_pixels`]): no side and no allocation beyond what that many pixels need.
fn decoder_limits() -> image::Limits {
    let max = limits::max_pixels();
    let mut l = image::Limits::default();
    l.max_image_width = Some(u32::try_from(max).unwrap_or(u32::MAX));
    l.max_image_height = Some(u32::try_from(max).unwrap_or(u32::MAX));
    l.max_alloc = Some(max.saturating_mul(DECODE_BYTES_PER_PIXEL));
    l
}

fn reader(bytes: &[u8]) -> std::result::Result<image::ImageReader<std::io::Cursor<&[u8]>>, String> {
    let mut r = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    r.limits(decoder_limits());
    Ok(r)
}

/// Decodes image bytes into RGB8. An image over the pixel budget
/// ([`deepsight_runtime::limits::check_pixels`]) is refused by its header, before any pixel is
/// decoded (a decompression bomb: a few kilobytes of PNG that claim 100000x100000), and the
/// decoders themselves run under limits derived from that budget. Truncated or corrupt data is
/// an error.
pub fn decode_rgb(bytes: &[u8]) -> std::result::Result<RgbImage, String> {
    if let Ok((w, h)) = reader(bytes)?.into_dimensions() {
        limits::check_pixels("the image", w as u64, h as u64)?;
    }
    if bytes.starts_with(&[0xff, 0xd8]) {
        match decode_jpeg(bytes)? {
            Jpeg::Decoded(img) => return Ok(img),
            Jpeg::Truncated => {
                return Err(
                    "the image is truncated (the JPEG data ends before its end-of-image marker)".into(),
                );
            }
            // libjpeg refused it (e.g. CMYK): the image crate's decoder may read it, but not
            // without its end marker.
            Jpeg::Refused if !bytes.windows(2).any(|w| w == [0xff, 0xd9]) => {
                return Err("the image is truncated (the JPEG data has no end-of-image marker)".into());
            }
            Jpeg::Refused => {}
        }
    }
    check_png_palette(bytes)?;
    // The decoders are third-party code: a panic in one (a corrupt file it did not expect) is
    // this file's error, not the process's end.
    let img = std::panic::catch_unwind(|| reader(bytes)?.decode().map_err(|e| e.to_string()))
        .map_err(|_| "the image is corrupt (its decoder failed on it)".to_string())??;
    let rgb = img.into_rgb8();
    let (w, h) = rgb.dimensions();
    if w == 0 || h == 0 {
        return Err(format!("the image is empty ({w}x{h} pixels)"));
    }
    Ok(RgbImage {
        width: w as usize,
        height: h as usize,
        pixels: rgb.into_raw(),
    })
}

/// Refuses a PNG whose palette (PLTE chunk) is not 1 to 256 RGB entries: the `png` crate
/// (0.18) indexes past such a palette and panics.
fn check_png_palette(bytes: &[u8]) -> std::result::Result<(), String> {
    if !bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Ok(());
    }
    let mut at = 8usize;
    while let Some(head) = bytes.get(at..at + 8) {
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        match &head[4..8] {
            b"PLTE" if len == 0 || !len.is_multiple_of(3) || len > 768 => {
                return Err(format!(
                    "the image is corrupt (its PNG palette has {len} bytes, not 1 to 256 RGB entries)"
                ));
            }
            b"IDAT" | b"IEND" => break,
            _ => {}
        }
        at = match at.checked_add(12).and_then(|a| a.checked_add(len)) {
            Some(next) => next,
            None => break,
        };
    }
    Ok(())
}

/// Refuses an image whose pixel buffer does not match its size, or that has no pixels.
fn check_image(img: &RgbImage) -> Result<()> {
    let want = img.width.checked_mul(img.height).and_then(|n| n.checked_mul(3));
    if img.width == 0 || img.height == 0 || want != Some(img.pixels.len()) {
        return Err(ModelError::Format(format!(
            "the image is {}x{} pixels with {} values: nothing to resize",
            img.width,
            img.height,
            img.pixels.len()
        )));
    }
    Ok(())
}

/// Resizes under the pixel budget: the horizontal pass's intermediate (`out_w x h`) and the
/// result (`out_w x out_h`) are checked before either is allocated.
fn budgeted_resize(img: &RgbImage, out_w: usize, out_h: usize, filter: Filter) -> Result<Vec<u8>> {
    let budget = |what: &str, w: usize, h: usize| {
        limits::check_pixels(what, w as u64, h as u64).map_err(ModelError::Format)
    };
    budget("the resized image", out_w, out_h)?;
    if out_w != img.width {
        budget(
            "the resize's intermediate image (new width, old height)",
            out_w,
            img.height,
        )?;
    }
    if out_w == 0 || out_h == 0 {
        return Err(ModelError::Format(format!(
            "cannot resize to {out_w}x{out_h} pixels"
        )));
    }
    Ok(resize_rgb8(
        &img.pixels,
        img.width,
        img.height,
        out_w,
        out_h,
        filter,
    ))
}

impl Preprocess {
    /// Input size `[height, width]` the pipeline produces.
    pub fn size(&self) -> [usize; 2] {
        match self.resize {
            Resize::Exact { size, .. } => size,
            Resize::ShorterThenCrop { crop, .. } => crop,
        }
    }

    /// Resizes (and crops) an image to the model's input size, still as RGB8. Refused (before
    /// anything is allocated) where an intermediate image would exceed the pixel budget: a 1x60000
    /// PNG's shorter side to 256 would be 256x15360000.
    pub fn resize(&self, img: &RgbImage) -> Result<RgbImage> {
        check_image(img)?;
        match self.resize {
            Resize::Exact { size: [h, w], filter } => Ok(RgbImage {
                width: w,
                height: h,
                pixels: budgeted_resize(img, w, h, filter)?,
            }),
            Resize::ShorterThenCrop {
                shorter,
                crop: [ch, cw],
                filter,
            } => {
                let (w, h) = (img.width, img.height);
                let scaled = |long: usize, short: usize| {
                    usize::try_from(shorter as u128 * long as u128 / short as u128).unwrap_or(usize::MAX)
                };
                let (nw, nh) = if w <= h {
                    (shorter, scaled(h, w))
                } else {
                    (scaled(w, h), shorter)
                };
                let resized = budgeted_resize(img, nw, nh, filter)?;
                let top = ((nh.saturating_sub(ch)) as f64 / 2.0).round() as usize;
                let left = ((nw.saturating_sub(cw)) as f64 / 2.0).round() as usize;
                let mut pixels = Vec::with_capacity(ch.min(nh) * cw.min(nw) * 3);
                for y in 0..ch.min(nh) {
                    let row = (top + y) * nw * 3;
                    pixels.extend_from_slice(&resized[row + left * 3..row + (left + cw.min(nw)) * 3]);
                }
                Ok(RgbImage {
                    width: cw.min(nw),
                    height: ch.min(nh),
                    pixels,
                })
            }
        }
    }

    /// The normalised `[3, H, W]` values of an already-resized image.
    pub fn normalise(&self, img: &RgbImage) -> Vec<f32> {
        let rgb: Vec<f32> = img.pixels.iter().map(|&v| v as f32).collect();
        self.normalise_rgb(&rgb)
    }

    /// The normalised `[3, H, W]` values of interleaved RGB pixel values (0..=255 units, any
    /// real value: a warped or interpolated image).
    pub fn normalise_rgb(&self, rgb: &[f32]) -> Vec<f32> {
        let n = rgb.len() / 3;
        let mut out = vec![0f32; 3 * n];
        for (i, px) in rgb.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * n + i] = self.input_value(c, px[c]);
            }
        }
        out
    }

    /// The model-input value of pixel value `pixel` (0..=255 units) in channel `c`.
    pub fn input_value(&self, c: usize, pixel: f32) -> f32 {
        (pixel - self.mean[c]) / self.std[c]
    }

    /// The model-input colour of a pixel `rgb` (black: `[0; 3]`).
    pub fn input_colour(&self, rgb: [f32; 3]) -> [f32; 3] {
        std::array::from_fn(|c| self.input_value(c, rgb[c]))
    }

    /// The inverse of [`Preprocess::normalise`]: `[3, height, width]` model-input values back to
    /// an RGB8 image (rounded and clipped to 0..=255, as a PNG of the model's view stores it).
    pub fn denormalise(&self, x: &[f32], [height, width]: [usize; 2]) -> RgbImage {
        let plane = height * width;
        let pixels = (0..plane)
            .flat_map(|p| {
                (0..3).map(move |c| {
                    (x[c * plane + p] * self.std[c] + self.mean[c])
                        .round()
                        .clamp(0.0, 255.0) as u8
                })
            })
            .collect();
        RgbImage {
            width,
            height,
            pixels,
        }
    }

    /// Reads, resizes and normalises image files into one batch `[N, 3, H, W]`.
    pub fn load_batch(&self, paths: &[&Path], device: &Device) -> Result<Tensor<4>> {
        let [h, w] = self.size();
        let mut data = Vec::with_capacity(paths.len() * 3 * h * w);
        for p in paths {
            let resized = self.resize(&load_rgb(p)?).map_err(|e| e.at(p))?;
            data.extend(self.normalise(&resized));
        }
        Ok(Tensor::from_data(
            TensorData::new(data, [paths.len(), 3, h, w]),
            device,
        ))
    }
}
