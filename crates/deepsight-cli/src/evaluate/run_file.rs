//! `run.json`: what an output folder holds. The configuration its records were computed under
//! (and its hash), the methods with their own options, the dataset list, the shard, and the
//! images the run was to evaluate with their fingerprints. A resumed run compares its own with
//! it and refuses another configuration, saying what changed; `--merge` reads it to check that
//! shards belong together and are all there.

use super::fingerprint::{canonical, diff, record_key};
use super::segmentation::BASELINES;
use super::shard::Shard;
use anyhow::{Context, Result, bail};
use deepsight_models::write_atomic;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const RUN_FILE: &str = "run.json";
pub const FORMAT: &str = "deepsight-evaluate-run/1";

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct DatasetInfo {
    /// The list file as this run was given it (informative: shards may mount it elsewhere).
    pub list: String,
    /// SHA-256 of the list file.
    pub sha256: String,
    pub limit: Option<usize>,
    /// Images in the list after `--limit`, over every shard.
    pub images: usize,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct ImageEntry {
    /// Position in the list (0-based, after `--limit`): the merged report's order.
    pub index: usize,
    pub name: String,
    /// [`super::fingerprint::image_fingerprint`].
    pub fingerprint: String,
    /// Whether the segmentation baselines are recorded for it (it has a mask).
    pub baselines: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct RunFile {
    pub format: String,
    /// Hash of `config`.
    pub fingerprint: String,
    pub config: Value,
    /// The report's rows, in order: the methods, then the segmentation baselines if any.
    pub methods: Vec<String>,
    /// Own options of every method whose records the folder holds (not only this run's).
    pub method_options: BTreeMap<String, Value>,
    pub model_description: String,
    pub dataset: DatasetInfo,
    pub shard: Option<Shard>,
    /// The images this run (this shard) evaluates, in list order.
    pub images: Vec<ImageEntry>,
    /// Every record written and the report with them.
    pub complete: bool,
}

impl RunFile {
    pub fn path(dir: &Path) -> PathBuf {
        dir.join(RUN_FILE)
    }

    /// The folder's `run.json`, if it has one.
    pub fn read(dir: &Path) -> Result<Option<RunFile>> {
        let path = Self::path(dir);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("cannot read '{}'", path.display())),
        };
        let run: RunFile = serde_json::from_str(&text)
            .with_context(|| format!("'{}': not the run.json of a deepsight evaluate", path.display()))?;
        if run.format != FORMAT {
            bail!(
                "'{}': format '{}', this deepsight reads '{FORMAT}'",
                path.display(),
                run.format
            );
        }
        Ok(Some(run))
    }

    pub fn write(&self, dir: &Path) -> Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        write_atomic(&Self::path(dir), text.as_bytes())?;
        Ok(())
    }

    fn options(&self, method: &str) -> Value {
        self.method_options
            .get(method)
            .cloned()
            .unwrap_or_else(|| serde_json::json!({}))
    }

    /// The rows recorded for `image` and each one's record key.
    pub fn expected(&self, image: &ImageEntry) -> Vec<(String, String)> {
        self.methods
            .iter()
            .filter(|m| image.baselines || !BASELINES.contains(&m.as_str()))
            .map(|m| {
                let key = record_key(&self.fingerprint, m, &self.options(m), &image.fingerprint);
                (m.clone(), key)
            })
            .collect()
    }

    /// What differs between the configuration of `self` (on disk) and `new`, method options
    /// included (methods only one of them has are not a difference).
    pub fn differences(&self, new: &RunFile) -> Vec<String> {
        let mut d = if self.fingerprint == new.fingerprint {
            Vec::new()
        } else {
            diff(&self.config, &new.config)
        };
        if d.is_empty() && self.fingerprint != new.fingerprint {
            d.push(format!(
                "fingerprint: '{}' -> '{}'",
                self.fingerprint, new.fingerprint
            ));
        }
        for (m, o) in &new.method_options {
            if let Some(old) = self.method_options.get(m)
                && old != o
            {
                d.push(format!("{m} options: '{}' -> '{}'", canonical(old), canonical(o)));
            }
        }
        d
    }

    /// Refuses to resume in `dir` when its records are of another configuration.
    pub fn check_resumable(&self, new: &RunFile, dir: &Path) -> Result<()> {
        let d = self.differences(new);
        if !d.is_empty() {
            bail!(
                "'{}' holds records of another configuration ({}): use a new --out, or --fresh to discard them",
                dir.display(),
                d.join("; ")
            );
        }
        Ok(())
    }

    /// `self` with the method options of `old` it lacks: the folder still holds their records.
    pub fn keeping_options_of(mut self, old: &RunFile) -> RunFile {
        for (m, o) in &old.method_options {
            self.method_options.entry(m.clone()).or_insert_with(|| o.clone());
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> RunFile {
        RunFile {
            format: FORMAT.into(),
            fingerprint: "f1".into(),
            config: json!({"model": "lite0 embedded weights", "metrics": "adic"}),
            methods: vec!["gradcam".into(), "rise".into()],
            method_options: BTreeMap::from([
                ("gradcam".into(), json!({})),
                ("rise".into(), json!({"rise_masks": 4000})),
            ]),
            model_description: "lite0".into(),
            dataset: DatasetInfo {
                list: "d.txt".into(),
                sha256: "s".into(),
                limit: None,
                images: 2,
            },
            shard: None,
            images: vec![ImageEntry {
                index: 0,
                name: "./a.jpg".into(),
                fingerprint: "i".into(),
                baselines: false,
            }],
            complete: false,
        }
    }

    #[test]
    fn another_model_or_metric_set_is_refused_saying_what_changed() {
        let old = sample();
        let mut new = sample();
        new.fingerprint = "f2".into();
        new.config["metrics"] = json!("adic,deletion");
        let e = old
            .check_resumable(&new, Path::new("/o"))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("'/o' holds records of another configuration"),
            "{e}"
        );
        assert!(
            e.contains("metrics: 'adic' -> 'adic,deletion'") && e.contains("--fresh"),
            "{e}"
        );
        assert_eq!(e.lines().count(), 1);
    }

    #[test]
    fn other_method_options_are_refused_other_methods_are_not() {
        let old = sample();
        let mut new = sample();
        new.method_options
            .insert("rise".into(), json!({"rise_masks": 10}));
        let e = old
            .check_resumable(&new, Path::new("/o"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("rise options"), "{e}");
        // A run of other methods (and more images) resumes, and keeps the old methods' options.
        let mut other = sample();
        other.methods = vec!["saliency".into()];
        other.method_options = BTreeMap::from([("saliency".into(), json!({}))]);
        other.images.push(ImageEntry {
            index: 1,
            name: "./b.jpg".into(),
            fingerprint: "j".into(),
            baselines: false,
        });
        old.check_resumable(&other, Path::new("/o")).unwrap();
        let kept = other.keeping_options_of(&old);
        assert_eq!(kept.method_options.len(), 3);
    }

    #[test]
    fn expected_keys_follow_the_method_and_image_and_skip_baselines_without_a_mask() {
        let mut run = sample();
        run.methods.push("constant-0".into());
        let mut img = run.images[0].clone();
        let keys = run.expected(&img);
        assert_eq!(keys.len(), 2);
        assert_ne!(keys[0].1, keys[1].1);
        img.baselines = true;
        assert_eq!(run.expected(&img).len(), 3);
        let mut other = img.clone();
        other.fingerprint = "changed bytes".into();
        assert_ne!(run.expected(&img)[0].1, run.expected(&other)[0].1);
    }

    #[test]
    fn the_file_round_trips() {
        let dir = std::env::temp_dir().join(format!("deepsight-runfile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut run = sample();
        run.shard = Some(Shard { index: 1, count: 3 });
        run.write(&dir).unwrap();
        assert_eq!(RunFile::read(&dir).unwrap(), Some(run));
        std::fs::write(RunFile::path(&dir), "{}").unwrap();
        let e = format!("{:#}", RunFile::read(&dir).unwrap_err());
        assert!(e.contains("run.json") && e.contains("not the run.json"), "{e}");
        assert_eq!(RunFile::read(&dir.join("none")).unwrap(), None);
    }
}
