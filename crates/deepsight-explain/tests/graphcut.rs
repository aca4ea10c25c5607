//! Simonyan et al.'s weakly supervised localisation (`graphcut-loc`) and its parts: the
//! Boykov-Kolmogorov max-flow against brute force, the Gaussian mixtures, the GraphCut on synthetic
//! images with a known object, the input checks, and the method on the sample photo.

use deepsight_explain::localisation::gmm::Gmm;
use deepsight_explain::localisation::maxflow::Graph;
use deepsight_explain::localisation::{
    GraphCutLocalisation, GraphCutOptions, Seed, bounding_box, largest_component, localise, seed_labels,
};
use deepsight_explain::{ExplainError, Explainer, ExtraKind, Request, Score};
use deepsight_models::{Arch, ModelSource};
use deepsight_runtime::{Classifier, default_device, to_vec};
use std::path::PathBuf;
use std::time::Instant;

/// SplitMix64 with uniform and normal draws.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// A two-terminal network kept as lists, to build a [`Graph`] and to price cuts by brute force.
struct Network {
    n: usize,
    arcs: Vec<(usize, usize, f64)>,
    source: Vec<f64>,
    sink: Vec<f64>,
}

impl Network {
    fn graph(&self) -> Graph {
        let mut g = Graph::new(self.n, self.arcs.len());
        for &(u, v, c) in &self.arcs {
            g.add_edge(u, v, c, 0.0);
        }
        for u in 0..self.n {
            g.add_tweights(u, self.source[u], self.sink[u]);
        }
        g
    }

    /// The capacity of the cut whose source side is `s`.
    fn cut(&self, s: &[bool]) -> f64 {
        let t: f64 = (0..self.n)
            .map(|u| if s[u] { self.sink[u] } else { self.source[u] })
            .sum();
        t + self
            .arcs
            .iter()
            .filter(|&&(u, v, _)| s[u] && !s[v])
            .map(|a| a.2)
            .sum::<f64>()
    }

    /// Every one of the `2^n` cuts: the minimum capacity and the minimum cuts' source sides.
    fn brute_force(&self) -> (f64, Vec<Vec<bool>>) {
        let cuts: Vec<(f64, Vec<bool>)> = (0..1u32 << self.n)
            .map(|bits| {
                let s: Vec<bool> = (0..self.n).map(|u| bits >> u & 1 == 1).collect();
                (self.cut(&s), s)
            })
            .collect();
        let min = cuts.iter().map(|c| c.0).fold(f64::INFINITY, f64::min);
        let argmin = cuts
            .into_iter()
            .filter(|c| c.0 <= min + 1e-9)
            .map(|c| c.1)
            .collect();
        (min, argmin)
    }
}

fn random_network(rng: &mut Rng, integer: bool) -> Network {
    let n = 1 + rng.below(10) as usize;
    let cap = |rng: &mut Rng, max: u64| {
        if integer {
            rng.below(max + 1) as f64
        } else {
            rng.uniform() * max as f64
        }
    };
    let density = rng.uniform();
    let mut arcs = Vec::new();
    for u in 0..n {
        for v in 0..n {
            // Parallel arcs too, now and then.
            for _ in 0..1 + (rng.below(8) == 0) as usize {
                if u != v && rng.uniform() < density {
                    arcs.push((u, v, cap(rng, 9)));
                }
            }
        }
    }
    let (source, sink) = (0..n).map(|_| (cap(rng, 12), cap(rng, 12))).unzip();
    Network {
        n,
        arcs,
        source,
        sink,
    }
}

#[test]
fn maxflow_matches_brute_force_min_cut_on_random_graphs() {
    let mut rng = Rng(7);
    for trial in 0..3000 {
        let integer = trial % 3 != 0;
        let net = random_network(&mut rng, integer);
        let (min, min_cuts) = net.brute_force();
        let mut g = net.graph();
        let flow = g.maxflow();
        let ours: Vec<bool> = (0..net.n).map(|u| g.is_source_side(u)).collect();
        let tol = if integer { 0.0 } else { 1e-9 * (1.0 + min) };
        assert!(
            (flow - min).abs() <= tol,
            "trial {trial}: flow {flow}, min cut {min}"
        );
        assert!(
            (net.cut(&ours) - min).abs() <= tol,
            "trial {trial}: our cut is not minimal"
        );
        if integer {
            // The S tree is the source side of the minimum cut with the fewest nodes: the
            // intersection of all minimum cuts' source sides.
            let smallest: Vec<bool> = (0..net.n).map(|u| min_cuts.iter().all(|s| s[u])).collect();
            assert_eq!(ours, smallest, "trial {trial}");
        }
    }
}

#[test]
fn maxflow_of_the_textbook_network() {
    // CLRS (3rd ed.) figure 26.1: s -> v1 16, s -> v2 13, v1 -> v3 12, v2 -> v1 4, v2 -> v4 14,
    // v3 -> v2 9, v4 -> v3 7, v3 -> t 20, v4 -> t 4. Maximum flow 23; the only minimum cut is
    // ({s, v1, v2, v4}, {v3, t}).
    let (v1, v2, v3, v4) = (0, 1, 2, 3);
    let net = Network {
        n: 4,
        arcs: vec![
            (v1, v3, 12.0),
            (v2, v1, 4.0),
            (v2, v4, 14.0),
            (v3, v2, 9.0),
            (v4, v3, 7.0),
        ],
        source: vec![16.0, 13.0, 0.0, 0.0],
        sink: vec![0.0, 0.0, 20.0, 4.0],
    };
    let mut g = net.graph();
    assert_eq!(g.maxflow(), 23.0);
    assert_eq!(
        (0..4).map(|u| g.is_source_side(u)).collect::<Vec<_>>(),
        [true, true, false, true]
    );
    assert_eq!(net.brute_force().0, 23.0);
}

#[test]
fn maxflow_on_a_224x224_eight_connected_grid_is_fast_and_optimal() {
    let (h, w) = (224, 224);
    let mut rng = Rng(3);
    let mut net = Network {
        n: h * w,
        arcs: Vec::new(),
        source: Vec::new(),
        sink: Vec::new(),
    };
    // A smooth preference for the source in a disc, noisy unaries, 8-connected pairwise terms.
    for y in 0..h {
        for x in 0..w {
            let r = ((y as f64 - 100.0).powi(2) + (x as f64 - 120.0).powi(2)).sqrt();
            let bias = (60.0 - r) / 10.0 + 3.0 * rng.normal();
            net.source.push(bias.max(0.0));
            net.sink.push((-bias).max(0.0));
            for (dy, dx, d) in [
                (0, 1, 1.0),
                (1, 0, 1.0),
                (1, 1, 2f64.sqrt()),
                (1, -1, 2f64.sqrt()),
            ] {
                let (ny, nx) = (y + dy, x as isize + dx);
                if ny < h && nx >= 0 && (nx as usize) < w {
                    let c = 5.0 * rng.uniform() / d;
                    let q = ny * w + nx as usize;
                    net.arcs.push((y * w + x, q, c));
                    net.arcs.push((q, y * w + x, c));
                }
            }
        }
    }
    let mut g = Graph::new(net.n, net.arcs.len());
    for a in net.arcs.chunks(2) {
        g.add_edge(a[0].0, a[0].1, a[0].2, a[1].2);
    }
    for u in 0..net.n {
        g.add_tweights(u, net.source[u], net.sink[u]);
    }
    let start = Instant::now();
    let flow = g.maxflow();
    let took = start.elapsed();
    let side: Vec<bool> = (0..net.n).map(|u| g.is_source_side(u)).collect();
    let cut = net.cut(&side);
    let inside = side.iter().filter(|&&s| s).count();
    println!(
        "max-flow on a {h}x{w} 8-connected grid ({} nodes, {} arcs): {took:?}; flow {flow:.3}, \
         cut {cut:.3}, {inside} nodes on the source side",
        net.n,
        net.arcs.len()
    );
    // Max-flow = min-cut certifies both: a flow that large bounds every cut from below.
    assert!((flow - cut).abs() <= 1e-9 * cut, "flow {flow} != cut {cut}");
    assert!(inside > 5000 && inside < 20000, "the disc: {inside}");
    assert!(took.as_secs_f64() < 1.0, "{took:?}");
}

#[test]
fn gmm_recovers_well_separated_colour_clusters() {
    let mut rng = Rng(11);
    let centres = [[0.85, 0.15, 0.10], [0.10, 0.70, 0.25]];
    let mut sample = Vec::new();
    for i in 0..1000 {
        let c = centres[(i % 5 >= 3) as usize]; // 60% / 40%
        sample.push(c.map(|v: f64| (v + 0.03 * rng.normal()) as f32));
    }
    let a = Gmm::fit(&sample, 2, 20, 5).unwrap();
    assert_eq!(a, Gmm::fit(&sample, 2, 20, 5).unwrap(), "seeded: reproducible");
    assert_eq!(a.weights().len(), 2);
    for (centre, weight) in centres.iter().zip([0.6, 0.4]) {
        let j = (0..2)
            .min_by(|&p, &q| {
                let d = |k: usize| (0..3).map(|c| (a.means()[k][c] - centre[c]).powi(2)).sum::<f64>();
                d(p).total_cmp(&d(q))
            })
            .unwrap();
        for c in 0..3 {
            assert!(
                (a.means()[j][c] - centre[c]).abs() < 0.01,
                "{:?} vs {centre:?}",
                a.means()[j]
            );
            // Variance 0.03^2 + the regularisation 1e-4.
            assert!(
                (a.covariances()[j][c][c] - 1e-3).abs() < 3e-4,
                "{:?}",
                a.covariances()[j]
            );
        }
        assert!((a.weights()[j] - weight).abs() < 0.02, "{:?}", a.weights());
    }
    let near = a.log_likelihood([0.85, 0.15, 0.10]);
    let far = a.log_likelihood([0.0, 0.0, 1.0]);
    println!("log-likelihood at a centre {near}, far away {far}");
    assert!(near.is_finite() && far.is_finite() && near > far + 100.0);
    assert!(sample.iter().all(|&p| a.log_likelihood(p).is_finite()));

    // One component: exactly the Gaussian density with the fitted mean and covariance.
    let one = Gmm::fit(&sample[..300], 1, 3, 0).unwrap();
    let (mu, s) = (one.means()[0], one.covariances()[0]);
    let x = [0.5f32, 0.4, 0.3];
    let d = [0, 1, 2].map(|c| x[c] as f64 - mu[c]);
    let det = s[0][0] * (s[1][1] * s[2][2] - s[1][2] * s[2][1])
        - s[0][1] * (s[1][0] * s[2][2] - s[1][2] * s[2][0])
        + s[0][2] * (s[1][0] * s[2][1] - s[1][1] * s[2][0]);
    // Solve s z = d by Cramer's rule; the quadratic form is d . z.
    let z: Vec<f64> = (0..3)
        .map(|k| {
            let mut m = s;
            for r in 0..3 {
                m[r][k] = d[r];
            }
            (m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
                - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
                + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]))
                / det
        })
        .collect();
    let quad: f64 = (0..3).map(|k| d[k] * z[k]).sum();
    let expected = -0.5 * (quad + det.ln() + 3.0 * (2.0 * std::f64::consts::PI).ln());
    assert!((one.log_likelihood(x) - expected).abs() < 1e-9 * expected.abs());

    // A flat colour: fewer distinct colours than components, still finite.
    let flat = Gmm::fit(&[[0.2, 0.3, 0.4]; 50], 5, 10, 1).unwrap();
    assert_eq!(flat.weights().len(), 1);
    assert!(flat.log_likelihood([0.2, 0.3, 0.4]).is_finite());
    assert!(flat.log_likelihood([1.0, 0.0, 1.0]).is_finite());
    assert!(Gmm::fit(&[], 5, 10, 1).is_none());
}

/// A textured green image with red squares `(y0, x0, side)`, and a saliency map that is the
/// squares blurred (box filter of radius 4) plus uniform noise.
fn synthetic(h: usize, w: usize, squares: &[(usize, usize, usize)], seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = Rng(seed);
    let n = h * w;
    let mut rgb = vec![0.0f32; 3 * n];
    let mut object = vec![0.0f32; n];
    for y in 0..h {
        for x in 0..w {
            let p = y * w + x;
            let inside = squares
                .iter()
                .any(|&(y0, x0, s)| (y0..y0 + s).contains(&y) && (x0..x0 + s).contains(&x));
            let c: [f64; 3] = if inside {
                object[p] = 1.0;
                [0.80, 0.12, 0.10].map(|v| v + 0.03 * rng.normal())
            } else {
                // Grass: stripes and speckle.
                let t = 0.08 * ((x as f64 * 0.7).sin() + (y as f64 * 0.45 + x as f64 * 0.2).cos());
                [0.20 + t, 0.55 + t, 0.15].map(|v| v + 0.05 * rng.normal())
            };
            for k in 0..3 {
                rgb[k * n + p] = c[k].clamp(0.0, 1.0) as f32;
            }
        }
    }
    let r = 4isize;
    let mut saliency = vec![0.0f32; n];
    for y in 0..h as isize {
        for x in 0..w as isize {
            let (mut sum, mut count) = (0.0, 0.0);
            for dy in -r..=r {
                for dx in -r..=r {
                    let (yy, xx) = (y + dy, x + dx);
                    if yy >= 0 && xx >= 0 && yy < h as isize && xx < w as isize {
                        sum += object[yy as usize * w + xx as usize];
                        count += 1.0;
                    }
                }
            }
            saliency[y as usize * w + x as usize] = sum / count + 0.3 * rng.uniform() as f32;
        }
    }
    (rgb, saliency)
}

fn iou(a: &[bool], b: &[bool]) -> f64 {
    let inter = a.iter().zip(b).filter(|(x, y)| **x && **y).count();
    let union = a.iter().zip(b).filter(|(x, y)| **x || **y).count();
    inter as f64 / union as f64
}

#[test]
fn graphcut_recovers_a_red_square_on_textured_grass() {
    let (h, w) = (160, 192);
    let (y0, x0, s) = (50, 70, 56);
    let (rgb, saliency) = synthetic(h, w, &[(y0, x0, s)], 1);
    let start = Instant::now();
    let found = localise(&rgb, &saliency, [h, w], &GraphCutOptions::default()).unwrap();
    println!("localise on {h}x{w}: {:?}", start.elapsed());
    let truth: Vec<bool> = (0..h * w)
        .map(|p| (y0..y0 + s).contains(&(p / w)) && (x0..x0 + s).contains(&(p % w)))
        .collect();
    let score = iou(&found.mask, &truth);
    let b = found.bbox.unwrap();
    println!("IoU {score:.4}, box {b:?}");
    assert!(score > 0.9, "IoU {score}");
    let expected = [x0, y0, x0 + s - 1, y0 + s - 1].map(|v| v as f32);
    for k in 0..4 {
        assert!((b[k] - expected[k]).abs() <= 2.0, "box {b:?} vs {expected:?}");
    }
    assert_eq!(bounding_box(&found.mask, [h, w]), found.bbox);
}

#[test]
fn the_box_is_that_of_the_largest_connected_component() {
    let (h, w) = (128, 160);
    let big = (20, 20, 44);
    let small = (80, 110, 24);
    let (rgb, saliency) = synthetic(h, w, &[big, small], 2);
    let found = localise(&rgb, &saliency, [h, w], &GraphCutOptions::default()).unwrap();
    let b = found.bbox.unwrap();
    println!("two squares: box {b:?}");
    let expected = [big.1, big.0, big.1 + big.2 - 1, big.0 + big.2 - 1].map(|v| v as f32);
    for k in 0..4 {
        assert!((b[k] - expected[k]).abs() <= 2.0, "box {b:?} vs {expected:?}");
    }
    // The mask is that component alone: nothing of the small square.
    let in_small = |p: usize| {
        (small.0..small.0 + small.2).contains(&(p / w)) && (small.1..small.1 + small.2).contains(&(p % w))
    };
    assert!(!(0..h * w).any(|p| found.mask[p] && in_small(p)));

    // The rule itself: 8-connectivity joins diagonal neighbours; ties go to the first in raster order.
    #[rustfmt::skip]
    let m = [
        1, 0, 0, 0, 1,
        0, 1, 0, 0, 1,
        0, 0, 1, 0, 0,
        0, 0, 0, 0, 1,
    ].map(|v| v == 1);
    let l = largest_component(&m, [4, 5]);
    assert_eq!(l.iter().filter(|&&v| v).count(), 3);
    assert!(l[0] && l[6] && l[12]);
    assert_eq!(bounding_box(&l, [4, 5]), Some([0.0, 0.0, 2.0, 2.0]));
    let tie = largest_component(&[true, false, true], [1, 3]);
    assert_eq!(tie, [true, false, false]);
    assert_eq!(largest_component(&[false; 4], [2, 2]), [false; 4]);
    assert_eq!(bounding_box(&[false; 4], [2, 2]), None);
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let (h, w) = (16, 16);
    let (rgb, saliency) = synthetic(h, w, &[(4, 4, 8)], 3);
    let o = GraphCutOptions::default();
    let message = |r: Result<_, ExplainError>| match r {
        Err(
            e @ ExplainError::Invalid {
                method: "graphcut-loc",
                ..
            },
        ) => e.to_string(),
        Err(e) => panic!("wrong error {e}"),
        Ok(_) => panic!("accepted"),
    };
    let mut nan = saliency.clone();
    nan[3 * w + 5] = f32::NAN;
    let m = message(localise(&rgb, &nan, [h, w], &o));
    assert!(m.contains("not finite at pixel (row 3, column 5)"), "{m}");
    let m = message(localise(&rgb, &saliency[1..], [h, w], &o));
    assert!(
        m.contains("the saliency map has 255 values, but the image is 16x16"),
        "{m}"
    );
    let m = message(localise(&rgb[..3 * h * w - 2], &saliency, [h, w], &o));
    assert!(m.contains("the colours have 766 values"), "{m}");
    let m = message(localise(&rgb, &vec![0.5; h * w], [h, w], &o));
    assert!(m.contains("too flat"), "{m}");
    let mut zeros = vec![0.0; h * w];
    zeros[0] = 1.0; // Both quantiles 0: nothing separates the seeds.
    let m = message(localise(&rgb, &zeros, [h, w], &o));
    assert!(m.contains("too flat"), "{m}");
    let m = message(localise(
        &rgb,
        &saliency,
        [h, w],
        &GraphCutOptions {
            bg_quantile: 0.96,
            ..o
        },
    ));
    assert!(m.contains("quantiles"), "{m}");
    let m = message(localise(
        &rgb,
        &saliency,
        [h, w],
        &GraphCutOptions { components: 0, ..o },
    ));
    assert!(m.contains("at least one Gaussian"), "{m}");
    let m = message(localise(&[], &[], [0, 3], &o));
    assert!(m.contains("empty"), "{m}");
    // Ties at a quantile: half the map zero still seeds the background.
    let mut half = saliency.clone();
    half[..h * w / 2].iter_mut().for_each(|v| *v = 0.0);
    assert!(localise(&rgb, &half, [h, w], &o).is_ok());
}

#[test]
fn graphcut_localisation_on_the_sample_photo() {
    let loaded = ModelSource::Builtin {
        arch: Arch::Lite0,
        random_seed: None,
    }
    .load(&default_device())
    .unwrap();
    let photo = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../samples/dog.jpg");
    let x = loaded
        .pipeline
        .load_batch(&[photo.as_path()], &default_device())
        .unwrap();
    // Simonyan et al. localise the top-1 class.
    let logits = to_vec(loaded.model.logits(x.clone()).unwrap());
    let top = (0..logits.len())
        .max_by(|&a, &b| logits[a].total_cmp(&logits[b]))
        .unwrap();
    let [_, _, h, w] = x.dims();
    let request = Request {
        images: x,
        classes: vec![top],
        score: Score::Logit,
        layer: None,
    };
    let method = GraphCutLocalisation {
        colour: GraphCutLocalisation::colour_of_normalisation(loaded.pipeline.mean, loaded.pipeline.std),
        ..Default::default()
    };
    let start = Instant::now();
    let e = method.explain(&loaded.model, &request).unwrap();
    let took = start.elapsed();
    assert_eq!((e.passes.forward, e.passes.backward), (1, 1));
    let mask = &e.maps[0];
    assert_eq!((mask.channels, mask.height, mask.width), (1, h, w));
    assert!(mask.data.iter().all(|&v| v == 0.0 || v == 1.0));
    let names: Vec<&str> = e.extra.iter().map(|x| x.name).collect();
    assert_eq!(names, ["box", "saliency", "seeds"]);
    let b = &e.extra[0].maps[0].data;
    let area = (b[2] - b[0] + 1.0) * (b[3] - b[1] + 1.0) / (h * w) as f32;
    let pixels = mask.data.iter().filter(|&&v| v == 1.0).count();
    println!(
        "graphcut-loc on samples/dog.jpg, class {top} ({}): box {b:?} ({:.1}% of the image), mask \
         {pixels} pixels; whole method (saliency pass + localisation) {took:?}",
        loaded.class_names[top],
        100.0 * area
    );
    assert!(b[0] >= 0.0 && b[0] <= b[2] && b[1] <= b[3] && b[2] < w as f32 && b[3] < h as f32);
    assert!(area > 0.02 && area < 0.9, "box area {area}");
    // The box is the mask's.
    let as_bool: Vec<bool> = mask.data.iter().map(|&v| v == 1.0).collect();
    assert_eq!(bounding_box(&as_bool, [h, w]).unwrap().to_vec(), *b);
    // The saliency extra is Simonyan's map, and localise on it reproduces the mask.
    let s = &e.extra[1].maps[0];
    assert_eq!((s.channels, s.height, s.width), (1, h, w));
    let rgb: Vec<f32> = to_vec(request.images.clone())
        .iter()
        .enumerate()
        .map(|(j, v)| {
            let (scale, offset) = method.colour[j / (h * w)];
            v * scale + offset
        })
        .collect();
    assert!(
        rgb.iter().all(|v| (-0.01..=1.01).contains(v)),
        "colours mapped back to [0, 1]"
    );
    let start = Instant::now();
    let again = localise(&rgb, &s.data, [h, w], &method.options).unwrap();
    println!("localise alone on {h}x{w}: {:?}", start.elapsed());
    assert_eq!(again.mask, as_bool);
    // The seeds extra is the thresholded saliency: about 5% foreground, 30% background pixels.
    let seeds = &e.extra[2];
    assert_eq!(seeds.kind, ExtraKind::Categories(Seed::LABELS));
    let want: Vec<f32> = seed_labels(&s.data, &method.options)
        .unwrap()
        .iter()
        .map(|&l| l as u8 as f32)
        .collect();
    assert_eq!(seeds.maps[0].data, want);
    let share = |id: f32| want.iter().filter(|&&v| v == id).count() as f64 / want.len() as f64;
    println!(
        "seeds: {:.3} foreground, {:.3} background, {:.3} ignored",
        share(0.0),
        share(1.0),
        share(2.0)
    );
    assert!((share(0.0) - 0.05).abs() < 0.01 && (share(1.0) - 0.30).abs() < 0.01);
}

#[test]
fn seed_labels_follow_hand_computed_quantiles() {
    use Seed::{Background as B, Foreground as F, Ignored as I};
    let o = GraphCutOptions::default();
    // 21 distinct values 0..=20, shuffled: q_0.95 sits at position 0.95 * 20 = 19 (value 19), so
    // only 20 is above; q_0.30 at position 6 (value 6), so 0..=5 are below.
    let order = [
        7, 20, 3, 12, 0, 19, 5, 14, 1, 9, 16, 2, 11, 18, 4, 6, 13, 8, 17, 10, 15,
    ];
    let s: Vec<f32> = order.iter().map(|&v| v as f32).collect();
    let want: Vec<Seed> = order
        .iter()
        .map(|&v| {
            if v > 19 {
                F
            } else if v < 6 {
                B
            } else {
                I
            }
        })
        .collect();
    assert_eq!(seed_labels(&s, &o).unwrap(), want);
    // Linear interpolation: [1, 2, 3, 4, 5] has q_0.95 = 4 + 0.8 = 4.8 and q_0.30 = 2 + 0.2 = 2.2.
    assert_eq!(
        seed_labels(&[3.0, 5.0, 1.0, 4.0, 2.0], &o).unwrap(),
        [I, F, B, I, B]
    );
    // [0, 1, 2, 3, 4, 10]: q_0.95 at position 4.75 is 4 + 0.75 * 6 = 8.5, q_0.30 at position 1.5
    // is 1.5: the 10 is foreground, 0 and 1 background, 2..=4 ignored.
    assert_eq!(
        seed_labels(&[4.0, 10.0, 0.0, 2.0, 1.0, 3.0], &o).unwrap(),
        [I, F, B, I, B, I]
    );
    // Ties: [0, 0, 0, 0, 1] has q_0.30 = 0 and no pixel strictly below it: the tied zeros are
    // the background; q_0.95 = 0.8, the 1 is the foreground.
    assert_eq!(
        seed_labels(&[0.0, 1.0, 0.0, 0.0, 0.0], &o).unwrap(),
        [B, F, B, B, B]
    );
    // Other thresholds, as options: q_0.5 of 0..=20 is 10, q_0.1 is 2.
    let half = GraphCutOptions {
        fg_quantile: 0.5,
        bg_quantile: 0.1,
        ..o
    };
    let want: Vec<Seed> = order
        .iter()
        .map(|&v| {
            if v > 10 {
                F
            } else if v < 2 {
                B
            } else {
                I
            }
        })
        .collect();
    assert_eq!(seed_labels(&s, &half).unwrap(), want);
    // A flat map has no seeds: an error, not a panic.
    assert!(seed_labels(&[0.5; 8], &o).is_err());
}
