//! Image resizing that reproduces Pillow's `Image.resize` (8-bit, separable, antialiased when
//! shrinking), so that DeepSight feeds a model the same pixels as the PyTorch pipelines its
//! reference numbers come from.

/// Resampling filters, as Pillow defines them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// Pillow's `BICUBIC` (Keys cubic, a = -0.5).
    Bicubic,
    /// Pillow's `BILINEAR` (triangle).
    Bilinear,
}

impl Filter {
    fn support(self) -> f64 {
        match self {
            Filter::Bicubic => 2.0,
            Filter::Bilinear => 1.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        let x = x.abs();
        match self {
            Filter::Bilinear => (1.0 - x).max(0.0),
            Filter::Bicubic => {
                let a = -0.5;
                if x < 1.0 {
                    ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * a
                } else {
                    0.0
                }
            }
        }
    }
}

const PRECISION_BITS: u32 = 32 - 8 - 2;

/// For each output index: the first input index and fixed-point weights.
fn coefficients(input: usize, output: usize, filter: Filter) -> Vec<(usize, Vec<i64>)> {
    let scale = input as f64 / output as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    (0..output)
        .map(|xx| {
            let center = (xx as f64 + 0.5) * scale;
            let xmin = ((center - support + 0.5) as i64).max(0) as usize;
            let xmax = ((center + support + 0.5) as i64).min(input as i64) as usize;
            let raw: Vec<f64> = (xmin..xmax)
                .map(|x| filter.weight((x as f64 - center + 0.5) / filterscale))
                .collect();
            let total: f64 = raw.iter().sum();
            let fixed = raw
                .iter()
                .map(|w| {
                    let w = if total != 0.0 { w / total } else { 0.0 };
                    let v = w * (1i64 << PRECISION_BITS) as f64;
                    (if v < 0.0 { v - 0.5 } else { v + 0.5 }) as i64
                })
                .collect();
            (xmin, fixed)
        })
        .collect()
}

fn clip8(v: i64) -> u8 {
    (v >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes an interleaved RGB8 image `[h, w, 3]` to `[out_h, out_w, 3]`: horizontal pass first,
/// then vertical, each skipped when its size does not change, rounding to 8 bits in between.
pub fn resize_rgb8(src: &[u8], w: usize, h: usize, out_w: usize, out_h: usize, filter: Filter) -> Vec<u8> {
    // The source is only read: borrowed, not copied (at 100 megapixels, a copy is 300 MB).
    let mut cur = std::borrow::Cow::Borrowed(src);
    let mut cw = w;
    if out_w != w {
        let coef = coefficients(w, out_w, filter);
        let mut next = vec![0u8; out_w * h * 3];
        for y in 0..h {
            let row = &cur[y * w * 3..(y + 1) * w * 3];
            for (xx, (xmin, k)) in coef.iter().enumerate() {
                for c in 0..3 {
                    let mut acc = 1i64 << (PRECISION_BITS - 1);
                    for (i, kk) in k.iter().enumerate() {
                        acc += row[(xmin + i) * 3 + c] as i64 * kk;
                    }
                    next[(y * out_w + xx) * 3 + c] = clip8(acc);
                }
            }
        }
        cur = std::borrow::Cow::Owned(next);
        cw = out_w;
    }
    if out_h != h {
        let coef = coefficients(h, out_h, filter);
        let mut next = vec![0u8; cw * out_h * 3];
        for (yy, (ymin, k)) in coef.iter().enumerate() {
            for x in 0..cw * 3 {
                let mut acc = 1i64 << (PRECISION_BITS - 1);
                for (i, kk) in k.iter().enumerate() {
                    acc += cur[(ymin + i) * cw * 3 + x] as i64 * kk;
                }
                next[yy * cw * 3 + x] = clip8(acc);
            }
        }
        cur = std::borrow::Cow::Owned(next);
    }
    cur.into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_size_is_a_copy() {
        let src: Vec<u8> = (0..4 * 3 * 3).map(|v| v as u8).collect();
        assert_eq!(resize_rgb8(&src, 4, 3, 4, 3, Filter::Bicubic), src);
    }

    #[test]
    fn constant_image_stays_constant() {
        let src = vec![200u8; 37 * 23 * 3];
        let out = resize_rgb8(&src, 37, 23, 11, 17, Filter::Bicubic);
        assert!(out.iter().all(|&v| v == 200));
    }

    #[test]
    fn weights_sum_to_one_in_fixed_point() {
        for (i, o) in [(500, 224), (224, 500), (7, 3)] {
            for (_, k) in coefficients(i, o, Filter::Bicubic) {
                let s: i64 = k.iter().sum();
                assert!((s - (1 << PRECISION_BITS)).abs() <= k.len() as i64, "{s}");
            }
        }
    }
}
