//! Tests of [`super`]: known answers on hand-made inputs.

use super::*;

fn gaussian_features(n: usize, d: usize, seed: u64, labels: impl Fn(usize, &[f32]) -> usize) -> Features {
    use rand::Rng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut values = Vec::with_capacity(n * d);
    let mut ys = Vec::with_capacity(n);
    for i in 0..n {
        let row: Vec<f32> = (0..d).map(|_| rng.random_range(-1.0f32..1.0)).collect();
        ys.push(labels(i, &row));
        values.extend(row);
    }
    Features {
        values,
        dims: d,
        labels: ys,
    }
}

/// Labels given by a linear rule, `argmax_k (A x)_k`, with the points within 0.1 of a class
/// boundary dropped (a margin): a softmax can represent the rule exactly, so the probe fits
/// every training and held-out point.
#[test]
fn separable_features_reach_full_accuracy() {
    let a = [
        [1.0f32, 0.5, 0.0, 0.0, 0.0],
        [-1.0, 0.5, 0.2, 0.0, 0.0],
        [0.0, -1.0, 1.0, 0.3, 0.0],
    ];
    let scores = |x: &[f32]| -> Vec<f32> {
        a.iter()
            .map(|r| r.iter().zip(x).map(|(w, v)| w * v).sum())
            .collect()
    };
    let rule = |_: usize, x: &[f32]| {
        let s = scores(x);
        (0..3).fold(0, |b, k| if s[k] > s[b] { k } else { b })
    };
    let margin = |f: Features| {
        let mut out = Features {
            values: Vec::new(),
            dims: f.dims,
            labels: Vec::new(),
        };
        for (row, &y) in f.values.chunks_exact(f.dims).zip(&f.labels) {
            let s = scores(row);
            let second = (0..3).filter(|&k| k != y).map(|k| s[k]).fold(f32::MIN, f32::max);
            if s[y] - second > 0.1 {
                out.values.extend_from_slice(row);
                out.labels.push(y);
            }
        }
        out
    };
    let train = margin(gaussian_features(800, 5, 1, rule));
    let test = margin(gaussian_features(400, 5, 2, rule));
    let options = ProbeOptions {
        epochs: 400,
        batch: 1000,
        lr: 0.05,
        weight_decay: 0.0,
        ..ProbeOptions::default()
    };
    let p = fit_softmax(&train, 3, &options, &Device::default()).unwrap();
    assert_eq!(p.accuracy(&train), 1.0);
    assert!(p.accuracy(&test) >= 0.99, "{}", p.accuracy(&test));
}

/// Random labels carry nothing a probe can learn: held-out accuracy is near chance (1/4).
#[test]
fn random_labels_stay_near_chance() {
    let label = |i: usize, _: &[f32]| (i.wrapping_mul(2654435761) >> 7) % 4;
    let train = gaussian_features(800, 20, 3, label);
    let test = gaussian_features(2000, 20, 4, |i, x| label(i + 7919, x));
    let options = ProbeOptions {
        epochs: 30,
        ..ProbeOptions::default()
    };
    let p = fit_softmax(&train, 4, &options, &Device::default()).unwrap();
    let acc = p.accuracy(&test);
    assert!((acc - 0.25).abs() < 0.05, "{acc}");
}

#[test]
fn adaptive_pooling_matches_pytorch_bins() {
    // 3x3 to 2x2: bins rows/cols [0,2) and [1,3) (they overlap, as in PyTorch).
    let plane: Vec<f32> = (0..9).map(|v| v as f32).collect();
    assert_eq!(adaptive_avg(&plane, [3, 3], [2, 2]), vec![2.0, 3.0, 5.0, 6.0]);
    assert_eq!(adaptive_avg(&plane, [3, 3], [1, 1]), vec![4.0]);
}

#[test]
fn bad_inputs_are_errors() {
    let f = Features {
        values: vec![0.0; 6],
        dims: 3,
        labels: vec![0, 5],
    };
    assert!(fit_softmax(&f, 2, &ProbeOptions::default(), &Device::default()).is_err());
    assert!(fit_softmax(&f, 1, &ProbeOptions::default(), &Device::default()).is_err());
}
