//! `deepsight visualize`: the model itself rather than one image's decision (Simonyan et al.
//! 2014 section 2, Zeiler & Fergus 2014 sections 4-5). Each subcommand writes PNG figures and
//! the numbers behind them (JSON, CSV) into `--out`.

mod class;
mod correspondence;
mod evolution;
mod feature;
mod filters;
mod invariance;
mod optimise;
mod probes;
mod top9;

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
    /// Per feature map the k images that drive it hardest, deconvnet projection beside the
    /// receptive-field patch (Zeiler & Fergus 2014 Fig. 2).
    Top9(top9::Args),
    /// The strongest activation of chosen feature maps at each training checkpoint, projected by
    /// the deconvnet (Zeiler & Fergus 2014 fig. 4).
    Evolution(evolution::Args),
    /// Linear softmax probes on each layer's frozen features: accuracy against depth (Zeiler &
    /// Fergus 2014 section 5.3).
    Probes(probes::Args),
    /// A convolution's filters as an image grid with their RMS, and one image's feature maps
    /// (Zeiler & Fergus 2014 fig. 6).
    Filters(filters::Args),
    /// Feature distance and class probability under translation, scale and rotation (Zeiler &
    /// Fergus 2014 fig. 5).
    Invariance(invariance::Args),
    /// Whether occluding the same part changes features consistently across images (Zeiler &
    /// Fergus 2014 table 1).
    Correspondence(correspondence::Args),
}

pub fn run(args: Args) -> anyhow::Result<()> {
    match args.what {
        What::Class(a) => class::run(a),
        What::Feature(a) => feature::run(a),
        What::Top9(a) => top9::run(a),
        What::Evolution(a) => evolution::run(a),
        What::Probes(a) => probes::run(a),
        What::Filters(a) => filters::run(a),
        What::Invariance(a) => invariance::run(a),
        What::Correspondence(a) => correspondence::run(a),
    }
}

/// A layer name made safe for a file name.
pub(crate) fn layer_file_stem(layer: &str) -> String {
    layer
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect::<String>()
        .trim_matches(['.', '_'])
        .to_string()
}
