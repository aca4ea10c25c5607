//! An RGB canvas: heatmap overlays, text (an 8x8 bitmap font, so no font file is needed), and
//! montages of titled panels.

use crate::colormap::Colormap;
use font8x8::UnicodeFonts;
use std::io::Cursor;

/// An RGB8 picture, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Canvas {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<u8>,
}

/// A titled picture for a montage.
#[derive(Debug, Clone)]
pub struct Panel {
    pub canvas: Canvas,
    pub title: Vec<String>,
}

impl Canvas {
    pub fn new(width: usize, height: usize, fill: [u8; 3]) -> Canvas {
        Canvas {
            width,
            height,
            pixels: fill.iter().copied().cycle().take(width * height * 3).collect(),
        }
    }

    /// A heatmap of `values` (`width x height`, already scaled to the colour map's domain).
    pub fn heatmap(values: &[f32], width: usize, height: usize, cmap: Colormap) -> Canvas {
        Canvas {
            width,
            height,
            pixels: values.iter().flat_map(|&v| cmap.rgb(v)).collect(),
        }
    }

    /// `self` with `heat` blended over it: `(1 - alpha) * self + alpha * heat`.
    pub fn blend(&self, heat: &Canvas, alpha: f32) -> Canvas {
        assert_eq!((self.width, self.height), (heat.width, heat.height), "same size");
        let pixels = self
            .pixels
            .iter()
            .zip(&heat.pixels)
            .map(|(&a, &b)| ((1.0 - alpha) * a as f32 + alpha * b as f32).round() as u8)
            .collect();
        Canvas {
            pixels,
            ..self.clone()
        }
    }

    /// `heat` blended with a per-pixel opacity `alpha * weights[p]` (`weights` in `[0, 1]`), so that
    /// where a signed map is near zero the image shows through.
    pub fn blend_weighted(&self, heat: &Canvas, alpha: f32, weights: &[f32]) -> Canvas {
        assert_eq!(weights.len(), self.width * self.height, "one weight per pixel");
        let pixels = self
            .pixels
            .iter()
            .zip(&heat.pixels)
            .enumerate()
            .map(|(i, (&a, &b))| {
                let t = alpha * weights[i / 3].clamp(0.0, 1.0);
                ((1.0 - t) * a as f32 + t * b as f32).round() as u8
            })
            .collect();
        Canvas {
            pixels,
            ..self.clone()
        }
    }

    fn put(&mut self, x: usize, y: usize, c: [u8; 3]) {
        if x < self.width && y < self.height {
            let i = (y * self.width + x) * 3;
            self.pixels[i..i + 3].copy_from_slice(&c);
        }
    }

    /// Draws `text` with its top-left corner at `(x, y)`, each font pixel `scale` pixels wide.
    pub fn text(&mut self, x: usize, y: usize, text: &str, scale: usize, colour: [u8; 3]) {
        for (i, ch) in text.chars().enumerate() {
            let glyph = font8x8::BASIC_FONTS
                .get(ch)
                .or_else(|| font8x8::BASIC_FONTS.get('?'))
                .unwrap_or([0; 8]);
            for (row, bits) in glyph.iter().enumerate() {
                for col in 0..8 {
                    if bits >> col & 1 == 1 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                self.put(x + (i * 8 + col) * scale + dx, y + row * scale + dy, colour);
                            }
                        }
                    }
                }
            }
        }
    }

    /// Copies `other` with its top-left corner at `(x, y)`.
    pub fn paste(&mut self, other: &Canvas, x: usize, y: usize) {
        for row in 0..other.height {
            for col in 0..other.width {
                let i = (row * other.width + col) * 3;
                self.put(
                    x + col,
                    y + row,
                    [other.pixels[i], other.pixels[i + 1], other.pixels[i + 2]],
                );
            }
        }
    }

    /// PNG bytes.
    pub fn png(&self) -> Vec<u8> {
        let img = image::RgbImage::from_raw(self.width as u32, self.height as u32, self.pixels.clone())
            .expect("pixel count matches the size");
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png)
            .expect("PNG encoding to memory");
        out.into_inner()
    }

    /// PNG bytes with an alpha channel: `opacity[p]` (0..1, clamped) is pixel `p`'s opacity, so
    /// that a page can lay the picture over another and set the overall opacity itself.
    pub fn png_with_alpha(&self, opacity: &[f32]) -> Vec<u8> {
        let rgba: Vec<u8> = self
            .pixels
            .chunks(3)
            .zip(opacity.iter().chain(std::iter::repeat(&1.0)))
            .flat_map(|(p, &a)| [p[0], p[1], p[2], (a.clamp(0.0, 1.0) * 255.0).round() as u8])
            .collect();
        let img = image::RgbaImage::from_raw(self.width as u32, self.height as u32, rgba)
            .expect("pixel count matches the size");
        let mut out = Cursor::new(Vec::new());
        img.write_to(&mut out, image::ImageFormat::Png)
            .expect("PNG encoding to memory");
        out.into_inner()
    }
}

/// Panels side by side (at most `columns` a row), each under its title lines.
pub fn montage(panels: &[Panel], columns: usize) -> Canvas {
    let columns = columns.max(1).min(panels.len().max(1));
    let (pw, ph) = panels.iter().fold((1, 1), |(w, h), p| {
        (w.max(p.canvas.width), h.max(p.canvas.height))
    });
    let lines = panels.iter().map(|p| p.title.len()).max().unwrap_or(0);
    let (gap, line_h) = (8, 12);
    let title_h = lines * line_h + 4;
    let rows = panels.len().div_ceil(columns);
    let mut out = Canvas::new(
        columns * (pw + gap) + gap,
        rows * (ph + title_h + gap) + gap,
        [255, 255, 255],
    );
    for (i, p) in panels.iter().enumerate() {
        let (x, y) = (
            gap + (i % columns) * (pw + gap),
            gap + (i / columns) * (ph + title_h + gap),
        );
        for (l, line) in p.title.iter().enumerate() {
            let max_chars = pw / 8;
            let shown: String = line.chars().take(max_chars).collect();
            out.text(x, y + l * line_h, &shown, 1, [20, 20, 20]);
        }
        out.paste(&p.canvas, x, y + title_h);
    }
    out
}
