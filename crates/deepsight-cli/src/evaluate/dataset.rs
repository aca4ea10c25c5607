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
    /// As written in the list (with the bytes' hash, the image's part of a record's key).
    pub name: String,
    /// The line of the list it comes from (1-based), for messages.
    pub line: usize,
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

/// A read list: where it is, a hash of its bytes and its images (the first `--limit`).
pub struct Dataset {
    pub list: PathBuf,
    /// SHA-256 of the list file, hex: shards of one run read the same list.
    pub sha256: String,
    pub items: Vec<Item>,
}

/// The list file of `data`: a folder's `dataset.txt`, or `data` itself.
pub fn list_path(data: &Path) -> PathBuf {
    if data.is_dir() {
        data.join("dataset.txt")
    } else {
        data.to_path_buf()
    }
}

/// Reads `data`: a folder holding `dataset.txt`, or the list file itself.
pub fn load(data: &Path, limit: Option<usize>) -> Result<Dataset> {
    check_limit(limit)?;
    let list = list_path(data);
    let root = list.parent().unwrap_or(Path::new(".")).to_path_buf();
    let bytes = std::fs::read(&list).with_context(|| format!("cannot read '{}'", list.display()))?;
    let text = String::from_utf8(bytes)
        .map_err(|_| anyhow::anyhow!("'{}': not a UTF-8 text file", list.display()))?;
    let boxes = read_annotations(&root.join("annotations.json"))?;
    let mut items: Vec<Item> = Vec::new();
    let mut seen: HashMap<String, usize> = HashMap::new();
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
        if let Some(first) = seen.insert(file.to_string(), n + 1) {
            bail!(
                "{}:{}: '{file}' is listed already on line {first}",
                list.display(),
                n + 1
            );
        }
        let key = file.trim_start_matches("./");
        let path = root.join(key);
        let mask = path
            .file_stem()
            .map(|stem| root.join("masks").join(format!("{}.png", stem.to_string_lossy())))
            .filter(|m| m.is_file());
        items.push(Item {
            name: file.to_string(),
            line: n + 1,
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
        bail!(
            "'{}': no images listed (every line is empty or a # comment)",
            list.display()
        );
    }
    Ok(Dataset {
        sha256: super::fingerprint::sha256_hex(text.as_bytes()),
        list,
        items,
    })
}

/// `--limit` counts images: 0 is refused (it used to evaluate one).
pub fn check_limit(limit: Option<usize>) -> Result<()> {
    if limit == Some(0) {
        bail!("--limit 0: must be at least 1 (leave --limit out to evaluate every image)");
    }
    Ok(())
}

/// Refuses a label the model has no output for, naming the list's line.
pub fn check_labels(list: &Path, items: &[Item], classes: usize) -> Result<()> {
    for it in items {
        if let Some(&l) = it.labels.iter().find(|&&l| l >= classes) {
            bail!(
                "{}:{}: label {l} is out of range: the model has {classes} classes",
                list.display(),
                it.line
            );
        }
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    fn list(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("deepsight-dataset-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dataset.txt");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn err(r: Result<Dataset>) -> String {
        format!("{:#}", r.err().expect("an error"))
    }

    #[test]
    fn labels_the_model_lacks_are_refused_naming_file_and_line() {
        let p = list("range", "# header\n./a.jpg, 3\n\n./b.jpg, 4 5000\n");
        let set = load(&p, None).unwrap();
        assert_eq!(set.items.iter().map(|i| i.line).collect::<Vec<_>>(), [2, 4]);
        assert_eq!(set.sha256.len(), 64);
        check_labels(&set.list, &set.items, 5001).unwrap();
        let e = check_labels(&set.list, &set.items, 1000).unwrap_err().to_string();
        assert_eq!(
            e,
            format!(
                "{}:4: label 5000 is out of range: the model has 1000 classes",
                p.display()
            )
        );
    }

    #[test]
    fn limit_zero_an_empty_list_and_bad_lines_are_refused_naming_the_file() {
        let p = list("limit", "./a.jpg, 1\n./b.jpg, 2\n");
        assert!(err(load(&p, Some(0))).contains("--limit 0: must be at least 1"));
        assert_eq!(load(&p, Some(1)).unwrap().items.len(), 1);
        let e = list("empty", "# only a comment\n\n");
        assert!(err(load(&e, None)).contains(&format!("'{}': no images listed", e.display())));
        for (name, text, says) in [
            ("comma", "./a.jpg 1\n", ":1: expected 'FILE, LABEL'"),
            (
                "label",
                "./a.jpg, 1\n./b.jpg, x\n",
                ":2: the label 'x' is not a class index",
            ),
            ("none", "./a.jpg,\n", ":1: no label after the comma"),
            (
                "twice",
                "./a.jpg, 1\n./b.jpg, 2\n./a.jpg, 3\n",
                ":3: './a.jpg' is listed already on line 1",
            ),
        ] {
            let p = list(name, text);
            let e = err(load(&p, None));
            assert!(e.contains(&format!("{}{says}", p.display())), "{name}: {e}");
        }
    }
}
