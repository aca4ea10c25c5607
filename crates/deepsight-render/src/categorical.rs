//! Categorical maps (Zeiler & Fergus Fig. 7 e: the most probable class at each occluder position)
//! drawn as flat colours with a legend naming each colour.

use crate::canvas::Canvas;

/// Distinct colours (Tableau 10), reused cyclically past ten categories.
pub(crate) const PALETTE: [[u8; 3]; 10] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
    [140, 86, 75],
    [227, 119, 194],
    [127, 127, 127],
    [188, 189, 34],
    [23, 190, 207],
];

/// `grid` (`columns x rows` category ids) scaled to `width x height` (nearest cell), with a
/// legend below: one swatch and label per category in order of first appearance. `label` names a
/// category id.
pub fn categorical_map(
    grid: &[usize],
    columns: usize,
    rows: usize,
    width: usize,
    height: usize,
    label: impl Fn(usize) -> String,
) -> Canvas {
    let mut order: Vec<usize> = Vec::new();
    for &g in grid {
        if !order.contains(&g) {
            order.push(g);
        }
    }
    let colour = |g: usize| PALETTE[order.iter().position(|&o| o == g).unwrap_or(0) % PALETTE.len()];
    let line = 12;
    let mut out = Canvas::new(width, height + 4 + order.len() * line, [255, 255, 255]);
    for y in 0..height {
        for x in 0..width {
            let (gy, gx) = (y * rows / height.max(1), x * columns / width.max(1));
            let c = colour(grid[gy.min(rows - 1) * columns + gx.min(columns - 1)]);
            let i = (y * width + x) * 3;
            out.pixels[i..i + 3].copy_from_slice(&c);
        }
    }
    for (k, &g) in order.iter().enumerate() {
        let y = height + 4 + k * line;
        out.paste(&Canvas::new(10, 10, colour(g)), 0, y);
        // The 8x8 font is 8 px a character: cut long names to the picture's width.
        let text: String = label(g).chars().take(width.saturating_sub(14) / 8).collect();
        out.text(14, y + 1, &text, 1, [0, 0, 0]);
    }
    out
}
