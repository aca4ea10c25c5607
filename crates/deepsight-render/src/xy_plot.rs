//! Line plots over a real-valued x axis (transform amounts in pixels, degrees or scale factors),
//! drawn with the canvas' 8x8 font like [`line_plot`](crate::line_plot), which only knows x in
//! `[0, 1]` at evenly spaced points.

use crate::canvas::Canvas;
use crate::categorical::PALETTE;
use crate::plot::line;

/// One curve: its legend label and its points `(x, y)`, drawn in order.
#[derive(Debug, Clone)]
pub struct XySeries {
    pub label: String,
    pub points: Vec<(f32, f32)>,
}

/// A 640x420 plot of `series` with x over the points' range and y over `[0, y_max]` (`y_max <= 0`:
/// the largest y), ticks at round steps, `title`, axis labels, a marker at every point and a legend.
pub fn xy_plot(series: &[XySeries], title: &str, x_label: &str, y_label: &str, y_max: f32) -> Canvas {
    let (width, height) = (640, 420);
    let (left, right, top, bottom) = (64, 200, 28, 44);
    let (pw, ph) = (width - left - right, height - top - bottom);
    let mut c = Canvas::new(width, height, [255, 255, 255]);
    let (black, grey) = ([0, 0, 0], [220, 220, 220]);
    let finite = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|p| p.0.is_finite() && p.1.is_finite())
    };
    let (mut x0, mut x1) = finite().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), p| {
        (a.min(p.0), b.max(p.0))
    });
    if x0 > x1 {
        (x0, x1) = (0.0, 1.0);
    } else if x0 == x1 {
        (x0, x1) = (x0 - 0.5, x1 + 0.5);
    }
    let largest = finite().fold(0f32, |m, p| m.max(p.1));
    let y_max = if y_max > 0.0 {
        y_max
    } else if largest > 0.0 {
        largest * 1.05
    } else {
        1.0
    };
    let to_px = |x: f32, y: f32| -> (f32, f32) {
        (
            left as f32 + ((x - x0) / (x1 - x0)).clamp(0.0, 1.0) * pw as f32,
            (top + ph) as f32 - (y / y_max).clamp(0.0, 1.0) * ph as f32,
        )
    };
    let xstep = nice_step(x1 - x0);
    let mut t = (x0 / xstep).ceil() * xstep;
    while t <= x1 + xstep * 1e-3 {
        let (x, _) = to_px(t, 0.0);
        line(&mut c, (x, top as f32), (x, (top + ph) as f32), grey);
        let label = tick_label(t, xstep);
        c.text(
            (x as usize).saturating_sub(label.len() * 4),
            top + ph + 6,
            &label,
            1,
            black,
        );
        t += xstep;
    }
    let ystep = nice_step(y_max);
    let mut t = 0.0;
    while t <= y_max * (1.0 + 1e-4) {
        let (_, y) = to_px(x0, t);
        line(&mut c, (left as f32, y), ((left + pw) as f32, y), grey);
        let label = tick_label(t, ystep);
        c.text(
            (left - 4).saturating_sub(label.len() * 8),
            (y as usize).saturating_sub(4),
            &label,
            1,
            black,
        );
        t += ystep;
    }
    let corner = (left as f32, (top + ph) as f32);
    line(&mut c, (left as f32, top as f32), corner, black);
    line(&mut c, corner, ((left + pw) as f32, (top + ph) as f32), black);
    c.text(left, 4, title, 1, black);
    c.text(4, 16, y_label, 1, black);
    c.text(
        (left + pw / 2).saturating_sub(x_label.len() * 4),
        height - 16,
        x_label,
        1,
        black,
    );
    for (k, s) in series.iter().enumerate() {
        let colour = PALETTE[k % PALETTE.len()];
        let pts: Vec<(f32, f32)> = s
            .points
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .map(|&(x, y)| to_px(x, y))
            .collect();
        for w in pts.windows(2) {
            // Two pixels wide: one-pixel lines of five colours are hard to tell apart.
            line(&mut c, w[0], w[1], colour);
            line(&mut c, (w[0].0, w[0].1 + 1.0), (w[1].0, w[1].1 + 1.0), colour);
        }
        for &(x, y) in &pts {
            c.paste(
                &Canvas::new(5, 5, colour),
                (x as usize).saturating_sub(2),
                (y as usize).saturating_sub(2),
            );
        }
        let y = top + 6 + k * 14;
        c.paste(&Canvas::new(16, 3, colour), left + pw + 12, y + 3);
        let label: String = s.label.chars().take((right - 36) / 8).collect();
        c.text(left + pw + 32, y, &label, 1, black);
    }
    c
}

/// A step of 1, 2 or 5 times a power of ten that cuts `span` into 4 to 10 parts.
fn nice_step(span: f32) -> f32 {
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / 8.0;
    let base = 10f32.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * base)
        .find(|&s| span / s <= 10.0)
        .unwrap_or(10.0 * base)
}

/// A tick value with as many decimals as the step needs.
fn tick_label(v: f32, step: f32) -> String {
    let decimals = (-step.log10().floor()).max(0.0) as usize;
    let v = if v.abs() < step * 1e-3 { 0.0 } else { v };
    format!("{v:.decimals$}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nice_steps_are_round() {
        assert_eq!(nice_step(120.0), 20.0);
        assert_eq!(nice_step(350.0), 50.0);
        assert!((nice_step(0.8) - 0.1).abs() < 1e-6);
        assert_eq!(tick_label(-60.0, 20.0), "-60");
        assert_eq!(tick_label(0.6000001, 0.1), "0.6");
    }

    #[test]
    fn draws_a_point_in_the_series_colour() {
        let s = [XySeries {
            label: "a".into(),
            points: vec![(-60.0, 0.0), (60.0, 2.0)],
        }];
        let c = xy_plot(&s, "t", "x", "y", 0.0);
        assert_eq!((c.width, c.height), (640, 420));
        assert!(c.pixels.chunks_exact(3).any(|p| p == PALETTE[0]));
    }
}
