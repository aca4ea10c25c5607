//! Batches decoded and augmented on a background thread while the training step runs, in a
//! seeded order; a bounded queue keeps at most two batches ahead.

use crate::augment::Augmentation;
use crate::error::{Result, TrainError};
use crate::rng::{generator, mix};
use deepsight_models::preprocess::{Preprocess, load_rgb};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, sync_channel};

/// One batch: images `[B, 3, H, W]` in `[0, 1]`, row-major, and each image's labels (one or more).
pub struct Batch {
    pub images01: Vec<f32>,
    pub dims: [usize; 4],
    pub labels: Vec<Vec<usize>>,
}

/// What a loader needs to make batches.
#[derive(Clone)]
pub struct Source {
    pub paths: Arc<Vec<PathBuf>>,
    pub labels: Arc<Vec<Vec<usize>>>,
    pub eval: Preprocess,
}

/// The batches of `order` (indices into `source`) in chunks of `batch_size`; image `i` of epoch
/// `epoch` is augmented with a generator seeded by `(seed, epoch, i)`.
pub fn batches(
    source: Source,
    order: Vec<usize>,
    batch_size: usize,
    augmentation: Augmentation,
    seed: u64,
    epoch: u64,
) -> Receiver<Result<Batch>> {
    let (tx, rx) = sync_channel(2);
    std::thread::spawn(move || {
        for chunk in order.chunks(batch_size) {
            let batch = make_batch(&source, chunk, augmentation, seed, epoch);
            if tx.send(batch).is_err() {
                return;
            }
        }
    });
    rx
}

fn make_batch(
    source: &Source,
    chunk: &[usize],
    augmentation: Augmentation,
    seed: u64,
    epoch: u64,
) -> Result<Batch> {
    let [h, w] = source.eval.size();
    let mut images01 = Vec::with_capacity(chunk.len() * 3 * h * w);
    for &i in chunk {
        let path = &source.paths[i];
        let img = load_rgb(path)?;
        let mut rng = generator(mix(&[seed, epoch, i as u64]));
        let planes = augmentation.apply(&img, &source.eval, &mut rng)?;
        if planes.len() != 3 * h * w {
            return Err(TrainError::Data {
                path: path.clone(),
                reason: format!("augmented to {} values, expected 3x{h}x{w}", planes.len()),
            });
        }
        images01.extend(planes);
    }
    Ok(Batch {
        images01,
        dims: [chunk.len(), 3, h, w],
        labels: chunk.iter().map(|&i| source.labels[i].clone()).collect(),
    })
}
