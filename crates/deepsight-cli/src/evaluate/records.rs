//! Resumable results: one JSON line per (image, method), appended and synced as soon as it is
//! computed. A restarted run reads the file, drops a line cut short by the stop, and skips every
//! (image, method) already there: nothing is computed twice and nothing finished is lost.

use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

pub struct Records {
    path: PathBuf,
    file: File,
    done: HashSet<(String, String)>,
    /// Every record, old and new, in order.
    pub all: Vec<Value>,
}

impl Records {
    /// Opens (or creates) `path`, keeping its complete lines.
    pub fn open(path: &Path) -> Result<Records> {
        let text = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read '{}'", path.display())),
        };
        let mut all = Vec::new();
        let mut good = 0;
        for line in text.split_inclusive(|&b| b == b'\n') {
            let complete = line.ends_with(b"\n");
            match serde_json::from_slice::<Value>(line) {
                Ok(v) if complete => {
                    all.push(v);
                    good += line.len();
                }
                // A line cut short by a stop (or not ours): everything after it is dropped.
                _ => break,
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open '{}'", path.display()))?;
        file.set_len(good as u64)
            .with_context(|| format!("cannot truncate '{}'", path.display()))?;
        let mut file = file;
        use std::io::Seek;
        file.seek(std::io::SeekFrom::End(0))?;
        let done = all.iter().filter_map(key).collect();
        Ok(Records {
            path: path.to_path_buf(),
            file,
            done,
            all,
        })
    }

    pub fn is_done(&self, image: &str, method: &str) -> bool {
        self.done.contains(&(image.to_string(), method.to_string()))
    }

    /// Appends `record` (with `image` and `method` fields) and syncs it to disk.
    pub fn push(&mut self, record: Value) -> Result<()> {
        let mut line = serde_json::to_vec(&record)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("cannot write '{}'", self.path.display()))?;
        if let Some(k) = key(&record) {
            self.done.insert(k);
        }
        self.all.push(record);
        Ok(())
    }
}

fn key(v: &Value) -> Option<(String, String)> {
    Some((
        v["image"].as_str()?.to_string(),
        v["method"].as_str()?.to_string(),
    ))
}
