//! A convolution's filters and one image's feature maps, as image grids.
//!
//! # Computes
//! [`filter_grid`]: every filter of a convolution as a small picture, min-max scaled on its own
//! and enlarged with nearest-neighbour sampling so that a 3x3 or 7x7 kernel stays visible: in
//! colour where the filter reads the three RGB channels, in grey where it reads one, otherwise
//! (deeper layers) the grey picture of the input channel the filter weighs most. Each filter's RMS
//! comes with it, since Zeiler & Fergus renormalise filters whose RMS exceeds 0.1 and read dead or
//! aliased first-layer filters off this picture. [`feature_maps`] and [`maps_grid`]: the
//! activations of one layer for one image, one heatmap per channel.
//!
//! # Equation
//! Filter `f` of weights `W_f` (`[in, kh, kw]`): pixel `(W_f - min W_f) / (max W_f - min W_f)`,
//! mid grey where `W_f` is constant; `rms_f = sqrt(mean(W_f^2))`. Maps: `A_c` scaled by
//! `(A_c - m) / (M - m)` with `m, M` the layer's (or the channel's) minimum and maximum.
//!
//! # Paper
//! Zeiler & Fergus, *Visualizing and Understanding Convolutional Networks*, ECCV 2014, section
//! 4.1 and Fig. 6 (first-layer filters of AlexNet, 11x11 stride 4, against their 7x7 stride 2:
//! aliasing and dead filters), section 3 (the RMS renormalisation at 0.1); Fig. 1's feature maps.
//!
//! # Deviations
//! The weights are drawn as stored: a BatchNorm that follows the convolution (Lite0) rescales
//! each filter by a positive or negative factor that the per-filter min-max scaling hides except
//! for its sign. Filters of layers reading neither 1 nor 3 channels are shown through one input
//! channel only.

use crate::error::{Result, invalid};
use deepsight_render::{Canvas, Colormap};
use deepsight_runtime::{Graph, LayeredClassifier, Op, Tensor, to_vec};

/// The RMS above which Zeiler & Fergus renormalise a filter.
pub const ZF_RMS_LIMIT: f32 = 0.1;

/// The first convolution of a graph, in execution order.
pub fn first_conv(graph: &Graph) -> Option<&str> {
    graph
        .nodes()
        .iter()
        .find(|n| matches!(n.op, Op::Conv2d(_)))
        .map(|n| n.name.as_str())
}

/// A convolution layer's weights, `[out, in / groups, kh, kw]` row-major, and those dims.
pub fn conv_weights(graph: &Graph, layer: &str) -> Result<(Vec<f32>, [usize; 4])> {
    let node = &graph.nodes()[graph.find(layer)?];
    match &node.op {
        Op::Conv2d(c) => Ok((to_vec(c.weight.clone()), c.dims())),
        other => Err(invalid(
            "filters",
            format!("layer '{layer}' is a {}, not a convolution", other.kind()),
        )),
    }
}

/// Each filter's root mean square weight.
pub fn filter_rms(weights: &[f32], dims: [usize; 4]) -> Vec<f32> {
    let per = dims[1] * dims[2] * dims[3];
    weights
        .chunks(per.max(1))
        .map(|f| (f.iter().map(|w| (*w as f64).powi(2)).sum::<f64>() / per as f64).sqrt() as f32)
        .collect()
}

/// How [`filter_grid`] lays the filters out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FilterStyle {
    /// Screen pixels per weight; `None`: enough for a filter to be at least 32 pixels wide.
    pub scale: Option<usize>,
    /// Filters per row; `None`: a near-square grid.
    pub columns: Option<usize>,
}

/// The filters of a convolution (`weights` as [`conv_weights`] gives them) as one picture.
pub fn filter_grid(weights: &[f32], dims: [usize; 4], style: FilterStyle) -> Result<Canvas> {
    let [out, inputs, kh, kw] = dims;
    if out == 0 || inputs == 0 || kh == 0 || kw == 0 || weights.len() != out * inputs * kh * kw {
        return Err(invalid(
            "filters",
            format!("{} weights do not make filters of {dims:?}", weights.len()),
        ));
    }
    let scale = style.scale.unwrap_or_else(|| 32usize.div_ceil(kh.max(kw))).max(1);
    let columns = style
        .columns
        .unwrap_or_else(|| (out as f64).sqrt().ceil() as usize)
        .clamp(1, out);
    let rows = out.div_ceil(columns);
    let (tw, th, gap) = (kw * scale, kh * scale, 2);
    let mut canvas = Canvas::new(
        gap + columns * (tw + gap),
        gap + rows * (th + gap),
        [255, 255, 255],
    );
    let plane = kh * kw;
    for (f, w) in weights.chunks(inputs * plane).enumerate() {
        let shown: Vec<&[f32]> = if inputs == 3 {
            w.chunks(plane).collect()
        } else {
            let strongest = (0..inputs)
                .map(|c| w[c * plane..(c + 1) * plane].iter().map(|v| v * v).sum::<f32>())
                .enumerate()
                .fold((0, f32::MIN), |b, (c, n)| if n > b.1 { (c, n) } else { b })
                .0;
            vec![&w[strongest * plane..(strongest + 1) * plane]; 3]
        };
        let all = shown.iter().flat_map(|p| p.iter());
        let (lo, hi) = all.fold((f32::MAX, f32::MIN), |(l, h), v| (l.min(*v), h.max(*v)));
        let to8 = |v: f32| {
            if hi > lo {
                ((v - lo) / (hi - lo) * 255.0).round() as u8
            } else {
                128
            }
        };
        let mut tile = Canvas::new(tw, th, [0, 0, 0]);
        for y in 0..th {
            for x in 0..tw {
                let at = (y / scale) * kw + x / scale;
                let i = (y * tw + x) * 3;
                for (c, p) in shown.iter().enumerate() {
                    tile.pixels[i + c] = to8(p[at]);
                }
            }
        }
        canvas.paste(
            &tile,
            gap + (f % columns) * (tw + gap),
            gap + (f / columns) * (th + gap),
        );
    }
    Ok(canvas)
}

/// One image's activations of one layer.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureMaps {
    pub layer: String,
    /// `[channels, height, width]`.
    pub shape: [usize; 3],
    /// `[channels, height, width]` row-major.
    pub values: Vec<f32>,
}

impl FeatureMaps {
    /// Each channel's largest activation.
    pub fn peaks(&self) -> Vec<f32> {
        let [_, h, w] = self.shape;
        self.values
            .chunks((h * w).max(1))
            .map(|c| c.iter().copied().fold(f32::MIN, f32::max))
            .collect()
    }
}

/// The activations of `layer` for `image` (`[1, C, H, W]`, preprocessed).
pub fn feature_maps(model: &dyn LayeredClassifier, image: Tensor<4>, layer: &str) -> Result<FeatureMaps> {
    if image.dims()[0] != 1 {
        return Err(invalid("feature maps", "one image at a time"));
    }
    let cap = model.capture(image, &[layer], false)?;
    let act = cap.activations[layer].clone();
    let [_, c, h, w] = act.dims();
    Ok(FeatureMaps {
        layer: layer.to_string(),
        shape: [c, h, w],
        values: to_vec(act),
    })
}

/// What one heatmap's colours span.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MapScale {
    /// The layer's minimum to maximum, so that weak channels look weak.
    #[default]
    Layer,
    /// Each channel's own minimum to maximum.
    Channel,
}

/// The maps as heatmaps in a near-square grid, each enlarged (nearest) to at least `min_side`
/// pixels.
pub fn maps_grid(maps: &FeatureMaps, scale: MapScale, cmap: Colormap, min_side: usize) -> Canvas {
    let [c, h, w] = maps.shape;
    let zoom = min_side.div_ceil(h.max(w).max(1)).max(1);
    let (tw, th, gap) = (w * zoom, h * zoom, 2);
    let columns = ((c as f64).sqrt().ceil() as usize).max(1);
    let rows = c.div_ceil(columns).max(1);
    let mut canvas = Canvas::new(
        gap + columns * (tw + gap),
        gap + rows * (th + gap),
        [255, 255, 255],
    );
    let range = |v: &[f32]| {
        v.iter()
            .fold((f32::MAX, f32::MIN), |(l, u), x| (l.min(*x), u.max(*x)))
    };
    let layer = range(&maps.values);
    for (ch, plane) in maps.values.chunks((h * w).max(1)).enumerate() {
        let (lo, hi) = match scale {
            MapScale::Layer => layer,
            MapScale::Channel => range(plane),
        };
        let t = |v: f32| if hi > lo { (v - lo) / (hi - lo) } else { 0.0 };
        let mut tile = Canvas::new(tw, th, [0, 0, 0]);
        for y in 0..th {
            for x in 0..tw {
                let i = (y * tw + x) * 3;
                tile.pixels[i..i + 3].copy_from_slice(&cmap.rgb(t(plane[(y / zoom) * w + x / zoom])));
            }
        }
        canvas.paste(
            &tile,
            gap + (ch % columns) * (tw + gap),
            gap + (ch / columns) * (th + gap),
        );
    }
    canvas
}

#[cfg(test)]
mod tests {
    use super::*;

    fn px(c: &Canvas, x: usize, y: usize) -> [u8; 3] {
        let i = (y * c.width + x) * 3;
        [c.pixels[i], c.pixels[i + 1], c.pixels[i + 2]]
    }

    #[test]
    fn rgb_filters_are_min_max_scaled_and_enlarged() {
        // Two 2x2 RGB filters: the first red where 1, the second constant.
        let mut w = vec![0.0f32; 2 * 3 * 4];
        w[0] = 1.0; // red, top left
        w[4 + 3] = 0.5; // green, bottom right
        w[12..].fill(0.2);
        let c = filter_grid(
            &w,
            [2, 3, 2, 2],
            FilterStyle {
                scale: Some(4),
                columns: Some(2),
            },
        )
        .unwrap();
        // 2 tiles of 8x8 with 2-pixel gaps.
        assert_eq!((c.width, c.height), (2 + 2 * 10, 2 + 10));
        assert_eq!(px(&c, 2, 2), [255, 0, 0]);
        assert_eq!(px(&c, 6, 2), [0, 0, 0]);
        assert_eq!(px(&c, 9, 9), [0, 128, 0]);
        assert_eq!(px(&c, 12, 2), [128, 128, 128]);
        assert_eq!(px(&c, 0, 0), [255, 255, 255]);
        let rms = filter_rms(&w, [2, 3, 2, 2]);
        assert!((rms[0] - (1.25f32 / 12.0).sqrt()).abs() < 1e-6);
        assert!((rms[1] - 0.2).abs() < 1e-6);
        assert!(filter_grid(&w, [2, 3, 2, 3], FilterStyle::default()).is_err());
    }

    #[test]
    fn other_filters_are_grey_through_their_strongest_input() {
        // One 1x2 filter over 2 inputs: input 1 is stronger, [-1, 3].
        let c = filter_grid(
            &[0.1, 0.0, -1.0, 3.0],
            [1, 2, 1, 2],
            FilterStyle {
                scale: Some(1),
                columns: None,
            },
        )
        .unwrap();
        assert_eq!((px(&c, 2, 2), px(&c, 3, 2)), ([0; 3], [255; 3]));
    }

    #[test]
    fn maps_share_the_layer_scale_or_use_their_own() {
        let maps = FeatureMaps {
            layer: "x".into(),
            shape: [2, 1, 2],
            values: vec![0.0, 4.0, 1.0, 2.0],
        };
        assert_eq!(maps.peaks(), vec![4.0, 2.0]);
        let grey = Colormap::Viridis;
        // 1x2 maps enlarged to 4 pixels per value; tiles 8x4 in 2 columns.
        let c = maps_grid(&maps, MapScale::Layer, grey, 8);
        assert_eq!((c.width, c.height), (2 + 2 * 10, 2 + 6));
        assert_eq!(px(&c, 2, 2), grey.rgb(0.0));
        assert_eq!(px(&c, 9, 2), grey.rgb(1.0));
        assert_eq!(px(&c, 12, 2), grey.rgb(0.25));
        assert_eq!(px(&c, 19, 5), grey.rgb(0.5));
        let c = maps_grid(&maps, MapScale::Channel, grey, 8);
        assert_eq!((px(&c, 12, 2), px(&c, 19, 5)), (grey.rgb(0.0), grey.rgb(1.0)));
    }
}
