//! `--lcam-weights` and `--explainer-weights`: trained weights of the learned methods for
//! `explain` and `evaluate`.

use anyhow::{Context, Result};
use deepsight_explain::learned::{ExplainerWeights, LcamVariant, LcamWeights};
use deepsight_explain::registry::MethodOptions;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(clap::Args, Debug, Clone, Default)]
pub struct LcamArgs {
    /// L-CAM weights (from `deepsight train lcam`) for l-cam-img or l-cam-fm, whichever the file
    /// holds; repeat for both. Default: the weights shipped for the embedded lite0.
    #[arg(long, value_name = "FILE")]
    pub lcam_weights: Vec<PathBuf>,
    /// Explainer-network weights (from `deepsight train explainer`) for `--method explainer`.
    /// Default: the weights shipped for the embedded lite0.
    #[arg(long, value_name = "FILE")]
    pub explainer_weights: Option<PathBuf>,
}

impl LcamArgs {
    /// `options` with the given weight files in place of the shipped ones.
    pub fn apply(&self, mut options: MethodOptions) -> Result<MethodOptions> {
        for path in &self.lcam_weights {
            let bytes = std::fs::read(path)
                .with_context(|| format!("--lcam-weights '{}': cannot read it", path.display()))?;
            let w = LcamWeights::from_bytes(&bytes, &format!("'{}'", path.display()))?;
            match w.variant {
                LcamVariant::Img => options.lcam_img = Some(Arc::new(w)),
                LcamVariant::Fm => options.lcam_fm = Some(Arc::new(w)),
            }
        }
        if let Some(path) = &self.explainer_weights {
            let bytes = std::fs::read(path)
                .with_context(|| format!("--explainer-weights '{}': cannot read it", path.display()))?;
            let w = ExplainerWeights::from_bytes(&bytes, &format!("'{}'", path.display()))?;
            options.explainer = Some(Arc::new(w));
        }
        Ok(options)
    }
}
