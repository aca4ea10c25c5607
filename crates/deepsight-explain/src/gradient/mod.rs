//! The gradient family: maps from one backward pass to the input (Simonyan et al. 2014; Zeiler &
//! Fergus 2014; Springenberg et al. 2015), and Integrated Gradients.

mod deconvnet;
mod deconvnet_feature;
mod guided_backprop;
mod input_x_gradient;
mod integrated_gradients;
mod saliency;

pub use deconvnet::Deconvnet;
pub use deconvnet_feature::DeconvnetFeature;
pub use guided_backprop::GuidedBackprop;
pub use input_x_gradient::InputXGradient;
pub use integrated_gradients::{IntegratedGradients, Quadrature};
pub use saliency::{GradientSign, InputGradient, PositiveSaliency, Saliency};

use crate::shared::passes_alone;
use crate::{Explainer, Explanation, Map, Need, Passes, Request, Result, SharedPasses};
use deepsight_runtime::{GradientRequest, LayeredClassifier, RectifierRule, Tensor};

/// A method that is one backward pass to the input under a rule, then a map of that gradient:
/// saliency, gradient x input, guided backpropagation, deconvnet. Implementing it makes the
/// method an [`Explainer`] whose pass is shared with every other method of the same rule.
pub trait OnePass: Send + Sync {
    const NAME: &'static str;
    const RULE: RectifierRule;
    const SIGNED: bool;
    /// The maps from the input gradient `[N, C, H, W]` and the images.
    fn maps(&self, gradient: Tensor<4>, images: &Tensor<4>) -> Vec<Map>;
}

fn need_of(rule: RectifierRule) -> Need {
    Need {
        rule: Some(rule),
        input: true,
        layers: Vec::new(),
    }
}

impl<T: OnePass> Explainer for T {
    fn name(&self) -> &'static str {
        T::NAME
    }

    fn signed(&self) -> bool {
        T::SIGNED
    }

    fn needs(&self, _model: &dyn LayeredClassifier, _request: &Request) -> Result<Vec<Need>> {
        Ok(vec![need_of(T::RULE)])
    }

    fn explain_shared(
        &self,
        _model: &dyn LayeredClassifier,
        request: &Request,
        shared: &SharedPasses,
    ) -> Result<Explanation> {
        Ok(Explanation {
            maps: self.maps(shared.input_gradient(T::RULE), &request.images),
            raw: None,
            passes: passes_alone(&[need_of(T::RULE)], request.images.dims()[0]),
            extra: Vec::new(),
        })
    }
}

/// `dScore/dInput` for every image of the request under `rule`: one forward, one backward.
pub(crate) fn input_gradient(
    model: &dyn LayeredClassifier,
    request: &Request,
    images: Tensor<4>,
    rule: RectifierRule,
) -> Result<(Tensor<4>, Passes)> {
    let n = images.dims()[0];
    let g = model.gradients(images, &GradientRequest::input(request.objective(), rule))?;
    let grad = g.input.expect("requested the input gradient");
    Ok((
        grad,
        Passes {
            forward: n,
            backward: n,
        },
    ))
}
