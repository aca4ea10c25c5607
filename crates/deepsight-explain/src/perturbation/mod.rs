//! Perturbation methods: no gradients, many forward passes, made fast by doing less work
//! (incremental inference for occlusion, shared masks for RISE, skipped channels for Score-CAM).

pub mod ablation_cam;
pub mod occlusion;
pub mod rise;
pub mod score_cam;
