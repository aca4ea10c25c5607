//! `deepsight visualize`: the model itself rather than one image's decision (Simonyan et al.
//! 2014 section 2, Zeiler & Fergus 2014 sections 4-5). Each subcommand writes PNG figures and
//! the numbers behind them (JSON, CSV) into `--out`.

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {}
}
