//! What determines a record, hashed: the run's configuration (model identity, preprocessing,
//! metrics and their settings, the options every method shares), each method's own options, and
//! each image (its name, the SHA-256 of its bytes, its labels, boxes and mask). A record's `key`
//! is the hash of all three, so a resumed run reuses exactly the records it would compute again.
//! Paths are not part of it (shards on other machines mount the data elsewhere); bytes are.

use super::dataset::Item;
use super::{AdIcProfileArg, Args, Metric};
use anyhow::{Context, Result};
use clap::ValueEnum;
use deepsight_models::zoo::lite0_weights;
use deepsight_models::{Arch, LoadedModel, ModelSource, Weights};
use deepsight_runtime::Classifier;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of a file's bytes, naming the file when it cannot be read.
pub fn file_sha256(path: &Path, what: &str) -> Result<String> {
    let bytes =
        std::fs::read(path).with_context(|| format!("{what} '{}': cannot read it", path.display()))?;
    Ok(sha256_hex(&bytes))
}

/// JSON with every object's keys sorted: the same value always hashes the same.
pub fn canonical(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            v => v.clone(),
        }
    }
    sorted(v).to_string()
}

/// The first 128 bits of SHA-256 of the canonical JSON, hex.
pub fn hash_value(v: &Value) -> String {
    sha256_hex(canonical(v).as_bytes())[..32].to_string()
}

/// A state dict's hash: names, shapes and the f32 values' bytes, in name order.
fn weights_sha256(w: &Weights) -> String {
    let mut h = Sha256::new();
    for (name, t) in &w.tensors {
        h.update(name.as_bytes());
        h.update([0]);
        for d in &t.shape {
            h.update((*d as u64).to_le_bytes());
        }
        for v in &t.data {
            h.update(v.to_le_bytes());
        }
    }
    hex(&h.finalize())
}

/// What the model is: a built-in with its weights' hash (or its random seed), or the hash of the
/// weight / ONNX file's bytes (not its path).
fn model_identity(source: &ModelSource) -> Result<Value> {
    Ok(match source {
        ModelSource::Builtin {
            arch,
            random_seed: Some(seed),
        } => json!({"model": format!("{} random weights seed {seed}", arch.name())}),
        ModelSource::Builtin {
            arch,
            random_seed: None,
        } => {
            let sha = if *arch == Arch::Lite0 {
                weights_sha256(&lite0_weights())
            } else {
                String::from("none")
            };
            json!({"model": format!("{} embedded weights", arch.name()), "model_sha256": sha})
        }
        ModelSource::File { arch, path } => json!({
            "model": format!("{} weights file", arch.name()),
            "model_sha256": file_sha256(path, "--model")?,
        }),
        ModelSource::Onnx { path, .. } => json!({
            "model": "ONNX file",
            "model_sha256": file_sha256(path, "--model")?,
        }),
    })
}

fn metric_name(m: Metric) -> String {
    m.to_possible_value()
        .map_or_else(|| format!("{m:?}"), |v| v.get_name().to_string())
}

/// Parses a metric's CLI name back (from a `run.json`).
pub fn metric_of_name(name: &str) -> Option<Metric> {
    Metric::from_str(name, false).ok()
}

pub fn profile_name(p: AdIcProfileArg) -> &'static str {
    match p {
        AdIcProfileArg::Lcam => "lcam",
        AdIcProfileArg::Pgc => "pgc",
    }
}

/// The configuration every record of the run shares: a flat object whose entries name what they
/// are, so that a mismatch can say what changed.
pub fn config(a: &Args, loaded: &LoadedModel) -> Result<Value> {
    let mut c = model_identity(&a.model.source()?)?;
    let p = &loaded.pipeline;
    c["deepsight"] = json!(env!("CARGO_PKG_VERSION"));
    c["classes"] = json!(loaded.model.num_classes());
    c["preprocessing"] = json!(format!(
        "{} preset, resize {:?}, mean {:?}, std {:?}",
        loaded.preset.name(),
        p.resize,
        p.mean,
        p.std
    ));
    c["metrics"] = json!(
        a.metrics
            .iter()
            .map(|&m| metric_name(m))
            .collect::<Vec<_>>()
            .join(",")
    );
    c["adic_profile"] = json!(profile_name(a.adic_profile));
    if a.metrics
        .iter()
        .any(|m| matches!(m, Metric::Deletion | Metric::Insertion))
    {
        c["causal_step"] = json!(a.causal_step);
    }
    if a.metrics.contains(&Metric::Sanity) {
        c["sanity_depth"] = json!(a.sanity_depth);
    }
    c["seed"] = json!(a.seed);
    c["batch_size"] = json!(a.batch_size);
    Ok(c)
}

/// The options of one method beyond the shared ones (the flags of `evaluate` that reach it).
pub fn method_options(a: &Args, method: &str) -> Result<Value> {
    let weights = |p: Option<&Path>, flag: &str| -> Result<Value> {
        Ok(match p {
            Some(p) => json!(format!("sha256 {}", file_sha256(p, flag)?)),
            None => json!("shipped"),
        })
    };
    Ok(match method {
        "rise" => json!({"rise_masks": a.rise_masks}),
        "l-cam-img" | "l-cam-fm" => {
            // Each file holds one variant; which one is read from it, so both hash every file.
            let files: Vec<Value> = a
                .lcam
                .lcam_weights
                .iter()
                .map(|p| weights(Some(p), "--lcam-weights"))
                .collect::<Result<_>>()?;
            if files.is_empty() {
                json!({"lcam_weights": "shipped"})
            } else {
                json!({ "lcam_weights": files })
            }
        }
        "explainer" => {
            json!({"explainer_weights": weights(a.lcam.explainer_weights.as_deref(), "--explainer-weights")?})
        }
        _ => json!({}),
    })
}

/// One image's identity: its name in the list, its bytes, and the ground truth the metrics read.
pub fn image_fingerprint(item: &Item) -> Result<String> {
    let sha = file_sha256(&item.path, "image")?;
    let mask = match &item.mask {
        Some(m) => json!(file_sha256(m, "mask")?),
        None => Value::Null,
    };
    Ok(hash_value(&json!({
        "name": item.name, "sha256": sha, "labels": item.labels,
        "boxes": item.boxes.as_ref().map(|(size, b)| json!({"size": size, "boxes": b})),
        "mask_sha256": mask,
    })))
}

/// A record's key: the run's configuration, the method and its options, the image.
pub fn record_key(config_fp: &str, method: &str, options: &Value, image_fp: &str) -> String {
    hash_value(&json!({"config": config_fp, "method": method, "options": options, "image": image_fp}))
}

/// The entries that differ between two configurations, as `name: 'old' -> 'new'`.
pub fn diff(old: &Value, new: &Value) -> Vec<String> {
    let empty = Map::new();
    let (o, n) = (
        old.as_object().unwrap_or(&empty),
        new.as_object().unwrap_or(&empty),
    );
    let mut keys: Vec<&String> = o.keys().chain(n.keys()).collect();
    keys.sort();
    keys.dedup();
    let show = |v: Option<&Value>| match v {
        None => "(none)".to_string(),
        Some(Value::String(s)) => short(s),
        Some(v) => short(&v.to_string()),
    };
    keys.into_iter()
        .filter(|k| o.get(*k) != n.get(*k))
        .map(|k| format!("{k}: '{}' -> '{}'", show(o.get(k)), show(n.get(k))))
        .collect()
}

/// Hashes cut to 12 characters, long values to 80: a message stays one readable line.
fn short(s: &str) -> String {
    if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return format!("{}…", &s[..12]);
    }
    if s.chars().count() > 80 {
        return format!("{}…", s.chars().take(80).collect::<String>());
    }
    s.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_json_ignores_key_order() {
        let a: Value = serde_json::from_str(r#"{"b": 1, "a": {"y": [1, 2], "x": null}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a": {"x": null, "y": [1, 2]}, "b": 1}"#).unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(hash_value(&a), hash_value(&b));
        assert_ne!(hash_value(&a), hash_value(&json!({"b": 2})));
        assert_eq!(hash_value(&a).len(), 32);
    }

    #[test]
    fn record_keys_change_with_every_part() {
        let base = record_key("c", "gradcam", &json!({}), "img");
        assert_eq!(base, record_key("c", "gradcam", &json!({}), "img"));
        for other in [
            record_key("c2", "gradcam", &json!({}), "img"),
            record_key("c", "saliency", &json!({}), "img"),
            record_key("c", "gradcam", &json!({"rise_masks": 10}), "img"),
            record_key("c", "gradcam", &json!({}), "img2"),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn diff_names_what_changed() {
        let old = json!({"model": "lite0 embedded weights", "metrics": "adic", "seed": 0,
                         "model_sha256": "a".repeat(64)});
        let new = json!({"model": "resnet18 weights file", "metrics": "adic", "seed": 0,
                         "model_sha256": "b".repeat(64), "causal_step": 224});
        let d = diff(&old, &new);
        assert_eq!(
            d,
            [
                "causal_step: '(none)' -> '224'",
                "model: 'lite0 embedded weights' -> 'resnet18 weights file'",
                "model_sha256: 'aaaaaaaaaaaa…' -> 'bbbbbbbbbbbb…'",
            ]
        );
        assert!(diff(&old, &old).is_empty());
    }

    #[test]
    fn sha256_of_known_input() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
