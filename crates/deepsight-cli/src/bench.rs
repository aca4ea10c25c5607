//! `deepsight bench`: medians of repeated forward and backward passes of the built-in models,
//! beside a plain-burn forward of the same graph and the machine's GEMM peak, so that every
//! figure can be read as a ratio and as a fraction of peak.

use anyhow::{Result, bail};
use burn::tensor::module::conv2d;
use burn::tensor::ops::{AvgPoolOptions, ConvOptions, MaxPoolOptions};
use deepsight_explain::cam::{Cam, GradCam, GradCamPlusPlus};
use deepsight_explain::gradient::{GuidedBackprop, IntegratedGradients, Saliency};
use deepsight_explain::{Explainer, Request, Score, explain_all};
use deepsight_models::{Arch, ModelSource};
use deepsight_runtime::{
    Classifier, Device, GradientRequest, Graph, GraphModel, LayeredClassifier, Objective, Op, Padding,
    RectifierRule, Tensor, TensorData, default_device,
};
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// Models to time (lite0 uses its real weights, the others seeded random weights).
    #[arg(long, value_delimiter = ',', default_value = "lite0,resnet50,vgg16")]
    models: Vec<String>,
    /// Timed runs per task (after 2 warm-ups); the median is reported.
    #[arg(long, default_value_t = 7)]
    repeats: usize,
    /// Skip the batch-16 forward (the slowest task).
    #[arg(long)]
    no_batch16: bool,
    /// Only these tasks (exact names, e.g. `--only forward --only 'forward+backward to input'`).
    #[arg(long)]
    only: Vec<String>,
    /// Also time the perturbation methods (occlusion incremental and full, Score-CAM, RISE) on one
    /// image: minutes per model.
    #[arg(long)]
    heavy: bool,
    /// Also time one L-CAM-Img training step at batch 32 (lite0 only), and its clean pass.
    #[arg(long)]
    lcam: bool,
    /// Also write the rows as JSON to this file.
    #[arg(long, value_name = "FILE")]
    json: Option<std::path::PathBuf>,
}

struct Row {
    model: String,
    task: &'static str,
    batch: usize,
    median_ms: f64,
    min_ms: f64,
    gflop: f64,
}

/// (name, batch, GFLOP per run or 0 when not counted, the work).
pub(crate) type Task<'a> = (&'static str, usize, f64, Box<dyn FnMut() + 'a>);

fn time(repeats: usize, warm_ups: usize, mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..warm_ups {
        f();
    }
    let mut v: Vec<f64> = (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    v.sort_by(f64::total_cmp);
    (v[v.len() / 2], v[0])
}

fn random_values(n: usize) -> Vec<f32> {
    let mut state = 0x2545f4914f6cdd1du64;
    (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0
        })
        .collect()
}

fn random_input(n: usize, device: &Device) -> Tensor<4> {
    Tensor::from_data(
        TensorData::new(random_values(n * 3 * 224 * 224), [n, 3, 224, 224]),
        device,
    )
}

/// The graph run with burn's ops one node at a time, BatchNorm computed from its statistics on
/// every call: what a straightforward burn model does, without DeepSight's plans.
fn raw_burn_forward(graph: &Graph, x: Tensor<4>) -> Tensor<4> {
    let mut values: Vec<Tensor<4>> = Vec::with_capacity(graph.nodes().len());
    for node in graph.nodes() {
        let arg = |i: usize| values[node.inputs[i]].clone();
        let y = match &node.op {
            Op::Input => x.clone(),
            Op::Conv2d(c) => {
                let a = arg(0);
                let [_, _, h, w] = a.dims();
                let [_, _, kh, kw] = c.dims();
                let p = match c.padding {
                    Padding::Explicit(p) => p,
                    same => same.resolve([h, w], [kh, kw], c.stride, c.dilation),
                };
                let opts = ConvOptions {
                    stride: c.stride,
                    padding: [(p[0], p[2]), (p[1], p[3])],
                    dilation: c.dilation,
                    groups: c.groups,
                };
                conv2d(a, c.weight.clone(), c.bias.clone(), opts)
            }
            Op::BatchNorm(b) => {
                let c = b.gamma.dims()[0];
                let v = |t: &Tensor<1>| t.clone().reshape([1, c, 1, 1]);
                (arg(0) - v(&b.mean)) / (v(&b.var) + b.eps).sqrt() * v(&b.gamma) + v(&b.beta)
            }
            Op::Rectifier(r) => match r.hi {
                Some(hi) => arg(0).clamp(r.lo, hi),
                None => arg(0).clamp_min(r.lo),
            },
            Op::MaxPool(p) => burn::tensor::module::max_pool2d(
                arg(0),
                MaxPoolOptions {
                    kernel_size: p.kernel,
                    stride: p.stride,
                    padding: [(p.padding[0], p.padding[2]), (p.padding[1], p.padding[3])],
                    dilation: p.dilation,
                    ceil_mode: p.ceil_mode,
                },
            ),
            Op::GlobalAvgPool => {
                let [n, c, h, w] = arg(0).dims();
                arg(0).reshape([n, c, h * w]).mean_dim(2).reshape([n, c, 1, 1])
            }
            Op::Flatten => {
                let [n, c, h, w] = arg(0).dims();
                arg(0).reshape([n, c * h * w, 1, 1])
            }
            Op::Linear(l) => {
                let [n, f, _, _] = arg(0).dims();
                let out = l.weight.dims()[0];
                let y = arg(0).reshape([n, f]).matmul(l.weight.clone().transpose());
                let y = match &l.bias {
                    Some(b) => y + b.clone().reshape([1, out]),
                    None => y,
                };
                y.reshape([n, out, 1, 1])
            }
            Op::Add => arg(0) + arg(1),
            Op::Identity => arg(0),
            Op::AdaptiveAvgPool(size) => burn::tensor::module::adaptive_avg_pool2d(arg(0), *size),
            Op::Ext(e) => e.apply((0..node.inputs.len()).map(arg).collect()),
            Op::AvgPool(p) => burn::tensor::module::avg_pool2d(
                arg(0),
                AvgPoolOptions {
                    kernel_size: p.kernel,
                    stride: p.stride,
                    padding: [(p.padding[0], p.padding[2]), (p.padding[1], p.padding[3])],
                    count_include_pad: p.count_include_pad,
                    ceil_mode: p.ceil_mode,
                },
            ),
        };
        values.push(y);
    }
    values.pop().expect("a graph has nodes")
}

fn gemm_peak(device: &Device, repeats: usize) -> f64 {
    let n = 2048;
    let a: Tensor<2> = Tensor::from_data(TensorData::new(random_values(n * n), [n, n]), device);
    let b = a.clone().transpose();
    let (med, _) = time(repeats, 2, || {
        let _ = a.clone().matmul(b.clone()).into_data();
    });
    2.0 * (n as f64).powi(3) / (med * 1e-3) / 1e9
}

fn sync<const D: usize>(t: Tensor<D>) {
    let _ = t.into_data();
}

pub fn run(a: Args) -> Result<()> {
    if a.repeats == 0 {
        bail!("--repeats must be at least 1");
    }
    let device = default_device();
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let peak = gemm_peak(&device, a.repeats);
    println!("GEMM peak (2048^3 f32 matmul, {threads} threads): {peak:.1} GFLOP/s\n");
    println!("| model | task | batch | median ms | min ms | GFLOP/s | % of GEMM peak |");
    println!("|---|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    for name in &a.models {
        let source = if name.ends_with(".onnx") {
            ModelSource::Onnx {
                path: name.into(),
                input_size: None,
            }
        } else {
            let Some(arch) = Arch::from_name(name) else {
                bail!("--models: unknown model '{name}' (a built-in name or an .onnx file)")
            };
            ModelSource::Builtin {
                arch,
                random_seed: (arch != Arch::Lite0).then_some(0),
            }
        };
        let model: GraphModel = source.load(&device)?.model;
        if model.input_size() != [224, 224] {
            bail!(
                "--models: '{name}' takes {:?} inputs; the benchmark runs 224x224",
                model.input_size()
            );
        }
        let layer = model.default_cam_layer().unwrap_or_default();
        let x1 = random_input(1, &device);
        let class = {
            let l = deepsight_runtime::to_vec(model.logits(x1.clone())?);
            (0..l.len()).max_by(|&i, &j| l[i].total_cmp(&l[j])).unwrap_or(0)
        };
        let flops1 = model.graph().forward_flops([1, 3, 224, 224])? / 1e9;
        let grad = |rule, input: bool| GradientRequest {
            objective: Some(Objective::Logit(vec![class])),
            rule,
            wrt_input: input,
            wrt_layers: if input { vec![] } else { vec![layer.clone()] },
            ..Default::default()
        };
        let (plain, guided, to_layer) = (
            grad(RectifierRule::Plain, true),
            grad(RectifierRule::Guided, true),
            grad(RectifierRule::Guided, false),
        );
        let x16 = random_input(16, &device);
        // Capturing every convolution keeps each BatchNorm unfolded: the same kernels as the
        // plain-burn forward, so the difference between the two is the layer API's own cost.
        let conv_names: Vec<String> = model
            .layers()
            .into_iter()
            .filter(|l| l.op.contains("Conv"))
            .map(|l| l.name)
            .collect();
        let convs: Vec<&str> = conv_names.iter().map(String::as_str).collect();
        let m = &model;
        let x = &x1;
        let backward = |req: &GradientRequest| {
            let g = m.gradients(x.clone(), req).expect("runs");
            match g.input {
                Some(t) => sync(t),
                None => g.layers.into_values().for_each(|l| sync(l.gradient)),
            }
        };
        // Explanation methods, each image explained for its top-1 class (as peers.py does).
        let top1 = |x: &Tensor<4>| -> Vec<usize> {
            let [n, _, _, _] = x.dims();
            let l = deepsight_runtime::to_vec(m.logits(x.clone()).expect("runs"));
            let k = l.len() / n;
            (0..n)
                .map(|i| {
                    (0..k)
                        .max_by(|&p, &q| l[i * k + p].total_cmp(&l[i * k + q]))
                        .unwrap_or(0)
                })
                .collect()
        };
        let requests: Vec<(usize, Request)> = [(1usize, &x1), (16, &x16)]
            .into_iter()
            .filter(|(b, _)| *b == 1 || !a.no_batch16)
            .map(|(b, x)| {
                let req = Request {
                    images: x.clone(),
                    classes: top1(x),
                    score: Score::Logit,
                    layer: None,
                };
                (b, req)
            })
            .collect();
        let mut tasks: Vec<Task> = vec![
            (
                "forward (plain burn, unfolded BN)",
                1,
                flops1,
                Box::new(|| sync(raw_burn_forward(m.graph(), x.clone()))),
            ),
            (
                "forward (DeepSight, unfolded BN)",
                1,
                flops1,
                Box::new(|| sync(m.capture(x.clone(), &convs, false).expect("runs").logits)),
            ),
            (
                "forward",
                1,
                flops1,
                Box::new(|| sync(m.logits(x.clone()).expect("runs"))),
            ),
        ];
        if !a.no_batch16 {
            tasks.push((
                "forward",
                16,
                flops1 * 16.0,
                Box::new(|| sync(m.logits(x16.clone()).expect("runs"))),
            ));
        }
        tasks.push((
            "forward+backward to input",
            1,
            3.0 * flops1,
            Box::new(|| backward(&plain)),
        ));
        tasks.push((
            "forward+backward to input, guided",
            1,
            3.0 * flops1,
            Box::new(|| backward(&guided)),
        ));
        tasks.push((
            "forward+backward to CAM layer, guided",
            1,
            0.0,
            Box::new(|| backward(&to_layer)),
        ));
        for (batch, req) in &requests {
            let methods: [(&'static str, Box<dyn Explainer>); 5] = [
                ("saliency", Box::new(Saliency)),
                ("guided-backprop", Box::new(GuidedBackprop)),
                ("gradcam", Box::new(Cam(GradCam))),
                ("gradcam++", Box::new(Cam(GradCamPlusPlus))),
                (
                    "integrated-gradients (32 steps)",
                    Box::new(IntegratedGradients {
                        steps: 32,
                        batch_size: 32,
                        ..Default::default()
                    }),
                ),
            ];
            for (task, e) in methods {
                tasks.push((
                    task,
                    *batch,
                    0.0,
                    Box::new(move || drop(e.explain(m, req).expect("runs"))),
                ));
            }
            tasks.push((
                "gradcam+gradcam+++saliency, shared passes",
                *batch,
                0.0,
                Box::new(move || {
                    let (s, g, p) = (Saliency, Cam(GradCam), Cam(GradCamPlusPlus));
                    drop(explain_all(m, req, &[&s, &g, &p]).expect("runs"))
                }),
            ));
        }
        if let (true, Some((_, req))) = (a.heavy, requests.iter().find(|(b, _)| *b == 1)) {
            tasks.extend(crate::bench_heavy::tasks(m, req));
        }
        if a.lcam && name == "lite0" {
            tasks.extend(crate::bench_lcam::tasks(m, &layer)?);
        }
        tasks.retain(|(task, ..)| a.only.is_empty() || a.only.iter().any(|w| w == task));
        for (task, batch, gflop, f) in tasks.iter_mut() {
            let (median_ms, min_ms) = if crate::bench_heavy::is_heavy(task) {
                time((a.repeats / 3).max(1), 1, f)
            } else {
                time(a.repeats, 2, f)
            };
            let per = if *batch > 1 {
                format!(" ({:.1} per image)", median_ms / *batch as f64)
            } else {
                String::new()
            };
            let rate = if *gflop > 0.0 {
                *gflop / (median_ms * 1e-3)
            } else {
                f64::NAN
            };
            println!(
                "| {name} | {task} | {batch} | {median_ms:.1}{per} | {min_ms:.1} | {rate:.1} | {:.0}% |",
                100.0 * rate / peak
            );
            rows.push(Row {
                model: name.clone(),
                task,
                batch: *batch,
                median_ms,
                min_ms,
                gflop: *gflop,
            });
        }
    }
    if let Some(path) = a.json {
        let v: Vec<_> = rows
            .iter()
            .map(|r| serde_json::json!({"model": r.model, "task": r.task, "batch": r.batch, "median_ms": r.median_ms, "min_ms": r.min_ms, "gflop": r.gflop, "gemm_peak_gflops": peak, "threads": threads}))
            .collect();
        deepsight_models::write_atomic(&path, serde_json::to_string_pretty(&v)?.as_bytes())?;
    }
    Ok(())
}
