//! Training data: labelled folders (`dataset.txt` with `./FILE, LABEL` lines, as
//! `../shared/data/imagenet-val-1300`, or `./FILE, L1 L2 ...` for multi-label sets) or unlabelled folders of images, several at once, and the
//! labels to train on (the frozen classifier's own top-1, computed once and cached, or the
//! dataset's).

use crate::error::{Result, TrainError};
use std::path::{Path, PathBuf};

/// One training image.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub path: PathBuf,
    /// The dataset's labels (one or more), where the folder has them.
    pub dataset_labels: Option<Vec<usize>>,
}

/// Which labels the module is trained to explain.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Labels {
    /// The frozen classifier's top-1 (what L-CAM's authors train on).
    #[default]
    Predicted,
    /// The labels in `dataset.txt`.
    Dataset,
}

const IMAGE_EXTENSIONS: [&str; 9] = ["jpg", "jpeg", "png", "bmp", "gif", "webp", "tif", "tiff", "ppm"];

fn data_err(path: &Path, reason: impl Into<String>) -> TrainError {
    TrainError::Data {
        path: path.to_path_buf(),
        reason: reason.into(),
    }
}

/// The images of one folder: those listed in its `dataset.txt`, else every image file in it
/// (sorted by name, not recursive).
pub fn read_folder(folder: &Path) -> Result<Vec<Item>> {
    let list = folder.join("dataset.txt");
    if list.is_file() {
        return read_list(&list);
    }
    let entries = std::fs::read_dir(folder).map_err(|source| TrainError::Io {
        path: folder.to_path_buf(),
        source,
    })?;
    let mut items: Vec<Item> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.extension()
                .and_then(|e| e.to_str())
                .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        })
        .map(|path| Item {
            path,
            dataset_labels: None,
        })
        .collect();
    items.sort_by(|a, b| a.path.cmp(&b.path));
    if items.is_empty() {
        return Err(data_err(
            folder,
            "no dataset.txt and no image files in the folder",
        ));
    }
    Ok(items)
}

/// The images of a `dataset.txt` list.
pub fn read_list(list: &Path) -> Result<Vec<Item>> {
    let text = std::fs::read_to_string(list).map_err(|source| TrainError::Io {
        path: list.to_path_buf(),
        source,
    })?;
    let root = list.parent().unwrap_or(Path::new("."));
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (file, labels) = line.rsplit_once(',').ok_or_else(|| {
            data_err(
                list,
                format!("line {}: expected 'FILE, LABEL [LABEL...]', got '{line}'", n + 1),
            )
        })?;
        let labels = parse_labels(labels).map_err(|bad| {
            data_err(
                list,
                format!("line {}: the label '{bad}' is not a class index", n + 1),
            )
        })?;
        items.push(Item {
            path: root.join(file.trim().trim_start_matches("./")),
            dataset_labels: Some(labels),
        });
    }
    if items.is_empty() {
        return Err(data_err(list, "no images listed"));
    }
    Ok(items)
}

/// One or more whitespace-separated class indices, in the order written (duplicates dropped);
/// the offending word on failure.
pub fn parse_labels(text: &str) -> std::result::Result<Vec<usize>, String> {
    let mut out: Vec<usize> = Vec::new();
    for word in text.split_whitespace() {
        let l = word.parse().map_err(|_| word.to_string())?;
        if !out.contains(&l) {
            out.push(l);
        }
    }
    if out.is_empty() {
        return Err(text.trim().to_string());
    }
    Ok(out)
}

/// Every image of several folders, in the order given.
pub fn read_folders(folders: &[PathBuf]) -> Result<Vec<Item>> {
    let mut all = Vec::new();
    for f in folders {
        all.extend(read_folder(f)?);
    }
    Ok(all)
}

/// Splits `n` items into (training, validation) index lists: `val_fraction` of them, chosen by a
/// seeded shuffle that does not depend on the epoch, are held out.
pub fn split(n: usize, val_fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut idx: Vec<usize> = (0..n).collect();
    crate::rng::shuffle(&mut idx, crate::rng::mix(&[seed, 0x5eed_5911]));
    let n_val = ((n as f64) * val_fraction).round() as usize;
    let n_val = n_val.min(n.saturating_sub(1));
    let mut val = idx[..n_val].to_vec();
    let mut train = idx[n_val..].to_vec();
    val.sort_unstable();
    train.sort_unstable();
    (train, val)
}
