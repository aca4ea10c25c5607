//! Augmentation presets: how a training image becomes a `[3, H, W]` tensor in `[0, 1]`.

use deepsight_models::RgbImage;
use deepsight_models::preprocess::Preprocess;
use deepsight_models::resample::{Filter, resize_rgb8};
use rand::Rng;

/// A typed augmentation preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Augmentation {
    /// L-CAM's authors (`utils/LoadData.py`): `Resize(shorter)` (bilinear, aspect kept),
    /// `RandomCrop(crop)`, `RandomHorizontalFlip(0.5)`. For a 224x224 model: 256 and 224.
    ResizeRandomCropFlip { shorter: usize, crop: [usize; 2] },
    /// The model's own evaluation preprocessing (deterministic): what validation uses.
    Eval,
}

impl Augmentation {
    /// The authors' preset, scaled to a model input of `size` (their 256/224 ratio kept).
    pub fn lcam_reference(size: [usize; 2]) -> Self {
        Augmentation::ResizeRandomCropFlip {
            shorter: (size[0].min(size[1]) * 256 + 112) / 224,
            crop: size,
        }
    }

    /// `img` transformed as the preset says, `[3, H, W]` in `[0, 1]`; `rng` draws the crop and
    /// the flip.
    pub fn apply(
        &self,
        img: &RgbImage,
        eval: &Preprocess,
        rng: &mut impl Rng,
    ) -> deepsight_models::Result<Vec<f32>> {
        let out = match *self {
            Augmentation::Eval => eval.resize(img)?,
            Augmentation::ResizeRandomCropFlip {
                shorter,
                crop: [ch, cw],
            } => {
                let (w, h) = (img.width, img.height);
                // torchvision's Resize(int): the shorter side to `shorter`, the other truncated.
                let (nw, nh) = if w <= h {
                    (shorter, (shorter * h) / w)
                } else {
                    ((shorter * w) / h, shorter)
                };
                let (nw, nh) = (nw.max(cw), nh.max(ch));
                let resized = resize_rgb8(&img.pixels, w, h, nw, nh, Filter::Bilinear);
                let top = rng.random_range(0..=nh - ch);
                let left = rng.random_range(0..=nw - cw);
                let flip = rng.random_bool(0.5);
                let mut pixels = Vec::with_capacity(ch * cw * 3);
                for y in 0..ch {
                    for x in 0..cw {
                        let sx = if flip { left + cw - 1 - x } else { left + x };
                        let at = ((top + y) * nw + sx) * 3;
                        pixels.extend_from_slice(&resized[at..at + 3]);
                    }
                }
                RgbImage {
                    width: cw,
                    height: ch,
                    pixels,
                }
            }
        };
        let n = out.width * out.height;
        let mut planes = vec![0f32; 3 * n];
        for (i, px) in out.pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                planes[c * n + i] = px[c] as f32 / 255.0;
            }
        }
        Ok(planes)
    }
}
