//! The registered methods as a front end sees them: name, docs (the module doc of the method's
//! file), whether its maps are signed, and which [`Settings`](crate::Settings) options it reads; and
//! the building of a method from settings, which can fail (a trained method whose weights do not
//! fit the model).

use crate::error::{PipelineError, Result};
use crate::settings::{OPTIONS, OptionSpec};
use deepsight_explain::Explainer;
use deepsight_explain::learned::LcamVariant;
use deepsight_explain::registry::{MethodOptions, REGISTRY, by_name, by_name_with, methods};
use deepsight_runtime::GraphModel;
use serde::Serialize;

/// One registered method, as `/api/methods` and `deepsight methods` show it.
#[derive(Debug, Clone, Serialize)]
pub struct MethodEntry {
    pub name: &'static str,
    pub title: String,
    pub doc: String,
    pub signed: bool,
    pub options: Vec<&'static OptionSpec>,
}

/// Every registered method, in the registry's order.
pub fn entries() -> Vec<MethodEntry> {
    methods()
        .into_iter()
        .map(|m| MethodEntry {
            name: m.name,
            title: m.title().to_string(),
            signed: by_name(m.name).is_some_and(|e| e.signed()),
            options: options_of(m.name),
            doc: m.doc,
        })
        .collect()
}

/// The schemas of the options method `name` reads (the registry's list of them).
pub fn options_of(name: &str) -> Vec<&'static OptionSpec> {
    let names = REGISTRY
        .iter()
        .find(|m| m.name == name)
        .map_or(&[][..], |m| m.options);
    OPTIONS.iter().filter(|o| names.contains(&o.name)).collect()
}

/// The registered name equal to `name`, or an error naming it and the known ones.
pub fn known_name(name: &str) -> Result<&'static str> {
    let all = methods();
    all.iter()
        .find(|m| m.name == name)
        .map(|m| m.name)
        .ok_or_else(|| {
            let known: Vec<&str> = all.iter().map(|m| m.name).collect();
            PipelineError::invalid(
                "method",
                format!(" '{name}': unknown method (known: {}, or all)", known.join(", ")),
            )
        })
}

/// Method `name` built with `options`; a trained method whose weights do not fit `model` fails
/// (with `skip_unfitted`, as `all` asks, it is `None` and a note says why).
pub fn build(
    name: &str,
    options: &MethodOptions,
    model: &GraphModel,
    skip_unfitted: bool,
    notes: &mut Vec<String>,
) -> Result<Option<Box<dyn Explainer>>> {
    let name = known_name(name)?;
    let fits = match name {
        "l-cam-img" | "l-cam-fm" => {
            let (variant, weights) = if name == "l-cam-img" {
                (LcamVariant::Img, &options.lcam_img)
            } else {
                (LcamVariant::Fm, &options.lcam_fm)
            };
            weights.as_ref().map(|w| {
                w.check_fits(model, variant, &w.layer)
                    .map_err(PipelineError::from)
            })
        }
        "explainer" => options
            .explainer
            .as_ref()
            .map(|w| w.check_fits(model).map_err(PipelineError::from)),
        _ => Some(Ok(())),
    };
    match fits {
        Some(Err(_)) | None if skip_unfitted => {
            let flag = if name == "explainer" {
                "--explainer-weights"
            } else {
                "--lcam-weights"
            };
            notes.push(format!(
                "--method all leaves out {name}: no weights for this model ({flag})"
            ));
            return Ok(None);
        }
        Some(Err(e)) => return Err(e),
        _ => {}
    }
    Ok(by_name_with(name, options))
}
