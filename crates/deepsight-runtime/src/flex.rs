//! Which tensors DeepSight's own flex kernels may serve.

use burn::tensor::Device;
use burn_flex::FlexTensor;

/// Whether `device` is burn's flex CPU backend, with or without autodiff: where the kernels of
/// this crate run; on other devices burn's own ops do the same work.
pub fn is_flex(device: &Device) -> bool {
    let base = if device.is_autodiff() {
        device.clone().inner()
    } else {
        device.clone()
    };
    base == Device::flex()
}

/// A dense `f32` tensor starting at the front of its buffer: what the direct kernels read.
pub(crate) fn dense_f32(t: &FlexTensor) -> bool {
    t.dtype() == burn::tensor::DType::F32 && t.is_contiguous() && t.layout().start_offset() == 0
}
