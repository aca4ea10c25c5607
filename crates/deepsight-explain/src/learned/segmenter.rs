//! The explainer network's segmenter: anything that maps a (normalised) image to `K` class logits
//! per pixel at a reduced resolution, behind one trait so that the encoder can be swapped; and the
//! light default sized for a 2-core CPU, [`TapDecoder`].

use crate::Result;
use crate::learned::upsample::upsample_bilinear;
use burn::module::{Module, Param, ParamId};
use burn::tensor::activation::relu;
use burn::tensor::module::conv2d;
use burn::tensor::ops::ConvOptions;
use deepsight_runtime::{Device, LayeredClassifier, Tensor, TensorData};

/// A segmenter of class evidence: `[B, K, h, w]` logits for model inputs `[B, 3, H, W]`.
pub trait Segmenter: Module + Send + Sync {
    /// The class logits `S` (on the tape where the segmenter's parameters are), for inputs `x` in
    /// the frozen classifier's input space; `model` is that classifier (a segmenter may read its
    /// layers, as [`TapDecoder`] does, or ignore it).
    fn class_logits(&self, model: &dyn LayeredClassifier, x: Tensor<4>) -> Result<Tensor<4>>;
}

/// What a [`TapDecoder`] reads and how wide it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapSpec {
    /// Layers of the frozen classifier, in order; the first sets the output resolution.
    pub taps: Vec<String>,
    /// Channels of each tap.
    pub channels: Vec<usize>,
    /// The decoder's width `D`.
    pub width: usize,
    pub classes: usize,
    /// A 1x1 convolution from the last tap straight to the class logits, added to the decoder's
    /// output: initialised from the classifier's own GAP + linear head, training starts from CAM
    /// (see [`TapDecoder::start_from_cam`]).
    pub skip: bool,
}

/// The light explainer: a *frozen, pretrained encoder* — the classifier's own layers, read at a
/// few depths (for Lite0 its stride-8, stride-16 and last feature maps) — and a small trainable
/// decoder in the manner of a feature pyramid: a 1x1 lateral convolution per tap to `D`
/// channels, bilinear upsampling to the first tap's resolution, sum, ReLU, a 3x3 convolution,
/// ReLU, and a 1x1 convolution to `K` class logits.
#[derive(Module, Debug)]
pub struct TapDecoder {
    /// `[D, C_i]` and `[D]` per tap.
    pub lateral_w: Vec<Param<Tensor<2>>>,
    pub lateral_b: Vec<Param<Tensor<1>>>,
    /// `[D, D, 3, 3]`, `[D]`.
    pub mix_w: Param<Tensor<4>>,
    pub mix_b: Param<Tensor<1>>,
    /// `[K, D]`, `[K]`.
    pub head_w: Param<Tensor<2>>,
    pub head_b: Param<Tensor<1>>,
    /// `[K, C_last]`, `[K]` where the spec has a skip.
    pub skip_w: Option<Param<Tensor<2>>>,
    pub skip_b: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub taps: Vec<String>,
}

/// Fixed parameter ids, so that a checkpoint's optimiser state maps back after a resume.
const ID_BASE: u64 = 0x4e4e_4558_0000;

fn param<const D: usize>(id: u64, t: Tensor<D>) -> Param<Tensor<D>> {
    let mut p = Param::from_tensor(t);
    p.id = ParamId::from(ID_BASE + id);
    p
}

fn same_id<const D: usize>(old: &Param<Tensor<D>>, t: Tensor<D>) -> Param<Tensor<D>> {
    let mut p = Param::from_tensor(t);
    p.id = old.id;
    p
}

fn tensor<const D: usize>(v: Vec<f32>, shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::from_data(TensorData::new(v, shape), device)
}

/// The tensors of a [`TapDecoder`] by name, row-major: `lateral.{i}.weight`, `lateral.{i}.bias`,
/// `mix.weight`, `mix.bias`, `head.weight`, `head.bias`.
pub type NamedTensors = Vec<(String, Vec<usize>, Vec<f32>)>;

impl TapDecoder {
    /// PyTorch's default initialisation (uniform in `±1/sqrt(fan_in)` for weights and biases),
    /// from a seeded splitmix64 generator.
    pub fn init(spec: &TapSpec, seed: u64, device: &Device) -> Self {
        let mut state = seed ^ 0x5eed_e4b1_a1e5;
        let mut next = move |bound: f32| {
            state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^= z >> 31;
            ((z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * bound
        };
        let d = spec.width;
        let mut named: NamedTensors = Vec::new();
        let mut uniform = |name: String, shape: Vec<usize>, fan_in: usize| {
            let bound = 1.0 / (fan_in as f32).sqrt();
            let n = shape.iter().product();
            named.push((name, shape, (0..n).map(|_| next(bound)).collect()));
        };
        for (i, &c) in spec.channels.iter().enumerate() {
            uniform(format!("lateral.{i}.weight"), vec![d, c], c);
            uniform(format!("lateral.{i}.bias"), vec![d], c);
        }
        uniform("mix.weight".into(), vec![d, d, 3, 3], d * 9);
        uniform("mix.bias".into(), vec![d], d * 9);
        uniform("head.weight".into(), vec![spec.classes, d], d);
        uniform("head.bias".into(), vec![spec.classes], d);
        if spec.skip {
            let c = *spec.channels.last().expect("a spec has taps");
            uniform("skip.weight".into(), vec![spec.classes, c], c);
            uniform("skip.bias".into(), vec![spec.classes], c);
        }
        Self::from_named(spec, named, device).expect("shapes are the spec's by construction")
    }

    /// A decoder from named tensors; `None` when a tensor is missing or misshapen.
    pub fn from_named(spec: &TapSpec, named: NamedTensors, device: &Device) -> Option<Self> {
        let get = |name: &str, shape: &[usize]| {
            named
                .iter()
                .find(|(n, s, v)| n == name && s == shape && v.len() == shape.iter().product::<usize>())
                .map(|(_, _, v)| v.clone())
        };
        let d = spec.width;
        let k = spec.classes;
        let mut id = 0;
        let mut next_id = || {
            id += 1;
            id
        };
        let mut lateral_w = Vec::new();
        let mut lateral_b = Vec::new();
        for (i, &c) in spec.channels.iter().enumerate() {
            let w = get(&format!("lateral.{i}.weight"), &[d, c])?;
            let b = get(&format!("lateral.{i}.bias"), &[d])?;
            lateral_w.push(param(next_id(), tensor(w, [d, c], device)));
            lateral_b.push(param(next_id(), tensor(b, [d], device)));
        }
        let (skip_w, skip_b) = if spec.skip {
            let c = *spec.channels.last()?;
            (
                Some(param(100, tensor(get("skip.weight", &[k, c])?, [k, c], device))),
                Some(param(101, tensor(get("skip.bias", &[k])?, [k], device))),
            )
        } else {
            (None, None)
        };
        Some(TapDecoder {
            skip_w,
            skip_b,
            lateral_w,
            lateral_b,
            mix_w: param(
                next_id(),
                tensor(get("mix.weight", &[d, d, 3, 3])?, [d, d, 3, 3], device),
            ),
            mix_b: param(next_id(), tensor(get("mix.bias", &[d])?, [d], device)),
            head_w: param(next_id(), tensor(get("head.weight", &[k, d])?, [k, d], device)),
            head_b: param(next_id(), tensor(get("head.bias", &[k])?, [k], device)),
            taps: spec.taps.clone(),
        })
    }

    /// The tensors by name (for weight files).
    pub fn to_named(&self) -> NamedTensors {
        let v = |t: Tensor<2>| deepsight_runtime::to_vec(t.inner());
        let mut out: NamedTensors = Vec::new();
        for (i, (w, b)) in self.lateral_w.iter().zip(&self.lateral_b).enumerate() {
            out.push((format!("lateral.{i}.weight"), w.dims().to_vec(), v(w.val())));
            out.push((
                format!("lateral.{i}.bias"),
                b.dims().to_vec(),
                deepsight_runtime::to_vec(b.val().inner()),
            ));
        }
        out.push((
            "mix.weight".into(),
            self.mix_w.dims().to_vec(),
            deepsight_runtime::to_vec(self.mix_w.val().inner()),
        ));
        out.push((
            "mix.bias".into(),
            self.mix_b.dims().to_vec(),
            deepsight_runtime::to_vec(self.mix_b.val().inner()),
        ));
        out.push((
            "head.weight".into(),
            self.head_w.dims().to_vec(),
            v(self.head_w.val()),
        ));
        out.push((
            "head.bias".into(),
            self.head_b.dims().to_vec(),
            deepsight_runtime::to_vec(self.head_b.val().inner()),
        ));
        if let (Some(w), Some(b)) = (&self.skip_w, &self.skip_b) {
            out.push(("skip.weight".into(), w.dims().to_vec(), v(w.val())));
            out.push((
                "skip.bias".into(),
                b.dims().to_vec(),
                deepsight_runtime::to_vec(b.val().inner()),
            ));
        }
        out
    }

    /// The decoder with its skip set to `weight` `[K, C_last]` and `bias` `[K]` (e.g. the
    /// classifier's CAM head, rescaled) and its own head zeroed, so that its first output is
    /// exactly that map and the decoder learns a correction of it (a zero-initialised residual
    /// branch). `None` when the decoder has no skip or the shapes differ.
    pub fn start_from_cam(self, weight: Vec<f32>, bias: Vec<f32>) -> Option<Self> {
        let device = self.head_b.val().device();
        let k = self.head_b.dims()[0];
        let c = self.skip_w.as_ref()?.dims()[1];
        if weight.len() != k * c || bias.len() != k {
            return None;
        }
        let d = self.mix_b.dims()[0];
        Some(TapDecoder {
            head_w: same_id(&self.head_w, Tensor::zeros([k, d], &device)),
            head_b: same_id(&self.head_b, Tensor::zeros([k], &device)),
            skip_w: Some(param(100, tensor(weight, [k, c], &device))),
            skip_b: Some(param(101, tensor(bias, [k], &device))),
            ..self
        })
    }

    /// The decoder on captured tap activations (in [`TapDecoder::taps`] order).
    pub fn decode(&self, features: &[Tensor<4>]) -> Tensor<4> {
        let [b, _, h, w] = features[0].dims();
        let device = features[0].device();
        let d = self.mix_b.dims()[0];
        let mut sum: Option<Tensor<4>> = None;
        for ((f, lw), lb) in features.iter().zip(&self.lateral_w).zip(&self.lateral_b) {
            let y = pointwise(f.clone(), lw.val(), lb.val());
            let [_, _, fh, fw] = y.dims();
            let y = if (fh, fw) == (h, w) {
                y
            } else {
                upsample_bilinear(y, h, w, &device)
            };
            sum = Some(match sum {
                Some(s) => s + y,
                None => y,
            });
        }
        let x = relu(sum.unwrap_or_else(|| Tensor::zeros([b, d, h, w], &device)));
        let opts = ConvOptions {
            stride: [1, 1],
            padding: [(1, 1), (1, 1)],
            dilation: [1, 1],
            groups: 1,
        };
        let x = relu(conv2d(x, self.mix_w.val(), Some(self.mix_b.val()), opts));
        let out = pointwise(x, self.head_w.val(), self.head_b.val());
        match (&self.skip_w, &self.skip_b, features.last()) {
            (Some(sw), Some(sb), Some(last)) => {
                let s = pointwise(last.clone(), sw.val(), sb.val());
                let [_, _, sh, sw_] = s.dims();
                let s = if (sh, sw_) == (h, w) {
                    s
                } else {
                    upsample_bilinear(s, h, w, &device)
                };
                out + s
            }
            _ => out,
        }
    }
}

/// A 1x1 convolution `[N, C, h, w]` -> `[N, O, h, w]` with `weight` `[O, C]` as one matrix
/// product per image (burn's `conv2d` with a 1x1 kernel is slower on flex).
fn pointwise(x: Tensor<4>, weight: Tensor<2>, bias: Tensor<1>) -> Tensor<4> {
    let [n, c, h, w] = x.dims();
    let [o, _] = weight.dims();
    let y = weight
        .unsqueeze_dim::<3>(0)
        .expand([n, o, c])
        .matmul(x.reshape([n, c, h * w]));
    (y + bias.reshape([1, o, 1])).reshape([n, o, h, w])
}

impl Segmenter for TapDecoder {
    fn class_logits(&self, model: &dyn LayeredClassifier, x: Tensor<4>) -> Result<Tensor<4>> {
        let names: Vec<&str> = self.taps.iter().map(String::as_str).collect();
        // The encoder is frozen: given inputs off the tape, its pass runs with the runtime's fast
        // kernels and only the decoder is on the tape.
        let mut capture = model.capture(x, &names, false)?;
        let features: Vec<Tensor<4>> = self
            .taps
            .iter()
            .map(|t| {
                capture
                    .activations
                    .remove(t)
                    .expect("the captured layers are returned")
            })
            .collect();
        Ok(self.decode(&features))
    }
}
