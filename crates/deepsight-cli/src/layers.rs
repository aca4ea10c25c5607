use crate::model_arg::ModelArgs;
use anyhow::Result;
use deepsight_runtime::LayeredClassifier;

#[derive(clap::Args)]
pub struct Args {
    /// The model (same as `--model`): a built-in name, an ONNX file, or a weight file with `--arch`.
    #[arg(value_name = "MODEL")]
    positional: Option<String>,
    #[command(flatten)]
    model: ModelArgs,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(mut a: Args) -> Result<()> {
    if let Some(m) = a.positional.take() {
        if a.model.model != "lite0" {
            anyhow::bail!("give the model once: either as MODEL or as --model");
        }
        a.model.model = m;
    }
    let loaded = a.model.load()?;
    for note in loaded.description.split("; ").skip(1) {
        eprintln!("note: {note}");
    }
    let layers = loaded.model.layers();
    if a.json {
        let rows: Vec<_> = layers
            .iter()
            .map(|l| serde_json::json!({"name": l.name, "op": l.op, "shape": l.shape, "params": l.params, "inputs": l.inputs}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let width = layers.iter().map(|l| l.name.len()).max().unwrap_or(4).max(4);
    println!(
        "{:width$}  {:16}  {:20}  {:>10}",
        "name", "op", "output", "params"
    );
    for l in &layers {
        println!(
            "{:width$}  {:16}  {:20}  {:>10}",
            l.name,
            l.op,
            format!("{:?}", l.shape),
            l.params
        );
    }
    let total: usize = layers.iter().map(|l| l.params).sum();
    println!(
        "{} layers, {} parameters; default CAM layer: {}",
        layers.len(),
        total,
        loaded.model.default_cam_layer().unwrap_or_default()
    );
    Ok(())
}
