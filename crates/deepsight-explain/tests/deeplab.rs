//! The authors' explainer architecture, torchvision's `deeplabv3_resnet50`: stride-8 logits, the
//! dilation rule of a dilated ResNet layer, gradients through head and encoder (BatchNorm in
//! training mode on the tape), torchvision's names and parameter counts, the ImageNet encoder
//! start, and weight files (round trip, the default architecture of a file without the key).
//! Small inputs only (64x64 -> 8x8 logits, K = 3); nothing is trained here.

use deepsight_explain::learned::deeplab::{BlockSpec, ENCODER_CHANNELS, block_specs};
use deepsight_explain::learned::explainer_loss::ClassifierKind;
use deepsight_explain::learned::explainer_net::deeplab_spec;
use deepsight_explain::learned::explainer_train::{Objective, training_loss};
use deepsight_explain::learned::lcam::TrainBatch;
use deepsight_explain::learned::segmenter::NamedTensors;
use deepsight_explain::learned::{
    Architecture, DeepLabV3, ExplainerNet, ExplainerProfile, ExplainerWeights, ModelIdentity, NnExplainer,
    Segmenter, TapDecoder, TapSpec,
};
use deepsight_explain::{Explainer, Request, Score};
use deepsight_models::{RandomWeights, WeightSource};
use deepsight_runtime::{
    Conv2d, Device, Graph, GraphModel, LayeredClassifier, Linear, Op, Padding, Tensor, TensorData,
    default_device, to_vec,
};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::Arc;

const K: usize = 3;

/// input 3x64x64 -> conv 3x3 stride 2 (4 ch) -> ReLU -> conv 3x3 stride 2 (4 ch, `features`) ->
/// GAP -> linear to 3 classes.
fn tiny() -> GraphModel {
    let d = default_device();
    let mut g = Graph::new("input", 3);
    let conv = |seed: usize, cin: usize| {
        let w: Vec<f32> = (0..4 * cin * 9)
            .map(|i| ((((i + seed) * 29) % 13) as f32 - 6.0) / 10.0)
            .collect();
        Op::Conv2d(Conv2d {
            weight: Tensor::from_data(TensorData::new(w, [4, cin, 3, 3]), &d),
            bias: None,
            stride: [2, 2],
            dilation: [1, 1],
            groups: 1,
            padding: Padding::symmetric(1),
        })
    };
    let x = g.push("c1", conv(0, 3), &[0]).unwrap();
    let x = g
        .push("r1", Op::Rectifier(deepsight_runtime::Bounds::RELU), &[x])
        .unwrap();
    let x = g.push("features", conv(5, 4), &[x]).unwrap();
    let x = g.push("gap", Op::GlobalAvgPool, &[x]).unwrap();
    let fc: Vec<f32> = (0..12).map(|i| (((i * 7) % 5) as f32 - 2.0) / 3.0).collect();
    g.push(
        "fc",
        Op::Linear(Linear {
            weight: Tensor::from_data(TensorData::new(fc, [3, 4]), &d),
            bias: Some(Tensor::from_data(TensorData::new(vec![0.1, -0.2, 0.3], [3]), &d)),
        }),
        &[x],
    )
    .unwrap();
    GraphModel::new(g, [64, 64], d).unwrap()
}

/// Two normalised-looking images `[2, 3, 64, 64]`.
fn images() -> Tensor<4> {
    let v: Vec<f32> = (0..2 * 3 * 64 * 64)
        .map(|i| ((i * 53) % 17) as f32 / 8.5 - 1.0)
        .collect();
    Tensor::from_data(TensorData::new(v, [2, 3, 64, 64]), &default_device())
}

fn is_running(name: &str) -> bool {
    name.ends_with(".running_mean") || name.ends_with(".running_var")
}

fn count(named: &NamedTensors, prefix: &str) -> usize {
    named
        .iter()
        .filter(|(n, _, _)| n.starts_with(prefix) && !is_running(n))
        .map(|(_, _, v)| v.len())
        .sum()
}

#[test]
fn the_logits_are_at_output_stride_8() {
    let net = DeepLabV3::init(K, 1, &default_device());
    let s = net.class_logits(&tiny(), images()).unwrap();
    assert_eq!(s.dims(), [2, K, 8, 8]);
    assert!(to_vec(s).iter().all(|v| v.is_finite()));
    // 224 -> 28 (the authors' 28x28), and the encoder keeps stride 8 through layer3 and layer4.
    let f = net
        .backbone
        .forward(Tensor::zeros([1, 3, 72, 72], &default_device()));
    assert_eq!(f.dims(), [1, ENCODER_CHANNELS, 9, 9]);
}

#[test]
fn dilated_layers_follow_torchvision_make_layer() {
    let specs = block_specs();
    assert_eq!(specs.iter().map(Vec::len).collect::<Vec<_>>(), [3, 4, 6, 3]);
    let first = |l: usize| specs[l][0];
    let b = |inplanes, planes, stride, dilation, downsample| BlockSpec {
        inplanes,
        planes,
        stride,
        dilation,
        downsample,
    };
    assert_eq!(first(0), b(64, 64, 1, 1, true));
    assert_eq!(first(1), b(256, 128, 2, 1, true));
    // A dilated layer's first block keeps the previous dilation, and its stride becomes 1.
    assert_eq!(first(2), b(512, 256, 1, 1, true));
    assert_eq!(first(3), b(1024, 512, 1, 2, true));
    for (l, dilation) in [(0, 1), (1, 1), (2, 2), (3, 4)] {
        for s in &specs[l][1..] {
            assert_eq!(
                (s.stride, s.dilation, s.downsample),
                (1, dilation, false),
                "layer{}",
                l + 1
            );
        }
    }
    // The built convolutions: stride, dilation and padding (= dilation) of every 3x3.
    let net = DeepLabV3::init(K, 1, &default_device());
    let pad = |c: &burn::nn::conv::Conv2d| match c.padding {
        burn::nn::PaddingConfig2d::Explicit(t, l, b, r) => [t, l, b, r],
        _ => panic!("explicit padding"),
    };
    for (layer, specs) in net.backbone.layers().iter().zip(&specs) {
        for (block, s) in layer.iter().zip(specs) {
            assert_eq!(block.conv2.stride, [s.stride; 2]);
            assert_eq!(block.conv2.dilation, [s.dilation; 2]);
            assert_eq!(pad(&block.conv2), [s.dilation; 4]);
            assert_eq!(block.conv1.kernel_size, [1, 1]);
            assert_eq!(block.conv2.kernel_size, [3, 3]);
            assert_eq!(block.downsample.is_some(), s.downsample);
            if let Some(d) = &block.downsample {
                assert_eq!(d.conv.stride, [s.stride; 2]);
            }
        }
    }
    assert_eq!(net.backbone.layer4[0].conv2.dilation, [2, 2]);
    assert_eq!(net.backbone.layer4[1].conv2.dilation, [4, 4]);
    assert_eq!(net.backbone.conv1.stride, [2, 2]);
    assert_eq!(pad(&net.backbone.conv1), [3; 4]);
    let rates: Vec<_> = net
        .classifier
        .branches
        .iter()
        .map(|b| b.conv.dilation[0])
        .collect();
    assert_eq!(rates, [1, 12, 24, 36]);
    let pads: Vec<_> = net.classifier.branches.iter().map(|b| pad(&b.conv)[0]).collect();
    assert_eq!(pads, [0, 12, 24, 36]);
}

/// deepsight-models' seeded random weights, keeping what it handed out.
struct Recorder {
    inner: RandomWeights,
    given: RefCell<NamedTensors>,
}

impl WeightSource for Recorder {
    fn tensor<const D: usize>(
        &self,
        name: &str,
        shape: [usize; D],
        device: &Device,
    ) -> deepsight_models::Result<Tensor<D>> {
        let t = self.inner.tensor(name, shape, device)?;
        self.given
            .borrow_mut()
            .push((name.to_string(), shape.to_vec(), to_vec(t.clone())));
        Ok(t)
    }
}

/// The dilated encoder computes torchvision's ResNet-50 densely: started from the same state dict
/// (deepsight-models' `resnet50`, the same names and shapes less `fc`), its layer2 output equals
/// ResNet-50's, and its layer3 and layer4 outputs sampled every 2nd and 4th pixel equal ResNet-50's
/// stride-16 and stride-32 maps (the a-trous identity, which holds only with torchvision's rule
/// for the first block of a dilated layer).
#[test]
fn the_dilated_encoder_is_resnet50_computed_densely() {
    let device = default_device();
    let rec = Recorder {
        inner: RandomWeights { seed: 11 },
        given: RefCell::default(),
    };
    let graph = deepsight_models::resnet::resnet50(&rec, &device, 1000).unwrap();
    let given = rec.given.into_inner();
    let net = DeepLabV3::init(K, 12, &device);
    let mut ours: Vec<(String, Vec<usize>)> = net
        .to_named()
        .into_iter()
        .filter_map(|(n, s, _)| n.strip_prefix("backbone.").map(|n| (n.to_string(), s)))
        .collect();
    let mut theirs: Vec<(String, Vec<usize>)> = given
        .iter()
        .filter(|n| !n.0.starts_with("fc."))
        .map(|(n, s, _)| (n.clone(), s.clone()))
        .collect();
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs);
    let net = net.with_backbone(given).unwrap();
    let resnet = GraphModel::new(graph, [64, 64], device).unwrap();
    let x = images();
    let capture = resnet
        .capture(x.clone(), &["layer2", "layer3", "layer4"], false)
        .unwrap();
    for (stages, layer, step) in [(2, "layer2", 1), (3, "layer3", 2), (4, "layer4", 4)] {
        let dense = net.backbone.forward_stages(x.clone(), stages);
        let [b, c, h, w] = dense.dims();
        assert_eq!((h, w), (8, 8));
        let dense = to_vec(dense);
        let reference = &capture.activations[layer];
        assert_eq!(reference.dims(), [b, c, h / step, w / step], "{layer}");
        let reference = to_vec(reference.clone());
        let scale = reference.iter().fold(0f32, |m, v| m.max(v.abs()));
        let (rh, rw) = (h / step, w / step);
        let mut worst = 0f32;
        for (i, r) in reference.iter().enumerate() {
            let (xx, yy, plane) = (i % rw, i / rw % rh, i / (rh * rw));
            let d = dense[(plane * h + yy * step) * w + xx * step];
            worst = worst.max((d - r).abs());
        }
        assert!(scale > 1e-2, "{layer}: a live signal");
        assert!(
            worst <= 1e-4 * scale + 1e-5,
            "{layer}: off by {worst} (scale {scale})"
        );
    }
}

#[test]
fn the_backward_pass_reaches_head_and_encoder() {
    let ad = default_device().autodiff();
    let net = DeepLabV3::init(K, 2, &ad);
    let model = tiny();
    let objective = Objective::Explainer(ExplainerProfile::VocResnet50.coefficients());
    let v: Vec<f32> = (0..2 * 3 * 64 * 64)
        .map(|i| ((i * 31) % 23) as f32 / 23.0)
        .collect();
    let batch = TrainBatch {
        images01: Tensor::from_data(TensorData::new(v, [2, 3, 64, 64]), &default_device()),
        labels: &[],
        mean: [124.0, 116.0, 104.0],
        std: [58.0, 57.0, 57.0],
    };
    let net = ExplainerNet::DeepLab(net);
    let (total, _) = training_loss(
        &model,
        &net,
        &batch,
        &[vec![0], vec![1, 2]],
        ClassifierKind::Softmax,
        objective,
    )
    .unwrap();
    let grads = total.backward();
    let ExplainerNet::DeepLab(net) = &net else {
        unreachable!()
    };
    let norm = |p: &burn::module::Param<Tensor<4>>, what: &str| {
        let g = p
            .val()
            .grad(&grads)
            .unwrap_or_else(|| panic!("{what} has no gradient"));
        to_vec(g).iter().map(|v| v.abs() as f64).sum::<f64>()
    };
    assert!(norm(&net.classifier.out.weight, "classifier.4") > 0.0);
    assert!(norm(&net.classifier.branches[3].conv.weight, "classifier.0.convs.3") > 0.0);
    assert!(norm(&net.backbone.layer4[2].conv3.weight, "layer4.2.conv3") > 0.0);
    assert!(norm(&net.backbone.conv1.weight, "backbone.conv1") > 0.0);
    let gamma = net
        .backbone
        .bn1
        .gamma
        .val()
        .grad(&grads)
        .expect("bn1.weight has a gradient");
    assert!(to_vec(gamma).iter().any(|v| *v != 0.0));
    // BatchNorm was in training mode: the running mean moved from 0 towards the batch's.
    let mean = to_vec(net.backbone.bn1.running_mean.value_sync().inner());
    assert!(mean.iter().any(|v| v.abs() > 1e-6), "running mean not updated");
    // Off the tape: running statistics, and they stay as they are.
    let frozen = DeepLabV3::init(K, 2, &default_device());
    let before = to_vec(frozen.backbone.bn1.running_var.value_sync());
    let a = to_vec(frozen.class_logits(&model, images()).unwrap());
    let b = to_vec(frozen.class_logits(&model, images()).unwrap());
    assert_eq!(a, b);
    assert_eq!(to_vec(frozen.backbone.bn1.running_var.value_sync()), before);
}

#[test]
fn names_are_torchvision_s_and_counts_match() {
    let named = DeepLabV3::init(K, 3, &default_device()).to_named();
    let shape = |name: &str| {
        named
            .iter()
            .find(|n| n.0 == name)
            .unwrap_or_else(|| panic!("no {name}"))
            .1
            .clone()
    };
    for (name, s) in [
        ("backbone.conv1.weight", vec![64, 3, 7, 7]),
        ("backbone.bn1.running_var", vec![64]),
        ("backbone.layer1.0.conv1.weight", vec![64, 64, 1, 1]),
        ("backbone.layer1.0.downsample.0.weight", vec![256, 64, 1, 1]),
        ("backbone.layer1.0.downsample.1.running_mean", vec![256]),
        ("backbone.layer3.5.conv2.weight", vec![256, 256, 3, 3]),
        ("backbone.layer4.0.downsample.0.weight", vec![2048, 1024, 1, 1]),
        ("backbone.layer4.2.bn3.bias", vec![2048]),
        ("classifier.0.convs.0.0.weight", vec![256, 2048, 1, 1]),
        ("classifier.0.convs.0.1.weight", vec![256]),
        ("classifier.0.convs.3.0.weight", vec![256, 2048, 3, 3]),
        ("classifier.0.convs.4.1.weight", vec![256, 2048, 1, 1]),
        ("classifier.0.convs.4.2.running_var", vec![256]),
        ("classifier.0.project.0.weight", vec![256, 1280, 1, 1]),
        ("classifier.0.project.1.bias", vec![256]),
        ("classifier.1.weight", vec![256, 256, 3, 3]),
        ("classifier.2.running_mean", vec![256]),
        ("classifier.4.weight", vec![K, 256, 1, 1]),
        ("classifier.4.bias", vec![K]),
    ] {
        assert_eq!(shape(name), s, "{name}");
    }
    for absent in [
        "backbone.layer1.1.downsample.0.weight",
        "classifier.1.bias",
        "backbone.fc.weight",
    ] {
        assert!(named.iter().all(|n| n.0 != absent), "{absent}");
    }
    let mut names: Vec<&str> = named.iter().map(|n| n.0.as_str()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), named.len(), "names are unique");
    // torchvision's resnet50 state dict: 320 entries, less fc (2) and 53 num_batches_tracked.
    assert_eq!(named.iter().filter(|n| n.0.starts_with("backbone.")).count(), 265);
    // ResNet-50 without fc: 25,557,032 - 2,049,000.
    assert_eq!(count(&named, "backbone."), 23_508_032);
    // DeepLabHead(2048, K): 16,125,440 + 257 K (K = 21: 16,130,837, torchvision's 42,004,074 less
    // the encoder and the auxiliary FCNHead).
    assert_eq!(count(&named, "classifier."), 16_125_440 + 257 * K);
}

#[test]
fn named_tensors_round_trip() {
    let net = DeepLabV3::init(K, 4, &default_device());
    let named = net.to_named();
    let back = DeepLabV3::from_named(K, named.clone(), &default_device()).unwrap();
    assert_eq!(back.to_named(), named);
    let mut missing = named.clone();
    missing.retain(|n| n.0 != "backbone.layer2.3.bn2.running_var");
    assert!(DeepLabV3::from_named(K, missing, &default_device()).is_none());
    assert!(
        DeepLabV3::from_named(K + 1, named, &default_device()).is_none(),
        "classifier.4 has K rows"
    );
}

#[test]
fn an_imagenet_resnet50_state_dict_initialises_the_encoder() {
    let device = default_device();
    // A torchvision resnet50 state dict: the encoder's names without `backbone.`, plus fc and
    // num_batches_tracked.
    let other = DeepLabV3::init(K, 6, &device).to_named();
    let mut resnet: NamedTensors = other
        .iter()
        .filter_map(|(n, s, v)| {
            n.strip_prefix("backbone.")
                .map(|n| (n.to_string(), s.clone(), v.clone()))
        })
        .collect();
    resnet.push(("fc.weight".into(), vec![1000, 2048], vec![0.0; 1000 * 2048]));
    resnet.push(("fc.bias".into(), vec![1000], vec![0.0; 1000]));
    resnet.push(("bn1.num_batches_tracked".into(), vec![], vec![0.0]));
    let net = DeepLabV3::init(K, 7, &device);
    let head: Vec<_> = net
        .to_named()
        .into_iter()
        .filter(|n| n.0.starts_with("classifier."))
        .collect();
    let started = net.with_backbone(resnet.clone()).unwrap().to_named();
    for (n, s, v) in &started {
        let want = if n.starts_with("backbone.") {
            other.iter().find(|o| &o.0 == n)
        } else {
            head.iter().find(|o| &o.0 == n)
        };
        assert_eq!(Some((s, v)), want.map(|w| (&w.1, &w.2)), "{n}");
    }
    // A missing, misshapen or foreign tensor is refused, naming it.
    let refused = |r: NamedTensors| {
        DeepLabV3::init(K, 7, &device)
            .with_backbone(r)
            .unwrap_err()
            .to_string()
    };
    let mut missing = resnet.clone();
    missing.retain(|n| n.0 != "layer3.2.conv2.weight");
    assert!(refused(missing).contains("layer3.2.conv2.weight"));
    let mut misshapen = resnet.clone();
    let at = misshapen.iter().position(|n| n.0 == "conv1.weight").unwrap();
    misshapen[at].1 = vec![64, 3, 49, 1];
    assert!(refused(misshapen).contains("conv1.weight"));
    let mut resnet101 = resnet;
    resnet101.push((
        "layer3.6.conv1.weight".into(),
        vec![256, 1024, 1, 1],
        vec![0.0; 256 * 1024],
    ));
    assert!(refused(resnet101).contains("layer3.6.conv1.weight"));
}

fn weights(model: &GraphModel, net: &DeepLabV3) -> ExplainerWeights {
    ExplainerWeights {
        architecture: Architecture::DeepLabV3ResNet50,
        spec: deeplab_spec(K),
        model: ModelIdentity::of(model, "tiny"),
        profile: "voc-resnet50".into(),
        kind: ClassifierKind::MultiLabel,
        tensors: net.to_named(),
        info: BTreeMap::from([("command".to_string(), "test".to_string())]),
    }
}

#[test]
fn weight_files_carry_the_architecture() {
    let model = tiny();
    let net = DeepLabV3::init(K, 8, &default_device());
    let w = weights(&model, &net);
    let bytes = w.to_bytes(false, &[], &[]);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap();
    assert_eq!(meta["architecture"], "deeplabv3-resnet50");
    assert!(!meta.contains_key("taps"));
    let back = ExplainerWeights::from_bytes(&bytes, "'d.safetensors'").unwrap();
    let mut sorted = w.clone();
    sorted.tensors.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(back, sorted);
    assert!(back.decoder(&default_device()).is_none(), "not a tap decoder");
    let ExplainerNet::DeepLab(rebuilt) = back.net(&default_device()).unwrap() else {
        panic!("a DeepLabv3")
    };
    assert_eq!(rebuilt.to_named(), net.to_named());
    // An unknown architecture, and tensors that do not make the one named, are refused.
    let bogus = w.to_bytes(false, &[], &[("architecture", "unet".to_string())]);
    let err = ExplainerWeights::from_bytes(&bogus, "'u.safetensors'").unwrap_err();
    assert!(err.to_string().contains("unknown architecture 'unet'"), "{err}");
    let mut cut = w.clone();
    cut.tensors.retain(|n| !n.0.starts_with("classifier.4."));
    let err = ExplainerWeights::from_bytes(&cut.to_bytes(false, &[], &[]), "'c.safetensors'").unwrap_err();
    assert!(err.to_string().contains("DeepLabv3"), "{err}");
}

#[test]
fn a_file_without_the_architecture_key_is_a_tap_decoder() {
    let model = tiny();
    let spec = TapSpec {
        taps: vec!["c1".into(), "features".into()],
        channels: vec![4, 4],
        width: 5,
        classes: K,
        skip: false,
    };
    let dec = TapDecoder::init(&spec, 9, &default_device());
    let w = ExplainerWeights {
        architecture: Architecture::Taps,
        spec: spec.clone(),
        model: ModelIdentity::of(&model, "tiny"),
        profile: "voc-vgg16".into(),
        kind: ClassifierKind::Softmax,
        tensors: dec.to_named(),
        info: BTreeMap::new(),
    };
    // The file as written before the key existed.
    let bytes = w.to_bytes(false, &[], &[]);
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).unwrap();
    let mut meta = meta.metadata().clone().unwrap();
    assert_eq!(meta.remove("architecture").as_deref(), Some("taps"));
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let old = safetensors::serialize(st.tensors(), Some(meta)).unwrap();
    let back = ExplainerWeights::from_bytes(&old, "'old.safetensors'").unwrap();
    assert_eq!(back.architecture, Architecture::Taps);
    assert_eq!(back.spec, spec);
    assert!(matches!(back.net(&default_device()), Some(ExplainerNet::Taps(_))));
}

#[test]
fn the_method_explains_with_deeplab_weights() {
    let model = tiny();
    let net = DeepLabV3::init(K, 10, &default_device());
    let s = to_vec(net.class_logits(&model, images()).unwrap());
    let e = NnExplainer::new(Some(Arc::new(weights(&model, &net))));
    let request = Request {
        images: images(),
        classes: vec![2, 0],
        score: Score::Logit,
        layer: None,
    };
    let out = e.explain(&model, &request).unwrap();
    assert_eq!(out.passes.forward, 2);
    let raw = &out.raw.as_ref().unwrap()[1];
    assert_eq!((raw.height, raw.width), (8, 8));
    // Image 1, class 0: sigmoid(S[1, 0]).
    for (p, &v) in raw.data.iter().enumerate() {
        let z = s[K * 64 + p] as f64;
        assert!((v as f64 - 1.0 / (1.0 + (-z).exp())).abs() < 1e-5);
    }
    assert_eq!((out.maps[0].height, out.maps[0].width), (64, 64));
}
