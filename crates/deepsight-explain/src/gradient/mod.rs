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
pub use saliency::Saliency;

use crate::{Passes, Request, Result};
use deepsight_runtime::{GradientRequest, LayeredClassifier, RectifierRule, Tensor};

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
