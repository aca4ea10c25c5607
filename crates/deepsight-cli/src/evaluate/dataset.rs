//! An evaluation set: image files with labels (`dataset.txt`: `./FILE, LABEL` lines, as
//! `../shared/data/imagenet-val-1300`, or `./FILE, L1 L2 ...` for multi-label sets) and,
//! optionally beside it, `annotations.json` with each image's ground-truth boxes (`file`, `size` =
//! `[width, height]` of the stored image, `boxes_xyxy` in that image's pixels) and `masks/` with
//! each image's ground-truth pixel mask `masks/<stem>.png` (the mask annotation format of
//! `deepsight_train::mosaic`: 8-bit grey, 0 background, `v` = class `v - 1`, 255 void).

use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One labelled image.
#[derive(Debug, Clone)]
pub struct Item {
    /// As written in the list (the key of resumable records).
    pub name: String,
    pub path: PathBuf,
    /// The first of `labels`: the class of the single-label metrics.
    pub label: usize,
    /// Every label of the line, in order, without repeats.
    pub labels: Vec<usize>,
    /// `masks/<stem>.png` beside the list, when it exists (read when used).
    pub mask: Option<PathBuf>,
    /// `[width, height]` of the stored image and its boxes `[x0, y0, x1, y1]`, when annotated.
    pub boxes: Option<([usize; 2], Vec<[f32; 4]>)>,
}

/// Reads `data`: a folder holding `dataset.txt`, or the list file itself.
pub fn load(data: &Path, limit: Option<usize>) -> Result<Vec<Item>> {
    let list = if data.is_dir() {
        data.join("dataset.txt")
    } else {
        data.to_path_buf()
    };
    let root = list.parent().unwrap_or(Path::new(".")).to_path_buf();
    let text = std::fs::read_to_string(&list).with_context(|| format!("cannot read '{}'", list.display()))?;
    let boxes = read_annotations(&root.join("annotations.json"))?;
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((file, text_labels)) = line.rsplit_once(',') else {
            bail!(
                "{}:{}: expected 'FILE, LABEL' or 'FILE, L1 L2 ...', got '{line}'",
                list.display(),
                n + 1
            );
        };
        let mut labels: Vec<usize> = Vec::new();
        for l in text_labels.split_whitespace() {
            let label: usize = l.parse().with_context(|| {
                format!(
                    "{}:{}: the label '{l}' is not a class index",
                    list.display(),
                    n + 1
                )
            })?;
            if !labels.contains(&label) {
                labels.push(label);
            }
        }
        let Some(&label) = labels.first() else {
            bail!(
                "{}:{}: no label after the comma in '{line}'",
                list.display(),
                n + 1
            );
        };
        let file = file.trim();
        let key = file.trim_start_matches("./");
        let path = root.join(key);
        let mask = path
            .file_stem()
            .map(|stem| root.join("masks").join(format!("{}.png", stem.to_string_lossy())))
            .filter(|m| m.is_file());
        items.push(Item {
            name: file.to_string(),
            path,
            label,
            labels,
            mask,
            boxes: boxes.get(key).cloned(),
        });
        if limit.is_some_and(|l| items.len() >= l) {
            break;
        }
    }
    if items.is_empty() {
        bail!("'{}': no images listed", list.display());
    }
    Ok(items)
}

type Boxes = HashMap<String, ([usize; 2], Vec<[f32; 4]>)>;

fn read_annotations(path: &Path) -> Result<Boxes> {
    if !path.exists() {
        return Ok(HashMap::new());
    }
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read '{}'", path.display()))?;
    let v: serde_json::Value =
        serde_json::from_str(&text).with_context(|| format!("'{}': not valid JSON", path.display()))?;
    let Some(entries) = v.as_array() else {
        bail!(
            "'{}': expected a list of {{file, size, boxes_xyxy}}",
            path.display()
        );
    };
    let mut out = HashMap::new();
    for e in entries {
        let bad = || {
            anyhow::anyhow!(
                "'{}': an entry without file, size [w, h] and boxes_xyxy: {e}",
                path.display()
            )
        };
        let file = e["file"]
            .as_str()
            .ok_or_else(bad)?
            .trim_start_matches("./")
            .to_string();
        let size = e["size"].as_array().filter(|s| s.len() == 2).ok_or_else(bad)?;
        let size = [
            size[0].as_u64().ok_or_else(bad)? as usize,
            size[1].as_u64().ok_or_else(bad)? as usize,
        ];
        let boxes = e["boxes_xyxy"]
            .as_array()
            .ok_or_else(bad)?
            .iter()
            .map(|b| {
                let b = b.as_array().filter(|b| b.len() == 4).ok_or_else(bad)?;
                let f = |i: usize| b[i].as_f64().map(|v| v as f32).ok_or_else(bad);
                Ok([f(0)?, f(1)?, f(2)?, f(3)?])
            })
            .collect::<Result<Vec<_>>>()?;
        out.insert(file, (size, boxes));
    }
    Ok(out)
}
