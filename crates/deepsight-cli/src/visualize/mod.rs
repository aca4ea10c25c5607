//! `deepsight visualize`: the model itself rather than one image's decision (Simonyan et al.
//! 2014 section 2, Zeiler & Fergus 2014 sections 4-5). Each subcommand writes PNG figures and
//! the numbers behind them (JSON, CSV) into `--out`.

mod class;
mod feature;
mod optimise;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// Images that maximise class scores (Simonyan et al. 2014), checked by the model itself
    /// (and a second network) after the PNG round trip.
    Class(class::Args),
    /// Images that maximise a channel, a unit or a layer (Lucent's objectives, DeepDream).
    Feature(feature::Args),
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Class(a) => class::run(a),
        What::Feature(a) => feature::run(a),
    }
}
