//! SmoothGrad: any explanation averaged over noisy copies of the image.
//!
//! # Computes
//! The mean of a base method's maps over `samples` copies of the image with Gaussian noise added,
//! which removes the high-frequency noise of raw gradients.
//!
//! # Equation
//! `M(x) = 1/N * sum_n M_base(x + e_n)`, `e_n ~ N(0, (sigma * (max(x) - min(x)))^2)` per image.
//! With `--gradient-sign positive`: `M_ij = max_ch max(0, 1/N sum_n g_{ch,ij}(x + e_n))`, `g` the
//! base's signed per-channel map (the input gradient for saliency).
//!
//! # Paper
//! Smilkov et al., *SmoothGrad: removing noise by adding noise*, 2017.
//!
//! # Deviations
//! None; `sigma` is the fraction of each image's value range (the paper's noise level). The noisy
//! copies of all images run as batches of `batch_size`; the noise comes from a seeded generator
//! (the same seed gives the same map). With `sigma = 0` the result equals the base method.
//! The default over saliency averages the absolute-value maps (Smilkov et al.'s figures); the
//! `positive` sign follows the code snippet of the Zeiler & Fergus seed text instead, which
//! averages the raw gradients and only then keeps their positive part (`clamp(min=0)`) and the
//! maximum over channels: the positive part of the mean, not the mean of positive parts. Over the
//! other bases, `positive` reduces their signed mean map the same way.

use crate::gradient::GradientSign;
use crate::{ExplainError, Explainer, Explanation, Map, Passes, Request, Result};
use deepsight_runtime::{LayeredClassifier, Tensor, TensorData, to_vec};

/// SmoothGrad around a base method (`smoothgrad` over saliency by default on the CLI).
pub struct SmoothGrad<E: Explainer> {
    pub base: E,
    pub samples: usize,
    pub sigma: f32,
    pub seed: u64,
    pub batch_size: usize,
    /// `None`: the mean of the base's maps as they are (Smilkov et al.). `Some(sign)`: the base's
    /// maps are signed per-channel attributions (for saliency: [`crate::gradient::InputGradient`]);
    /// their mean becomes one plane by `sign` (the seed snippet: `Some(Positive)`).
    pub reduce: Option<GradientSign>,
}

/// Standard normal numbers from a seeded splitmix64 stream (Box-Muller).
fn gaussian(seed: u64, n: usize) -> Vec<f32> {
    let mut state = seed ^ 0x5eed_5eed_5eed_5eed;
    let mut uniform = || {
        state = state.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        (((z ^ (z >> 31)) >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n)
        .map(|_| {
            let (u, v) = (uniform(), uniform());
            ((-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()) as f32
        })
        .collect()
}

impl<E: Explainer> Explainer for SmoothGrad<E> {
    fn name(&self) -> &'static str {
        "smoothgrad"
    }

    fn signed(&self) -> bool {
        self.reduce.is_none() && self.base.signed()
    }

    fn explain(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<Explanation> {
        if self.samples == 0 || self.batch_size == 0 || self.sigma.is_nan() || self.sigma < 0.0 {
            return Err(ExplainError::Invalid {
                method: "smoothgrad",
                reason: "needs samples >= 1, batch size >= 1 and sigma >= 0".into(),
            });
        }
        let x = request.images.clone();
        let [n, c, h, w] = x.dims();
        let per = c * h * w;
        let values = to_vec(x.clone());
        let scale: Vec<f32> = values
            .chunks(per)
            .map(|img| {
                let (lo, hi) = img.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &v| {
                    (a.min(v), b.max(v))
                });
                self.sigma * (hi - lo)
            })
            .collect();
        let per_batch = (self.batch_size / n).max(1);
        let mut sums: Option<Vec<Map>> = None;
        let mut passes = Passes::default();
        let mut done = 0;
        while done < self.samples {
            let k = per_batch.min(self.samples - done);
            let noise = gaussian(self.seed.wrapping_add(done as u64), k * n * per);
            let noisy: Vec<f32> = noise
                .iter()
                .enumerate()
                .map(|(i, e)| values[i % (n * per)] + e * scale[(i / per) % n])
                .collect();
            let sub = Request {
                images: Tensor::from_data(TensorData::new(noisy, [k * n, c, h, w]), &x.device()),
                classes: (0..k).flat_map(|_| request.classes.iter().copied()).collect(),
                ..request.clone()
            };
            let e = self.base.explain(model, &sub)?;
            passes.forward += e.passes.forward;
            passes.backward += e.passes.backward;
            let acc = sums.get_or_insert_with(|| {
                e.maps[..n]
                    .iter()
                    .map(|m| Map {
                        data: vec![0.0; m.data.len()],
                        ..m.clone()
                    })
                    .collect()
            });
            for (i, m) in e.maps.iter().enumerate() {
                for (a, v) in acc[i % n].data.iter_mut().zip(&m.data) {
                    *a += v;
                }
            }
            done += k;
        }
        let maps = sums
            .expect("at least one sample")
            .into_iter()
            .map(|mut m| {
                m.data.iter_mut().for_each(|v| *v /= self.samples as f32);
                match self.reduce {
                    Some(sign) => sign.over_channels(&m),
                    None => m,
                }
            })
            .collect();
        Ok(Explanation {
            maps,
            raw: None,
            passes,
            extra: Vec::new(),
        })
    }
}
