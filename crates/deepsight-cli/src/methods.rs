//! `deepsight methods`: the explanation methods, and each one's documentation.

use anyhow::{Result, bail};
use deepsight_explain::registry::methods;

#[derive(clap::Args)]
pub struct Args {
    /// Print this method's full documentation (Computes / Equation / Paper / Deviations).
    #[arg(long, value_name = "NAME")]
    explain: Option<String>,
}

pub fn run(a: Args) -> Result<()> {
    let all = methods();
    match a.explain {
        Some(name) => match all.iter().find(|m| m.name == name) {
            Some(m) => println!("{}\n\n{}", m.name, m.doc),
            None => bail!(
                "unknown method '{name}' (known: {})",
                all.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
            ),
        },
        None => {
            let width = all.iter().map(|m| m.name.len()).max().unwrap_or(0);
            for m in &all {
                println!("{:width$}  {}", m.name, m.title());
            }
            println!(
                "\n`deepsight methods --explain NAME` prints a method's equation, paper and deviations."
            );
        }
    }
    Ok(())
}
