//! L-CAM's attention mechanism: a 1x1 convolution from a layer's `C` channels to one score map
//! per class, `c = W F + b`; the class maps are `sigmoid(c)`.

use burn::module::{Module, Param, ParamId};
use deepsight_runtime::{Device, Int, Tensor, TensorData};

/// The trainable 1x1 convolution, `weight` `[K, C]`, `bias` `[K]`.
#[derive(Module, Debug)]
pub struct AttentionModule {
    pub weight: Param<Tensor<2>>,
    pub bias: Param<Tensor<1>>,
}

/// Fixed parameter ids, so that an optimiser state saved in a checkpoint maps back onto the
/// parameters of a module rebuilt from that checkpoint.
const WEIGHT_ID: u64 = 0x4c43_414d_0001;
const BIAS_ID: u64 = 0x4c43_414d_0002;

fn param<const D: usize>(id: u64, t: Tensor<D>) -> Param<Tensor<D>> {
    let mut p = Param::from_tensor(t);
    p.id = ParamId::from(id);
    p
}

impl AttentionModule {
    /// A module with the given values (`weight` row-major `[classes, channels]`).
    pub fn from_values(weight: Vec<f32>, bias: Vec<f32>, channels: usize, device: &Device) -> Self {
        let classes = bias.len();
        AttentionModule {
            weight: param(
                WEIGHT_ID,
                Tensor::from_data(TensorData::new(weight, [classes, channels]), device),
            ),
            bias: param(
                BIAS_ID,
                Tensor::from_data(TensorData::new(bias, [classes]), device),
            ),
        }
    }

    /// PyTorch's default `Conv2d` initialisation (kaiming-uniform with `a = sqrt(5)`: weights and
    /// biases uniform in `±1/sqrt(C)`), from a seeded generator.
    pub fn pytorch_default(channels: usize, classes: usize, seed: u64, device: &Device) -> Self {
        let bound = 1.0 / (channels as f32).sqrt();
        let mut state = seed ^ 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            // splitmix64: seeded, platform-independent.
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound
        };
        let weight = (0..classes * channels).map(|_| next()).collect();
        let bias = (0..classes).map(|_| next()).collect();
        Self::from_values(weight, bias, channels, device)
    }

    /// `[classes, channels]`.
    pub fn dims(&self) -> [usize; 2] {
        self.weight.val().dims()
    }

    /// Every class's score map `c`, `[N, K, h, w]`, for features `[N, C, h, w]`.
    pub fn scores(&self, features: Tensor<4>) -> Tensor<4> {
        let [n, c, h, w] = features.dims();
        let [k, _] = self.dims();
        let flat = features.swap_dims(1, 2).swap_dims(2, 3).reshape([n * h * w, c]);
        let y = flat.matmul(self.weight.val().transpose()) + self.bias.val().unsqueeze_dim(0);
        y.reshape([n, h, w, k]).swap_dims(2, 3).swap_dims(1, 2)
    }

    /// The score maps of chosen classes, `[N, M, h, w]`: for image `n`, the classes
    /// `classes[n]` (each image's own list, all of length `M`).
    pub fn scores_of(&self, features: Tensor<4>, classes: &[Vec<usize>]) -> Tensor<4> {
        let [n, c, h, w] = features.dims();
        let m = classes.first().map_or(0, Vec::len);
        let device = features.device();
        let flat: Vec<i64> = classes.iter().flatten().map(|&k| k as i64).collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(flat, [n * m]), &device);
        let wy = self.weight.val().select(0, index.clone()).reshape([n, m, c]);
        let by = self.bias.val().select(0, index).reshape([n, m, 1]);
        let y = wy.matmul(features.reshape([n, c, h * w])) + by;
        y.reshape([n, m, h, w])
    }
}
