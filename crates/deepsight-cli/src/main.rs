//! `deepsight`: why does a convolutional classifier decide what it decides.

mod bench;
mod bench_heavy;
mod bench_lcam;
mod classify;
mod convert;
mod evaluate;
mod explain;
mod layers;
mod lcam_args;
mod methods;
mod model_arg;
mod mosaic;
mod perturbation_args;
mod serve;
mod train;
mod train_classifier;
mod train_explainer;
mod train_zf;
mod visualize;

use clap::{Parser, Subcommand};

/// Every layer allocates its output; mimalloc keeps those buffers instead of returning them to the
/// kernel after each pass (with glibc's allocator a third of the run time went to page faults).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "deepsight",
    version,
    about = "Explain what convolutional image classifiers look at."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The most pixels an image may have, decoded or resized (a decompression bomb is refused
    /// from its header before any pixel is decoded).
    #[arg(long, global = true, value_name = "PIXELS", default_value_t = deepsight_runtime::limits::DEFAULT_MAX_PIXELS, value_parser = clap::value_parser!(u64).range(1..))]
    max_pixels: u64,
    /// The most memory one tensor (a layer's activation, a constant of a model file) may take,
    /// in GiB: checked before it is allocated.
    #[arg(long, global = true, value_name = "GIB", default_value_t = 2.0)]
    max_tensor_gib: f64,
}

#[derive(Subcommand)]
enum Command {
    /// Explain what the model looks at, by the chosen methods: montage and overlay PNGs.
    Explain(explain::Args),
    /// List the explanation methods, or print one's documentation.
    Methods(methods::Args),
    /// Print the top-K classes of images (or of a preprocessed tensor).
    Classify(classify::Args),
    /// List a model's layers: name, operation, output shape, parameters.
    Layers(layers::Args),
    /// Convert a PyTorch `.pth` state dict to `.safetensors` (never runs pickled code).
    Convert(convert::Args),
    /// Evaluate explanation methods over a labelled image set by the papers' metrics.
    Evaluate(evaluate::Args),
    /// Time forward and backward passes of the built-in models; print a Markdown table.
    Bench(bench::Args),
    /// Train a module on a frozen classifier (L-CAM).
    Train(train::Args),
    /// Write the Fashion-MNIST mosaic set: multi-label images with ground-truth pixel masks.
    Mosaic(mosaic::Args),
    /// Visualise the model itself: class models, top-9 per feature map, feature evolution,
    /// invariance, correspondence, filters, layer probes.
    Visualize(visualize::Args),
    /// The local web app: drop an image, compare methods side by side, view evaluate reports.
    Serve(serve::Args),
}

/// A clap usage error as one line: its message with the lines that complete it (the missing
/// arguments of "required arguments were not provided" are listed on lines of their own),
/// without the usage and tip paragraphs.
fn usage_line(text: &str) -> String {
    text.lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.trim_start().starts_with("tip:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // --help and --version.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // A usage error: one line, like every other error.
        Err(e) => {
            eprintln!("{} (see deepsight --help)", usage_line(&e.to_string()));
            return ExitCode::from(2);
        }
    };
    if !(cli.max_tensor_gib.is_finite() && cli.max_tensor_gib > 0.0) {
        eprintln!(
            "error: --max-tensor-gib {}: must be a positive number",
            cli.max_tensor_gib
        );
        return ExitCode::from(2);
    }
    deepsight_runtime::limits::set_max_pixels(cli.max_pixels);
    deepsight_runtime::limits::set_max_tensor_bytes((cli.max_tensor_gib * (1u64 << 30) as f64) as u64);
    let result = match cli.command {
        Command::Explain(a) => explain::run(a),
        Command::Methods(a) => methods::run(a),
        Command::Classify(a) => classify::run(a),
        Command::Layers(a) => layers::run(a),
        Command::Convert(a) => convert::run(a),
        Command::Evaluate(a) => evaluate::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Train(a) => train::run(a),
        Command::Mosaic(a) => mosaic::run(a),
        Command::Visualize(a) => visualize::run(a),
        Command::Serve(a) => serve::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let msg = format!("{e:#}").replace('\n', " ");
            eprintln!("error: {msg}");
            ExitCode::FAILURE
        }
    }
}
