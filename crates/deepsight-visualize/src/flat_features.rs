//! Batched forward passes that return every image's chosen layers as flat feature vectors, for
//! the analyses that compare whole feature vectors (invariance, correspondence).

use crate::error::{Result, invalid};
use deepsight_models::Preprocess;
use deepsight_runtime::{LayeredClassifier, RuntimeError, Tensor, TensorData, to_vec};

/// Refuses layer names the model does not have, with the runtime's own message and hint.
pub(crate) fn check_layers(model: &dyn LayeredClassifier, layers: &[String]) -> Result<()> {
    if layers.is_empty() {
        return Err(invalid("layers", "no layer to compare"));
    }
    let known = model.layers();
    for name in layers {
        if !known.iter().any(|l| &l.name == name) {
            let hint = known
                .iter()
                .rev()
                .take(3)
                .map(|l| l.name.clone())
                .collect::<Vec<_>>()
                .join(", ");
            return Err(RuntimeError::UnknownLayer {
                name: name.clone(),
                hint,
            }
            .into());
        }
    }
    Ok(())
}

/// The model's input `[channels, height, width]`, refusing models that do not take RGB images.
pub(crate) fn rgb_input(model: &dyn LayeredClassifier) -> Result<[usize; 2]> {
    match model.layers().first().map(|l| l.shape.clone()).as_deref() {
        Some([_, 3, h, w]) => Ok([*h, *w]),
        Some(s) => Err(invalid(
            "model",
            format!("its input {s:?} is not a 3-channel image"),
        )),
        None => Err(invalid("model", "it has no layers")),
    }
}

/// The model's RGB input size, refusing a `pipeline` that makes images of another size.
pub(crate) fn checked_input(model: &dyn LayeredClassifier, pipeline: &Preprocess) -> Result<[usize; 2]> {
    let size = rgb_input(model)?;
    if pipeline.size() != size {
        return Err(invalid(
            "preprocessing",
            format!(
                "the pipeline makes {:?} images, the model takes {size:?}",
                pipeline.size()
            ),
        ));
    }
    Ok(size)
}

/// `layers`, or `default`'s where none are named, refusing names the model does not have.
pub(crate) fn chosen_layers(
    model: &dyn LayeredClassifier,
    layers: &[String],
    default: fn(&dyn LayeredClassifier) -> Result<Vec<String>>,
) -> Result<Vec<String>> {
    let layers = if layers.is_empty() {
        default(model)?
    } else {
        layers.to_vec()
    };
    check_layers(model, &layers)?;
    Ok(layers)
}

/// One image's outputs: softmax probabilities and each requested layer flattened (C*H*W, in the
/// activation's row-major order).
pub(crate) struct FlatOutput {
    pub probabilities: Vec<f32>,
    pub features: Vec<Vec<f32>>,
}

/// Runs `inputs` (normalised `[3, H, W]` images of the model's size) in batches of `batch` and
/// hands each image's outputs to `each` in order, so that callers keep only what they need
/// (a distance, a sign vector) rather than every activation of a sweep.
pub(crate) fn forward_flat(
    model: &dyn LayeredClassifier,
    inputs: &[Vec<f32>],
    size: [usize; 2],
    layers: &[String],
    batch: usize,
    mut each: impl FnMut(usize, FlatOutput) -> Result<()>,
) -> Result<()> {
    let [h, w] = size;
    let per = 3 * h * w;
    if let Some(bad) = inputs.iter().position(|x| x.len() != per) {
        return Err(invalid(
            "images",
            format!(
                "image {bad} has {} values, the model takes 3x{h}x{w}",
                inputs[bad].len()
            ),
        ));
    }
    let names: Vec<&str> = layers.iter().map(String::as_str).collect();
    let device = model.device();
    let mut index = 0;
    for chunk in inputs.chunks(batch.max(1)) {
        let n = chunk.len();
        let data: Vec<f32> = chunk.iter().flatten().copied().collect();
        let images = Tensor::<4>::from_data(TensorData::new(data, [n, 3, h, w]), &device);
        let capture = model.capture(images, &names, false)?;
        let logits = to_vec(capture.logits);
        let classes = logits.len() / n;
        let mut per_layer = Vec::with_capacity(layers.len());
        for name in layers {
            let act = capture
                .activations
                .get(name)
                .cloned()
                .ok_or_else(|| invalid("layers", format!("the model did not return layer '{name}'")))?;
            per_layer.push(to_vec(act));
        }
        for i in 0..n {
            let features = per_layer
                .iter()
                .map(|v| {
                    let d = v.len() / n;
                    v[i * d..(i + 1) * d].to_vec()
                })
                .collect();
            each(
                index,
                FlatOutput {
                    probabilities: softmax(&logits[i * classes..(i + 1) * classes]),
                    features,
                },
            )?;
            index += 1;
        }
    }
    Ok(())
}

pub(crate) use deepsight_explain::softmax;
