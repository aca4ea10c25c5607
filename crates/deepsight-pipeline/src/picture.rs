//! How a map is drawn over the image it explains: a diverging colour map for signed maps (near-zero
//! attribution transparent), the chosen colour map for unsigned ones. The heat layer is kept apart
//! from the overlay, so that a page can lay it over the image and change the opacity itself.

use deepsight_explain::{Map, Normalisation};
use deepsight_render::{Canvas, Colormap};

/// A map's colours at the image's size and each pixel's opacity (1 for unsigned maps).
#[derive(Debug, Clone)]
pub struct Heat {
    pub colours: Canvas,
    pub opacity: Vec<f32>,
    pub signed: bool,
}

impl Heat {
    /// The heat layer of `map`.
    pub fn of(map: &Map, signed: bool, cmap: Colormap) -> Heat {
        let values = display_values(map, signed);
        let colours = Canvas::heatmap(
            &values,
            map.width,
            map.height,
            if signed { Colormap::Diverging } else { cmap },
        );
        // Neutral (near-zero) attribution stays transparent; sqrt lifts the faint tails.
        let opacity = if signed {
            values.iter().map(|v| v.abs().sqrt()).collect()
        } else {
            vec![1.0; values.len()]
        };
        Heat {
            colours,
            opacity,
            signed,
        }
    }

    /// The page's opacity for overlay opacity `alpha`: signed maps are drawn stronger, since
    /// their per-pixel opacity already fades them.
    pub fn layer_alpha(signed: bool, alpha: f32) -> f32 {
        if signed { (alpha * 1.6).min(1.0) } else { alpha }
    }

    /// The layer drawn over `base` at overlay opacity `alpha`.
    pub fn over(&self, base: &Canvas, alpha: f32) -> Canvas {
        if self.signed {
            base.blend_weighted(&self.colours, Heat::layer_alpha(true, alpha), &self.opacity)
        } else {
            base.blend(&self.colours, alpha)
        }
    }

    /// PNG bytes of the layer alone, its opacity in the alpha channel.
    pub fn png(&self) -> Vec<u8> {
        self.colours.png_with_alpha(&self.opacity)
    }
}

/// One channel in 0..1 (unsigned: min-max of the max over channels) or -1..1 (signed: the sum
/// over channels scaled by its largest magnitude).
fn display_values(map: &Map, signed: bool) -> Vec<f32> {
    let plane = map.height * map.width;
    let one = if map.channels == 1 {
        map.clone()
    } else if signed {
        let data = (0..plane)
            .map(|p| (0..map.channels).map(|c| map.data[c * plane + p]).sum())
            .collect();
        Map {
            channels: 1,
            data,
            ..map.clone()
        }
    } else {
        map.max_abs_over_channels()
    };
    let how = if signed {
        Normalisation::MaxAbs
    } else {
        Normalisation::MinMax
    };
    one.normalise(how).data
}
