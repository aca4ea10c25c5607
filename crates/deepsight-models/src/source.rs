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

/// Deterministic random weights: Kaiming-uniform for convolutions and linear layers, identity
/// statistics for BatchNorm, zero biases. The same seed and name always give the same tensor.
#[derive(Debug, Clone, Copy)]
pub struct RandomWeights {
    pub seed: u64,
}

fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e3779b97f4a7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

impl WeightSource for RandomWeights {
    fn tensor<const D: usize>(&self, name: &str, shape: [usize; D], device: &Device) -> Result<Tensor<D>> {
        let n: usize = shape.iter().product();
        let constant = |v: f32| Ok(Tensor::from_data(TensorData::new(vec![v; n], shape), device));
        if D == 1 {
            return if name.ends_with("running_var") || name.ends_with(".weight") {
                constant(1.0)
            } else {
                constant(0.0)
            };
        }
        let fan_in: usize = shape[1..].iter().product();
        let bound = (6.0 / fan_in as f64).sqrt();
        let mut state = name.bytes().fold(self.seed ^ 0xcbf29ce484222325, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        let data: Vec<f32> = (0..n)
            .map(|_| {
                let u = (splitmix(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
                ((2.0 * u - 1.0) * bound) as f32
            })
            .collect();
        Ok(Tensor::from_data(TensorData::new(data, shape), device))
    }
}
