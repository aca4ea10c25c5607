//! The evaluation report: one row per method, one column per metric, the profile of each metric
//! named in the header; Markdown, CSV and JSON, and plots of the mean deletion / insertion curves.

use super::{KEEPS, Metric, errors, saliency, segmentation};
use anyhow::Result;
use deepsight_eval::adic::{AdIcProfile, Confidence, average_drop, increase_in_confidence};
use deepsight_eval::pointing::PointingGame;
use deepsight_models::write_atomic;
use deepsight_render::{Series, line_plot};
use serde_json::{Value, json};
use std::path::Path;

fn mean(v: impl Iterator<Item = f64>) -> Option<f64> {
    let (s, n) = v.fold((0.0, 0usize), |(s, n), x| (s + x, n + 1));
    (n > 0).then(|| s / n as f64)
}

fn mean_curve(rows: &[&Value], key: &str) -> Option<Vec<f32>> {
    let curves: Vec<Vec<f32>> = rows
        .iter()
        .filter_map(|r| r[key].as_array())
        .map(|a| a.iter().filter_map(|v| v.as_f64()).map(|v| v as f32).collect())
        .collect();
    let len = curves.first()?.len();
    let curves: Vec<&Vec<f32>> = curves.iter().filter(|c| c.len() == len).collect();
    Some(
        (0..len)
            .map(|i| curves.iter().map(|c| c[i]).sum::<f32>() / curves.len() as f32)
            .collect(),
    )
}

/// Writes results.{md,csv,json} and the curve plots from every record.
pub fn write(
    out: &Path,
    records: &[Value],
    metrics: &[Metric],
    methods: &[String],
    profile: AdIcProfile,
    images: usize,
    model: &str,
) -> Result<()> {
    let mut columns: Vec<String> = vec!["method".into(), "images".into()];
    let has = |m: Metric| metrics.contains(&m);
    if has(Metric::Adic) {
        for k in KEEPS {
            let p = (k * 100.0).round();
            columns.push(format!("AD {p}% (lower is better)"));
            columns.push(format!("IC {p}% (higher is better)"));
        }
    }
    if has(Metric::Deletion) {
        columns.push("deletion AUC (lower)".into());
    }
    if has(Metric::Insertion) {
        columns.push("insertion AUC (higher)".into());
    }
    if has(Metric::Pointing) {
        columns.push("pointing game % (centre baseline %)".into());
    }
    if has(Metric::Localisation) {
        columns.push("top-1 loc. error %".into());
    }
    if has(Metric::Road) {
        columns.push("ROAD MoRF mean (lower)".into());
        columns.push("ROAD LeRF mean (higher)".into());
    }
    if has(Metric::Errors) {
        columns.push("misclassified images".into());
        columns.push("mean r (pred vs true map)".into());
        columns.push("mean IoU top 15%".into());
    }
    if has(Metric::Segmentation) {
        columns.extend(segmentation::COLUMNS.iter().map(|(h, _)| h.to_string()));
    }
    if has(Metric::Saliency) {
        columns.extend(saliency::COLUMNS.iter().map(|(h, _)| h.to_string()));
    }
    columns.extend(
        [
            "forward passes / expl.",
            "backward passes / expl.",
            "metric passes / image",
            "s / expl.",
        ]
        .map(String::from),
    );
    let mut table: Vec<Vec<String>> = Vec::new();
    let mut json_rows = Vec::new();
    let mut deletion = Vec::new();
    let mut insertion = Vec::new();
    for method in methods {
        let rows: Vec<&Value> = records
            .iter()
            .filter(|r| r["method"] == method.as_str())
            .collect();
        if rows.is_empty() {
            continue;
        }
        let mut row = vec![method.clone(), rows.len().to_string()];
        let mut j = json!({"method": method, "images": rows.len()});
        let f = |key: &str| mean(rows.iter().filter_map(|r| r[key].as_f64()));
        if has(Metric::Adic) {
            for k in KEEPS {
                let tag = format!("keep{}", (k * 100.0).round() as u32);
                let c: Vec<Confidence> = rows
                    .iter()
                    .filter_map(|r| {
                        Some(Confidence {
                            y: r[format!("{tag}_y")].as_f64()? as f32,
                            o: r[format!("{tag}_o")].as_f64()? as f32,
                        })
                    })
                    .collect();
                // Rows without AD/IC records (the segmentation baselines) show "-".
                let (ad, ic) = if c.is_empty() {
                    (None, None)
                } else {
                    (Some(average_drop(&c, profile)), Some(increase_in_confidence(&c)))
                };
                row.push(ad.map_or("-".into(), |v| format!("{v:.2}")));
                row.push(ic.map_or("-".into(), |v| format!("{v:.2}")));
                j[format!("AD_{tag}")] = json!(ad);
                j[format!("IC_{tag}")] = json!(ic);
            }
        }
        for (metric, key, plot) in [
            (Metric::Deletion, "deletion", &mut deletion),
            (Metric::Insertion, "insertion", &mut insertion),
        ] {
            if has(metric) {
                let auc = f(&format!("{key}_auc"));
                row.push(auc.map_or("-".into(), |v| format!("{v:.4}")));
                j[format!("{key}_auc")] = json!(auc);
                if let Some(c) = mean_curve(&rows, &format!("{key}_curve")) {
                    plot.push(Series {
                        label: method.clone(),
                        values: c,
                    });
                }
            }
        }
        if has(Metric::Pointing) {
            let (mut game, mut centre) = (PointingGame::default(), PointingGame::default());
            let mut n = 0;
            for r in &rows {
                let label = r["label"].as_u64().unwrap_or(0) as usize;
                if let (Some(h), Some(c)) = (r["pointing_hit"].as_bool(), r["centre_hit"].as_bool()) {
                    game.add(label, h);
                    centre.add(label, c);
                    n += 1;
                }
            }
            if n == 0 {
                row.push("-".into());
                j["pointing_game"] = Value::Null;
                j["pointing_centre_baseline"] = Value::Null;
            } else {
                let (s, c) = (100.0 * game.score(), 100.0 * centre.score());
                row.push(format!("{s:.2} ({c:.2})"));
                j["pointing_game"] = json!(s);
                j["pointing_centre_baseline"] = json!(c);
            }
        }
        if has(Metric::Localisation) {
            let ok = mean(
                rows.iter()
                    .filter_map(|r| r["localised"].as_bool())
                    .map(|b| b as u8 as f64),
            );
            let err = ok.map(|v| 100.0 * (1.0 - v));
            row.push(err.map_or("-".into(), |v| format!("{v:.2}")));
            j["top1_localisation_error"] = json!(err);
        }
        if has(Metric::Road) {
            for key in ["road_morf", "road_lerf"] {
                let m = mean_curve(&rows, key).map(|c| c.iter().sum::<f32>() / c.len().max(1) as f32);
                row.push(m.map_or("-".into(), |v| format!("{v:.4}")));
                j[key] = json!(m);
            }
        }
        if has(Metric::Errors) {
            let (n, r, iou) = errors::summary(&rows);
            row.push(n.to_string());
            row.push(r.map_or("-".into(), |v| format!("{v:.3}")));
            row.push(iou.map_or("-".into(), |v| format!("{v:.3}")));
            j["misclassified"] = json!(n);
            j["error_pearson_mean"] = json!(r);
            j["error_iou15_mean"] = json!(iou);
        }
        if has(Metric::Segmentation) {
            row.extend(segmentation::cells(&rows, &mut j));
        }
        if has(Metric::Saliency) {
            row.extend(saliency::cells(&rows, &mut j));
        }
        for key in ["forward_passes", "backward_passes", "metric_passes", "seconds"] {
            let v = f(key);
            row.push(v.map_or("-".into(), |v| {
                if key == "seconds" {
                    format!("{v:.3}")
                } else {
                    format!("{v:.1}")
                }
            }));
            j[key] = json!(v);
        }
        table.push(row);
        json_rows.push(j);
    }
    let mut profiles = format!(
        "profiles: AD/IC `{}` (class = clean top-1; keep 100/50/15%), deletion/insertion `rise` (softmax, stable \
         descending order, step as --causal-step), pointing game `torchray` (ground-truth class, 15 px), \
         localisation ILSVRC top-1 (box of the largest component above 15% of the map's max, IoU >= 0.5), ROAD `road` \
         (noisy linear imputation of the [0, 1] image, noise 0.01, fractions 0.1..0.9)",
        match profile {
            AdIcProfile::Lcam => "lcam",
            AdIcProfile::Pgc => "pgc",
        }
    );
    if has(Metric::Segmentation) {
        profiles = format!("{profiles}, {}", segmentation::PROFILE);
    }
    if has(Metric::Saliency) {
        profiles = format!("{profiles}, {}", saliency::PROFILE);
    }
    let mut md = format!("# DeepSight evaluation\n\nmodel: {model}; {images} images\n\n{profiles}\n\n");
    md += &format!(
        "| {} |\n|{}|\n",
        columns.join(" | "),
        vec!["---"; columns.len()].join("|")
    );
    for r in &table {
        md += &format!("| {} |\n", r.join(" | "));
    }
    if has(Metric::Sanity) {
        md += &sanity_table(records, methods, &mut json_rows);
    }
    write_atomic(&out.join("results.md"), md.as_bytes())?;
    if has(Metric::Errors) {
        let explained: Vec<String> = methods
            .iter()
            .filter(|m| !segmentation::BASELINES.contains(&m.as_str()))
            .cloned()
            .collect();
        errors::write_report(out, records, &explained)?;
    }
    let csv_cell = |s: &String| {
        if s.contains(',') {
            format!("\"{s}\"")
        } else {
            s.clone()
        }
    };
    let mut csv = columns.iter().map(csv_cell).collect::<Vec<_>>().join(",") + "\n";
    for r in &table {
        csv += &(r.iter().map(csv_cell).collect::<Vec<_>>().join(",") + "\n");
    }
    write_atomic(&out.join("results.csv"), csv.as_bytes())?;
    let doc = json!({"model": model, "images": images, "profiles": profiles, "methods": json_rows});
    write_atomic(
        &out.join("results.json"),
        serde_json::to_string_pretty(&doc)?.as_bytes(),
    )?;
    for (name, series) in [("deletion", deletion), ("insertion", insertion)] {
        if !series.is_empty() {
            let pic = line_plot(
                &series,
                &format!("mean {name} curve"),
                "fraction of pixels",
                "p(class)",
                1.0,
            );
            write_atomic(&out.join(format!("{name}.png")), &pic.png())?;
        }
    }
    println!("{md}");
    Ok(())
}

/// Mean Spearman correlation per randomisation depth (Adebayo et al.'s cascading randomisation:
/// the layers named are randomised from the top down, cumulatively); a faithful method falls.
fn sanity_table(records: &[Value], methods: &[String], json_rows: &mut [Value]) -> String {
    let mut md = String::from(
        "\nSanity check (Spearman rank correlation of |map| with the trained model's, per cumulative randomisation depth):\n\n",
    );
    let mut header_done = false;
    for method in methods {
        let Some(j) = json_rows.iter_mut().find(|j| j["method"] == method.as_str()) else {
            continue;
        };
        let rows: Vec<&Value> = records
            .iter()
            .filter(|r| r["method"] == method.as_str() && r["sanity_spearman"].is_array())
            .collect();
        let Some(first) = rows.first() else { continue };
        let layers: Vec<String> = first["sanity_layers"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(String::from)).collect())
            .unwrap_or_default();
        let means = mean_curve(&rows, "sanity_spearman").unwrap_or_default();
        if !header_done {
            md += &format!(
                "| method | {} |\n|---|{}\n",
                layers.join(" | "),
                "---|".repeat(layers.len())
            );
            header_done = true;
        }
        md += &format!(
            "| {method} | {} |\n",
            means
                .iter()
                .map(|v| format!("{v:.3}"))
                .collect::<Vec<_>>()
                .join(" | ")
        );
        j["sanity_layers"] = json!(layers);
        j["sanity_spearman"] = json!(means);
    }
    md
}
