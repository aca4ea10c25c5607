//! The `--model` family of arguments, shared by every command.

use anyhow::{Result, bail};
use deepsight_models::{Arch, LoadedModel, ModelSource};
use deepsight_runtime::default_device;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// A built-in model (lite0, resnet50, vgg16) or a weight file (.pth, .safetensors) for `--arch`.
    #[arg(long, default_value = "lite0")]
    pub model: String,
    /// Architecture of the weight file given to `--model`.
    #[arg(long, default_value = "lite0")]
    pub arch: String,
    /// Use seeded random weights for a built-in architecture (benchmarks, tests).
    #[arg(long, value_name = "SEED")]
    pub random_weights: Option<u64>,
}

impl ModelArgs {
    pub fn source(&self) -> Result<ModelSource> {
        if let Some(arch) = Arch::from_name(&self.model) {
            return Ok(ModelSource::Builtin {
                arch,
                random_seed: self.random_weights,
            });
        }
        let path = PathBuf::from(&self.model);
        if !path.exists() {
            let names: Vec<&str> = Arch::ALL.iter().map(|(_, n)| *n).collect();
            bail!(
                "--model '{}': neither a built-in model ({}) nor an existing file",
                self.model,
                names.join(", ")
            );
        }
        let Some(arch) = Arch::from_name(&self.arch) else {
            bail!("--arch '{}': unknown architecture", self.arch);
        };
        Ok(ModelSource::File { arch, path })
    }

    pub fn load(&self) -> Result<LoadedModel> {
        Ok(self.source()?.load(&default_device())?)
    }
}
