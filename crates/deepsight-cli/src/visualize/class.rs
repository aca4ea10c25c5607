//! `deepsight visualize class`: images that maximise class scores (Simonyan et al. 2014 sec. 2),
//! each checked by the model itself, and optionally by a second network, after the PNG round trip.

use super::optimise::{self, RecipeArgs};
use crate::model_arg::ModelArgs;
use anyhow::{Context, Result, bail};
use deepsight_models::write_atomic;
use deepsight_render::Panel;
use deepsight_runtime::Classifier;
use deepsight_visualize::optvis::{ClassObjective, Target, Verdict, judge};
use std::path::PathBuf;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum ObjectiveArg {
    /// The unnormalised class score S_c (the paper's).
    Logit,
    /// The softmax probability (the paper reports poor images with it).
    Probability,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Classes to visualise, by index or by name (comma-separated), all in one batch.
    #[arg(long, value_delimiter = ',', required = true)]
    class: Vec<String>,
    #[arg(long, value_enum, default_value = "logit")]
    objective: ObjectiveArg,
    #[command(flatten)]
    recipe: RecipeArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// A second classifier that did not make the images (a built-in name or a weight file), whose
    /// top-1 is reported too: an image both call the class is less likely an adversarial pattern.
    #[arg(long)]
    judge: Option<String>,
    /// Architecture of the --judge weight file (e.g. lite2).
    #[arg(long)]
    judge_arch: Option<String>,
    /// Output folder.
    #[arg(long, default_value = "class-models")]
    out: PathBuf,
}

/// A class given by index or by (case-insensitive) name.
fn class_index(spec: &str, names: &[String]) -> Result<usize> {
    if let Ok(i) = spec.trim().parse::<usize>() {
        if i >= names.len() {
            bail!("--class {i}: the model has {} classes", names.len());
        }
        return Ok(i);
    }
    names
        .iter()
        .position(|n| n.eq_ignore_ascii_case(spec.trim()))
        .with_context(|| format!("--class '{spec}': no class of that index or name"))
}

fn verdict_text(who: &str, v: &Verdict, names: &[String]) -> String {
    let name: String = names
        .get(v.top1)
        .map_or("?", |s| s.as_str())
        .chars()
        .take(16)
        .collect();
    format!(
        "{who}: {name} {:.0}% (rank {})",
        100.0 * v.top1_probability,
        v.target_rank.unwrap_or(0)
    )
}

pub fn run(a: Args) -> Result<()> {
    let recipe = a.recipe.recipe()?;
    let loaded = a.model.load()?;
    let classes: Vec<usize> = a
        .class
        .iter()
        .map(|c| class_index(c, &loaded.class_names))
        .collect::<Result<_>>()?;
    let judge_model = match &a.judge {
        Some(m) => Some(
            ModelArgs {
                model: m.clone(),
                arch: a.judge_arch.clone(),
                random_weights: None,
                preprocess: None,
                input_size: None,
            }
            .load()
            .with_context(|| format!("--judge '{m}'"))?,
        ),
        None => {
            if a.judge_arch.is_some() {
                bail!("--judge-arch needs --judge");
            }
            None
        }
    };
    if let Some(j) = &judge_model
        && j.model.num_classes() != loaded.model.num_classes()
    {
        bail!(
            "--judge has {} classes, the model {}: they must share the label space",
            j.model.num_classes(),
            loaded.model.num_classes()
        );
    }
    let objective = match a.objective {
        ObjectiveArg::Logit => ClassObjective::Logit,
        ObjectiveArg::Probability => ClassObjective::Probability,
    };
    let targets: Vec<Target> = classes
        .iter()
        .map(|&class| Target::Class { class, objective })
        .collect();
    std::fs::create_dir_all(&a.out).with_context(|| format!("cannot create '{}'", a.out.display()))?;
    let (rendered, seconds) = optimise::render(&loaded, &targets, &recipe, None, a.recipe.seed)?;
    let names = &loaded.class_names;
    let stems: Vec<String> = classes
        .iter()
        .map(|&c| format!("class-{c:04}-{}", names[c].replace([' ', '/', '\''], "_")))
        .collect();
    let (paths, decoded) = optimise::write_images(&a.out, &stems, &rendered.images)?;
    let wanted: Vec<Option<usize>> = classes.iter().map(|&c| Some(c)).collect();
    let own = judge(&loaded.model, &loaded.pipeline, &decoded, &wanted)?;
    let second = match &judge_model {
        Some(j) => Some(judge(&j.model, &j.pipeline, &decoded, &wanted)?),
        None => None,
    };
    let mut panels = Vec::new();
    let mut rows = Vec::new();
    println!("class | model top-1 (p) | target p | judge top-1 | file");
    for (i, &c) in classes.iter().enumerate() {
        let mut title = vec![format!("{c} {}", names[c].chars().take(24).collect::<String>())];
        title.push(verdict_text("model", &own[i], names));
        if let Some(s) = &second {
            title.push(verdict_text("judge", &s[i], names));
        }
        panels.push(Panel {
            canvas: optimise::canvas(&decoded[i]),
            title,
        });
        println!(
            "{c} {} | {} ({:.3}) | {:.3} | {} | {}",
            names[c],
            names[own[i].top1],
            own[i].top1_probability,
            own[i].target_probability.unwrap_or(0.0),
            second.as_ref().map_or("-".to_string(), |s| format!(
                "{} ({:.3})",
                names[s[i].top1], s[i].top1_probability
            )),
            paths[i].display()
        );
        rows.push(serde_json::json!({
            "class": c,
            "name": names[c],
            "file": paths[i].file_name().map(|f| f.to_string_lossy().to_string()),
            "model": own[i],
            "model_top1_is_class": own[i].top1 == c,
            "judge": second.as_ref().map(|s| s[i]),
            "judge_top1_is_class": second.as_ref().map(|s| s[i].top1 == c),
            "final_objective": rendered.curves[i].last(),
        }));
    }
    optimise::write_montage(&a.out, panels)?;
    let y_label = match objective {
        ClassObjective::Logit => "class score S_c",
        ClassObjective::Probability => "probability P_c",
    };
    let labels: Vec<String> = classes.iter().map(|&c| names[c].clone()).collect();
    optimise::write_curves(&a.out, &labels, &rendered.curves, y_label)?;
    let hits = own.iter().zip(&classes).filter(|(v, c)| v.top1 == **c).count();
    let json = serde_json::json!({
        "model": loaded.description,
        "judge": judge_model.as_ref().map(|j| j.description.clone()),
        "objective": format!("{:?}", objective).to_lowercase(),
        "settings": optimise::recipe_json(&recipe),
        "seed": a.recipe.seed,
        "seconds": seconds,
        "model_top1_hits": hits,
        "judge_top1_hits": second.as_ref().map(|s| s.iter().zip(&classes).filter(|(v, c)| v.top1 == **c).count()),
        "classes": rows,
    });
    write_atomic(
        &a.out.join("results.json"),
        serde_json::to_string_pretty(&json)?.as_bytes(),
    )?;
    println!(
        "{hits}/{} images are the model's top-1 for their class; {seconds:.1} s; wrote {}",
        classes.len(),
        a.out.display()
    );
    Ok(())
}
