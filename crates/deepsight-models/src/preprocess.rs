//! Preprocessing presets: how an image file becomes the tensor a model expects.

use crate::error::{ModelError, Result};
use crate::resample::{Filter, resize_rgb8};
use deepsight_runtime::{Device, Tensor, TensorData};
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

/// JPEG through libjpeg-turbo's decoder (as vendored by `mozjpeg`): the same IDCT and chroma
/// upsampling as Pillow, so the pixels are bit-identical to what PyTorch pipelines see (the pure
/// Rust decoders differ by up to 4 grey levels). `None` when libjpeg refuses the file.
fn decode_jpeg(bytes: &[u8]) -> Option<RgbImage> {
    std::panic::catch_unwind(|| {
        let d = mozjpeg::Decompress::new_mem(bytes).ok()?;
        let mut img = d.rgb().ok()?;
        let (width, height) = (img.width(), img.height());
        let rows: Vec<[u8; 3]> = img.read_scanlines().ok()?;
        img.finish().ok()?;
        let pixels: Vec<u8> = rows.into_iter().flatten().collect();
        (pixels.len() == width * height * 3).then_some(RgbImage {
            width,
            height,
            pixels,
        })
    })
    .ok()
    .flatten()
}

/// The most pixels an image may have; a larger one is refused from its header, before any pixel
/// is decoded (a decompression bomb: a few kilobytes of PNG that claim 100000x100000).
pub const MAX_PIXELS: u64 = 128 * 1024 * 1024;

/// Refuses a `width x height` image over [`MAX_PIXELS`].
fn check_pixels(width: u64, height: u64) -> std::result::Result<(), String> {
    let n = width * height;
    if n > MAX_PIXELS {
        return Err(format!(
            "the image is {width}x{height} = {n} pixels, more than the limit of {MAX_PIXELS} (128 Mpx)"
        ));
    }
    Ok(())
}

/// Decodes image bytes into RGB8, refusing images over [`MAX_PIXELS`] by their header.
pub fn decode_rgb(bytes: &[u8]) -> std::result::Result<RgbImage, String> {
    let reader = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| e.to_string())?;
    if let Ok((w, h)) = reader.into_dimensions() {
        check_pixels(w as u64, h as u64)?;
    }
    if bytes.starts_with(&[0xff, 0xd8])
        && let Some(img) = decode_jpeg(bytes)
    {
        return Ok(img);
    }
    let img = image::load_from_memory(bytes).map_err(|e| e.to_string())?;
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    Ok(RgbImage {
        width: w as usize,
        height: h as usize,
        pixels: rgb.into_raw(),
    })
}

impl Preprocess {
    /// Input size `[height, width]` the pipeline produces.
    pub fn size(&self) -> [usize; 2] {
        match self.resize {
            Resize::Exact { size, .. } => size,
            Resize::ShorterThenCrop { crop, .. } => crop,
        }
    }

    /// Resizes (and crops) an image to the model's input size, still as RGB8.
    pub fn resize(&self, img: &RgbImage) -> RgbImage {
        match self.resize {
            Resize::Exact { size: [h, w], filter } => RgbImage {
                width: w,
                height: h,
                pixels: resize_rgb8(&img.pixels, img.width, img.height, w, h, filter),
            },
            Resize::ShorterThenCrop {
                shorter,
                crop: [ch, cw],
                filter,
            } => {
                let (w, h) = (img.width, img.height);
                let (nw, nh) = if w <= h {
                    (shorter, shorter * h / w)
                } else {
                    (shorter * w / h, shorter)
                };
                let resized = resize_rgb8(&img.pixels, w, h, nw, nh, filter);
                let top = ((nh.saturating_sub(ch)) as f64 / 2.0).round() as usize;
                let left = ((nw.saturating_sub(cw)) as f64 / 2.0).round() as usize;
                let mut pixels = Vec::with_capacity(ch * cw * 3);
                for y in 0..ch.min(nh) {
                    let row = (top + y) * nw * 3;
                    pixels.extend_from_slice(&resized[row + left * 3..row + (left + cw.min(nw)) * 3]);
                }
                RgbImage {
                    width: cw.min(nw),
                    height: ch.min(nh),
                    pixels,
                }
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
            data.extend(self.normalise(&self.resize(&load_rgb(p)?)));
        }
        Ok(Tensor::from_data(
            TensorData::new(data, [paths.len(), 3, h, w]),
            device,
        ))
    }
}
