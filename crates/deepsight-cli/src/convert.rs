use anyhow::{Result, bail};
use deepsight_models::pth::read_pth;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// The PyTorch state dict to read.
    input: PathBuf,
    /// The `.safetensors` file to write.
    output: PathBuf,
}

pub fn run(a: Args) -> Result<()> {
    if a.output.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        bail!("output '{}': must end in .safetensors", a.output.display());
    }
    let weights = read_pth(&a.input)?;
    weights.save_safetensors(&a.output)?;
    let params: usize = weights.tensors.values().map(|t| t.data.len()).sum();
    eprintln!(
        "wrote {} ({} tensors, {} parameters)",
        a.output.display(),
        weights.tensors.len(),
        params
    );
    Ok(())
}
