//! Training the mosaic benchmark's multi-label CNN ([`deepsight_models::mosaic_cnn`]) on the
//! engine: the network as a burn [`Module`], its [`Task`] (binary cross-entropy on every class,
//! PyTorch's `BCEWithLogitsLoss`), its weight file, and the multi-label report (exact-match
//! accuracy and per-class F1 at logit 0).
//!
//! The weight file holds exactly the tensors [`deepsight_models::mosaic_cnn::tensor_shapes`]
//! lists, as F32, BatchNorm running statistics included, so that `--model FILE --arch mosaic-cnn`
//! runs the trained network through the graph runtime (and the explainers) with no conversion.

use crate::engine::Task;
use crate::error::{Result, TrainError};
use crate::weight_file::{self, Encoded, bad_weights, id_of, param};
use burn::module::{Module, Param, RunningState};
use burn::nn::conv::Conv2d;
use burn::nn::pool::MaxPool2dConfig;
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::activation::relu;
use deepsight_models::mosaic_cnn::{self, BLOCKS, BN_EPS, FEATURES};
use deepsight_models::preprocess::Preprocess;
use deepsight_models::{Weights, uniform_stream};
use deepsight_runtime::{Classifier, Device, GraphModel, Tensor, TensorData, to_vec};
use safetensors::Dtype;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// PyTorch's `BatchNorm2d` momentum: the running statistics move 10% towards each batch's.
const BN_MOMENTUM: f64 = 0.1;

/// One convolution block: 3x3 convolution (no bias) and BatchNorm; ReLU and the pool are
/// stateless and applied in [`MosaicCnn::forward`].
#[derive(Module, Debug)]
pub struct Block {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

/// The mosaic CNN as a trainable module (see [`deepsight_models::mosaic_cnn`] for the layout).
#[derive(Module, Debug)]
pub struct MosaicCnn {
    pub blocks: Vec<Block>,
    pub fc: Linear,
}

/// The values of a tensor, row-major, whether or not it is on the autodiff device.
fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    to_vec(t.inner())
}

impl MosaicCnn {
    /// The network with the values of a state dict (PyTorch names and layouts: linear weights
    /// `[out, in]`), on `device` (the autodiff device to train it).
    pub fn from_weights(w: &Weights, device: &Device) -> deepsight_models::Result<Self> {
        let classes = mosaic_cnn::classes_in(w)?;
        let t = |name: &str, shape: &[usize]| -> deepsight_models::Result<TensorData> {
            Ok(TensorData::new(w.get(name, shape)?.data.clone(), shape.to_vec()))
        };
        let mut blocks = Vec::new();
        let mut cin = 3;
        for (i, spec) in BLOCKS.iter().enumerate() {
            let (n, c) = (i + 1, spec.channels);
            let name = format!("conv{n}.weight");
            let conv = Conv2d {
                weight: param(&name, Tensor::from_data(t(&name, &[c, cin, 3, 3])?, device)),
                bias: None,
                stride: [spec.stride; 2],
                kernel_size: [3, 3],
                dilation: [spec.dilation; 2],
                groups: 1,
                padding: {
                    let p = spec.dilation;
                    PaddingConfig2d::Explicit(p, p, p, p)
                },
            };
            let bn_t = |s: &str| -> deepsight_models::Result<(String, Tensor<1>)> {
                let name = format!("bn{n}.{s}");
                let v = Tensor::from_data(t(&name, &[c])?, device);
                Ok((name, v))
            };
            let (gn, gamma) = bn_t("weight")?;
            let (bn_name, beta) = bn_t("bias")?;
            let (mn, mean) = bn_t("running_mean")?;
            let (vn, var) = bn_t("running_var")?;
            let bn = BatchNorm {
                gamma: param(&gn, gamma),
                beta: param(&bn_name, beta),
                training: Param::from_bool(true),
                running_mean: RunningState::with_id(id_of(&mn), mean),
                running_var: RunningState::with_id(id_of(&vn), var),
                momentum: BN_MOMENTUM,
                epsilon: BN_EPS,
            };
            blocks.push(Block { conv, bn });
            cin = c;
        }
        // burn's row layout is `[in, out]`: PyTorch's `[out, in]` transposed.
        let fc_w = Tensor::<2>::from_data(t("fc.weight", &[classes, FEATURES])?, device).transpose();
        let fc = Linear {
            weight: param("fc.weight", fc_w),
            bias: Some(param(
                "fc.bias",
                Tensor::from_data(t("fc.bias", &[classes])?, device),
            )),
        };
        Ok(MosaicCnn { blocks, fc })
    }

    /// PyTorch's default initialisation, seeded: convolution and linear weights and the linear
    /// bias uniform in `±1/sqrt(fan_in)` (kaiming-uniform with `a = sqrt(5)`), BatchNorm gamma 1,
    /// beta 0, running mean 0, variance 1. Each tensor draws from its own stream
    /// ([`uniform_stream`] of the seed and its name), so the values do not depend on the order
    /// the layers are built in.
    pub fn pytorch_default(classes: usize, seed: u64, device: &Device) -> Self {
        let mut w = Weights::default();
        for (name, shape) in mosaic_cnn::tensor_shapes(classes) {
            let n: usize = shape.iter().product();
            let data: Vec<f32> = if name.starts_with("bn") {
                let one = name.ends_with(".weight") || name.ends_with("running_var");
                vec![if one { 1.0 } else { 0.0 }; n]
            } else {
                let fan_in: usize = if name == "fc.bias" {
                    FEATURES
                } else {
                    shape[1..].iter().product()
                };
                let bound = 1.0 / (fan_in as f64).sqrt();
                uniform_stream(seed, &name)
                    .take(n)
                    .map(|u| ((2.0 * u - 1.0) * bound) as f32)
                    .collect()
            };
            w.tensors
                .insert(name, deepsight_models::WeightTensor { shape, data });
        }
        Self::from_weights(&w, device).expect("the shapes are the architecture's by construction")
    }

    /// The number of classes.
    pub fn classes(&self) -> usize {
        self.fc.weight.val().dims()[1]
    }

    /// The logits `[N, K]` of normalised images `[N, 3, H, W]`. BatchNorm normalises by the
    /// batch's statistics (and updates the running ones) when the module is on the autodiff
    /// device in training mode, by the running statistics otherwise (after [`Module::valid`]).
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let pool = MaxPool2dConfig::new([2, 2]).init();
        let mut x = x;
        for (b, spec) in self.blocks.iter().zip(&BLOCKS) {
            x = relu(b.bn.forward(b.conv.forward(x)));
            if spec.pool {
                x = pool.forward(x);
            }
        }
        let [n, c, _, _] = x.dims();
        self.fc.forward(x.mean_dim(3).mean_dim(2).reshape([n, c]))
    }

    /// The state dict (PyTorch names, shapes and layouts), as the graph builder reads it.
    pub fn to_weights(&self) -> Weights {
        let mut w = Weights::default();
        let mut put = |name: String, shape: Vec<usize>, data: Vec<f32>| {
            w.tensors
                .insert(name, deepsight_models::WeightTensor { shape, data });
        };
        for (i, b) in self.blocks.iter().enumerate() {
            let n = i + 1;
            let conv = b.conv.weight.val();
            put(format!("conv{n}.weight"), conv.dims().to_vec(), values(conv));
            let c = b.bn.gamma.val().dims()[0];
            put(format!("bn{n}.weight"), vec![c], values(b.bn.gamma.val()));
            put(format!("bn{n}.bias"), vec![c], values(b.bn.beta.val()));
            put(
                format!("bn{n}.running_mean"),
                vec![c],
                values(b.bn.running_mean.value_sync()),
            );
            put(
                format!("bn{n}.running_var"),
                vec![c],
                values(b.bn.running_var.value_sync()),
            );
        }
        let fc = self.fc.weight.val().transpose();
        put("fc.weight".into(), fc.dims().to_vec(), values(fc));
        if let Some(bias) = &self.fc.bias {
            put("fc.bias".into(), vec![self.classes()], values(bias.val()));
        }
        w
    }

    /// The graph-runtime model of the same weights, on `device` (no autodiff), at the mosaics'
    /// input size: what `--model FILE --arch mosaic-cnn` loads.
    pub fn graph_model(&self, device: &Device) -> Result<GraphModel> {
        let w = self.to_weights();
        let graph = mosaic_cnn::mosaic_cnn(&w, device, self.classes())?;
        Ok(GraphModel::new(graph, mosaic_cnn::INPUT_SIZE, device.clone())?)
    }
}

/// The images' multi-hot targets `[B, K]`; an error names a label outside `0..classes`.
pub fn multi_hot(labels: &[Vec<usize>], classes: usize, device: &Device) -> Result<Tensor<2>> {
    let mut v = vec![0f32; labels.len() * classes];
    for (i, ls) in labels.iter().enumerate() {
        for &l in ls {
            if l >= classes {
                return Err(TrainError::Config(format!(
                    "label {l} is out of range: the classifier has {classes} classes"
                )));
            }
            v[i * classes + l] = 1.0;
        }
    }
    Ok(Tensor::from_data(
        TensorData::new(v, [labels.len(), classes]),
        device,
    ))
}

/// PyTorch's `BCEWithLogitsLoss` (mean over images and classes), in its stable form
/// `max(x, 0) - x y + log(1 + exp(-|x|))`, which neither overflows for large logits nor loses the
/// gradient of saturated ones.
pub fn bce_with_logits(logits: Tensor<2>, targets: Tensor<2>) -> Tensor<1> {
    let soft = logits.clone().abs().neg().exp().add_scalar(1.0).log();
    (logits.clone().clamp_min(0.0) - logits * targets + soft).mean()
}

/// Training the mosaic CNN on multi-label images.
pub struct ClassifierTask {
    pub classes: usize,
    /// The preset's normalisation, `(255 x - mean) / std` (EfficientNet-Lite's `127` and `128`).
    pub mean: [f32; 3],
    pub std: [f32; 3],
    /// Facts recorded in the weight file's metadata (command, data).
    pub info: BTreeMap<String, String>,
}

impl ClassifierTask {
    /// A task for `classes` classes with the mosaic CNN's preset normalisation.
    pub fn new(classes: usize) -> Self {
        let p = deepsight_models::Arch::MosaicCnn.preset().pipeline();
        ClassifierTask {
            classes,
            mean: p.mean,
            std: p.std,
            info: BTreeMap::new(),
        }
    }

    /// The normalised model input of images in `[0, 1]`, on `device`.
    fn normalise(&self, images01: Tensor<4>, device: &Device) -> Tensor<4> {
        let shape = |v: [f32; 3]| {
            Tensor::<1>::from_data(TensorData::new(v.to_vec(), [3]), device).reshape([1, 3, 1, 1])
        };
        let scale = shape(self.std.map(|s| 255.0 / s));
        let shift = shape(std::array::from_fn(|c| self.mean[c] / self.std[c]));
        images01.to_device(device) * scale - shift
    }
}

impl Task for ClassifierTask {
    type Module = MosaicCnn;

    fn terms(&self) -> &'static [&'static str] {
        &["bce"]
    }

    fn loss(
        &self,
        module: &MosaicCnn,
        images01: Tensor<4>,
        labels: &[Vec<usize>],
    ) -> Result<(Tensor<1>, Vec<Tensor<1>>)> {
        let device = module.fc.weight.val().device();
        let logits = module.forward(self.normalise(images01, &device));
        let loss = bce_with_logits(logits, multi_hot(labels, self.classes, &device)?);
        Ok((loss.clone(), vec![loss]))
    }

    fn encode(&self, module: &MosaicCnn, extra: &[(&str, &[u8])], meta: &[(&str, String)]) -> Vec<u8> {
        let w = module.to_weights();
        let bytes: Vec<Encoded> = w
            .tensors
            .into_iter()
            .map(|(k, t)| (k, t.shape, t.data.iter().flat_map(|v| v.to_le_bytes()).collect()))
            .collect();
        weight_file::encode(
            Dtype::F32,
            &bytes,
            extra,
            "deepsight.mosaic-cnn",
            deepsight_models::Arch::MosaicCnn,
            &self.info,
            meta,
        )
    }

    fn decode(&self, bytes: &[u8], source: &str, device: &Device) -> Result<MosaicCnn> {
        let m = weight_file::decode(bytes, source, |w| MosaicCnn::from_weights(w, device))?;
        if m.classes() != self.classes {
            return Err(bad_weights(
                source,
                format!(
                    "the weights have {} classes, the data {}",
                    m.classes(),
                    self.classes
                ),
            ));
        }
        Ok(m)
    }
}

/// Multi-label quality at logit threshold 0 (probability 0.5): a class is predicted where its
/// logit is positive.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub images: usize,
    /// Fraction of images whose predicted set is exactly their label set.
    pub exact_match: f64,
    /// Per class: `2 TP / (2 TP + FP + FN)`; 1 for a class neither present nor predicted
    /// (nothing to get wrong).
    pub f1: Vec<f64>,
    pub precision: Vec<f64>,
    pub recall: Vec<f64>,
    /// The unweighted mean of [`Report::f1`] (macro F1).
    pub mean_f1: f64,
}

/// The report of logits `[N, K]` (row-major) against each image's labels.
pub fn report(logits: &[f32], classes: usize, labels: &[Vec<usize>]) -> Report {
    let n = labels.len();
    let (mut tp, mut fp, mut fneg) = (
        vec![0usize; classes],
        vec![0usize; classes],
        vec![0usize; classes],
    );
    let mut exact = 0usize;
    for (i, ls) in labels.iter().enumerate() {
        let row = &logits[i * classes..(i + 1) * classes];
        let mut all = true;
        for (k, &z) in row.iter().enumerate() {
            let (pred, truth) = (z > 0.0, ls.contains(&k));
            match (pred, truth) {
                (true, true) => tp[k] += 1,
                (true, false) => fp[k] += 1,
                (false, true) => fneg[k] += 1,
                (false, false) => {}
            }
            all &= pred == truth;
        }
        exact += all as usize;
    }
    let ratio = |a: usize, b: usize| if b == 0 { 1.0 } else { a as f64 / b as f64 };
    let f1: Vec<f64> = (0..classes)
        .map(|k| ratio(2 * tp[k], 2 * tp[k] + fp[k] + fneg[k]))
        .collect();
    Report {
        images: n,
        exact_match: ratio(exact, n),
        precision: (0..classes).map(|k| ratio(tp[k], tp[k] + fp[k])).collect(),
        recall: (0..classes).map(|k| ratio(tp[k], tp[k] + fneg[k])).collect(),
        mean_f1: f1.iter().sum::<f64>() / classes.max(1) as f64,
        f1,
    }
}

/// The report of a classifier on image files (its preprocessing `pipeline`), in batches of
/// `batch`; `progress(done, total)` after each.
pub fn evaluate(
    model: &dyn Classifier,
    pipeline: &Preprocess,
    paths: &[PathBuf],
    labels: &[Vec<usize>],
    batch: usize,
    progress: &dyn Fn(usize, usize),
) -> Result<Report> {
    if paths.len() != labels.len() {
        return Err(TrainError::Config(format!(
            "{} images but {} label lists",
            paths.len(),
            labels.len()
        )));
    }
    let device = model.device();
    let mut logits = Vec::with_capacity(paths.len() * model.num_classes());
    for (b, chunk) in paths.chunks(batch.max(1)).enumerate() {
        let refs: Vec<&Path> = chunk.iter().map(PathBuf::as_path).collect();
        logits.extend(to_vec(model.logits(pipeline.load_batch(&refs, &device)?)?));
        progress((b * batch.max(1) + chunk.len()).min(paths.len()), paths.len());
    }
    Ok(report(&logits, model.num_classes(), labels))
}
