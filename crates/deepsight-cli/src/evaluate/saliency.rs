//! `--metrics saliency`: the saliency metric of Dabkowski & Gal (2017, "Real Time Image Saliency
//! for Black Box Classifiers"), mask-free, in the **soft** form Stalder et al. 2022 compute it
//! (NN-Explainer's `compute_scores.py`, `../shared/docs/TRAINED-METHODS.md` section 2.5):
//!
//! `s = log(max(mean(m), 0.05)) - log(p_c(m ⊙ x))`, lower is better,
//!
//! `m` the method's map of the explained class `c` (the clean top-1, the class AD/IC explains),
//! resized to the model input (bilinear, as the other metrics) and min-max normalised to `[0, 1]`;
//! `x` the *normalised* input, so masked pixels take the normalisation's mean colour; `p_c` the
//! softmax probability of `c` (floored at `deepsight_eval::segmentation::SALIENCY_MIN_P`).
//! A small map that keeps the class probable scores low; the area is credited as at least 5%.
//!
//! **Not Dabkowski & Gal's own definition**: theirs takes `a` as the area of the *tightest
//! rectangular crop* containing the salient region and `p` as the probability on that crop resized
//! to the input; ours (Stalder's) takes the soft mask's mean as the area and multiplies the input
//! by the soft mask, so it needs no threshold and no crop. The mean map `mean(m)` is recorded and
//! reported beside it, to show whether a low score comes from a small map or a probable class.
//!
//! All the masked images of one image (one per method) go through the model in batches of
//! `--batch-size`: one forward pass per map. A map holding NaN is replaced by zeros (as the
//! segmentation metrics do) and its record says so.

use super::segmentation::{masked, normalised, probabilities, without_nan};
use anyhow::{Result, bail};
use deepsight_eval::segmentation as seg;
use deepsight_explain::Map;
use deepsight_runtime::Classifier;
use serde_json::{Value, json};

/// The profile line of the report.
pub const PROFILE: &str = "saliency `stalder` (Dabkowski & Gal's metric with the soft mask area of Stalder et \
     al., not the tightest rectangular crop: log(max(mean(m), 0.05)) - log p_c(m*x), c = clean top-1, m the map \
     bilinear to the model input and min-max normalised, x the normalised input so masked pixels take the mean \
     colour, softmax, p floored at 1e-15; mean map = mean(m))";

/// The report's columns: header, record key.
pub const COLUMNS: [(&str, &str); 2] = [
    ("saliency top-1 (lower)", "saliency_score"),
    ("mean map", "saliency_area"),
];

/// Scores every method's map of one image (`maps`, one channel each, in the order of `records`)
/// into its record: `saliency_score`, `saliency_area` (mean(m)) and `saliency_p` (p_c(m ⊙ x)).
/// `x` is the normalised input `[c, h, w]`, `class` the explained class. Returns the forward passes
/// run (one per map).
pub fn score(
    model: &dyn Classifier,
    x: &[f32],
    chw: [usize; 3],
    maps: &[Map],
    class: usize,
    batch: usize,
    records: &mut [Value],
) -> Result<usize> {
    if maps.len() != records.len() {
        bail!("{} maps for {} records", maps.len(), records.len());
    }
    if class >= model.num_classes() {
        bail!(
            "class {class} is not a class of the model ({} classes)",
            model.num_classes()
        );
    }
    let [_, h, w] = chw;
    let mut zeroed = Vec::with_capacity(maps.len());
    let ms: Vec<Vec<f32>> = maps
        .iter()
        .map(|map| {
            let m = normalised(map, h, w);
            zeroed.push(m.iter().any(|v| v.is_nan()));
            without_nan(&m).unwrap_or(m)
        })
        .collect();
    let images: Vec<Vec<f32>> = ms.iter().map(|m| masked(x, m, |v| v)).collect();
    let p = probabilities(model, &images, chw, batch)?;
    for (((r, m), p), zeroed) in records.iter_mut().zip(&ms).zip(&p).zip(zeroed) {
        let area = seg::mean_area(m);
        let p_c = p[class] as f64;
        r["saliency_score"] = json!(seg::saliency(area, p_c));
        r["saliency_area"] = json!(area);
        r["saliency_p"] = json!(p_c);
        if zeroed {
            r["saliency_nan_map_zeroed"] = json!(true);
        }
    }
    Ok(images.len())
}

/// The cells and JSON fields of one row: each column's mean over the records that have it.
pub fn cells(rows: &[&Value], j: &mut Value) -> Vec<String> {
    super::segmentation::mean_cells(&COLUMNS, rows, j)
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepsight_runtime::{Device, Tensor, TensorData, default_device, to_vec};

    /// Two classes: `logits = [sum of the image, 0]`, so `p_0 = sigmoid(sum)`.
    struct Sum;

    impl Classifier for Sum {
        fn num_classes(&self) -> usize {
            2
        }
        fn device(&self) -> Device {
            default_device()
        }
        fn logits(&self, images: Tensor<4>) -> deepsight_runtime::Result<Tensor<2>> {
            let n = images.dims()[0];
            let x = to_vec(images);
            let out: Vec<f32> = x
                .chunks(x.len() / n)
                .flat_map(|im| [im.iter().sum::<f32>(), 0.0])
                .collect();
            Ok(Tensor::from_data(TensorData::new(out, [n, 2]), &default_device()))
        }
    }

    fn map(data: Vec<f32>) -> Map {
        Map {
            channels: 1,
            height: 2,
            width: 2,
            data,
        }
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-5, "{a} vs {b}");
    }

    #[test]
    fn scores_by_hand_the_same_at_every_batch_size() {
        // x: 2 channels of 2x2, each pixel 0.5 in both channels.
        let x = vec![0.5f32; 8];
        // Maps normalised: [0, 1/3, 2/3, 1] (area 1/2), constant (zeros, area 0), NaN (zeroed).
        let maps = [
            map(vec![1.0, 2.0, 3.0, 4.0]),
            map(vec![7.0; 4]),
            map(vec![f32::NAN, 0.0, 1.0, 0.0]),
        ];
        let sigmoid = |s: f64| 1.0 / (1.0 + (-s).exp());
        for batch in [1, 2, 16] {
            let mut records = vec![json!({}); 3];
            let passes = score(&Sum, &x, [2, 2, 2], &maps, 0, batch, &mut records).unwrap();
            assert_eq!(passes, 3);
            // Sum of m*x = 2 channels * 0.5 * (0 + 1/3 + 2/3 + 1) = 2.
            let r = &records[0];
            close(r["saliency_area"].as_f64().unwrap(), 0.5);
            close(r["saliency_p"].as_f64().unwrap(), sigmoid(2.0));
            close(
                r["saliency_score"].as_f64().unwrap(),
                0.5f64.ln() - sigmoid(2.0).ln(),
            );
            assert!(r.get("saliency_nan_map_zeroed").is_none());
            // An all-zero map: area credited as 0.05, the image all mean colour, p = 1/2.
            for r in &records[1..] {
                close(r["saliency_area"].as_f64().unwrap(), 0.0);
                close(r["saliency_score"].as_f64().unwrap(), 0.05f64.ln() - 0.5f64.ln());
            }
            assert_eq!(records[2]["saliency_nan_map_zeroed"], true);
        }
    }

    #[test]
    fn maps_are_resized_to_the_input_and_mismatches_refused() {
        // A 1x1 map on a 2x2 input: constant after the resize, so zeros.
        let one = Map {
            channels: 1,
            height: 1,
            width: 1,
            data: vec![3.0],
        };
        let mut records = vec![json!({})];
        score(
            &Sum,
            &[1.0; 4],
            [1, 2, 2],
            std::slice::from_ref(&one),
            1,
            4,
            &mut records,
        )
        .unwrap();
        close(records[0]["saliency_p"].as_f64().unwrap(), 0.5);
        let mut two = vec![json!({}); 2];
        assert!(
            score(
                &Sum,
                &[1.0; 4],
                [1, 2, 2],
                std::slice::from_ref(&one),
                1,
                4,
                &mut two
            )
            .is_err()
        );
        let e = score(&Sum, &[1.0; 4], [1, 2, 2], &[one], 2, 4, &mut records).unwrap_err();
        assert!(e.to_string().contains("class 2"), "{e}");
    }

    #[test]
    fn cells_average_the_records_that_have_the_fields() {
        let a = json!({"saliency_score": 1.0, "saliency_area": 0.25});
        let b = json!({"saliency_score": 2.0, "saliency_area": 0.75});
        let none = json!({});
        let mut j = json!({});
        assert_eq!(cells(&[&a, &b, &none], &mut j), ["1.5000", "0.5000"]);
        assert_eq!(j["saliency_area"], 0.5);
        assert_eq!(cells(&[&none], &mut j), ["-", "-"]);
        assert!(j["saliency_score"].is_null());
    }
}
