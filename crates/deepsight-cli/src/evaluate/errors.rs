//! The L-CAM paper's error analysis: for every misclassified image, the map of the predicted class
//! beside the map of the true class. Near-identical maps (high Pearson r, high overlap of the top
//! 15% pixels) point to near-identical classes; different ones, typically, to a second object.
//! Per image a three-panel PNG (`errors/<stem>.<method>.png`); in the report `errors.md` and per
//! method the six most similar and the six most different pairs stacked in one picture.

use anyhow::{Context, Result, bail};
use deepsight_explain::{Map, Normalisation};
use deepsight_models::preprocess::load_rgb;
use deepsight_models::write_atomic;
use deepsight_render::{Canvas, Colormap, Panel, montage};
use serde_json::{Value, json};
use std::cmp::Ordering;
use std::path::Path;

/// The share of pixels compared by the IoU, in percent.
const TOP_PERCENT: usize = 15;
/// Pairs per summary montage.
const MONTAGE_PAIRS: usize = 6;
/// Opacity of the heatmap over the image (as `explain`'s default).
const ALPHA: f32 = 0.5;

/// Pearson correlation of two equally long maps; `None` when a map is constant (or empty).
pub fn pearson(a: &[f32], b: &[f32]) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let n = a.len() as f64;
    let ma = a.iter().map(|&v| v as f64).sum::<f64>() / n;
    let mb = b.iter().map(|&v| v as f64).sum::<f64>() / n;
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for (&x, &y) in a.iter().zip(b) {
        let (dx, dy) = (x as f64 - ma, y as f64 - mb);
        sab += dx * dy;
        saa += dx * dx;
        sbb += dy * dy;
    }
    let r = sab / (saa * sbb).sqrt();
    r.is_finite().then(|| r.clamp(-1.0, 1.0))
}

/// The indices of the `ceil(percent / 100 * len)` largest values, ties broken by the lower index.
fn top_set(v: &[f32], percent: usize) -> Vec<bool> {
    let k = (v.len() * percent).div_ceil(100);
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&i, &j| v[j].total_cmp(&v[i]).then(i.cmp(&j)));
    let mut set = vec![false; v.len()];
    for &i in &idx[..k] {
        set[i] = true;
    }
    set
}

/// Intersection over union of the two maps' top-`percent` pixel sets; `None` when empty.
pub fn top_iou(a: &[f32], b: &[f32], percent: usize) -> Option<f64> {
    if a.len() != b.len() || a.is_empty() {
        return None;
    }
    let (sa, sb) = (top_set(a, percent), top_set(b, percent));
    let inter = sa.iter().zip(&sb).filter(|(x, y)| **x && **y).count();
    let union = sa.iter().zip(&sb).filter(|(x, y)| **x || **y).count();
    (union > 0).then(|| inter as f64 / union as f64)
}

/// One misclassified image explained for both classes.
pub struct Case<'a> {
    /// The dataset's name of the image (the record's `image`).
    pub image: &'a str,
    pub method: &'a str,
    pub label_name: String,
    pub class_name: String,
    /// The model's view of the image in [0, 1], `[3, h, w]`.
    pub x01: &'a [f32],
    pub hw: [usize; 2],
}

/// A class's display name (`class N` when the model has none).
pub fn class_name(names: &[String], c: usize) -> String {
    names.get(c).cloned().unwrap_or_else(|| format!("class {c}"))
}

/// The PNG of one case, relative to the output folder.
fn png_path(image: &str, method: &str) -> String {
    let stem = Path::new(image)
        .file_stem()
        .map_or_else(|| "image".into(), |s| s.to_string_lossy().into_owned());
    format!("errors/{stem}.{method}.png")
}

/// Compares the maps, writes the case's PNG and returns the record's fields.
pub fn analyse(out: &Path, case: &Case, pred: &Map, truth: &Map) -> Result<Vec<(&'static str, Value)>> {
    let [h, w] = case.hw;
    let (pred, truth) = (pred.resize(h, w), truth.resize(h, w));
    if pred.data.len() != h * w || truth.data.len() != h * w {
        bail!("{}: {}: expected one-channel maps", case.image, case.method);
    }
    let r = pearson(&pred.data, &truth.data);
    let iou = top_iou(&pred.data, &truth.data, TOP_PERCENT);
    let png = png_path(case.image, case.method);
    let file = out.join(&png);
    let dir = out.join("errors");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create '{}'", dir.display()))?;
    let pic = case_montage(case, &pred, &truth, &scores_text(r, iou))?;
    write_atomic(&file, &pic.png())?;
    Ok(vec![
        ("error_pearson", json!(r)),
        ("error_iou15", json!(iou)),
        ("error_png", json!(png)),
        ("label_name", json!(case.label_name)),
        ("class_name", json!(case.class_name)),
    ])
}

fn scores_text(r: Option<f64>, iou: Option<f64>) -> String {
    let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}"));
    format!("r={} IoU={}", f(r), f(iou))
}

/// The [0, 1] CHW image as RGB8.
fn rgb_canvas(x01: &[f32], [h, w]: [usize; 2]) -> Result<Canvas> {
    let plane = h * w;
    if x01.len() < 3 * plane {
        bail!("expected a 3-channel image of {h}x{w}");
    }
    let pixels = (0..plane)
        .flat_map(|p| (0..3).map(move |c| (x01[c * plane + p] * 255.0).round().clamp(0.0, 255.0) as u8))
        .collect();
    Ok(Canvas {
        width: w,
        height: h,
        pixels,
    })
}

fn overlay(base: &Canvas, map: &Map) -> Canvas {
    let values = map.normalise(Normalisation::MinMax).data;
    base.blend(
        &Canvas::heatmap(&values, map.width, map.height, Colormap::Jet),
        ALPHA,
    )
}

/// Input, predicted-class overlay, true-class overlay.
fn case_montage(case: &Case, pred: &Map, truth: &Map, scores: &str) -> Result<Canvas> {
    let base = rgb_canvas(case.x01, case.hw)?;
    let panels = [
        Panel {
            canvas: base.clone(),
            title: vec!["input".into(), case.image_stem()],
        },
        Panel {
            canvas: overlay(&base, pred),
            title: vec![format!("pred: {}", case.class_name), scores.into()],
        },
        Panel {
            canvas: overlay(&base, truth),
            title: vec![format!("true: {}", case.label_name), scores.into()],
        },
    ];
    Ok(montage(&panels, 3))
}

impl Case<'_> {
    fn image_stem(&self) -> String {
        Path::new(self.image)
            .file_stem()
            .map_or_else(|| self.image.into(), |s| s.to_string_lossy().into_owned())
    }
}

/// A misclassified image's fields, read back from its record.
struct Row<'a> {
    image: &'a str,
    label: String,
    class: String,
    r: Option<f64>,
    iou: Option<f64>,
    png: String,
}

fn rows<'a>(records: &'a [Value], method: &str) -> Vec<Row<'a>> {
    let name = |r: &Value, key: &str, id: &str| {
        r[key]
            .as_str()
            .map_or_else(|| format!("class {}", r[id]), String::from)
    };
    let mut rows: Vec<Row> = records
        .iter()
        .filter(|r| r["method"] == method && r.get("error_iou15").is_some())
        .filter_map(|r| {
            let image = r["image"].as_str()?;
            Some(Row {
                image,
                label: name(r, "label_name", "label"),
                class: name(r, "class_name", "class"),
                r: r["error_pearson"].as_f64(),
                iou: r["error_iou15"].as_f64(),
                png: r["error_png"]
                    .as_str()
                    .map_or_else(|| png_path(image, method), String::from),
            })
        })
        .collect();
    // r descending; undefined r (a constant map) last.
    rows.sort_by(|a, b| match (a.r, b.r) {
        (Some(x), Some(y)) => y.total_cmp(&x),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    });
    rows
}

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

/// The report's columns for one method: misclassified images, mean r, mean IoU.
pub fn summary(records: &[&Value]) -> (usize, Option<f64>, Option<f64>) {
    let wrong: Vec<&&Value> = records.iter().filter(|r| r["class"] != r["label"]).collect();
    let r = mean(wrong.iter().filter_map(|r| r["error_pearson"].as_f64()));
    let iou = mean(wrong.iter().filter_map(|r| r["error_iou15"].as_f64()));
    (wrong.len(), r, iou)
}

fn cell(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.3}"))
}

/// Writes `errors.md` and per method `errors-similar.<method>.png` / `errors-different.<method>.png`.
pub fn write_report(out: &Path, records: &[Value], methods: &[String]) -> Result<()> {
    let mut md = String::from(
        "# Misclassified images\n\nPer method, every image whose top-1 class is not its label: the \
         Pearson r between the map of the predicted class and the map of the true class, and the IoU \
         of their top 15% pixels; sorted by r, most similar first.\n",
    );
    for method in methods {
        let rows = rows(records, method);
        md += &method_section(method, &rows);
        if rows.iter().any(|r| r.r.is_some()) {
            write_stack(out, &rows, method)?;
        }
    }
    write_atomic(&out.join("errors.md"), md.as_bytes())?;
    Ok(())
}

fn link(path: &str) -> String {
    path.replace(' ', "%20")
}

fn method_section(method: &str, rows: &[Row]) -> String {
    let mut md = format!("\n## {method}\n\n{} misclassified images", rows.len());
    if rows.iter().any(|r| r.r.is_some()) {
        md += &format!(
            "; most similar pairs: [errors-similar.{method}.png]({}), most different: [errors-different.{method}.png]({})",
            link(&format!("errors-similar.{method}.png")),
            link(&format!("errors-different.{method}.png")),
        );
    }
    md +=
        "\n\n| image | true class | predicted class | r | IoU top 15% | maps |\n|---|---|---|---|---|---|\n";
    for r in rows {
        md += &format!(
            "| {} | {} | {} | {} | {} | [png]({}) |\n",
            r.image,
            r.label,
            r.class,
            cell(r.r),
            cell(r.iou),
            link(&r.png)
        );
    }
    md
}

/// The most similar and the most different pairs (by r), each a column of per-image PNGs.
fn write_stack(out: &Path, rows: &[Row], method: &str) -> Result<()> {
    let defined: Vec<&Row> = rows.iter().filter(|r| r.r.is_some()).collect();
    let similar: Vec<&Row> = defined.iter().take(MONTAGE_PAIRS).copied().collect();
    let different: Vec<&Row> = defined.iter().rev().take(MONTAGE_PAIRS).copied().collect();
    for (name, picked) in [("similar", similar), ("different", different)] {
        let pics: Vec<Canvas> = picked.iter().filter_map(|r| load_png(out, &r.png)).collect();
        if let Some(pic) = stack(&pics) {
            write_atomic(&out.join(format!("errors-{name}.{method}.png")), &pic.png())?;
        }
    }
    Ok(())
}

/// A per-image PNG; a missing or broken one is skipped with a warning (the report still comes).
fn load_png(out: &Path, png: &str) -> Option<Canvas> {
    match load_rgb(&out.join(png)) {
        Ok(img) => Some(Canvas {
            width: img.width,
            height: img.height,
            pixels: img.pixels,
        }),
        Err(e) => {
            eprintln!("warning: errors montage: skipping {e}");
            None
        }
    }
}

/// Pictures one under the other on white.
fn stack(pics: &[Canvas]) -> Option<Canvas> {
    let width = pics.iter().map(|p| p.width).max()?;
    let height = pics.iter().map(|p| p.height).sum();
    let mut canvas = Canvas::new(width, height, [255, 255, 255]);
    let mut y = 0;
    for p in pics {
        canvas.paste(p, 0, y);
        y += p.height;
    }
    Some(canvas)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Option<f64>, b: f64) -> bool {
        a.is_some_and(|a| (a - b).abs() < 1e-9)
    }

    #[test]
    fn pearson_of_identical_negated_and_hand_computed_maps() {
        let a = [1.0, 2.0, 3.0, 4.0];
        assert!(close(pearson(&a, &a), 1.0));
        assert!(close(pearson(&a, &[-1.0, -2.0, -3.0, -4.0]), -1.0));
        // An affine image of the map correlates perfectly.
        assert!(close(pearson(&a, &[10.0, 12.0, 14.0, 16.0]), 1.0));
        // Deviations (-1.5, -0.5, 0.5, 1.5) and (-0.5, 0.5, -0.5, 0.5): r = 1 / sqrt(5 * 1).
        assert!(close(pearson(&a, &[0.0, 1.0, 0.0, 1.0]), 1.0 / 5f64.sqrt()));
        // Orthogonal deviations.
        assert!(close(pearson(&[1.0, 0.0, 0.0, 1.0], &[1.0, 1.0, 0.0, 0.0]), 0.0));
    }

    #[test]
    fn pearson_is_undefined_for_constant_empty_or_mismatched_maps() {
        assert_eq!(pearson(&[1.0, 1.0, 1.0], &[1.0, 2.0, 3.0]), None);
        assert_eq!(pearson(&[], &[]), None);
        assert_eq!(pearson(&[1.0, 2.0], &[1.0, 2.0, 3.0]), None);
    }

    #[test]
    fn top_set_takes_the_ceiling_and_breaks_ties_by_index() {
        // ceil(0.15 * 10) = 2 pixels; 15 * 100 / 100 = 15 exactly (no float rounding up to 16).
        let v = [0.0, 5.0, 1.0, 5.0, 5.0, 0.0, 0.0, 0.0, 0.0, 0.0];
        let s = top_set(&v, 15);
        assert_eq!(s.iter().filter(|&&b| b).count(), 2);
        assert!(s[1] && s[3] && !s[4]);
        assert_eq!(top_set(&[0.0; 100], 15).iter().filter(|&&b| b).count(), 15);
        assert_eq!(top_set(&[0.0; 1], 15), vec![true]);
    }

    #[test]
    fn iou_of_identical_disjoint_and_overlapping_top_sets() {
        // 20 pixels: top 15% = 3.
        let a: Vec<f32> = (0..20).map(|i| i as f32).collect();
        assert!(close(top_iou(&a, &a, 15), 1.0));
        let neg: Vec<f32> = a.iter().map(|v| -v).collect();
        assert!(close(top_iou(&a, &neg, 15), 0.0));
        // Tops {17, 18, 19} and {16, 17, 18}: 2 shared of 4.
        let mut b = a.clone();
        b[19] = 0.0;
        assert!(close(top_iou(&a, &b, 15), 0.5));
        assert_eq!(top_iou(&[], &[], 15), None);
    }

    #[test]
    fn rows_sort_by_r_descending_with_undefined_last() {
        let rec = |image: &str, r: Option<f64>| {
            json!({"image": image, "method": "m", "label": 1, "class": 2, "error_pearson": r,
                   "error_iou15": 0.5, "label_name": "cat", "class_name": "dog"})
        };
        let records = vec![
            rec("./a.jpg", Some(0.1)),
            rec("./b.jpg", None),
            rec("./c.jpg", Some(0.9)),
            json!({"image": "./d.jpg", "method": "m", "label": 1, "class": 1}),
        ];
        let got: Vec<&str> = rows(&records, "m").iter().map(|r| r.image).collect();
        assert_eq!(got, ["./c.jpg", "./a.jpg", "./b.jpg"]);
        assert_eq!(rows(&records, "m")[0].png, "errors/c.m.png");
        let refs: Vec<&Value> = records.iter().collect();
        let (n, r, iou) = summary(&refs);
        assert_eq!(n, 3);
        assert!(close(r, 0.5) && close(iou, 0.5));
    }
}
