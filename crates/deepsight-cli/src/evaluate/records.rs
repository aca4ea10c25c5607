//! Resumable results: one JSON line per (image, method), appended and synced as soon as it is
//! computed, each with its `key` (the hash of everything that determines it, see
//! [`super::fingerprint`]). A restarted run reads the file, drops a line cut short by the stop, and
//! skips every key already there: nothing is computed twice and nothing finished is lost.

use anyhow::{Context, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

pub const RECORDS_FILE: &str = "records.jsonl";

pub struct Records {
    path: PathBuf,
    file: File,
    /// Key -> index in `all`.
    by_key: HashMap<String, usize>,
    /// Every record, old and new, in order.
    pub all: Vec<Value>,
}

/// The complete lines of a records file (none if it does not exist) and their length in bytes.
fn parse(path: &Path) -> Result<(Vec<Value>, usize)> {
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
    Ok((all, good))
}

/// Reads the complete records of `path` without changing the file (for `--merge`).
pub fn read(path: &Path) -> Result<Vec<Value>> {
    Ok(parse(path)?.0)
}

/// A record's key, if it has one.
pub fn key_of(v: &Value) -> Option<&str> {
    v["key"].as_str()
}

impl Records {
    /// Opens (or creates) `path`, keeping its complete lines.
    pub fn open(path: &Path) -> Result<Records> {
        let (all, good) = parse(path)?;
        let mut file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(path)
            .with_context(|| format!("cannot open '{}'", path.display()))?;
        file.set_len(good as u64)
            .with_context(|| format!("cannot truncate '{}'", path.display()))?;
        file.seek(std::io::SeekFrom::End(0))
            .with_context(|| format!("cannot write '{}'", path.display()))?;
        let by_key = all
            .iter()
            .enumerate()
            .filter_map(|(i, v)| Some((key_of(v)?.to_string(), i)))
            .collect();
        Ok(Records {
            path: path.to_path_buf(),
            file,
            by_key,
            all,
        })
    }

    pub fn is_done(&self, key: &str) -> bool {
        self.by_key.contains_key(key)
    }

    /// The record of `key`.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.by_key.get(key).map(|&i| &self.all[i])
    }

    /// Appends `record` (with its `key`) and syncs it to disk.
    pub fn push(&mut self, record: Value) -> Result<()> {
        let mut line = serde_json::to_vec(&record)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|_| self.file.sync_data())
            .with_context(|| format!("cannot write '{}'", self.path.display()))?;
        if let Some(k) = key_of(&record) {
            self.by_key.insert(k.to_string(), self.all.len());
        }
        self.all.push(record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_cut_line_is_dropped_and_keys_are_found() {
        let dir = std::env::temp_dir().join(format!("deepsight-records-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(RECORDS_FILE);
        std::fs::write(&path, "{\"key\": \"a\", \"v\": 1}\n{\"key\": \"b\", \"v\"").unwrap();
        assert_eq!(read(&path).unwrap().len(), 1);
        // Reading does not change the file; opening drops the cut line.
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("\"v\""));
        let mut r = Records::open(&path).unwrap();
        assert!(r.is_done("a") && !r.is_done("b"));
        r.push(json!({"key": "b", "v": 2})).unwrap();
        assert_eq!(r.get("b").unwrap()["v"], 2);
        drop(r);
        let r = Records::open(&path).unwrap();
        assert_eq!(r.all.len(), 2);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 2);
    }
}
