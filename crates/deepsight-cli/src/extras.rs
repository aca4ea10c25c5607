//! Pictures of methods' extra outputs: grids over window positions (occlusion's class
//! probability, feature activity and most probable class, as in Zeiler & Fergus Fig. 7), drawn at
//! the image's size over the image, or as flat colours with a legend for class maps.

use deepsight_explain::Map;
use deepsight_render::{Canvas, Colormap, categorical_map};

/// The picture of `map` (a grid) for an image drawn as `base`, and its title's range line.
pub fn picture(
    base: &Canvas,
    map: &Map,
    categorical: bool,
    cmap: Colormap,
    alpha: f32,
    label: &dyn Fn(usize) -> String,
) -> (Canvas, String) {
    let (rows, cols) = (map.height, map.width);
    if (rows, cols) == (1, 4) {
        return boxed(base, &map.data);
    }
    if categorical {
        let grid: Vec<usize> = map.data.iter().map(|&v| v as usize).collect();
        let distinct = {
            let mut g = grid.clone();
            g.sort_unstable();
            g.dedup();
            g.len()
        };
        let pic = categorical_map(&grid, cols, rows, base.width, base.height, label);
        return (pic, format!("{distinct} classes"));
    }
    let (lo, hi) = map
        .data
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| {
            (l.min(v), h.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let values: Vec<f32> = (0..base.height * base.width)
        .map(|p| {
            let (y, x) = (p / base.width, p % base.width);
            let (gy, gx) = (
                (y * rows / base.height).min(rows - 1),
                (x * cols / base.width).min(cols - 1),
            );
            (map.data[gy * cols + gx] - lo) / span
        })
        .collect();
    let heat = Canvas::heatmap(&values, base.width, base.height, cmap);
    (base.blend(&heat, alpha), format!("{lo:.3} .. {hi:.3}"))
}

/// `base` with the box `[x0, y0, x1, y1]` (inclusive pixels; negative: none) drawn in red, 2 px.
fn boxed(base: &Canvas, b: &[f32]) -> (Canvas, String) {
    let mut c = base.clone();
    if b.iter().any(|&v| v < 0.0) {
        return (c, "no box".into());
    }
    let clamp = |v: f32, hi: usize| (v.round().max(0.0) as usize).min(hi.saturating_sub(1));
    let (x0, y0, x1, y1) = (
        clamp(b[0], c.width),
        clamp(b[1], c.height),
        clamp(b[2], c.width),
        clamp(b[3], c.height),
    );
    let mut put = |x: usize, y: usize| {
        let i = (y * c.width + x) * 3;
        c.pixels[i..i + 3].copy_from_slice(&[230, 20, 20]);
    };
    for t in 0..2 {
        for x in x0..=x1 {
            put(x, (y0 + t).min(y1));
            put(x, y1.saturating_sub(t).max(y0));
        }
        for y in y0..=y1 {
            put((x0 + t).min(x1), y);
            put(x1.saturating_sub(t).max(x0), y);
        }
    }
    (c, format!("[{x0}, {y0}, {x1}, {y1}]"))
}
