//! The seeds' remaining pictures through the CLI: occlusion's strongest feature map with its
//! deconvnet projection, graphcut-loc's thresholded saliency, positive-gradient saliency and
//! counterfactual Grad-CAM.

mod common;

use common::{fails, ok, read_f32, tmp};
use std::path::PathBuf;

#[test]
fn occlusion_graphcut_and_positive_saliency_write_their_pictures() {
    let sample = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples/dog.jpg");
    let out = tmp("seed-pictures");
    let json = ok(&[
        "explain",
        sample.to_str().unwrap(),
        "--method",
        "occlusion,graphcut-loc,saliency,gradcam-counterfactual",
        "--occlusion-stride",
        "64",
        "--feature-layer",
        "_blocks.10",
        "--gradient-sign",
        "positive",
        "--raw",
        "--json",
        "--out",
        out.to_str().unwrap(),
    ]);
    for f in [
        "dog.occlusion.feature.png",
        "dog.occlusion.projection.png",
        "dog.graphcut-loc.seeds.png",
        "dog.gradcam-counterfactual.png",
    ] {
        assert!(out.join(f).is_file(), "{f} missing: {json}");
    }
    let (shape, projection) = read_f32(&out.join("dog.maps.safetensors"), "occlusion.projection");
    assert_eq!(shape, [3, 224, 224]);
    assert!(projection.iter().any(|&v| v != 0.0));
    let (_, seeds) = read_f32(&out.join("dog.maps.safetensors"), "graphcut-loc.seeds");
    assert!(seeds.iter().all(|&v| v == 0.0 || v == 1.0 || v == 2.0));
    let (_, saliency) = read_f32(&out.join("dog.maps.safetensors"), "saliency");
    assert!(saliency.iter().all(|&v| v >= 0.0));
    let err = fails(&[
        "explain",
        sample.to_str().unwrap(),
        "--method",
        "gradcam",
        "--gradient-sign",
        "positive",
    ]);
    assert!(
        err.contains("--gradient-sign applies to the saliency and smoothgrad"),
        "{err}"
    );
    let err = fails(&[
        "explain",
        sample.to_str().unwrap(),
        "--method",
        "gradcam",
        "--feature-layer",
        "features",
    ]);
    assert!(
        err.contains("--feature-layer applies to the occlusion method"),
        "{err}"
    );
    let doc = ok(&["methods", "--explain", "gradcam-counterfactual"]);
    assert!(
        doc.contains("min(0, x)") && doc.contains("Counterfactual"),
        "{doc}"
    );
}
