//! `deepsight evaluate --merge DIR... --out DIR`: the shards of one run become the output of one
//! unsharded run (records.jsonl in list order, run.json, the report, the error pictures). Each
//! DIR is a shard's folder or a folder holding `shard-I-of-N` folders. Refused, naming the
//! folders: shards of another configuration or dataset, a count that differs, an index twice,
//! missing indices (listed), an image in two shards, a shard still running or not finished.

use super::lock::OutLock;
use super::records::{self, RECORDS_FILE, key_of};
use super::run_file::{ImageEntry, RunFile};
use super::shard::{self, Shard};
use super::{Metric, fingerprint, report};
use anyhow::{Context, Result, bail};
use deepsight_eval::adic::AdIcProfile;
use deepsight_models::write_atomic;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The `shard-I-of-N` folders of `dir`, in name order.
fn shard_folders(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("--merge '{}': cannot read it", dir.display()))?;
    let mut found = Vec::new();
    for e in entries {
        let e = e.with_context(|| format!("--merge '{}': cannot read it", dir.display()))?;
        if e.path().is_dir() && Shard::of_folder(&e.file_name().to_string_lossy()).is_some() {
            found.push(e.path());
        }
    }
    found.sort();
    Ok(found)
}

/// Every shard named by `dirs`, with its run.json.
fn gather(dirs: &[PathBuf]) -> Result<Vec<(PathBuf, RunFile)>> {
    let mut shards = Vec::new();
    for d in dirs {
        if let Some(r) = RunFile::read(d)? {
            shards.push((d.clone(), r));
            continue;
        }
        let subs = shard_folders(d)?;
        if subs.is_empty() {
            bail!(
                "--merge '{}': neither an evaluate output (no run.json) nor a folder of shard-I-of-N folders",
                d.display()
            );
        }
        for s in subs {
            match RunFile::read(&s)? {
                Some(r) => shards.push((s, r)),
                None => bail!(
                    "'{}': no run.json: this shard has not started; run it, then merge again",
                    s.display()
                ),
            }
        }
    }
    Ok(shards)
}

/// What keeps `b` from being a shard of the same run as `a`.
fn mismatch(a: &RunFile, b: &RunFile) -> Vec<String> {
    let mut d = a.differences(b);
    if a.methods != b.methods {
        d.push(format!(
            "methods: '{}' -> '{}'",
            a.methods.join(","),
            b.methods.join(",")
        ));
    }
    let (x, y) = (&a.dataset, &b.dataset);
    if x.sha256 != y.sha256 {
        d.push(format!(
            "dataset list: '{}' -> '{}' (other bytes)",
            x.list, y.list
        ));
    }
    if x.limit != y.limit {
        d.push(format!("limit: {:?} -> {:?}", x.limit, y.limit));
    }
    d
}

/// Checks that the shards are of one run and all there; returns N.
fn check_set(shards: &[(PathBuf, RunFile)]) -> Result<usize> {
    let (first_dir, first) = &shards[0];
    for (d, r) in &shards[1..] {
        let m = mismatch(first, r);
        if !m.is_empty() {
            bail!(
                "'{}' is a shard of another run than '{}' ({}): merge only the shards of one configuration",
                d.display(),
                first_dir.display(),
                m.join("; ")
            );
        }
    }
    let mut count = None;
    let mut seen: HashMap<usize, &Path> = HashMap::new();
    for (d, r) in shards {
        let Some(s) = r.shard else {
            bail!(
                "'{}' is not a shard (it was run without --shard or --shards): there is nothing to merge",
                d.display()
            );
        };
        match count {
            None => count = Some((s.count, d)),
            Some((n, other)) if n != s.count => bail!(
                "'{}' is shard {} of {}, but '{}' is one of {n}: merge the shards of one count",
                d.display(),
                s.index,
                s.count,
                other.display()
            ),
            _ => {}
        }
        if let Some(prev) = seen.insert(s.index, d) {
            bail!(
                "'{}' and '{}' are both shard {} of {}: pass each shard once",
                prev.display(),
                d.display(),
                s.index,
                s.count
            );
        }
    }
    let n = count.map_or(0, |(n, _)| n);
    let missing: Vec<usize> = (0..n).filter(|i| !seen.contains_key(i)).collect();
    if !missing.is_empty() {
        bail!(
            "missing shards {} of {n} (0-based; got {} from {}): run them (a stopped one resumes), then merge again",
            shard::list(&missing),
            seen.len(),
            shards
                .iter()
                .map(|(d, _)| d.parent().unwrap_or(d).display().to_string())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    for (d, _) in shards {
        if OutLock::is_held(d)? {
            bail!(
                "'{}': a deepsight evaluate is still writing this shard: wait for it, then merge",
                d.display()
            );
        }
    }
    Ok(n)
}

/// One image's records, from the shard that evaluated it.
struct Evaluated<'a> {
    image: ImageEntry,
    records: Vec<Value>,
    dir: &'a Path,
}

/// Every image's records, in list order; refuses an image in two shards or one not evaluated.
fn collect(shards: &[(PathBuf, RunFile)]) -> Result<Vec<Evaluated<'_>>> {
    let mut owner: HashMap<&str, &Path> = HashMap::new();
    let mut all = Vec::new();
    for (d, r) in shards {
        let path = d.join(RECORDS_FILE);
        let recs = records::read(&path)?;
        let by_key: HashMap<&str, &Value> = recs.iter().filter_map(|v| Some((key_of(v)?, v))).collect();
        let mut unfinished = 0;
        for img in &r.images {
            if let Some(prev) = owner.insert(&img.name, d) {
                bail!(
                    "'{}' is in both '{}' and '{}': the shards overlap",
                    img.name,
                    prev.display(),
                    d.display()
                );
            }
            let expected = r.expected(img);
            let got: Vec<Value> = expected
                .iter()
                .filter_map(|(_, k)| by_key.get(k.as_str()).map(|v| (*v).clone()))
                .collect();
            if got.len() < expected.len() {
                unfinished += 1;
            }
            all.push(Evaluated {
                image: img.clone(),
                records: got,
                dir: d,
            });
        }
        if unfinished > 0 {
            let s = r.shard.expect("checked: every input is a shard");
            bail!(
                "'{}': shard {} of {} is incomplete ({} of {} images evaluated): run it again (it resumes), then \
                 merge",
                d.display(),
                s.index,
                s.count,
                r.images.len() - unfinished,
                r.images.len()
            );
        }
    }
    all.sort_by_key(|e| e.image.index);
    let total = shards[0].1.dataset.images;
    if all.len() != total {
        bail!(
            "the shards hold {} images, their list has {total}: were they run with one --limit and list?",
            all.len()
        );
    }
    Ok(all)
}

fn same_folder(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(x), Ok(y)) => x == y,
        _ => false,
    }
}

pub fn run(dirs: &[PathBuf], out: &Path) -> Result<()> {
    let shards = gather(dirs)?;
    check_set(&shards)?;
    let evaluated = collect(&shards)?;
    let first = &shards[0].1;
    let metrics: Vec<Metric> = first.config["metrics"]
        .as_str()
        .unwrap_or_default()
        .split(',')
        .filter(|m| !m.is_empty())
        .map(|m| {
            fingerprint::metric_of_name(m).with_context(|| {
                format!(
                    "'{}': unknown metric '{m}'",
                    RunFile::path(&shards[0].0).display()
                )
            })
        })
        .collect::<Result<_>>()?;
    let profile = match first.config["adic_profile"].as_str() {
        Some("pgc") => AdIcProfile::Pgc,
        _ => AdIcProfile::Lcam,
    };
    if let Some((d, _)) = shards.iter().find(|(d, _)| same_folder(d, out)) {
        bail!(
            "--out '{}' is one of the shards merged ('{}'): merge into another folder",
            out.display(),
            d.display()
        );
    }
    let mut merged = first.clone();
    merged.shard = None;
    merged.complete = false;
    merged.images = evaluated.iter().map(|e| e.image.clone()).collect();
    for (_, r) in &shards[1..] {
        merged = merged.keeping_options_of(r);
    }
    std::fs::create_dir_all(out).with_context(|| format!("cannot create '{}'", out.display()))?;
    let _lock = OutLock::acquire(out)?;
    match RunFile::read(out)? {
        Some(old) => old.check_resumable(&merged, out)?,
        None if std::fs::metadata(out.join(RECORDS_FILE)).is_ok_and(|m| m.len() > 0) => bail!(
            "--out '{}' holds records but no run.json: merge into a new folder",
            out.display()
        ),
        None => {}
    }
    // The error pictures the records point to, from the shard that drew them.
    for e in &evaluated {
        for r in &e.records {
            if let Some(png) = r["error_png"].as_str() {
                let (src, dst) = (e.dir.join(png), out.join(png));
                if let Ok(bytes) = std::fs::read(&src) {
                    if let Some(parent) = dst.parent() {
                        std::fs::create_dir_all(parent)
                            .with_context(|| format!("cannot create '{}'", parent.display()))?;
                    }
                    write_atomic(&dst, &bytes)?;
                }
            }
        }
    }
    let ordered: Vec<Value> = evaluated.into_iter().flat_map(|e| e.records).collect();
    let mut lines = Vec::new();
    for r in &ordered {
        lines.extend(serde_json::to_vec(r)?);
        lines.push(b'\n');
    }
    merged.write(out)?;
    write_atomic(&out.join(RECORDS_FILE), &lines)?;
    eprintln!(
        "merged {} shards: {} images, {} records -> '{}'",
        shards.len(),
        merged.images.len(),
        ordered.len(),
        out.display()
    );
    report::write(
        out,
        &ordered,
        &metrics,
        &merged.methods,
        profile,
        merged.images.len(),
        &merged.model_description,
    )?;
    merged.complete = true;
    merged.write(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::run_file::{DatasetInfo, FORMAT};
    use serde_json::json;
    use std::collections::BTreeMap;

    /// A shard of a 5-image run of one method, `missing` of its images without a record.
    fn write_shard(root: &Path, s: Shard, missing: usize) -> PathBuf {
        let dir = root.join(s.folder());
        std::fs::create_dir_all(&dir).unwrap();
        let mut run = RunFile {
            format: FORMAT.into(),
            fingerprint: "cfg".into(),
            config: json!({"metrics": "adic", "adic_profile": "lcam"}),
            methods: vec!["gradcam".into()],
            method_options: BTreeMap::from([("gradcam".into(), json!({}))]),
            model_description: "test model".into(),
            dataset: DatasetInfo {
                list: "list.txt".into(),
                sha256: "l".into(),
                limit: None,
                images: 5,
            },
            shard: Some(s),
            images: Vec::new(),
            complete: true,
        };
        let mut lines = String::new();
        for k in (0..5).filter(|&k| s.owns(k)) {
            let img = ImageEntry {
                index: k,
                name: format!("./{k}.jpg"),
                fingerprint: format!("img{k}"),
                baselines: false,
            };
            let (_, key) = run.expected(&img).remove(0);
            if run.images.len() >= missing {
                let y = 0.5 + k as f64 / 10.0;
                let r = json!({"image": img.name, "method": "gradcam", "label": 1, "class": 1, "key": key,
                    "keep100_y": y, "keep100_o": y / 2.0, "keep50_y": y, "keep50_o": y / 3.0,
                    "keep15_y": y, "keep15_o": y / 4.0, "forward_passes": 1, "backward_passes": 1,
                    "metric_passes": 3, "seconds": 0.1});
                lines += &format!("{r}\n");
            }
            run.images.push(img);
        }
        std::fs::write(dir.join(RECORDS_FILE), lines).unwrap();
        run.write(&dir).unwrap();
        dir
    }

    fn root(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("deepsight-merge-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[test]
    fn complete_shards_merge_in_list_order() {
        let r = root("ok");
        for index in 0..3 {
            write_shard(&r, Shard { index, count: 3 }, 0);
        }
        let out = r.join("merged");
        run(std::slice::from_ref(&r), &out).unwrap();
        let recs = records::read(&out.join(RECORDS_FILE)).unwrap();
        let names: Vec<&str> = recs.iter().map(|v| v["image"].as_str().unwrap()).collect();
        assert_eq!(names, ["./0.jpg", "./1.jpg", "./2.jpg", "./3.jpg", "./4.jpg"]);
        let merged = RunFile::read(&out).unwrap().unwrap();
        assert!(merged.complete && merged.shard.is_none() && merged.images.len() == 5);
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
        assert_eq!(json["images"], 5);
        assert_eq!(json["methods"][0]["images"], 5);
    }

    #[test]
    fn three_shards_report_what_one_shard_of_everything_reports() {
        let (one, three) = (root("one"), root("three"));
        write_shard(&one, Shard { index: 0, count: 1 }, 0);
        for index in 0..3 {
            write_shard(&three, Shard { index, count: 3 }, 0);
        }
        let (a, b) = (one.join("m"), three.join("m"));
        run(std::slice::from_ref(&one), &a).unwrap();
        run(std::slice::from_ref(&three), &b).unwrap();
        for name in ["results.json", "results.md", "results.csv", RECORDS_FILE] {
            let read = |d: &Path| std::fs::read_to_string(d.join(name)).unwrap();
            assert_eq!(read(&a), read(&b), "{name}");
        }
    }

    #[test]
    fn missing_duplicated_incomplete_and_foreign_shards_are_refused() {
        let r = root("bad");
        let a = write_shard(&r, Shard { index: 0, count: 4 }, 0);
        let c = write_shard(&r, Shard { index: 2, count: 4 }, 0);
        let e = run(std::slice::from_ref(&r), &r.join("m"))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("missing shards 1, 3 of 4"), "{e}");
        let e = run(&[a.clone(), a.clone()], &r.join("m"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("are both shard 0 of 4"), "{e}");
        let b = write_shard(&r, Shard { index: 1, count: 4 }, 1);
        write_shard(&r, Shard { index: 3, count: 4 }, 0);
        let e = run(std::slice::from_ref(&r), &r.join("m"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&b.display().to_string()) && e.contains("incomplete (0 of 1 images"),
            "{e}"
        );
        // Another configuration.
        write_shard(&r, Shard { index: 1, count: 4 }, 0);
        let mut other = RunFile::read(&c).unwrap().unwrap();
        other.config["metrics"] = json!("adic,deletion");
        other.fingerprint = "cfg2".into();
        other.write(&c).unwrap();
        let e = run(std::slice::from_ref(&r), &r.join("m"))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("another run") && e.contains("metrics: 'adic' -> 'adic,deletion'"),
            "{e}"
        );
        // An image in two shards.
        write_shard(&r, Shard { index: 2, count: 4 }, 0);
        let mut dup = RunFile::read(&c).unwrap().unwrap();
        dup.images
            .push(RunFile::read(&a).unwrap().unwrap().images[0].clone());
        dup.write(&c).unwrap();
        let e = run(std::slice::from_ref(&r), &r.join("m"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("'./0.jpg' is in both"), "{e}");
        // Another count.
        let e = run(
            &[a, write_shard(&r, Shard { index: 1, count: 2 }, 0)],
            &r.join("m"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("shard 1 of 2") && e.contains("one of 4"), "{e}");
    }
}
