//! The explicit post-processing steps on maps, with the values PyTorch gives.

use deepsight_explain::{Map, Normalisation};

fn map(c: usize, h: usize, w: usize, data: Vec<f32>) -> Map {
    Map {
        channels: c,
        height: h,
        width: w,
        data,
    }
}

#[test]
fn resize_is_pytorch_bilinear_without_aligned_corners() {
    // torch.nn.functional.interpolate([[0, 1], [2, 3]], size=4, mode="bilinear", align_corners=False)
    let up = map(1, 2, 2, vec![0.0, 1.0, 2.0, 3.0]).resize(4, 4);
    let expected = [
        0.0, 0.25, 0.75, 1.0, 0.5, 0.75, 1.25, 1.5, 1.5, 1.75, 2.25, 2.5, 2.0, 2.25, 2.75, 3.0,
    ];
    assert_eq!(up.data, expected);
    // Each channel separately; same size is a copy.
    let two = map(2, 1, 2, vec![0.0, 2.0, 4.0, 4.0]).resize(1, 4);
    assert_eq!(two.data, [0.0, 0.5, 1.5, 2.0, 4.0, 4.0, 4.0, 4.0]);
    let same = map(1, 2, 2, vec![1.0, 2.0, 3.0, 4.0]);
    assert_eq!(same.resize(2, 2), same);
}

#[test]
fn normalisations_are_the_named_formulas() {
    let m = map(1, 1, 4, vec![-1.0, 0.0, 1.0, 3.0]);
    assert_eq!(m.normalise(Normalisation::MinMax).data, [0.0, 0.25, 0.5, 1.0]);
    let g = m.normalise(Normalisation::GradCamStyle).data;
    assert!((g[3] - 4.0 / (4.0 + 1e-7)).abs() < 1e-7 && g[0] == 0.0);
    assert_eq!(
        m.normalise(Normalisation::MaxAbs).data,
        [-1.0 / 3.0, 0.0, 1.0 / 3.0, 1.0]
    );
    // A constant map: min-max gives zeros, never NaN.
    let flat = map(1, 1, 3, vec![2.0; 3]);
    assert_eq!(flat.normalise(Normalisation::MinMax).data, [0.0; 3]);
    assert_eq!(m.clone().relu().data, [0.0, 0.0, 1.0, 3.0]);
    let rgb = map(3, 1, 1, vec![0.5, -2.0, 1.0]);
    assert_eq!(rgb.max_abs_over_channels().data, [2.0]);
}
