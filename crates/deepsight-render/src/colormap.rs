//! Colour maps: jet (the papers' figures), turbo and viridis (perceptually ordered), and a
//! diverging blue-white-red map for signed attributions.

/// A colour map from a value to RGB.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Colormap {
    /// MATLAB/matplotlib jet, as in the Grad-CAM and Simonyan figures.
    #[default]
    Jet,
    /// Google's Turbo (an improved rainbow).
    Turbo,
    /// matplotlib's viridis (perceptually uniform).
    Viridis,
    /// Blue (-1) - white (0) - red (+1), for signed maps.
    Diverging,
}

impl Colormap {
    /// Every map with its CLI name.
    pub const ALL: [(Colormap, &'static str); 4] = [
        (Colormap::Jet, "jet"),
        (Colormap::Turbo, "turbo"),
        (Colormap::Viridis, "viridis"),
        (Colormap::Diverging, "diverging"),
    ];

    pub fn from_name(name: &str) -> Option<Colormap> {
        Colormap::ALL.iter().find(|(_, n)| *n == name).map(|(c, _)| *c)
    }

    /// The colour of `t`: in `[0, 1]` for sequential maps, in `[-1, 1]` for the diverging one
    /// (values outside are clamped).
    pub fn rgb(self, t: f32) -> [u8; 3] {
        let to8 = |v: f32| (v.clamp(0.0, 1.0) * 255.0).round() as u8;
        let t = if t.is_nan() { 0.0 } else { t };
        match self {
            Colormap::Jet => {
                let t = t.clamp(0.0, 1.0);
                let ramp = |c: f32| (1.5 - (4.0 * t - c).abs()).clamp(0.0, 1.0);
                [to8(ramp(3.0)), to8(ramp(2.0)), to8(ramp(1.0))]
            }
            Colormap::Turbo => {
                let x = t.clamp(0.0, 1.0) as f64;
                let poly = |c: [f64; 6]| c[0] + x * (c[1] + x * (c[2] + x * (c[3] + x * (c[4] + x * c[5]))));
                let r = poly([
                    0.13572138,
                    4.61539260,
                    -42.66032258,
                    132.13108234,
                    -152.94239396,
                    59.28637943,
                ]);
                let g = poly([
                    0.09140261,
                    2.19418839,
                    4.84296658,
                    -14.18503333,
                    4.27729857,
                    2.82956604,
                ]);
                let b = poly([
                    0.10667330,
                    12.64194608,
                    -60.58204836,
                    110.36276771,
                    -89.90310912,
                    27.34824973,
                ]);
                [to8(r as f32), to8(g as f32), to8(b as f32)]
            }
            Colormap::Viridis => {
                const STOPS: [[f32; 3]; 9] = [
                    [0.267, 0.005, 0.329],
                    [0.283, 0.141, 0.458],
                    [0.254, 0.265, 0.530],
                    [0.207, 0.372, 0.553],
                    [0.164, 0.471, 0.558],
                    [0.128, 0.567, 0.551],
                    [0.135, 0.659, 0.518],
                    [0.267, 0.749, 0.441],
                    [0.993, 0.906, 0.144],
                ];
                let x = t.clamp(0.0, 1.0) * 8.0;
                let i = (x.floor() as usize).min(7);
                let f = x - i as f32;
                let c = |k: usize| STOPS[i][k] * (1.0 - f) + STOPS[i + 1][k] * f;
                [to8(c(0)), to8(c(1)), to8(c(2))]
            }
            Colormap::Diverging => {
                let t = t.clamp(-1.0, 1.0);
                if t >= 0.0 {
                    [255, to8(1.0 - t * 0.85), to8(1.0 - t * 0.85)]
                } else {
                    [to8(1.0 + t * 0.85), to8(1.0 + t * 0.6), 255]
                }
            }
        }
    }
}
