//! The only crate that draws: colour maps, heatmap overlays on the model's view of the image, and
//! titled montages, encoded as PNG. It knows pixels, not models.

mod canvas;
mod categorical;
mod colormap;
mod plot;
mod xy_plot;

pub use canvas::{Canvas, Panel, montage};
pub use categorical::categorical_map;
pub use colormap::Colormap;
pub use plot::{Series, line_plot};
pub use xy_plot::{XySeries, xy_plot};
