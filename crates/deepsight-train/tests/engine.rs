//! The training engine on a tiny frozen classifier and generated images: the loss decreases on a
//! fixed seed, a stopped and resumed run ends with exactly the weights of an uninterrupted one,
//! checkpoints are usable weight files, and bad checkpoints or settings get a one-line error.

use deepsight_explain::learned::{LcamLoss, LcamVariant, LcamWeights, ModelIdentity};
use deepsight_models::Preset;
use deepsight_runtime::{
    Conv2d, Device, Graph, GraphModel, Linear, Op, Padding, Tensor, TensorData, default_device,
};
use deepsight_train::lcam::{Init, LcamTask};
use deepsight_train::loader::Source;
use deepsight_train::{Augmentation, Data, OptimConfig, OptimizerKind, Schedule, TrainConfig, train};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

fn tensor<const D: usize>(shape: [usize; D], seed: u64, scale: f32, d: &Device) -> Tensor<D> {
    let n: usize = shape.iter().product();
    let mut s = seed;
    let v: Vec<f32> = (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0) * scale
        })
        .collect();
    Tensor::from_data(TensorData::new(v, shape), d)
}

/// 3x16x16 -> conv 3x3/2 (8) -> relu -> conv 3x3 (8) -> relu = `features` (8x8x8) -> GAP -> 4 classes.
fn tiny() -> GraphModel {
    let d = default_device();
    let conv = |io: [usize; 2], stride, seed| {
        Op::Conv2d(Conv2d {
            weight: tensor([io[1], io[0], 3, 3], seed, 0.4, &d),
            bias: Some(tensor([io[1]], seed + 1, 0.1, &d)),
            stride: [stride; 2],
            dilation: [1, 1],
            groups: 1,
            padding: Padding::symmetric(1),
        })
    };
    let mut g = Graph::new("input", 3);
    let mut x = g.push("conv1", conv([3, 8], 2, 1), &[0]).unwrap();
    x = g
        .push("relu1", Op::Rectifier(deepsight_runtime::Bounds::RELU), &[x])
        .unwrap();
    x = g.push("conv2", conv([8, 8], 1, 3), &[x]).unwrap();
    x = g
        .push("features", Op::Rectifier(deepsight_runtime::Bounds::RELU), &[x])
        .unwrap();
    x = g.push("gap", Op::GlobalAvgPool, &[x]).unwrap();
    g.push(
        "fc",
        Op::Linear(Linear {
            weight: tensor([4, 8], 5, 1.0, &d),
            bias: Some(tensor([4], 6, 0.1, &d)),
        }),
        &[x],
    )
    .unwrap();
    GraphModel::new(g, [16, 16], d).unwrap()
}

/// `n` images of 20x18 pixels: a coloured square (class = colour) on noise.
fn images(dir: &Path, n: usize) -> Vec<(PathBuf, usize)> {
    std::fs::create_dir_all(dir).unwrap();
    let colours = [[230u8, 30, 30], [30, 230, 30], [30, 30, 230], [230, 230, 30]];
    (0..n)
        .map(|i| {
            let class = i % 4;
            let (ox, oy) = (i * 3 % 9, i * 5 % 8);
            let img = image::RgbImage::from_fn(20, 18, |x, y| {
                let (x, y) = (x as usize, y as usize);
                if (ox..ox + 9).contains(&x) && (oy..oy + 9).contains(&y) {
                    image::Rgb(colours[class])
                } else {
                    let v = ((x * 31 + y * 17 + i * 7) % 64) as u8 + 96;
                    image::Rgb([v, v, v])
                }
            });
            let path = dir.join(format!("img{i:02}.png"));
            img.save(&path).unwrap();
            (path, class)
        })
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("deepsight-train-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn task(model: &GraphModel, variant: LcamVariant) -> LcamTask<'_> {
    let p = Preset::EfficientNetLite.pipeline_for([16, 16]);
    LcamTask {
        model,
        variant,
        layer: "features".into(),
        loss: LcamLoss::default(),
        mean: p.mean,
        std: p.std,
        identity: ModelIdentity::of(model, "tiny"),
        info: BTreeMap::new(),
    }
}

fn data(dir: &Path) -> Data {
    let items = images(&dir.join("images"), 20);
    let (train, val) = deepsight_train::data::split(items.len(), 0.2, 1);
    Data {
        source: Source {
            paths: Arc::new(items.iter().map(|i| i.0.clone()).collect()),
            labels: Arc::new(items.iter().map(|i| vec![i.1]).collect()),
            eval: Preset::EfficientNetLite.pipeline_for([16, 16]),
        },
        train,
        val,
    }
}

fn config(dir: &Path, epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 4,
        seed: 3,
        augmentation: Augmentation::lcam_reference([16, 16]),
        optim: OptimConfig {
            kind: OptimizerKind::Sgd {
                momentum: 0.9,
                nesterov: true,
            },
            weight_lr: 0.05,
            bias_lr: 0.1,
            weight_decay: 5e-4,
            bias_weight_decay: 5e-4,
            schedule: Schedule::StepDecay { gamma: 0.9 },
        },
        out: dir.join("out.safetensors"),
        run_dir: dir.join("run"),
        resume: false,
        stop_after: None,
        early_stop: None,
    }
}

fn run(t: &LcamTask, data: &Data, c: &TrainConfig) -> deepsight_train::Result<Vec<f32>> {
    let d = default_device();
    let initial = t.initial(
        Init::PyTorchDefault { seed: 9 },
        Tensor::zeros([1, 3, 16, 16], &d),
        &d.clone().autodiff(),
    )?;
    let (module, _) = train(t, initial, data, c, &d, &|_| {})?;
    Ok(deepsight_runtime::to_vec(module.weight.val().inner()))
}

#[test]
fn training_loss_decreases_on_a_fixed_seed() {
    let model = tiny();
    let dir = scratch("decreases");
    let data = data(&dir);
    for variant in [LcamVariant::Img, LcamVariant::Fm] {
        let t = task(&model, variant);
        let c = config(&dir.join(variant.code()), 6);
        let d = default_device();
        let initial = t
            .initial(
                Init::PyTorchDefault { seed: 9 },
                Tensor::zeros([1, 3, 16, 16], &d),
                &d.clone().autodiff(),
            )
            .unwrap();
        let (_, summary) = train(&t, initial, &data, &c, &d, &|_| {}).unwrap();
        let (first, last) = (summary.history[0].0, summary.history[5].0);
        println!("{}: train loss per epoch {:?}", variant.name(), summary.history);
        assert!(
            last < first * 0.95 && summary.history[5].1 < summary.history[0].1,
            "{}: {first} -> {last}",
            variant.name()
        );
        // The log has every term, and the final file is a usable weight file.
        let log = std::fs::read_to_string(c.run_dir.join("train.jsonl")).unwrap();
        let step: serde_json::Value = serde_json::from_str(log.lines().next().unwrap()).unwrap();
        for k in ["loss", "ce", "area", "tv", "lr_weight", "lr_bias", "images_per_s"] {
            assert!(step[k].is_number(), "{k} missing from {step}");
        }
        assert!(c.run_dir.join("loss.png").is_file());
        let w = LcamWeights::from_bytes(&std::fs::read(&c.out).unwrap(), "out").unwrap();
        w.check_fits(&model, variant, "features").unwrap();
    }
}

#[test]
fn a_resumed_run_ends_with_the_weights_of_an_uninterrupted_one() {
    let model = tiny();
    let dir = scratch("resume");
    let data = data(&dir);
    let t = task(&model, LcamVariant::Img);
    let straight = run(&t, &data, &config(&dir.join("a"), 3)).unwrap();
    let mut c = config(&dir.join("b"), 3);
    c.stop_after = Some(1);
    let first = run(&t, &data, &c).unwrap();
    assert_ne!(first, straight);
    assert!(!c.out.exists(), "a stopped run writes no final weights");
    c.stop_after = None;
    c.resume = true;
    let resumed = run(&t, &data, &c).unwrap();
    assert_eq!(
        resumed, straight,
        "resumed weights differ from the uninterrupted run's"
    );
    let lines = std::fs::read_to_string(c.run_dir.join("train.jsonl")).unwrap();
    let epochs = lines.lines().filter(|l| l.contains("\"kind\":\"epoch\"")).count();
    assert_eq!(epochs, 3, "one log line per epoch after the resume");
}

#[test]
fn bad_checkpoints_and_settings_are_refused_in_one_line() {
    let model = tiny();
    let dir = scratch("bad");
    let data = data(&dir);
    let t = task(&model, LcamVariant::Fm);
    let mut c = config(&dir, 2);
    c.resume = true;
    let err = run(&t, &data, &c).unwrap_err().to_string();
    assert!(err.contains("checkpoint.safetensors"), "{err}");
    std::fs::create_dir_all(&c.run_dir).unwrap();
    std::fs::write(c.checkpoint(), b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": trunc").unwrap();
    let err = run(&t, &data, &c).unwrap_err().to_string();
    assert!(err.contains("checkpoint") && !err.contains('\n'), "{err}");
    // A checkpoint of a run with other settings.
    let mut first = config(&dir, 2);
    first.stop_after = Some(1);
    run(&t, &data, &first).unwrap();
    let mut other = config(&dir, 2);
    other.batch_size = 5;
    other.resume = true;
    let err = run(&t, &data, &other).unwrap_err().to_string();
    assert!(err.contains("other settings"), "{err}");
    let mut zero = config(&dir, 0);
    zero.resume = false;
    assert!(run(&t, &data, &zero).is_err());
}
