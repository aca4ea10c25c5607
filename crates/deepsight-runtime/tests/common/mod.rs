//! Seeded small random graphs' pieces shared by the gradient tests.
#![allow(dead_code)]

use deepsight_runtime::{BatchNorm, Conv2d, Device, Op, Padding, Tensor, TensorData};

pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
    }
    pub fn vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| self.next() * scale).collect()
    }
    pub fn tensor<const D: usize>(&mut self, shape: [usize; D], scale: f32, d: &Device) -> Tensor<D> {
        let n = shape.iter().product();
        Tensor::from_data(TensorData::new(self.vec(n, scale), shape), d)
    }
}

pub fn conv(
    r: &mut Rng,
    io: [usize; 2],
    k: usize,
    stride: usize,
    groups: usize,
    padding: Padding,
    d: &Device,
) -> Op {
    Op::Conv2d(Conv2d {
        weight: r.tensor(
            [io[1], io[0] / groups, k, k],
            1.0 / ((io[0] / groups * k * k) as f32).sqrt(),
            d,
        ),
        bias: Some(r.tensor([io[1]], 0.1, d)),
        stride: [stride; 2],
        dilation: [1, 1],
        groups,
        padding,
    })
}

pub fn bn(r: &mut Rng, c: usize, d: &Device) -> Op {
    Op::BatchNorm(BatchNorm {
        gamma: r.tensor([c], 0.3, d) + 1.0,
        beta: r.tensor([c], 0.2, d),
        mean: r.tensor([c], 0.2, d),
        var: r.tensor([c], 0.4, d).abs() + 0.6,
        eps: 1e-3,
    })
}

/// `n` values in `[-scale, scale)` from a linear congruential generator seeded by `seed` (the
/// seeded streams the operator tests' expected numbers were drawn with).
pub fn values(seed: u64, n: usize, scale: f32) -> Vec<f32> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * scale
        })
        .collect()
}

/// A tensor of `shape` filled by [`values`].
pub fn seeded<const D: usize>(seed: u64, shape: [usize; D], scale: f32, d: &Device) -> Tensor<D> {
    Tensor::from_data(
        TensorData::new(values(seed, shape.iter().product(), scale), shape),
        d,
    )
}

/// The largest `|central difference - grad|` of logit `class` over every input entry of `x`
/// (`shape`), with step `eps`, and the largest `|grad|`.
pub fn worst_central_difference(
    model: &impl deepsight_runtime::Classifier,
    x: &[f32],
    shape: [usize; 4],
    class: usize,
    grad: &[f32],
    eps: f32,
) -> (f64, f64) {
    let d = model.device();
    let logit = |v: &[f32]| -> f64 {
        let t = Tensor::from_data(TensorData::new(v.to_vec(), shape), &d);
        deepsight_runtime::to_vec(model.logits(t).unwrap())[class] as f64
    };
    let mut worst = 0f64;
    for i in 0..x.len() {
        let (mut p, mut m) = (x.to_vec(), x.to_vec());
        p[i] += eps;
        m[i] -= eps;
        let fd = (logit(&p) - logit(&m)) / (2.0 * eps as f64);
        worst = worst.max((fd - grad[i] as f64).abs());
    }
    (worst, grad.iter().map(|v| v.abs()).fold(0.0, f32::max) as f64)
}
