//! Where an architecture's weights come from: a state dict read from a file, or seeded random
//! numbers (for benchmarks and tests of architectures whose real weights we cannot ship).

use crate::error::Result;
use crate::weights::Weights;
use deepsight_runtime::{Device, Tensor, TensorData};

/// Gives the tensor an architecture asks for by its PyTorch name and shape.
pub trait WeightSource {
    /// The tensor `name` of exactly `shape`, on `device`.
    fn tensor<const D: usize>(&self, name: &str, shape: [usize; D], device: &Device) -> Result<Tensor<D>>;
}

impl WeightSource for Weights {
    fn tensor<const D: usize>(&self, name: &str, shape: [usize; D], device: &Device) -> Result<Tensor<D>> {
        Weights::tensor(self, name, shape, device)
    }
}

/// Deterministic random weights, reproducible outside Rust from the seed and the tensor names
/// alone (`tests/data/make_torchvision_refs.py` does it in numpy to check the architectures
/// against PyTorch). Each tensor is its own stream of [`uniform_stream`]`(seed, name)`, `u` in
/// [0, 1), computed in `f64` and rounded once to `f32`:
/// - rank >= 2 (convolution and linear weights): Kaiming-uniform, `(2u - 1) * sqrt(6 / fan_in)`,
///   which keeps the activations' scale through a deep plain network such as VGG;
/// - rank 1 ending in `running_var`: `1 + 2u`; other rank 1 ending in `.weight` (BatchNorm
///   gamma): `0.5 + u`; every other rank-1 tensor (biases, beta, running mean): `0.2 (2u - 1)`.
///
/// Every tensor is random, so that a wrong name mapping or a swapped BatchNorm statistic changes
/// the output. The running variance lies above gamma's square so that each BatchNorm damps a
/// little: with unit gain, ResNet's residual sums compound block after block (ResNet-50's logits
/// reach 3e4 and float32 rounding alone exceeds 1e-4), while this keeps them near 10 and leaves
/// VGG-BN's output still depending on its input.
#[derive(Debug, Clone, Copy)]
pub struct RandomWeights {
    pub seed: u64,
}

/// splitmix64 (Steele, Lea & Flood 2014): one add and two multiply-xorshift rounds, so that a
/// vectorised reimplementation (numpy's wrapping `uint64`) is straightforward.
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e3779b97f4a7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

/// The endless stream of uniform numbers in [0, 1) named `name` under `seed`: splitmix64 started
/// from the FNV-1a hash of the name's bytes (offset basis xor `seed`), each value `(next >> 11) /
/// 2^53`, exact in `f64`. [`RandomWeights`] draws every tensor from it; tests build their inputs
/// from it too, so that a reference computed elsewhere needs nothing but the seed and the names.
pub fn uniform_stream(seed: u64, name: &str) -> impl Iterator<Item = f64> + use<> {
    let mut state = name.bytes().fold(seed ^ 0xcbf29ce484222325, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    std::iter::repeat_with(move || (splitmix(&mut state) >> 11) as f64 / (1u64 << 53) as f64)
}

impl RandomWeights {
    /// The values of the tensor `name` of `shape`, as described on [`RandomWeights`].
    pub fn values(&self, name: &str, shape: &[usize]) -> Vec<f32> {
        let n: usize = shape.iter().product();
        let u = uniform_stream(self.seed, name).take(n);
        fn map(u: impl Iterator<Item = f64>, f: impl Fn(f64) -> f64) -> Vec<f32> {
            u.map(|u| f(u) as f32).collect()
        }
        if shape.len() == 1 {
            if name.ends_with("running_var") {
                map(u, |u| 1.0 + 2.0 * u)
            } else if name.ends_with(".weight") {
                map(u, |u| 0.5 + u)
            } else {
                map(u, |u| 0.2 * (2.0 * u - 1.0))
            }
        } else {
            let fan_in: usize = shape.iter().skip(1).product();
            let bound = (6.0 / fan_in.max(1) as f64).sqrt();
            map(u, |u| (2.0 * u - 1.0) * bound)
        }
    }
}

impl WeightSource for RandomWeights {
    fn tensor<const D: usize>(&self, name: &str, shape: [usize; D], device: &Device) -> Result<Tensor<D>> {
        Ok(Tensor::from_data(
            TensorData::new(self.values(name, &shape), shape),
            device,
        ))
    }
}
