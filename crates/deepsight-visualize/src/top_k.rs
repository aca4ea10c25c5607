//! The images that drive each feature map hardest, kept while a dataset streams past.
//!
//! # Computes
//! For every channel of one layer, the `k` images whose activation map reaches the highest value,
//! each with that value and the position where it is reached. One location per image: an image
//! enters a channel's list at most once, at its spatial argmax, so one textured photo cannot fill
//! all nine slots with neighbouring positions.
//!
//! # Equation
//! For image `n` and channel `c`, `v(n, c) = max_ij A(n, c, i, j)` at `(i*, j*)` (the first such
//! position in row-major order); channel `c` keeps the `k` largest `v(n, c)` over the images seen,
//! sorted descending, ties to the smaller image index.
//!
//! # Paper
//! Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks*, ECCV 2014, Fig. 2
//! ("the top 9 activations in a random subset of feature maps across the validation data"); the
//! per-image argmax and the top-N list follow the deep-visualization-toolbox's
//! `find_maxes/max_tracker.py` (`MaxTracker.update`), which the authors' group released.
//!
//! # Deviations
//! `max_tracker.py` keeps the top-N over all `(image, location)` pairs only for fully connected
//! layers and one argmax per image for convolutional ones, as here; it breaks ties by arrival
//! order, here by image index, so the result does not depend on how images were batched. Values
//! that are NaN are skipped. Memory is `channels x k` hits, whatever the dataset's size.

use crate::error::{Result, invalid};

/// One kept activation: which image, how strong, where in the layer's map.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct Hit {
    /// The index the image was pushed with.
    pub image: usize,
    pub value: f32,
    pub row: usize,
    pub col: usize,
}

/// The streaming top-`k` per channel.
#[derive(Debug, Clone)]
pub struct TopK {
    k: usize,
    hits: Vec<Vec<Hit>>,
}

/// Whether `a` ranks above `b`: larger value, then earlier image.
fn beats(a: &Hit, b: &Hit) -> bool {
    a.value > b.value || (a.value == b.value && a.image < b.image)
}

impl TopK {
    /// An empty tracker for a layer of `channels` channels, keeping `k` images per channel.
    pub fn new(channels: usize, k: usize) -> Result<TopK> {
        if channels == 0 || k == 0 {
            return Err(invalid(
                "top-k",
                format!("needs at least one channel and k >= 1 (got {channels} channels, k = {k})"),
            ));
        }
        Ok(TopK {
            k,
            hits: vec![Vec::with_capacity(k + 1); channels],
        })
    }

    pub fn k(&self) -> usize {
        self.k
    }

    pub fn channels(&self) -> usize {
        self.hits.len()
    }

    /// Adds a batch of activations `values` (`[N, K, h, w]` row-major, `dims` = `[N, K, h, w]`)
    /// of the images `images` (`N` indices, as the hits will report them).
    pub fn push_batch(&mut self, values: &[f32], dims: [usize; 4], images: &[usize]) -> Result<()> {
        let [n, k, h, w] = dims;
        if k != self.hits.len() || n != images.len() || values.len() != n * k * h * w || h * w == 0 {
            return Err(invalid(
                "top-k",
                format!(
                    "a batch of {} values as {dims:?} for {} images does not fit a tracker of {} channels",
                    values.len(),
                    images.len(),
                    self.hits.len()
                ),
            ));
        }
        for (b, &image) in images.iter().enumerate() {
            for (c, list) in self.hits.iter_mut().enumerate() {
                let plane = &values[(b * k + c) * h * w..][..h * w];
                let mut best: Option<usize> = None;
                for (p, &v) in plane.iter().enumerate() {
                    if !v.is_nan() && best.is_none_or(|q| v > plane[q]) {
                        best = Some(p);
                    }
                }
                let Some(p) = best else { continue };
                let hit = Hit {
                    image,
                    value: plane[p],
                    row: p / w,
                    col: p % w,
                };
                if list.len() == self.k && !beats(&hit, &list[self.k - 1]) {
                    continue;
                }
                let at = list.iter().position(|h| beats(&hit, h)).unwrap_or(list.len());
                list.insert(at, hit);
                list.truncate(self.k);
            }
        }
        Ok(())
    }

    /// Channel `channel`'s hits, strongest first (fewer than `k` while fewer images were seen).
    pub fn entries(&self, channel: usize) -> &[Hit] {
        self.hits.get(channel).map_or(&[], |l| l.as_slice())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_strongest_images_with_their_argmax() {
        // 5 images, 2 channels, 2x2 maps; channel 0's maxima 3, 7, 5, 7, 1 (image 3 ties image 1
        // and ranks after it), channel 1 constant per image (argmax at [0, 0]).
        let maxima0 = [3.0, 7.0, 5.0, 7.0, 1.0];
        let at = [[0, 1], [1, 1], [1, 0], [0, 0], [1, 1]];
        let mut values = Vec::new();
        for i in 0..5 {
            let mut plane = [0.0f32; 4];
            plane[at[i][0] * 2 + at[i][1]] = maxima0[i];
            values.extend(plane);
            values.extend([-(i as f32); 4]);
        }
        let mut top = TopK::new(2, 3).unwrap();
        // Pushed in two batches out of order: the result must not depend on it.
        top.push_batch(&values[24..], [2, 2, 2, 2], &[3, 4]).unwrap();
        top.push_batch(&values[..24], [3, 2, 2, 2], &[0, 1, 2]).unwrap();
        let got: Vec<(usize, f32, usize, usize)> = top
            .entries(0)
            .iter()
            .map(|h| (h.image, h.value, h.row, h.col))
            .collect();
        assert_eq!(got, vec![(1, 7.0, 1, 1), (3, 7.0, 0, 0), (2, 5.0, 1, 0)]);
        let got: Vec<(usize, f32, usize, usize)> = top
            .entries(1)
            .iter()
            .map(|h| (h.image, h.value, h.row, h.col))
            .collect();
        assert_eq!(got, vec![(0, 0.0, 0, 0), (1, -1.0, 0, 0), (2, -2.0, 0, 0)]);
        assert!(top.entries(2).is_empty());
    }

    #[test]
    fn fewer_images_than_k_and_nan_maps() {
        let mut top = TopK::new(1, 9).unwrap();
        top.push_batch(&[f32::NAN, 2.0, f32::NAN, f32::NAN], [2, 1, 1, 2], &[0, 1])
            .unwrap();
        assert_eq!(
            top.entries(0),
            &[Hit {
                image: 0,
                value: 2.0,
                row: 0,
                col: 1
            }]
        );
    }

    #[test]
    fn mismatched_batches_are_refused() {
        assert!(TopK::new(0, 9).is_err());
        assert!(TopK::new(3, 0).is_err());
        let mut top = TopK::new(2, 1).unwrap();
        assert!(top.push_batch(&[0.0; 8], [1, 2, 2, 2], &[0, 1]).is_err());
        assert!(top.push_batch(&[0.0; 8], [1, 4, 1, 2], &[0]).is_err());
    }
}
