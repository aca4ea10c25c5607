//! Line plots (deletion and insertion curves) drawn with the canvas' 8x8 font: no font file and
//! no plotting crate needed, so the binary stays self-contained.

use crate::canvas::Canvas;
use crate::categorical::PALETTE;

/// One curve: its legend label and its y values at evenly spaced x in `[0, 1]`.
#[derive(Debug, Clone)]
pub struct Series {
    pub label: String,
    pub values: Vec<f32>,
}

/// A `width x height` plot of `series` over x in `[0, 1]` and y in `[0, y_max]`, with axes, ticks
/// at tenths, `title`, axis labels and a legend.
pub fn line_plot(series: &[Series], title: &str, x_label: &str, y_label: &str, y_max: f32) -> Canvas {
    let (width, height) = (640, 420);
    let (left, right, top, bottom) = (56, 200, 28, 44);
    let (pw, ph) = (width - left - right, height - top - bottom);
    let mut c = Canvas::new(width, height, [255, 255, 255]);
    let black = [0, 0, 0];
    let grey = [220, 220, 220];
    let y_max = if y_max > 0.0 { y_max } else { 1.0 };
    let to_px = |x: f32, y: f32| -> (f32, f32) {
        (
            left as f32 + x.clamp(0.0, 1.0) * pw as f32,
            (top + ph) as f32 - (y / y_max).clamp(0.0, 1.0) * ph as f32,
        )
    };
    for t in 0..=10 {
        let f = t as f32 / 10.0;
        let (x, _) = to_px(f, 0.0);
        let (_, y) = to_px(0.0, f * y_max);
        line(&mut c, (x, top as f32), (x, (top + ph) as f32), grey);
        line(&mut c, (left as f32, y), ((left + pw) as f32, y), grey);
        if t % 2 == 0 {
            c.text(
                (x as usize).saturating_sub(12),
                top + ph + 6,
                &format!("{f:.1}"),
                1,
                black,
            );
            c.text(
                4,
                (y as usize).saturating_sub(4),
                &format!("{:.2}", f * y_max),
                1,
                black,
            );
        }
    }
    line(
        &mut c,
        (left as f32, top as f32),
        (left as f32, (top + ph) as f32),
        black,
    );
    line(
        &mut c,
        (left as f32, (top + ph) as f32),
        ((left + pw) as f32, (top + ph) as f32),
        black,
    );
    c.text(left, 4, title, 1, black);
    c.text(4, 16, y_label, 1, black);
    c.text(left + pw / 2 - x_label.len() * 4, height - 16, x_label, 1, black);
    for (k, s) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let n = s.values.len();
        for i in 1..n {
            let a = to_px((i - 1) as f32 / (n - 1) as f32, s.values[i - 1]);
            let b = to_px(i as f32 / (n - 1) as f32, s.values[i]);
            line(&mut c, a, b, colour);
        }
        let y = top + 6 + k * 14;
        c.paste(&Canvas::new(16, 3, colour), left + pw + 12, y + 3);
        let label: String = s.label.chars().take((right - 36) / 8).collect();
        c.text(left + pw + 32, y, &label, 1, black);
    }
    c
}

/// A line from `a` to `b` (pixel centres), one pixel wide.
pub(crate) fn line(c: &mut Canvas, a: (f32, f32), b: (f32, f32), colour: [u8; 3]) {
    let steps = (b.0 - a.0).abs().max((b.1 - a.1).abs()).ceil().max(1.0) as usize;
    for i in 0..=steps {
        let t = i as f32 / steps as f32;
        let (x, y) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
        if x >= 0.0 && y >= 0.0 && (x as usize) < c.width && (y as usize) < c.height {
            let p = (y as usize * c.width + x as usize) * 3;
            c.pixels[p..p + 3].copy_from_slice(&colour);
        }
    }
}
