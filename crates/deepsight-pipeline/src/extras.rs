//! Pictures of methods' extra outputs: grids over window positions (occlusion's class
//! probability, feature activity and most probable class, as in Zeiler & Fergus Fig. 7), drawn at
//! the image's size over the image, or as flat colours with a legend for class maps and named
//! categories (GraphCut localisation's thresholded saliency, Simonyan et al. Fig. 4).

use deepsight_explain::{ExtraKind, Map};
use deepsight_render::{Canvas, Colormap, categorical_map};

/// Colours of named categories by id: Simonyan et al.'s Fig. 4 (blue: foreground model, cyan:
/// background model, red: ignored), then further distinct colours.
const CATEGORY_COLOURS: [[u8; 3]; 6] = [
    [30, 60, 230],
    [40, 220, 230],
    [230, 30, 30],
    [240, 200, 20],
    [40, 170, 60],
    [150, 60, 200],
];

/// `map` (category ids, any grid) at the picture's size in fixed colours, with a legend below
/// naming every category (present or not, so the legend reads the same for every image).
fn categories(base: &Canvas, map: &Map, labels: &[&str]) -> (Canvas, String) {
    let (rows, cols) = (map.height, map.width);
    let (width, height) = (base.width, base.height);
    let line = 12;
    let mut out = Canvas::new(width, height + 4 + labels.len() * line, [255, 255, 255]);
    let colour = |id: usize| CATEGORY_COLOURS[id % CATEGORY_COLOURS.len()];
    let mut counts = vec![0usize; labels.len().max(1)];
    for v in &map.data {
        let id = (v.max(0.0) as usize).min(counts.len() - 1);
        counts[id] += 1;
    }
    for y in 0..height {
        for x in 0..width {
            let (gy, gx) = (
                (y * rows / height).min(rows - 1),
                (x * cols / width).min(cols - 1),
            );
            let id = map.data[gy * cols + gx].max(0.0) as usize;
            let i = (y * width + x) * 3;
            out.pixels[i..i + 3].copy_from_slice(&colour(id));
        }
    }
    for (k, name) in labels.iter().enumerate() {
        let y = height + 4 + k * line;
        out.paste(&Canvas::new(10, 10, colour(k)), 0, y);
        let text: String = name.chars().take(width.saturating_sub(14) / 8).collect();
        out.text(14, y + 1, &text, 1, [0, 0, 0]);
    }
    let total = map.data.len().max(1);
    let shares: Vec<String> = counts
        .iter()
        .map(|&c| format!("{:.0}%", 100.0 * c as f64 / total as f64))
        .collect();
    (out, shares.join(" / "))
}

/// The picture of `map` (a grid) for an image drawn as `base`, and its title's range line.
pub(crate) fn picture(
    base: &Canvas,
    map: &Map,
    kind: ExtraKind,
    cmap: Colormap,
    alpha: f32,
    label: &dyn Fn(usize) -> String,
) -> (Canvas, String) {
    let (rows, cols) = (map.height, map.width);
    if let ExtraKind::Categories(labels) = kind {
        return categories(base, map, labels);
    }
    if kind == ExtraKind::BoundingBox {
        return boxed(base, &map.data);
    }
    if kind == ExtraKind::Classes {
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
