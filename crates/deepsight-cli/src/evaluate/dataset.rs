//! An evaluation set: image files with labels (`dataset.txt`: `./FILE, LABEL` lines, as
//! `../shared/data/imagenet-val-1300`) and, optionally beside it, `annotations.json` with each
//! image's ground-truth boxes (`file`, `size` = `[width, height]` of the stored image,
//! `boxes_xyxy` in that image's pixels).

use anyhow::{Context, Result, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One labelled image.
#[derive(Debug, Clone)]
pub struct Item {
    /// As written in the list (the key of resumable records).
    pub name: String,
    pub path: PathBuf,
    pub label: usize,
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
        let Some((file, label)) = line.rsplit_once(',') else {
            bail!(
                "{}:{}: expected 'FILE, LABEL', got '{line}'",
                list.display(),
                n + 1
            );
        };
        let label: usize = label.trim().parse().with_context(|| {
            format!(
                "{}:{}: the label '{}' is not a class index",
                list.display(),
                n + 1,
                label.trim()
            )
        })?;
        let file = file.trim();
        let key = file.trim_start_matches("./");
        items.push(Item {
            name: file.to_string(),
            path: root.join(key),
            label,
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
