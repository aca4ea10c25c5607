//! `deepsight evaluate --metrics saliency` on ImageNet images without masks: the column and its
//! profile are written, every score is finite, follows from the recorded area and probability,
//! and the probability is the one recomputed here from the library (Grad-CAM of the clean top-1,
//! bilinear to the input, min-max normalised, times the normalised input, softmax).

mod common;

use common::{ok, shared, tmp};
use deepsight_eval::causal::upsample_like_torch;
use deepsight_eval::segmentation::min_max_normalise;
use deepsight_explain::registry::{MethodOptions, by_name_with};
use deepsight_explain::{Request, Score};
use deepsight_models::{Arch, ModelSource};
use deepsight_runtime::{Classifier, Tensor, TensorData, default_device, to_vec};
use serde_json::Value;

fn softmax(l: &[f32]) -> Vec<f64> {
    let m = l.iter().copied().fold(f32::NEG_INFINITY, f32::max) as f64;
    let e: Vec<f64> = l.iter().map(|&v| (v as f64 - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.iter().map(|v| v / s).collect()
}

#[test]
fn evaluate_saliency_metric_writes_finite_scores_that_follow_from_the_map() {
    let data = shared().join("data/imagenet-val-1300");
    let out = tmp("saliency-metric");
    let table = ok(&[
        "evaluate",
        "--data",
        data.to_str().unwrap(),
        "--limit",
        "3",
        "--methods",
        "gradcam",
        "--metrics",
        "saliency",
        "--batch-size",
        "2",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert!(table.contains("| gradcam | 3 |"), "{table}");
    assert!(
        table.contains("saliency top-1 (lower)") && table.contains("mean map"),
        "{table}"
    );
    assert!(
        table.contains("saliency `stalder`") && table.contains("not the tightest rectangular crop"),
        "{table}"
    );
    let recs: Vec<Value> = std::fs::read_to_string(out.join("records.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(recs.len(), 3);
    let f = |r: &Value, key: &str| r[key].as_f64().unwrap_or_else(|| panic!("{key}: {r}"));
    for r in &recs {
        let (s, area, p) = (f(r, "saliency_score"), f(r, "saliency_area"), f(r, "saliency_p"));
        assert!(s.is_finite(), "{r}");
        assert!((0.0..=1.0).contains(&area) && (0.0..=1.0).contains(&p), "{r}");
        // The area term is at least log(0.05) and -log p >= 0.
        assert!(s >= 0.05f64.ln() - 1e-9, "{r}");
        let again = area.max(0.05).ln() - p.max(1e-15).ln();
        assert!((s - again).abs() < 1e-9, "{s} vs {again}");
        assert_eq!(r["metric_passes"], 1, "one masked forward per map: {r}");
    }
    let json: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let row = &json["methods"][0];
    let mean = recs.iter().map(|r| f(r, "saliency_score")).sum::<f64>() / 3.0;
    assert!(
        (row["saliency_score"].as_f64().unwrap() - mean).abs() < 1e-9,
        "{row}"
    );
    assert!(row["saliency_area"].as_f64().is_some(), "{row}");

    // The first image again, from the library: the same class, area and probability.
    let r = &recs[0];
    let loaded = ModelSource::Builtin {
        arch: Arch::from_name("lite0").unwrap(),
        random_seed: None,
    }
    .load(&default_device())
    .unwrap();
    let model = &loaded.model;
    let path = data.join(r["image"].as_str().unwrap().trim_start_matches("./"));
    let image = loaded
        .pipeline
        .load_batch(&[path.as_path()], &model.device())
        .unwrap();
    let dims = image.dims();
    let [_, c, h, w] = dims;
    let x = to_vec(image.clone());
    let class = r["class"].as_u64().unwrap() as usize;
    let logits = to_vec(model.logits(image.clone()).unwrap());
    let top1 = (0..logits.len()).fold(0, |b, i| if logits[i] > logits[b] { i } else { b });
    assert_eq!(class, top1, "the explained class is the clean top-1");
    let gradcam = by_name_with("gradcam", &MethodOptions::default()).unwrap();
    let ex = gradcam
        .explain(
            model,
            &Request {
                images: image,
                classes: vec![class],
                score: Score::Logit,
                layer: None,
            },
        )
        .unwrap();
    let m = min_max_normalise(&upsample_like_torch(&ex.maps[0], h, w));
    let area = m.iter().map(|&v| v as f64).sum::<f64>() / m.len() as f64;
    assert!((area - f(r, "saliency_area")).abs() < 1e-6, "{area} vs {r}");
    let masked: Vec<f32> = x.iter().enumerate().map(|(i, &v)| v * m[i % (h * w)]).collect();
    let t = Tensor::from_data(TensorData::new(masked, [1, c, h, w]), &model.device());
    let p = softmax(&to_vec(model.logits(t).unwrap()))[class];
    assert!((p - f(r, "saliency_p")).abs() < 1e-5, "{p} vs {r}");
}
