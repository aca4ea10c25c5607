//! The `--model` family of arguments, shared by every command.

use anyhow::{Result, bail};
use deepsight_models::{Arch, LoadedModel, ModelSource, Preset};
use deepsight_runtime::default_device;
use std::path::PathBuf;

#[derive(clap::Args, Debug, Clone)]
pub struct ModelArgs {
    /// A built-in model (lite0, alexnet, zfnet, vgg11, vgg11_bn, vgg16, vgg16_bn, resnet18,
    /// resnet50, mosaic-cnn), an ONNX file (.onnx), or a weight file (.pth, .safetensors) for
    /// `--arch`.
    #[arg(long, default_value = "lite0")]
    pub model: String,
    /// Architecture of the weight file given to `--model` (a built-in name).
    #[arg(long)]
    pub arch: Option<String>,
    /// Use seeded random weights for a built-in architecture (benchmarks, tests).
    #[arg(long, value_name = "SEED")]
    pub random_weights: Option<u64>,
    /// Preprocessing preset: efficientnet-lite (resize to the input, (x-127)/128) or torchvision
    /// (resize shorter side, centre crop, ImageNet mean/std). Default: the model's own (ONNX:
    /// torchvision).
    #[arg(long, value_name = "PRESET")]
    pub preprocess: Option<String>,
    /// Input size HxW for an ONNX model whose height and width are dynamic (default 224x224).
    #[arg(long, value_name = "HxW", value_parser = parse_size)]
    pub input_size: Option<[usize; 2]>,
}

fn parse_size(s: &str) -> Result<[usize; 2], String> {
    let parse = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0);
    match s.split_once(['x', 'X']).map(|(h, w)| (parse(h), parse(w))) {
        Some((Some(h), Some(w))) => Ok([h, w]),
        _ => Err(format!("'{s}' is not a size like 224x224")),
    }
}

impl ModelArgs {
    pub fn source(&self) -> Result<ModelSource> {
        if let Some([h, w]) = self.input_size {
            deepsight_runtime::limits::check_pixels("--input-size", w as u64, h as u64)
                .map_err(anyhow::Error::msg)?;
        }
        if let Some(arch) = Arch::from_name(&self.model) {
            if let Some(a) = &self.arch
                && a != &self.model
            {
                bail!("--arch '{a}' contradicts the built-in model '{}'", self.model);
            }
            if self.input_size.is_some() {
                bail!("--input-size applies to ONNX models only");
            }
            return Ok(ModelSource::Builtin {
                arch,
                random_seed: self.random_weights,
            });
        }
        let path = PathBuf::from(&self.model);
        if !path.is_file() {
            let names: Vec<&str> = Arch::ALL.iter().map(|(_, n)| *n).collect();
            bail!(
                "--model '{}': neither a built-in model ({}) nor an existing file",
                self.model,
                names.join(", ")
            );
        }
        if self.input_size.is_some() && !path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) {
            bail!("--input-size applies to ONNX models only");
        }
        if self.random_weights.is_some() {
            bail!(
                "--random-weights applies to built-in models only, not to the file '{}'",
                self.model
            );
        }
        if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("onnx")) {
            if let Some(a) = &self.arch {
                bail!("--arch '{a}' does not apply to an ONNX file: the graph comes with it");
            }
            return Ok(ModelSource::Onnx {
                path,
                input_size: self.input_size,
            });
        }
        let Some(name) = &self.arch else {
            bail!(
                "--model '{}' is a weight file: say which architecture it is for with --arch ({})",
                self.model,
                Arch::ALL.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
            );
        };
        let Some(arch) = Arch::from_name(name) else {
            bail!("--arch '{name}': unknown architecture");
        };
        Ok(ModelSource::File { arch, path })
    }

    fn preset(&self) -> Result<Option<Preset>> {
        let Some(name) = &self.preprocess else {
            return Ok(None);
        };
        match Preset::from_name(name) {
            Some(p) => Ok(Some(p)),
            None => bail!(
                "--preprocess '{name}': unknown preset (choose from {})",
                Preset::ALL.iter().map(|(_, n)| *n).collect::<Vec<_>>().join(", ")
            ),
        }
    }

    pub fn load(&self) -> Result<LoadedModel> {
        let source = self.source()?;
        let preset = self.preset()?;
        let loaded = source.load(&default_device())?;
        Ok(match preset {
            Some(p) => loaded.with_preset(p),
            None => loaded,
        })
    }
}
