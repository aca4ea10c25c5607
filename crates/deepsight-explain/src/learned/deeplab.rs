//! The authors' explainer network: torchvision 0.11's `deeplabv3_resnet50(num_classes=K)`, a
//! ResNet-50 encoder (v1.5 bottlenecks, the stride on the 3x3 convolution) whose last two stages
//! trade their stride for dilation (`replace_stride_with_dilation=[False, True, True]`: output
//! stride 8), and `DeepLabHead(2048, K)`: atrous spatial pyramid pooling (a 1x1 branch, 3x3
//! branches at rates 12, 24 and 36, and image pooling; 256 channels each), a 1x1 projection of the
//! 1280 concatenated channels with Dropout 0.5, a 3x3 convolution and a 1x1 convolution to `K`
//! class logits. The segmenter returns the stride-8 logits; the caller upsamples them.
//!
//! Tensors are named as torchvision's state dict (`backbone.layer3.0.conv2.weight`,
//! `classifier.0.convs.4.1.weight`, ..., BatchNorm `weight`, `bias`, `running_mean`,
//! `running_var`; the integer `num_batches_tracked` is neither read nor written), so that an
//! ImageNet ResNet-50 state dict (`resnet50-*.pth`) initialises the encoder as the authors'
//! `pretrained_backbone=True` does ([`DeepLabV3::with_backbone`]).
//!
//! BatchNorm normalises with the batch's statistics (and updates its running ones, momentum 0.1)
//! when the network is on an autodiff device, as PyTorch's `train()`; elsewhere (inference, the
//! engine's validation on `module.valid()`) it uses the running statistics. Dropout likewise acts
//! only on an autodiff device; its mask is seeded by the batch's pixels, so that a step is
//! reproducible.
//!
//! Deviations: burn's BatchNorm updates the running variance with the batch's *biased* variance
//! (PyTorch: unbiased, a factor `n / (n - 1)`, negligible except on the image-pooling branch, whose
//! `n` is the batch size); the same images get the same Dropout mask in every epoch (PyTorch draws
//! a fresh one). The input is the frozen classifier's normalised image (the authors' classifiers
//! and ResNet-50 encoder share ImageNet's normalisation; with another classifier an ImageNet
//! encoder sees that classifier's normalisation).

use crate::learned::segmenter::{NamedTensors, Segmenter};
use crate::{ExplainError, Result};
use burn::module::{Module, Param, ParamId, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::activation::relu;
use burn::tensor::module::max_pool2d;
use burn::tensor::ops::MaxPoolOptions;
use deepsight_runtime::{Device, LayeredClassifier, Tensor, TensorData, to_vec};
use rand::{Rng, SeedableRng};
use std::collections::HashMap;

/// Fixed parameter ids (distinct from the tap decoder's), in state-dict order, so that a
/// checkpoint's optimiser state maps back after a resume.
const ID_BASE: u64 = 0x4e4e_444c_0000_0000;

/// `(planes, blocks, stride, dilate)` of `layer1` .. `layer4` (ResNet-50, dilation `[F, T, T]`).
const LAYERS: [(usize, usize, usize, bool); 4] = [
    (64, 3, 1, false),
    (128, 4, 2, false),
    (256, 6, 2, true),
    (512, 3, 2, true),
];

/// Bottleneck expansion.
const EXPANSION: usize = 4;

/// ASPP rates and width.
const RATES: [usize; 3] = [12, 24, 36];
const ASPP: usize = 256;

/// Encoder output channels.
pub const ENCODER_CHANNELS: usize = 512 * EXPANSION;

/// One bottleneck's geometry, as torchvision's `_make_layer` builds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockSpec {
    pub inplanes: usize,
    pub planes: usize,
    /// Of the 3x3 convolution and of the downsampling 1x1 convolution.
    pub stride: usize,
    /// Of the 3x3 convolution (its padding equals it).
    pub dilation: usize,
    pub downsample: bool,
}

/// The bottlenecks of `layer1` .. `layer4`. A dilated layer's stride becomes 1 and multiplies the
/// running dilation; its *first* block's 3x3 convolution keeps the previous dilation (layer3.0: 1,
/// layer4.0: 2), the others take the new one (layer3: 2, layer4: 4).
pub fn block_specs() -> [Vec<BlockSpec>; 4] {
    let mut inplanes = 64;
    let mut dilation = 1;
    LAYERS.map(|(planes, blocks, stride, dilate)| {
        let previous = dilation;
        let stride = if dilate {
            dilation *= stride;
            1
        } else {
            stride
        };
        (0..blocks)
            .map(|i| {
                let spec = BlockSpec {
                    inplanes,
                    planes,
                    stride: if i == 0 { stride } else { 1 },
                    dilation: if i == 0 { previous } else { dilation },
                    downsample: i == 0 && (stride != 1 || inplanes != planes * EXPANSION),
                };
                inplanes = planes * EXPANSION;
                spec
            })
            .collect()
    })
}

/// A convolution without bias followed by BatchNorm (a torchvision `Sequential(conv, bn, ...)`).
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

impl ConvBn {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.bn.forward(conv(&self.conv, x))
    }
}

/// torchvision's `Bottleneck` (expansion 4).
#[derive(Module, Debug)]
pub struct Bottleneck {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub conv2: Conv2d,
    pub bn2: BatchNorm,
    pub conv3: Conv2d,
    pub bn3: BatchNorm,
    /// `downsample.0` (1x1 convolution) and `downsample.1` (BatchNorm).
    pub downsample: Option<ConvBn>,
}

impl Bottleneck {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let out = relu(self.bn1.forward(conv(&self.conv1, x.clone())));
        let out = relu(self.bn2.forward(conv(&self.conv2, out)));
        let out = self.bn3.forward(conv(&self.conv3, out));
        let identity = match &self.downsample {
            Some(d) => d.forward(x),
            None => x,
        };
        relu(out + identity)
    }
}

/// The dilated ResNet-50 encoder (`backbone.*`; no average pooling, no `fc`).
#[derive(Module, Debug)]
pub struct ResNet50 {
    pub conv1: Conv2d,
    pub bn1: BatchNorm,
    pub layer1: Vec<Bottleneck>,
    pub layer2: Vec<Bottleneck>,
    pub layer3: Vec<Bottleneck>,
    pub layer4: Vec<Bottleneck>,
}

impl ResNet50 {
    /// `[B, 3, H, W]` -> `[B, 2048, H / 8, W / 8]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_stages(x, 4)
    }

    /// The output of the stem and the first `stages` layers (`layer1` .. `layer{stages}`).
    pub fn forward_stages(&self, x: Tensor<4>, stages: usize) -> Tensor<4> {
        let x = relu(self.bn1.forward(conv(&self.conv1, x)));
        let mut x = max_pool2d(
            x,
            MaxPoolOptions {
                kernel_size: [3, 3],
                stride: [2, 2],
                padding: [(1, 1), (1, 1)],
                dilation: [1, 1],
                ceil_mode: false,
            },
        );
        for layer in self.layers().into_iter().take(stages) {
            for block in layer {
                x = block.forward(x);
            }
        }
        x
    }

    /// The layers in order.
    pub fn layers(&self) -> [&Vec<Bottleneck>; 4] {
        [&self.layer1, &self.layer2, &self.layer3, &self.layer4]
    }
}

/// torchvision's `DeepLabHead(2048, K)` (`classifier.*`).
#[derive(Module, Debug)]
pub struct DeepLabHead {
    /// `classifier.0.convs.0` (1x1) and `.1` .. `.3` (3x3 at rates 12, 24, 36), each + BN + ReLU.
    pub branches: Vec<ConvBn>,
    /// `classifier.0.convs.4`: global average pooling, 1x1 convolution (`.1`), BN (`.2`), ReLU,
    /// upsampled back (bilinear from one pixel: a broadcast).
    pub pooling: ConvBn,
    /// `classifier.0.project`: 1x1 from 1280 to 256 (`.0`), BN (`.1`), ReLU, Dropout 0.5.
    pub project: ConvBn,
    /// `classifier.1` (3x3) and `classifier.2` (BN), then ReLU.
    pub fuse: ConvBn,
    /// `classifier.4`: 1x1 to `K`, with bias.
    pub out: Conv2d,
}

impl DeepLabHead {
    /// Encoder features to class logits; `dropout`: the seed of the projection's Dropout mask
    /// (`None`: no dropout, as in inference).
    pub fn forward(&self, x: Tensor<4>, dropout: Option<u64>) -> Tensor<4> {
        let [b, _, h, w] = x.dims();
        let mut branches: Vec<Tensor<4>> = self.branches.iter().map(|c| relu(c.forward(x.clone()))).collect();
        let pooled = relu(self.pooling.forward(x.mean_dim(2).mean_dim(3)));
        branches.push(pooled.expand([b, ASPP, h, w]));
        let y = relu(self.project.forward(Tensor::cat(branches, 1)));
        let y = match dropout {
            Some(seed) => dropout_half(y, seed),
            None => y,
        };
        conv(&self.out, relu(self.fuse.forward(y)))
    }
}

/// `deeplabv3_resnet50(num_classes=K)` without the auxiliary head (the authors').
#[derive(Module, Debug)]
pub struct DeepLabV3 {
    pub backbone: ResNet50,
    pub classifier: DeepLabHead,
}

/// Dropout with probability 1/2 (kept values doubled), its mask from `seed`.
fn dropout_half(x: Tensor<4>, seed: u64) -> Tensor<4> {
    let dims = x.dims();
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mask: Vec<f32> = (0..dims.iter().product::<usize>())
        .map(|_| if rng.random_bool(0.5) { 2.0 } else { 0.0 })
        .collect();
    let mask = Tensor::from_data(TensorData::new(mask, dims), &x.device());
    x * mask
}

/// A convolution; a 1x1 one of stride 1 as a matrix product per image (faster on flex).
fn conv(c: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if c.kernel_size != [1, 1] || c.stride != [1, 1] {
        return c.forward(x);
    }
    let [n, ch, h, w] = x.dims();
    let [o, ..] = c.weight.dims();
    let y = c
        .weight
        .val()
        .reshape([1, o, ch])
        .expand([n, o, ch])
        .matmul(x.reshape([n, ch, h * w]));
    let y = match &c.bias {
        Some(b) => y + b.val().reshape([1, o, 1]),
        None => y,
    };
    y.reshape([n, o, h, w])
}

/// How a tensor starts: torchvision's ResNet init (Kaiming normal, fan out, ReLU gain) for the
/// encoder's convolutions, PyTorch's default `nn.Conv2d` init (uniform in `±1/sqrt(fan_in)`) for
/// the head's, BatchNorm weight 1 and bias 0, running mean 0 and variance 1.
#[derive(Debug, Clone, Copy)]
enum Init {
    Normal(f32),
    Uniform(f32),
    Constant(f32),
}

/// Where tensors come from: `(name, shape, init)` -> values.
type Source<'a> = dyn FnMut(&str, &[usize], Init) -> Option<Vec<f32>> + 'a;

/// A convolution's channels, kernel size, stride and dilation (its padding is `dilation (k - 1) / 2`).
#[derive(Debug, Clone, Copy)]
struct Geometry {
    cin: usize,
    cout: usize,
    k: usize,
    stride: usize,
    dilation: usize,
}

const fn geo(cin: usize, cout: usize, k: usize, stride: usize, dilation: usize) -> Geometry {
    Geometry {
        cin,
        cout,
        k,
        stride,
        dilation,
    }
}

struct Builder<'a, 'b> {
    source: &'a mut Source<'b>,
    device: &'a Device,
    id: u64,
}

impl Builder<'_, '_> {
    fn param<const D: usize>(&mut self, v: Vec<f32>, shape: [usize; D]) -> Param<Tensor<D>> {
        let mut p = Param::from_tensor(Tensor::from_data(TensorData::new(v, shape), self.device));
        self.id += 1;
        p.id = ParamId::from(ID_BASE + self.id);
        p
    }

    fn conv(&mut self, name: &str, g: Geometry, bias: bool) -> Option<Conv2d> {
        let Geometry {
            cin,
            cout,
            k,
            stride,
            dilation,
        } = g;
        let (fan_in, fan_out) = (cin * k * k, cout * k * k);
        let uniform = Init::Uniform(1.0 / (fan_in as f32).sqrt());
        let init = if name.starts_with("backbone.") {
            Init::Normal((2.0 / fan_out as f32).sqrt())
        } else {
            uniform
        };
        let shape = [cout, cin, k, k];
        let w = (self.source)(&format!("{name}.weight"), &shape, init)?;
        let weight = self.param(w, shape);
        let bias = match bias {
            true => {
                let b = (self.source)(&format!("{name}.bias"), &[cout], uniform)?;
                Some(self.param(b, [cout]))
            }
            false => None,
        };
        let pad = dilation * (k - 1) / 2;
        Some(Conv2d {
            weight,
            bias,
            stride: [stride, stride],
            kernel_size: [k, k],
            dilation: [dilation, dilation],
            groups: 1,
            padding: PaddingConfig2d::Explicit(pad, pad, pad, pad),
        })
    }

    fn bn(&mut self, name: &str, c: usize) -> Option<BatchNorm> {
        let mut get =
            |field: &str, v: f32| (self.source)(&format!("{name}.{field}"), &[c], Init::Constant(v));
        let (w, b) = (get("weight", 1.0)?, get("bias", 0.0)?);
        let (mean, var) = (get("running_mean", 0.0)?, get("running_var", 1.0)?);
        let mut bn = BatchNormConfig::new(c).init(self.device);
        bn.gamma = self.param(w, [c]);
        bn.beta = self.param(b, [c]);
        let state = |v: Vec<f32>| RunningState::new(Tensor::from_data(TensorData::new(v, [c]), self.device));
        bn.running_mean = state(mean);
        bn.running_var = state(var);
        Some(bn)
    }

    fn conv_bn(&mut self, conv: &str, bn: &str, g: Geometry) -> Option<ConvBn> {
        Some(ConvBn {
            conv: self.conv(conv, g, false)?,
            bn: self.bn(bn, g.cout)?,
        })
    }

    fn network(&mut self, classes: usize) -> Option<DeepLabV3> {
        let conv1 = self.conv("backbone.conv1", geo(3, 64, 7, 2, 1), false)?;
        let bn1 = self.bn("backbone.bn1", 64)?;
        let mut layers = Vec::new();
        for (l, specs) in block_specs().iter().enumerate() {
            let mut blocks = Vec::new();
            for (i, s) in specs.iter().enumerate() {
                let p = format!("backbone.layer{}.{i}", l + 1);
                let (w, out) = (s.planes, s.planes * EXPANSION);
                blocks.push(Bottleneck {
                    conv1: self.conv(&format!("{p}.conv1"), geo(s.inplanes, w, 1, 1, 1), false)?,
                    bn1: self.bn(&format!("{p}.bn1"), w)?,
                    conv2: self.conv(&format!("{p}.conv2"), geo(w, w, 3, s.stride, s.dilation), false)?,
                    bn2: self.bn(&format!("{p}.bn2"), w)?,
                    conv3: self.conv(&format!("{p}.conv3"), geo(w, out, 1, 1, 1), false)?,
                    bn3: self.bn(&format!("{p}.bn3"), out)?,
                    downsample: match s.downsample {
                        true => Some(self.conv_bn(
                            &format!("{p}.downsample.0"),
                            &format!("{p}.downsample.1"),
                            geo(s.inplanes, out, 1, s.stride, 1),
                        )?),
                        false => None,
                    },
                });
            }
            layers.push(blocks);
        }
        let [layer1, layer2, layer3, layer4]: [Vec<Bottleneck>; 4] = layers.try_into().ok()?;
        let (c, a) = (ENCODER_CHANNELS, "classifier.0.convs");
        let mut branches =
            vec![self.conv_bn(&format!("{a}.0.0"), &format!("{a}.0.1"), geo(c, ASPP, 1, 1, 1))?];
        for (i, &rate) in RATES.iter().enumerate() {
            let p = format!("{a}.{}", i + 1);
            branches.push(self.conv_bn(&format!("{p}.0"), &format!("{p}.1"), geo(c, ASPP, 3, 1, rate))?);
        }
        let pooling = self.conv_bn(&format!("{a}.4.1"), &format!("{a}.4.2"), geo(c, ASPP, 1, 1, 1))?;
        let n = (RATES.len() + 2) * ASPP;
        let project = self.conv_bn(
            "classifier.0.project.0",
            "classifier.0.project.1",
            geo(n, ASPP, 1, 1, 1),
        )?;
        let fuse = self.conv_bn("classifier.1", "classifier.2", geo(ASPP, ASPP, 3, 1, 1))?;
        let out = self.conv("classifier.4", geo(ASPP, classes, 1, 1, 1), true)?;
        Some(DeepLabV3 {
            backbone: ResNet50 {
                conv1,
                bn1,
                layer1,
                layer2,
                layer3,
                layer4,
            },
            classifier: DeepLabHead {
                branches,
                pooling,
                project,
                fuse,
                out,
            },
        })
    }
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    to_vec(t.inner())
}

fn push_conv(out: &mut NamedTensors, name: &str, c: &Conv2d) {
    out.push((
        format!("{name}.weight"),
        c.weight.dims().to_vec(),
        values(c.weight.val()),
    ));
    if let Some(b) = &c.bias {
        out.push((format!("{name}.bias"), b.dims().to_vec(), values(b.val())));
    }
}

fn push_bn(out: &mut NamedTensors, name: &str, bn: &BatchNorm) {
    let c = bn.gamma.dims().to_vec();
    out.push((format!("{name}.weight"), c.clone(), values(bn.gamma.val())));
    out.push((format!("{name}.bias"), c.clone(), values(bn.beta.val())));
    out.push((
        format!("{name}.running_mean"),
        c.clone(),
        values(bn.running_mean.value_sync()),
    ));
    out.push((
        format!("{name}.running_var"),
        c,
        values(bn.running_var.value_sync()),
    ));
}

fn push_conv_bn(out: &mut NamedTensors, conv: &str, bn: &str, c: &ConvBn) {
    push_conv(out, conv, &c.conv);
    push_bn(out, bn, &c.bn);
}

/// A splitmix64 stream of uniforms in `[-1, 1)`.
fn splitmix(seed: u64) -> impl FnMut() -> f32 {
    let mut state = seed ^ 0xdee9_1ab3_0e5e_ed00;
    move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        (z >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
    }
}

impl DeepLabV3 {
    /// PyTorch's initialisation for `deeplabv3_resnet50(pretrained=False, pretrained_backbone=False,
    /// num_classes=classes)` (see [`Init`]), from a seeded generator. The authors start the
    /// encoder from ImageNet: follow with [`DeepLabV3::with_backbone`].
    pub fn init(classes: usize, seed: u64, device: &Device) -> Self {
        let mut next = splitmix(seed);
        let mut source = |_: &str, shape: &[usize], init: Init| -> Option<Vec<f32>> {
            let n = shape.iter().product();
            Some(match init {
                Init::Constant(v) => vec![v; n],
                Init::Uniform(bound) => (0..n).map(|_| next() * bound).collect(),
                // Box-Muller on two uniforms in (0, 1].
                Init::Normal(std) => (0..n)
                    .map(|_| {
                        let u1 = (next() + 1.0) * 0.5;
                        let u2 = (next() + 1.0) * 0.5;
                        let r = (-2.0 * (1.0 - u1).max(1e-7).ln()).sqrt();
                        r * (std::f32::consts::TAU * u2).cos() * std
                    })
                    .collect(),
            })
        };
        Builder {
            source: &mut source,
            device,
            id: 0,
        }
        .network(classes)
        .expect("every tensor is generated")
    }

    /// The network from named tensors (torchvision's names; unknown names are ignored); `None`
    /// when a tensor is missing or misshapen.
    pub fn from_named(classes: usize, named: NamedTensors, device: &Device) -> Option<Self> {
        let mut map: HashMap<String, (Vec<usize>, Vec<f32>)> =
            named.into_iter().map(|(n, s, v)| (n, (s, v))).collect();
        let mut source = |name: &str, shape: &[usize], _: Init| -> Option<Vec<f32>> {
            let (s, v) = map.remove(name)?;
            (s == shape && v.len() == shape.iter().product::<usize>()).then_some(v)
        };
        Builder {
            source: &mut source,
            device,
            id: 0,
        }
        .network(classes)
    }

    /// The tensors by torchvision's names, in its state-dict order (parameters and running
    /// statistics; no `num_batches_tracked`).
    pub fn to_named(&self) -> NamedTensors {
        let mut out = NamedTensors::new();
        let b = &self.backbone;
        push_conv(&mut out, "backbone.conv1", &b.conv1);
        push_bn(&mut out, "backbone.bn1", &b.bn1);
        for (l, layer) in b.layers().iter().enumerate() {
            for (i, block) in layer.iter().enumerate() {
                let p = format!("backbone.layer{}.{i}", l + 1);
                for (n, (c, bn)) in [
                    (&block.conv1, &block.bn1),
                    (&block.conv2, &block.bn2),
                    (&block.conv3, &block.bn3),
                ]
                .into_iter()
                .enumerate()
                {
                    push_conv(&mut out, &format!("{p}.conv{}", n + 1), c);
                    push_bn(&mut out, &format!("{p}.bn{}", n + 1), bn);
                }
                if let Some(d) = &block.downsample {
                    push_conv_bn(
                        &mut out,
                        &format!("{p}.downsample.0"),
                        &format!("{p}.downsample.1"),
                        d,
                    );
                }
            }
        }
        let h = &self.classifier;
        for (i, c) in h.branches.iter().enumerate() {
            push_conv_bn(
                &mut out,
                &format!("classifier.0.convs.{i}.0"),
                &format!("classifier.0.convs.{i}.1"),
                c,
            );
        }
        push_conv_bn(
            &mut out,
            "classifier.0.convs.4.1",
            "classifier.0.convs.4.2",
            &h.pooling,
        );
        push_conv_bn(
            &mut out,
            "classifier.0.project.0",
            "classifier.0.project.1",
            &h.project,
        );
        push_conv_bn(&mut out, "classifier.1", "classifier.2", &h.fuse);
        push_conv(&mut out, "classifier.4", &h.out);
        out
    }

    /// The network with its encoder replaced by a torchvision ResNet-50 state dict (the
    /// authors' ImageNet start: `resnet50-*.pth`), named without or with the `backbone.` prefix.
    /// `fc.*` and `num_batches_tracked` are skipped; a missing, misshapen or unknown tensor is
    /// refused, naming it.
    pub fn with_backbone(self, resnet50: NamedTensors) -> Result<Self> {
        let refuse = |reason: String| ExplainError::Invalid {
            method: "explainer",
            reason: format!("the ResNet-50 encoder weights: {reason}"),
        };
        let device = self.classifier.out.weight.val().device();
        let classes = self.classes();
        let mut named = self.to_named();
        let mut given: HashMap<String, (Vec<usize>, Vec<f32>)> = HashMap::new();
        for (n, s, v) in resnet50 {
            let n = n.strip_prefix("backbone.").unwrap_or(&n).to_string();
            if n.starts_with("fc.") || n.ends_with("num_batches_tracked") {
                continue;
            }
            given.insert(n, (s, v));
        }
        for (name, shape, values) in named.iter_mut().filter(|t| t.0.starts_with("backbone.")) {
            let key = &name["backbone.".len()..];
            let (s, v) = given.remove(key).ok_or_else(|| {
                refuse(format!(
                    "no tensor '{key}' (not a torchvision ResNet-50 state dict?)"
                ))
            })?;
            if s != *shape || v.len() != values.len() {
                return Err(refuse(format!(
                    "'{key}' has shape {s:?}, ResNet-50's is {shape:?}"
                )));
            }
            *values = v;
        }
        if let Some(extra) = given.keys().min() {
            return Err(refuse(format!(
                "unexpected tensor '{extra}' (not a torchvision ResNet-50 state dict?)"
            )));
        }
        Ok(Self::from_named(classes, named, &device).expect("the shapes were checked"))
    }

    /// `K`.
    pub fn classes(&self) -> usize {
        self.classifier.out.weight.dims()[0]
    }

    /// Class logits `[B, K, H / 8, W / 8]` of normalised images `[B, 3, H, W]`; `dropout` seeds
    /// the head's Dropout (`None`: none).
    pub fn forward(&self, x: Tensor<4>, dropout: Option<u64>) -> Tensor<4> {
        self.classifier.forward(self.backbone.forward(x), dropout)
    }
}

impl Segmenter for DeepLabV3 {
    fn class_logits(&self, _model: &dyn LayeredClassifier, x: Tensor<4>) -> Result<Tensor<4>> {
        let [_, c, _, _] = x.dims();
        if c != 3 {
            return Err(ExplainError::Invalid {
                method: "explainer",
                reason: format!("the DeepLabv3 explainer takes RGB images, not {c} channels"),
            });
        }
        let device = self.backbone.conv1.weight.val().device();
        // Training (on the tape): Dropout, seeded by the batch's pixels.
        let seed = device.is_autodiff().then(|| {
            let mut h: u64 = 0xd1ab_0a77_5eed_0001;
            for v in to_vec(x.clone().inner()).iter().step_by(97) {
                h = (h ^ v.to_bits() as u64).wrapping_mul(0x0100_0000_01b3);
            }
            h
        });
        Ok(self.forward(x.to_device(&device), seed))
    }
}
