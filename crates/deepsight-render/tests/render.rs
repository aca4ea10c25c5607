//! Colour maps at their defining points, blending, text and montage geometry, PNG round trip.

use deepsight_render::{Canvas, Colormap, Panel, montage};

#[test]
fn colormaps_hit_their_defining_colours() {
    // jet: dark blue, cyan-ish, yellow-ish, dark red along 0 -> 1.
    assert_eq!(Colormap::Jet.rgb(0.0), [0, 0, 128]);
    assert_eq!(Colormap::Jet.rgb(1.0), [128, 0, 0]);
    assert_eq!(Colormap::Jet.rgb(0.5), [128, 255, 128]);
    // viridis: its published end points.
    assert_eq!(Colormap::Viridis.rgb(0.0), [68, 1, 84]);
    assert_eq!(Colormap::Viridis.rgb(1.0), [253, 231, 37]);
    // turbo: dark at 0, dark red at 1 (Google's polynomial).
    let [r, g, b] = Colormap::Turbo.rgb(0.0);
    assert!(r < 60 && g < 40 && b < 60, "{r} {g} {b}");
    let [r, g, b] = Colormap::Turbo.rgb(1.0);
    assert!(r > 100 && g < 40 && b < 40, "{r} {g} {b}");
    // diverging: white at 0, red for positive, blue for negative; clamped outside [-1, 1].
    assert_eq!(Colormap::Diverging.rgb(0.0), [255, 255, 255]);
    let [r, _, b] = Colormap::Diverging.rgb(1.0);
    assert!(r == 255 && b < 60);
    let [r, _, b] = Colormap::Diverging.rgb(-1.0);
    assert!(b == 255 && r < 60);
    assert_eq!(Colormap::Diverging.rgb(7.0), Colormap::Diverging.rgb(1.0));
    assert_eq!(Colormap::Jet.rgb(f32::NAN), Colormap::Jet.rgb(0.0));
    for (c, name) in Colormap::ALL {
        assert_eq!(Colormap::from_name(name), Some(c));
    }
}

#[test]
fn blending_mixes_by_alpha_and_by_weight() {
    let base = Canvas::new(2, 1, [0, 0, 0]);
    let heat = Canvas::new(2, 1, [200, 100, 50]);
    assert_eq!(base.blend(&heat, 0.5).pixels, [100, 50, 25, 100, 50, 25]);
    let w = base.blend_weighted(&heat, 1.0, &[0.0, 1.0]);
    assert_eq!(w.pixels, [0, 0, 0, 200, 100, 50]);
}

#[test]
fn montage_lays_out_titled_panels_and_encodes_png() {
    let panel = |v| Panel {
        canvas: Canvas::new(20, 10, [v, v, v]),
        title: vec!["gradcam".into(), "dog".into()],
    };
    let m = montage(&[panel(100), panel(150), panel(200)], 2);
    // 2 columns of 20 px with 8 px gaps; 2 rows of (10 px + 2 title lines of 12 px + 4) with gaps.
    assert_eq!((m.width, m.height), (2 * 28 + 8, 2 * (10 + 28 + 8) + 8));
    assert!(
        m.pixels.chunks(3).any(|p| p == [20, 20, 20]),
        "the title text is drawn"
    );
    let png = m.png();
    let back = image::load_from_memory(&png).unwrap().to_rgb8();
    assert_eq!(
        (back.width() as usize, back.height() as usize),
        (m.width, m.height)
    );
    assert_eq!(back.into_raw(), m.pixels);
}

#[test]
fn categorical_map_colours_cells_and_names_each_category() {
    use deepsight_render::categorical_map;
    // 2x2 grid: classes 7, 3 / 3, 7 scaled to 4x4, legend of two lines below.
    let c = categorical_map(&[7, 3, 3, 7], 2, 2, 4 * 8, 4 * 8, |g| format!("c{g}"));
    assert_eq!(c.width, 32);
    assert_eq!(c.height, 32 + 4 + 2 * 12);
    let px = |x: usize, y: usize| c.pixels[(y * c.width + x) * 3..][..3].to_vec();
    assert_eq!(px(0, 0), px(31, 31), "same class, same colour");
    assert_eq!(px(31, 0), px(0, 31));
    assert_ne!(px(0, 0), px(31, 0), "different classes, different colours");
    // The legend swatches carry the map's colours in order of first appearance.
    assert_eq!(px(2, 32 + 4 + 2), px(0, 0));
    assert_eq!(px(2, 32 + 4 + 12 + 2), px(31, 0));
}

#[test]
fn line_plot_draws_each_series_in_its_colour_inside_the_axes() {
    use deepsight_render::{Series, line_plot};
    let falling = Series {
        label: "gradcam".into(),
        values: vec![1.0, 0.5, 0.0],
    };
    let flat = Series {
        label: "saliency".into(),
        values: vec![0.5; 3],
    };
    let c = line_plot(&[falling, flat], "deletion", "fraction removed", "p", 1.0);
    assert_eq!((c.width, c.height), (640, 420));
    let px = |x: usize, y: usize| c.pixels[(y * c.width + x) * 3..][..3].to_vec();
    // Plot area: x 56..440, y 28..376. The flat series at y = 0.5 runs along the middle row.
    let mid = 28 + 348 / 2;
    assert_eq!(px(300, mid), vec![255, 127, 14], "second colour at y = 0.5");
    // The falling series starts top-left and ends bottom-right.
    assert_eq!(px(56, 28), vec![31, 119, 180]);
    assert_eq!(px(440, 376), vec![31, 119, 180]);
}
