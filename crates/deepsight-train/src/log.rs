//! The run's log: `train.jsonl` (one line per iteration and per epoch, every loss term
//! separately) and the loss curve PNG.

use crate::error::{Result, TrainError};
use deepsight_render::{Series, line_plot};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};

/// An append-only JSON-lines log.
pub struct Log {
    path: PathBuf,
    file: std::fs::File,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl Log {
    /// Opens `path`, keeping only the lines of epochs before `keep_epochs` (the ones a resumed run
    /// does not redo).
    pub fn open(path: &Path, keep_epochs: usize) -> Result<Log> {
        let kept: Vec<String> = match std::fs::read_to_string(path) {
            Ok(text) => text
                .lines()
                .filter(|l| {
                    serde_json::from_str::<Value>(l)
                        .ok()
                        .and_then(|v| v["epoch"].as_u64())
                        .is_some_and(|e| (e as usize) < keep_epochs)
                })
                .map(str::to_string)
                .collect(),
            Err(_) => Vec::new(),
        };
        let mut file = std::fs::File::create(path).map_err(io(path))?;
        for l in &kept {
            writeln!(file, "{l}").map_err(io(path))?;
        }
        Ok(Log {
            path: path.to_path_buf(),
            file,
        })
    }

    pub fn write(&mut self, v: &Value) -> Result<()> {
        writeln!(self.file, "{v}").map_err(io(&self.path))?;
        self.file.flush().map_err(io(&self.path))
    }

    /// The loss curve of the log so far: the training loss and each weighted term per iteration
    /// (running means; full batches only, since a term may scale with the batch) and the
    /// validation loss per epoch, over the run's progress.
    pub fn curve_png(&self, terms: &[&str], weights: &[f32]) -> Result<Vec<u8>> {
        let text = std::fs::read_to_string(&self.path).map_err(io(&self.path))?;
        let lines: Vec<Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let full = lines
            .iter()
            .filter_map(|v| v["images"].as_u64())
            .max()
            .unwrap_or(0);
        let steps: Vec<&Value> = lines
            .iter()
            .filter(|v| v["kind"] == "step" && v["images"].as_u64() == Some(full))
            .collect();
        let epochs: Vec<&Value> = lines.iter().filter(|v| v["kind"] == "epoch").collect();
        let smooth = (steps.len() / 50).max(1);
        let running = |key: &str, weight: f32| -> Vec<f32> {
            let v: Vec<f32> = steps
                .iter()
                .map(|s| s[key].as_f64().unwrap_or(0.0) as f32 * weight)
                .collect();
            v.windows(smooth)
                .map(|w| w.iter().sum::<f32>() / w.len() as f32)
                .collect()
        };
        let mut series = vec![Series {
            label: "train loss".into(),
            values: running("loss", 1.0),
        }];
        for (t, w) in terms.iter().zip(weights) {
            series.push(Series {
                label: format!("{w} x {t}"),
                values: running(t, *w),
            });
        }
        if !epochs.is_empty() {
            // One point per epoch, spread over the run.
            let values = epochs
                .iter()
                .filter_map(|e| e["val"]["loss"].as_f64())
                .map(|v| v as f32)
                .collect();
            series.push(Series {
                label: "val loss".into(),
                values,
            });
        }
        let y_max = series
            .iter()
            .flat_map(|s| s.values.iter().copied())
            .filter(|v| v.is_finite())
            .fold(0.0f32, f32::max)
            * 1.05;
        let title = format!(
            "training loss ({} iterations, {} epochs)",
            steps.len(),
            epochs.len()
        );
        Ok(line_plot(&series, &title, "fraction of the run", "loss", y_max).png())
    }
}
