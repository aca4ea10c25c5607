//! Feature evolution during training: the strongest activation of chosen feature maps at each
//! saved checkpoint, projected to pixels (Zeiler & Fergus fig. 4).
//!
//! # Computes
//! For each checkpoint (the same architecture at successive points of its training) and each
//! chosen channel of one layer: one streaming pass over a dataset finds the single image whose
//! map reaches the highest value ([`TopK`](crate::top_k::TopK) with `k = 1`, one location per
//! image), and the deconvnet projects that one activation back to the pixels of its receptive
//! field (the machinery of [`crate::top9`], run with `k = 1`). [`Evolution::figure`] draws the
//! paper's layout: one row per feature map, one column per checkpoint, each cell the projection
//! beside the image patch; [`Evolution::json`] lists which image won where, so the "jumps" the
//! paper describes (the winning image changes) can be read off.
//!
//! # Equation
//! At checkpoint `t`, channel `c`: `(n*, i*, j*) = argmax_{n, i, j} A^l_t(x_n)_{c,ij}`; the cell is
//! `R = d A^l_{t, c, i* j*} / d x` at `x_{n*}` under the deconvnet rule (rectifiers pass
//! `max(R, 0)` back, max pools route through the forward switches), cut to the receptive field.
//!
//! # Paper
//! Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks*, ECCV 2014, section 4.1
//! and fig. 4: "the strongest activation (across all training examples) within a given feature
//! map projected back to pixel space", at epochs 1, 2, 5, 10, 20, 30, 40, 64.
//!
//! # Deviations
//! The checkpoints are whatever the caller trained (`deepsight train zf` writes them at the
//! paper's epochs scaled to a shorter run); the dataset is whatever it passes (the training split
//! for the paper's "across all training examples"). The paper shows one reconstruction per cell;
//! the patch beside it is added (it shows which image won). Each projection is scaled on its own
//! (as [`crate::top9`] does): the figure compares patterns, not magnitudes, and the values in the
//! JSON carry the magnitudes.

use crate::error::{Result, invalid};
use crate::top_k::Hit;
use crate::top9::{self, Channels, ImageSource, Projected, Stage, Top9Options};
use deepsight_models::{Preprocess, RgbImage};
use deepsight_render::Canvas;
use deepsight_runtime::{GraphModel, RectifierRule};

/// Grey images (one byte per pixel, row-major, `count x height x width`), served as RGB with
/// equal channels: Fashion-MNIST and MNIST as the visualisations read them.
#[derive(Debug, Clone)]
pub struct GreyImages {
    pub pixels: Vec<u8>,
    pub size: [usize; 2],
}

impl GreyImages {
    /// Checks that `pixels` holds whole images of `size`.
    pub fn new(pixels: Vec<u8>, size: [usize; 2]) -> Result<Self> {
        let per = size[0] * size[1];
        if per == 0 || !pixels.len().is_multiple_of(per) {
            return Err(invalid(
                "images",
                format!(
                    "{} bytes are not whole {}x{} images",
                    pixels.len(),
                    size[0],
                    size[1]
                ),
            ));
        }
        Ok(GreyImages { pixels, size })
    }

    /// The first `n` images only.
    pub fn truncated(mut self, n: usize) -> Self {
        self.pixels.truncate(n * self.size[0] * self.size[1]);
        self
    }

    /// The grey bytes of image `index`.
    pub fn grey(&self, index: usize) -> &[u8] {
        let per = self.size[0] * self.size[1];
        &self.pixels[index * per..(index + 1) * per]
    }
}

impl ImageSource for GreyImages {
    fn len(&self) -> usize {
        self.pixels.len() / (self.size[0] * self.size[1]).max(1)
    }

    fn image(&self, index: usize) -> Result<RgbImage> {
        if index >= ImageSource::len(self) {
            return Err(invalid("images", format!("no image {index}")));
        }
        Ok(RgbImage {
            width: self.size[1],
            height: self.size[0],
            pixels: self.grey(index).iter().flat_map(|&g| [g, g, g]).collect(),
        })
    }
}

/// Options of [`evolution`].
#[derive(Debug, Clone, PartialEq)]
pub struct EvolutionOptions {
    pub layer: String,
    pub channels: Channels,
    /// Images per forward pass of each streaming pass.
    pub batch: usize,
    /// The paper's [`RectifierRule::Deconv`] by default.
    pub rule: RectifierRule,
}

/// One checkpoint's strongest activation of one channel, projected.
#[derive(Debug, Clone)]
pub struct Cell {
    pub hit: Hit,
    pub projected: Projected,
}

/// The result: `cells[t][i]` is checkpoint `t`, channel `channels[i]`.
#[derive(Debug, Clone)]
pub struct Evolution {
    pub layer: String,
    pub channels: Vec<usize>,
    pub labels: Vec<String>,
    pub images: usize,
    pub input_size: [usize; 2],
    pub cells: Vec<Vec<Cell>>,
}

/// Runs the analysis over `checkpoints` (label, model), in order; `progress(checkpoint, stage,
/// done, total)`.
pub fn evolution(
    checkpoints: &[(String, GraphModel)],
    pipeline: &Preprocess,
    images: &dyn ImageSource,
    options: &EvolutionOptions,
    progress: &mut dyn FnMut(usize, Stage, usize, usize),
) -> Result<Evolution> {
    if checkpoints.is_empty() {
        return Err(invalid("checkpoints", "none given"));
    }
    let mut cells = Vec::with_capacity(checkpoints.len());
    let mut channels = Vec::new();
    let mut input_size = [0, 0];
    for (t, (label, model)) in checkpoints.iter().enumerate() {
        let opts = Top9Options {
            layers: vec![options.layer.clone()],
            channels: options.channels.clone(),
            k: 1,
            batch: options.batch,
            rule: options.rule,
        };
        let top = top9::top9(model, pipeline, images, &opts, &mut |s, d, n| {
            progress(t, s, d, n)
        })
        .map_err(|e| invalid("checkpoint", format!("'{label}': {e}")))?;
        input_size = top.input_size;
        let layer = top
            .layers
            .into_iter()
            .next()
            .ok_or_else(|| invalid("layer", "no result"))?;
        let row: Vec<Cell> = layer
            .channels
            .iter()
            .map(|c| {
                let p = c.hits.first().cloned().ok_or_else(|| {
                    invalid(
                        "checkpoint",
                        format!("'{label}': channel {} has no hit", c.channel),
                    )
                })?;
                Ok(Cell {
                    hit: p.hit,
                    projected: p,
                })
            })
            .collect::<Result<_>>()?;
        let these: Vec<usize> = layer.channels.iter().map(|c| c.channel).collect();
        if t > 0 && these != channels {
            return Err(invalid(
                "checkpoints",
                format!("'{label}' resolves other channels than the first checkpoint"),
            ));
        }
        channels = these;
        cells.push(row);
    }
    Ok(Evolution {
        layer: options.layer.clone(),
        channels,
        labels: checkpoints.iter().map(|c| c.0.clone()).collect(),
        images: images.len(),
        input_size,
        cells,
    })
}

/// `c` enlarged by nearest neighbour (or shrunk by sampling) to fit `side x side`, centred on grey.
fn fit(c: &Canvas, side: usize) -> Canvas {
    let mut out = Canvas::new(side, side, [128, 128, 128]);
    let scale = side as f64 / c.width.max(c.height).max(1) as f64;
    let (w, h) = (
        ((c.width as f64 * scale).round() as usize).max(1),
        ((c.height as f64 * scale).round() as usize).max(1),
    );
    let (x0, y0) = ((side - w.min(side)) / 2, (side - h.min(side)) / 2);
    for y in 0..h.min(side) {
        for x in 0..w.min(side) {
            let sy = ((y as f64 / scale) as usize).min(c.height - 1);
            let sx = ((x as f64 / scale) as usize).min(c.width - 1);
            let s = (sy * c.width + sx) * 3;
            let d = ((y0 + y) * side + x0 + x) * 3;
            out.pixels[d..d + 3].copy_from_slice(&c.pixels[s..s + 3]);
        }
    }
    out
}

impl Evolution {
    /// Fig. 4's layout: a row per channel, a column per checkpoint (its label on top), each cell
    /// the projection (left) and the winning image's patch (right), `cell` pixels each.
    pub fn figure(&self, cell: usize) -> Canvas {
        let cell = cell.max(8);
        let (gap, col_gap, left, header) = (2, 8, 44, 30);
        let col_w = 2 * cell + gap;
        let width = left + self.labels.len() * (col_w + col_gap);
        let height = header + self.channels.len() * (cell + gap) + 6;
        let mut out = Canvas::new(width, height, [255, 255, 255]);
        out.text(
            4,
            4,
            &format!("{}: strongest activation per checkpoint", self.layer),
            1,
            [0, 0, 0],
        );
        for (t, label) in self.labels.iter().enumerate() {
            let x = left + t * (col_w + col_gap);
            out.text(x, 18, label, 1, [0, 0, 0]);
        }
        for (i, &ch) in self.channels.iter().enumerate() {
            let y = header + i * (cell + gap);
            out.text(2, y + cell / 2 - 4, &format!("c{ch}"), 1, [0, 0, 0]);
            for (t, row) in self.cells.iter().enumerate() {
                let x = left + t * (col_w + col_gap);
                let (proj, patch) = top9::hit_pictures(&row[i].projected, self.input_size);
                out.paste(&fit(&proj, cell), x, y);
                out.paste(&fit(&patch, cell), x + cell + gap, y);
            }
        }
        out
    }

    /// Every cell's winning image, value and position, per channel across the checkpoints.
    pub fn json(&self) -> serde_json::Value {
        let channels: Vec<serde_json::Value> = self
            .channels
            .iter()
            .enumerate()
            .map(|(i, &ch)| {
                let per: Vec<serde_json::Value> = self
                    .cells
                    .iter()
                    .zip(&self.labels)
                    .map(|(row, label)| {
                        let h = row[i].hit;
                        serde_json::json!({
                            "checkpoint": label, "image": h.image, "value": h.value,
                            "row": h.row, "col": h.col,
                            "outside_peak": row[i].projected.outside_peak,
                        })
                    })
                    .collect();
                let jumps = self
                    .cells
                    .windows(2)
                    .filter(|w| w[0][i].hit.image != w[1][i].hit.image)
                    .count();
                serde_json::json!({"channel": ch, "winner_changes": jumps, "checkpoints": per})
            })
            .collect();
        serde_json::json!({
            "layer": self.layer, "images": self.images, "checkpoints": self.labels,
            "channels": channels,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use deepsight_runtime::{Bounds, Conv2d, Device, Graph, Op, Padding, Pool, Tensor, TensorData};

    /// One 3x3 convolution channel that sums a grey patch (weights `w` on all three inputs),
    /// ReLU, a 2x2 max-pool, global average and a linear head: a "checkpoint" per `w`.
    fn net(w: f32, device: &Device) -> GraphModel {
        let mut g = Graph::new("input", 3);
        let conv = Conv2d {
            weight: Tensor::from_data(TensorData::new(vec![w; 27], [1, 3, 3, 3]), device),
            bias: None,
            stride: [1, 1],
            dilation: [1, 1],
            groups: 1,
            padding: Padding::symmetric(1),
        };
        let x = g.push("conv", Op::Conv2d(conv), &[0]).unwrap();
        let x = g.push("relu", Op::Rectifier(Bounds::RELU), &[x]).unwrap();
        let x = g.push("pool", Op::MaxPool(Pool::square(2, 2, 0)), &[x]).unwrap();
        let x = g.push("gap", Op::GlobalAvgPool, &[x]).unwrap();
        let fc = deepsight_runtime::Linear {
            weight: Tensor::from_data(TensorData::new(vec![1.0, -1.0], [2, 1]), device),
            bias: None,
        };
        g.push("fc", Op::Linear(fc), &[x]).unwrap();
        GraphModel::new(g, [8, 8], device.clone()).unwrap()
    }

    /// Image 0 is a bright square at the top left, image 1 a dimmer one at the bottom right,
    /// image 2 is dark: with positive weights image 0 wins at the top left, with negative weights
    /// (the map responds to darkness) the dark image 2 wins; the projection lies inside the
    /// receptive field.
    #[test]
    fn the_winner_follows_the_checkpoint() {
        let device = Device::default();
        let mut pixels = vec![0u8; 3 * 64];
        for y in 0..3 {
            for x in 0..3 {
                pixels[y * 8 + x] = 250;
                pixels[64 + (5 + y) * 8 + 5 + x] = 200;
            }
        }
        for p in &mut pixels[..128] {
            *p = (*p).max(100);
        }
        let images = GreyImages::new(pixels, [8, 8]).unwrap();
        let pipeline = Preprocess {
            resize: deepsight_models::preprocess::Resize::Exact {
                size: [8, 8],
                filter: deepsight_models::resample::Filter::Bilinear,
            },
            mean: [127.0; 3],
            std: [128.0; 3],
        };
        let checkpoints = vec![
            ("pos".to_string(), net(1.0, &device)),
            ("neg".to_string(), net(-1.0, &device)),
        ];
        let options = EvolutionOptions {
            layer: "relu".into(),
            channels: Channels::List(vec![0]),
            batch: 2,
            rule: RectifierRule::Deconv,
        };
        let e = evolution(&checkpoints, &pipeline, &images, &options, &mut |_, _, _, _| {}).unwrap();
        assert_eq!(e.cells[0][0].hit.image, 0);
        assert_eq!([e.cells[0][0].hit.row, e.cells[0][0].hit.col], [1, 1]);
        assert_eq!(e.cells[1][0].hit.image, 2);
        assert_eq!(e.cells[0][0].projected.outside_peak, 0.0);
        assert_eq!(e.json()["channels"][0]["winner_changes"], 1);
        let fig = e.figure(16);
        assert!(fig.width > 2 * 32 && fig.height > 16);
        assert!(evolution(&[], &pipeline, &images, &options, &mut |_, _, _, _| {}).is_err());
    }
}
