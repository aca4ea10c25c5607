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
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("error: invalid arguments")
                .trim_end();
            eprintln!("{first} (see deepsight --help)");
            return ExitCode::from(2);
        }
    };
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
