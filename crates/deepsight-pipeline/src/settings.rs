//! The methods' options as one typed, serialisable struct: what a front end sets (CLI flags, the
//! web page's form fields, a JSON file), with a schema (`OPTIONS`) from which forms are drawn and
//! values checked. Turned into the explain crate's [`MethodOptions`] by [`Settings::method_options`].

use crate::error::{PipelineError, Result};
use deepsight_explain::gradient::GradientSign;
use deepsight_explain::localisation::GraphCutLocalisation;
use deepsight_explain::perturbation::occlusion::{
    FeatureChoice, Fill, Inference, Occlusion, OcclusionProfile,
};
use deepsight_explain::perturbation::rise::Rise;
use deepsight_explain::registry::{MethodOptions, SmoothGradBase};
use deepsight_models::Preprocess;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The gradient method SmoothGrad averages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SmoothGradOf {
    #[default]
    Saliency,
    InputXGradient,
    GuidedBackprop,
    IntegratedGradients,
}

/// Which part of the gradient saliency and SmoothGrad keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Sign {
    /// `|gradient|` (Simonyan et al.).
    #[default]
    Absolute,
    /// The positive part (the seed's `clamp(min=0)`).
    Positive,
}

/// What replaces occlusion's square.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OcclusionFill {
    /// The preset's mean colour (0 in the model's input space).
    #[default]
    Mean,
    Black,
    /// The image blurred by a Gaussian of `occlusion_blur_sigma`.
    Blur,
}

/// Whose conventions occlusion follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OcclusionConvention {
    /// The drop of the class probability (Zeiler & Fergus).
    #[default]
    ZeilerFergus,
    /// The drop of the explained score (Captum).
    Captum,
}

/// Every option of every method (each method reads the ones `methods::options_of` lists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    pub ig_steps: usize,
    pub ig_baseline: f32,
    pub smoothgrad_base: SmoothGradOf,
    pub smoothgrad_samples: usize,
    pub smoothgrad_sigma: f32,
    pub gradient_sign: Sign,
    pub seed: u64,
    pub batch_size: usize,
    pub occlusion_window: usize,
    pub occlusion_stride: usize,
    pub occlusion_fill: OcclusionFill,
    pub occlusion_blur_sigma: f32,
    pub occlusion_profile: OcclusionConvention,
    pub full_inference: bool,
    pub rise_masks: usize,
    pub rise_cell: usize,
    pub rise_p: f32,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            ig_steps: 50,
            ig_baseline: 0.0,
            smoothgrad_base: SmoothGradOf::Saliency,
            smoothgrad_samples: 25,
            smoothgrad_sigma: 0.15,
            gradient_sign: Sign::Absolute,
            seed: 0,
            batch_size: 16,
            occlusion_window: 32,
            occlusion_stride: 16,
            occlusion_fill: OcclusionFill::Mean,
            occlusion_blur_sigma: 8.0,
            occlusion_profile: OcclusionConvention::ZeilerFergus,
            full_inference: false,
            rise_masks: 4000,
            rise_cell: 7,
            rise_p: 0.5,
        }
    }
}

/// The kind of an option's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Int,
    Float,
    Bool,
    Choice,
}

/// One option of [`Settings`]: its name (the field's), kind, domain and help line.
#[derive(Debug, Clone, Serialize)]
pub struct OptionSpec {
    pub name: &'static str,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub choices: &'static [&'static str],
    pub help: &'static str,
}

const fn spec(name: &'static str, kind: Kind, min: f64, max: f64, help: &'static str) -> OptionSpec {
    OptionSpec {
        name,
        kind,
        min: Some(min),
        max: Some(max),
        choices: &[],
        help,
    }
}

const fn choice(name: &'static str, choices: &'static [&'static str], help: &'static str) -> OptionSpec {
    OptionSpec {
        name,
        kind: Kind::Choice,
        min: None,
        max: None,
        choices,
        help,
    }
}

/// The schema of every field of [`Settings`], in its order.
pub const OPTIONS: [OptionSpec; 17] = [
    spec(
        "ig_steps",
        Kind::Int,
        1.0,
        10_000.0,
        "Integrated Gradients: path points (trapezoid rule)",
    ),
    spec(
        "ig_baseline",
        Kind::Float,
        -1e3,
        1e3,
        "Integrated Gradients: the baseline's value in the model's input space",
    ),
    choice(
        "smoothgrad_base",
        &[
            "saliency",
            "input-x-gradient",
            "guided-backprop",
            "integrated-gradients",
        ],
        "SmoothGrad: the gradient method averaged over noisy copies",
    ),
    spec(
        "smoothgrad_samples",
        Kind::Int,
        1.0,
        10_000.0,
        "SmoothGrad: noisy samples",
    ),
    spec(
        "smoothgrad_sigma",
        Kind::Float,
        0.0,
        10.0,
        "SmoothGrad: noise sigma as a fraction of the image's value range",
    ),
    choice(
        "gradient_sign",
        &["absolute", "positive"],
        "Saliency and SmoothGrad: keep |gradient| or its positive part",
    ),
    spec(
        "seed",
        Kind::Int,
        0.0,
        9.007e15,
        "Seed of the random choices (SmoothGrad's noise, RISE's masks)",
    ),
    spec(
        "batch_size",
        Kind::Int,
        1.0,
        4096.0,
        "Images per forward pass of the methods that run many",
    ),
    spec(
        "occlusion_window",
        Kind::Int,
        1.0,
        4096.0,
        "Occlusion: side of the occluding square, in input pixels",
    ),
    spec(
        "occlusion_stride",
        Kind::Int,
        1.0,
        4096.0,
        "Occlusion: step between square positions, in input pixels",
    ),
    choice(
        "occlusion_fill",
        &["mean", "black", "blur"],
        "Occlusion: what replaces the square",
    ),
    spec(
        "occlusion_blur_sigma",
        Kind::Float,
        0.01,
        1000.0,
        "Occlusion: sigma of the blur fill, in pixels",
    ),
    choice(
        "occlusion_profile",
        &["zeiler-fergus", "captum"],
        "Occlusion: drop of the class probability (Zeiler & Fergus) or of the explained score (Captum)",
    ),
    OptionSpec {
        name: "full_inference",
        kind: Kind::Bool,
        min: None,
        max: None,
        choices: &[],
        help: "Occlusion: re-run the whole network per occluded image (same result, slower)",
    },
    spec("rise_masks", Kind::Int, 1.0, 1e6, "RISE: random masks"),
    spec(
        "rise_cell",
        Kind::Int,
        1.0,
        1024.0,
        "RISE: cells per side of each mask's grid",
    ),
    spec(
        "rise_p",
        Kind::Float,
        0.0,
        1.0,
        "RISE: probability that a cell is kept",
    ),
];

/// The schema of option `name`, if there is one.
pub fn option(name: &str) -> Option<&'static OptionSpec> {
    OPTIONS.iter().find(|o| o.name == name)
}

impl Settings {
    /// The value of every option, by name (what a form shows as defaults).
    pub fn values(&self) -> serde_json::Map<String, Value> {
        match serde_json::to_value(self) {
            Ok(Value::Object(m)) => m,
            _ => serde_json::Map::new(),
        }
    }

    /// Sets option `name` from its text (a form field, a query string), checked against its
    /// kind and domain.
    pub fn set(&mut self, name: &str, text: &str) -> Result<()> {
        let bad = |reason: String| PipelineError::Invalid {
            option: name.to_string(),
            reason,
        };
        let Some(spec) = option(name) else {
            let known: Vec<&str> = OPTIONS.iter().map(|o| o.name).collect();
            return Err(bad(format!(": unknown option (known: {})", known.join(", "))));
        };
        let text = text.trim();
        let value = match spec.kind {
            Kind::Bool => match text {
                "true" | "on" | "1" | "yes" => Value::Bool(true),
                "false" | "off" | "0" | "no" | "" => Value::Bool(false),
                _ => return Err(bad(format!(" '{text}': expected true or false"))),
            },
            Kind::Choice => {
                if !spec.choices.contains(&text) {
                    return Err(bad(format!(
                        " '{text}': expected one of {}",
                        spec.choices.join(", ")
                    )));
                }
                Value::String(text.to_string())
            }
            Kind::Int | Kind::Float => {
                let v: f64 = text
                    .parse()
                    .map_err(|_| bad(format!(" '{text}': not a number")))?;
                let whole = spec.kind == Kind::Int && v.fract() != 0.0;
                let (lo, hi) = (spec.min.unwrap_or(f64::MIN), spec.max.unwrap_or(f64::MAX));
                if !v.is_finite() || whole || v < lo || v > hi {
                    let what = if spec.kind == Kind::Int {
                        "a whole number"
                    } else {
                        "a number"
                    };
                    return Err(bad(format!(" {text}: must be {what} in {lo}..={hi}")));
                }
                if spec.kind == Kind::Int {
                    Value::from(v as u64)
                } else {
                    Value::from(v)
                }
            }
        };
        let mut all = self.values();
        all.insert(name.to_string(), value);
        *self = serde_json::from_value(Value::Object(all)).map_err(|e| bad(format!(": {e}")))?;
        Ok(())
    }

    /// Every value checked against [`OPTIONS`] (settings built in code or read from JSON).
    pub fn check(&self) -> Result<()> {
        let mut copy = Settings::default();
        for (name, v) in self.values() {
            let text = match v {
                // serde_json writes a NaN or infinite float as null.
                Value::Null => {
                    return Err(PipelineError::invalid(
                        &name,
                        " must be a finite number (got NaN or infinity)",
                    ));
                }
                Value::String(s) => s,
                other => other.to_string(),
            };
            copy.set(&name, &text)?;
        }
        Ok(())
    }

    /// The explain crate's options; `preprocess` gives the colours of occlusion's black fill and
    /// GraphCut's colour model, `feature` occlusion's feature map.
    pub fn method_options(&self, preprocess: &Preprocess, feature: FeatureChoice) -> MethodOptions {
        let black = preprocess.input_colour([0.0; 3]);
        MethodOptions {
            ig_steps: self.ig_steps,
            ig_baseline: self.ig_baseline,
            smoothgrad_base: match self.smoothgrad_base {
                SmoothGradOf::Saliency => SmoothGradBase::Saliency,
                SmoothGradOf::InputXGradient => SmoothGradBase::InputXGradient,
                SmoothGradOf::GuidedBackprop => SmoothGradBase::GuidedBackprop,
                SmoothGradOf::IntegratedGradients => SmoothGradBase::IntegratedGradients,
            },
            smoothgrad_samples: self.smoothgrad_samples,
            smoothgrad_sigma: self.smoothgrad_sigma,
            gradient_sign: match self.gradient_sign {
                Sign::Absolute => GradientSign::Absolute,
                Sign::Positive => GradientSign::Positive,
            },
            seed: self.seed,
            batch_size: self.batch_size,
            occlusion: Occlusion {
                profile: match self.occlusion_profile {
                    OcclusionConvention::ZeilerFergus => OcclusionProfile::ZeilerFergus,
                    OcclusionConvention::Captum => OcclusionProfile::Captum,
                },
                window: [self.occlusion_window; 2],
                stride: [self.occlusion_stride; 2],
                fill: match self.occlusion_fill {
                    OcclusionFill::Mean => Fill::Constant(0.0),
                    OcclusionFill::Black => Fill::Colour(black),
                    OcclusionFill::Blur => Fill::Blur {
                        sigma: self.occlusion_blur_sigma,
                    },
                },
                inference: if self.full_inference {
                    Inference::Full
                } else {
                    Inference::Incremental
                },
                feature,
                ..Default::default()
            },
            rise: Rise {
                masks: self.rise_masks,
                cell: self.rise_cell,
                p: self.rise_p,
                ..Default::default()
            },
            graphcut: GraphCutLocalisation {
                colour: GraphCutLocalisation::colour_of_normalisation(preprocess.mean, preprocess.std),
                ..Default::default()
            },
            ..MethodOptions::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_lists_every_field_in_order() {
        let names: Vec<String> = Settings::default().values().keys().cloned().collect();
        let mut schema: Vec<String> = OPTIONS.iter().map(|o| o.name.to_string()).collect();
        schema.sort();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, schema);
    }

    #[test]
    fn every_option_a_method_reads_is_in_the_schema() {
        for m in deepsight_explain::registry::REGISTRY.iter() {
            for name in m.options {
                assert!(
                    option(name).is_some(),
                    "{}: option '{name}' has no schema",
                    m.name
                );
            }
        }
    }

    #[test]
    fn set_parses_checks_and_names_the_option() {
        let mut s = Settings::default();
        s.set("ig_steps", "20").unwrap();
        s.set("rise_p", "0.25").unwrap();
        s.set("occlusion_fill", "blur").unwrap();
        s.set("full_inference", "true").unwrap();
        assert_eq!(
            (s.ig_steps, s.rise_p, s.occlusion_fill, s.full_inference),
            (20, 0.25, OcclusionFill::Blur, true)
        );
        for (name, text) in [
            ("ig_steps", "0"),
            ("ig_steps", "2.5"),
            ("smoothgrad_sigma", "inf"),
            ("ig_baseline", "nan"),
            ("occlusion_fill", "grey"),
            ("nope", "1"),
        ] {
            let e = s.set(name, text).unwrap_err().to_string();
            assert!(e.starts_with(name), "{e}");
        }
        assert_eq!(s.ig_steps, 20, "a refused value leaves the settings as they were");
        s.check().unwrap();
        Settings {
            rise_p: 2.0,
            ..Settings::default()
        }
        .check()
        .unwrap_err();
    }
}
