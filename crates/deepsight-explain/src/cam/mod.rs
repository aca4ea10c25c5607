//! The class-activation-map family, one generic implementation: a forward pass capturing the
//! layer's activation `A` `[K, h, w]` and a backward pass to that layer only (never to the input,
//! unless another method shares the pass and needs it) give `dS_c/dA`; a [`CamVariant`] combines them into a map at the layer's resolution, which is
//! ReLU'd where the variant says so (the `raw` map) and upsampled bilinearly to the input (the map).
//!
//! A new CAM is one file implementing [`CamVariant::weights`] (pytorch-grad-cam's
//! `get_cam_weights`); variants that are not a weighted channel sum override
//! [`CamVariant::combine`].

#[allow(clippy::module_inception)] // the method is called CAM
mod cam;
mod eigencam;
mod gradcam;
mod gradcam_counterfactual;
mod gradcam_pp;
mod layercam;
mod xgradcam;

pub use cam::ClassActivationMap;
pub use eigencam::EigenCam;
pub use gradcam::GradCam;
pub use gradcam_counterfactual::GradCamCounterfactual;
pub use gradcam_pp::GradCamPlusPlus;
pub use layercam::LayerCam;
pub use xgradcam::XGradCam;

use crate::{Explainer, Explanation, Map, Need, Passes, Request, Result, SharedPasses};
use deepsight_runtime::{LayeredClassifier, RectifierRule, to_vec};

/// One image's activation and gradient at the CAM layer.
pub struct LayerData<'a> {
    /// `A`, `[K, h, w]` row-major.
    pub activation: &'a [f32],
    /// `dS_c/dA`, same layout (empty for variants that need no gradient).
    pub gradient: &'a [f32],
    pub channels: usize,
    /// `h * w`.
    pub positions: usize,
}

impl LayerData<'_> {
    /// Channel `k` of the activation.
    pub fn a(&self, k: usize) -> &[f32] {
        &self.activation[k * self.positions..(k + 1) * self.positions]
    }
    /// Channel `k` of the gradient.
    pub fn g(&self, k: usize) -> &[f32] {
        &self.gradient[k * self.positions..(k + 1) * self.positions]
    }
}

/// What distinguishes one CAM from another.
pub trait CamVariant: Send + Sync {
    /// The CLI name.
    const NAME: &'static str;
    /// Whether the variant reads `dS_c/dA` (else a forward pass suffices).
    const USES_GRADIENT: bool = true;
    /// Whether the map is rectified (every CAM of pytorch-grad-cam is; Zhou's CAM is not).
    const RELU: bool = true;
    /// Refuses a model or layer the variant is not defined for.
    fn check(&self, _model: &dyn LayeredClassifier, _layer: &str) -> Result<()> {
        Ok(())
    }
    /// Channel weights `alpha_k` for `sum_k alpha_k A^k`.
    fn weights(&self, data: &LayerData) -> Vec<f32>;
    /// The map before the ReLU, `[h * w]`.
    fn combine(&self, data: &LayerData) -> Vec<f32> {
        let w = self.weights(data);
        let mut map = vec![0.0f32; data.positions];
        for (k, wk) in w.iter().enumerate() {
            for (m, a) in map.iter_mut().zip(data.a(k)) {
                *m += wk * a;
            }
        }
        map
    }
}

/// A CAM method over its variant.
#[derive(Debug, Clone, Copy, Default)]
pub struct Cam<V>(pub V);

impl<V: CamVariant> Explainer for Cam<V> {
    fn name(&self) -> &'static str {
        V::NAME
    }

    fn needs(&self, model: &dyn LayeredClassifier, request: &Request) -> Result<Vec<Need>> {
        self.0.check(model, &request.layer_of(model, V::NAME)?)?;
        Ok(vec![Need {
            rule: V::USES_GRADIENT.then_some(RectifierRule::Plain),
            input: false,
            layers: vec![request.layer_of(model, V::NAME)?],
        }])
    }

    fn explain_shared(
        &self,
        model: &dyn LayeredClassifier,
        request: &Request,
        shared: &SharedPasses,
    ) -> Result<Explanation> {
        let layer = request.layer_of(model, V::NAME)?;
        let [n, _, height, width] = request.images.dims();
        let (activation, gradient) = if V::USES_GRADIENT {
            let (a, g) = shared.layer(&layer);
            (a, Some(g))
        } else {
            (shared.activation(&layer), None)
        };
        let [_, k, h, w] = activation.dims();
        let a = to_vec(activation);
        let g = gradient.map(to_vec).unwrap_or_default();
        let per = k * h * w;
        let raw: Vec<Map> = (0..n)
            .map(|i| {
                let data = LayerData {
                    activation: &a[i * per..(i + 1) * per],
                    gradient: if g.is_empty() {
                        &[]
                    } else {
                        &g[i * per..(i + 1) * per]
                    },
                    channels: k,
                    positions: h * w,
                };
                let map = Map {
                    channels: 1,
                    height: h,
                    width: w,
                    data: self.0.combine(&data),
                };
                if V::RELU { map.relu() } else { map }
            })
            .collect();
        Ok(Explanation {
            maps: raw.iter().map(|m| m.resize(height, width)).collect(),
            raw: Some(raw),
            passes: Passes {
                forward: n,
                backward: if V::USES_GRADIENT { n } else { 0 },
            },
            extra: Vec::new(),
        })
    }
}
