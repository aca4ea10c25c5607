//! Gaussian mixture colour models (full 3x3 covariances), the colour models of GrabCut (Rother,
//! Kolmogorov & Blake, SIGGRAPH 2004) and of Simonyan et al.'s localisation.
//!
//! Fitting: k-means++ seeding (Arthur & Vassilvitskii 2007) from a seeded generator, one hard
//! assignment to the nearest seed for the initial parameters (as GrabCut initialises its GMMs),
//! then `iterations` steps of EM. Each covariance gets `REGULARISATION * I` added so that a
//! component fitted to one flat colour stays invertible. Computed in `f64`.

/// Added to each covariance's diagonal: a variance of `(0.01)^2`, about 2.5/255 in colour units.
pub const REGULARISATION: f64 = 1e-4;

/// A fitted Gaussian mixture over RGB colours.
#[derive(Debug, Clone, PartialEq)]
pub struct Gmm {
    weights: Vec<f64>,
    means: Vec<[f64; 3]>,
    covariances: Vec<[[f64; 3]; 3]>,
    /// Per component: the inverse covariance.
    inverses: Vec<[[f64; 3]; 3]>,
    /// Per component: `ln w_k - 0.5 ln det(2 pi Sigma_k)`.
    log_norms: Vec<f64>,
}

/// SplitMix64: a small seeded generator (no dependency needed for a handful of draws).
struct SplitMix(u64);

impl SplitMix {
    fn next_f64(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn dist2(a: &[f64; 3], b: &[f64; 3]) -> f64 {
    (0..3).map(|c| (a[c] - b[c]).powi(2)).sum()
}

fn det3(m: &[[f64; 3]; 3]) -> f64 {
    m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
}

fn inverse3(m: &[[f64; 3]; 3], det: f64) -> [[f64; 3]; 3] {
    let mut inv = [[0.0; 3]; 3];
    for (r, row) in inv.iter_mut().enumerate() {
        for (c, v) in row.iter_mut().enumerate() {
            // Cofactor of (c, r), transposed.
            let (r1, r2) = ((c + 1) % 3, (c + 2) % 3);
            let (c1, c2) = ((r + 1) % 3, (r + 2) % 3);
            *v = (m[r1][c1] * m[r2][c2] - m[r1][c2] * m[r2][c1]) / det;
        }
    }
    inv
}

/// k-means++ seeds: the first uniformly, each next with probability proportional to the squared
/// distance to the nearest seed so far. Stops early when every sample coincides with a seed.
fn kmeans_pp(x: &[[f64; 3]], k: usize, rng: &mut SplitMix) -> Vec<[f64; 3]> {
    let n = x.len();
    let first = ((rng.next_f64() * n as f64) as usize).min(n - 1);
    let mut seeds = vec![x[first]];
    let mut d2: Vec<f64> = x.iter().map(|p| dist2(p, &x[first])).collect();
    while seeds.len() < k {
        let total: f64 = d2.iter().sum();
        if total <= 0.0 {
            break;
        }
        let target = rng.next_f64() * total;
        let mut acc = 0.0;
        let mut pick = n - 1;
        for (i, &d) in d2.iter().enumerate() {
            acc += d;
            if acc > target && d > 0.0 {
                pick = i;
                break;
            }
        }
        if d2[pick] <= 0.0 {
            // Rounding at the very end of the cumulative sum: take the farthest sample.
            pick = (0..n).max_by(|&a, &b| d2[a].total_cmp(&d2[b])).unwrap_or(0);
        }
        let s = x[pick];
        for (d, p) in d2.iter_mut().zip(x) {
            *d = d.min(dist2(p, &s));
        }
        seeds.push(s);
    }
    seeds
}

impl Gmm {
    /// Fits `components` Gaussians (fewer if the sample has fewer distinct colours) to `samples`
    /// with `iterations` EM steps after the k-means++ initialisation. `None` for an empty sample,
    /// a non-finite colour or no component.
    pub fn fit(samples: &[[f32; 3]], components: usize, iterations: usize, seed: u64) -> Option<Gmm> {
        if samples.is_empty() || components == 0 || samples.iter().flatten().any(|v| !v.is_finite()) {
            return None;
        }
        let x: Vec<[f64; 3]> = samples.iter().map(|p| p.map(f64::from)).collect();
        let mut rng = SplitMix(seed);
        let seeds = kmeans_pp(&x, components, &mut rng);
        // Initial responsibilities: a hard assignment to the nearest seed.
        let k = seeds.len();
        let mut resp = vec![0.0; x.len() * k];
        for (i, p) in x.iter().enumerate() {
            let j = (0..k)
                .min_by(|&a, &b| dist2(p, &seeds[a]).total_cmp(&dist2(p, &seeds[b])))
                .unwrap_or(0);
            resp[i * k + j] = 1.0;
        }
        let mut gmm = Gmm::m_step(&x, &resp, k);
        for _ in 0..iterations {
            // E step: responsibilities by log-sum-exp.
            let k = gmm.weights.len();
            resp.resize(x.len() * k, 0.0);
            for (p, r) in x.iter().zip(resp.chunks_exact_mut(k)) {
                for (j, v) in r.iter_mut().enumerate() {
                    *v = gmm.component_log(j, p);
                }
                let m = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
                r.iter_mut().for_each(|v| *v = (*v - m).exp());
                let z: f64 = r.iter().sum();
                r.iter_mut().for_each(|v| *v /= z);
            }
            gmm = Gmm::m_step(&x, &resp, k);
        }
        Some(gmm)
    }

    /// Weights, means and covariances from responsibilities `resp[i * k + j]`; components with no
    /// mass are dropped.
    fn m_step(x: &[[f64; 3]], resp: &[f64], k: usize) -> Gmm {
        let n = x.len() as f64;
        let mut gmm = Gmm {
            weights: Vec::new(),
            means: Vec::new(),
            covariances: Vec::new(),
            inverses: Vec::new(),
            log_norms: Vec::new(),
        };
        for j in 0..k {
            let mass: f64 = (0..x.len()).map(|i| resp[i * k + j]).sum();
            if mass < 1e-9 * n.max(1.0) {
                continue;
            }
            let mut mean = [0.0; 3];
            for (i, p) in x.iter().enumerate() {
                for c in 0..3 {
                    mean[c] += resp[i * k + j] * p[c];
                }
            }
            mean.iter_mut().for_each(|m| *m /= mass);
            let mut cov = [[0.0; 3]; 3];
            for (i, p) in x.iter().enumerate() {
                let r = resp[i * k + j];
                for a in 0..3 {
                    for b in 0..3 {
                        cov[a][b] += r * (p[a] - mean[a]) * (p[b] - mean[b]);
                    }
                }
            }
            for (a, row) in cov.iter_mut().enumerate() {
                row.iter_mut().for_each(|v| *v /= mass);
                row[a] += REGULARISATION;
            }
            gmm.weights.push(mass / n);
            gmm.means.push(mean);
            gmm.covariances.push(cov);
        }
        let total: f64 = gmm.weights.iter().sum();
        gmm.weights.iter_mut().for_each(|w| *w /= total);
        for (w, cov) in gmm.weights.iter().zip(&gmm.covariances) {
            // Positive definite by construction (a covariance plus a positive diagonal).
            let det = det3(cov).max(f64::MIN_POSITIVE);
            gmm.inverses.push(inverse3(cov, det));
            gmm.log_norms
                .push(w.ln() - 0.5 * (det.ln() + 3.0 * (2.0 * std::f64::consts::PI).ln()));
        }
        gmm
    }

    /// `ln (w_j N(p; mu_j, Sigma_j))`.
    fn component_log(&self, j: usize, p: &[f64; 3]) -> f64 {
        let (mu, inv) = (&self.means[j], &self.inverses[j]);
        let d = [p[0] - mu[0], p[1] - mu[1], p[2] - mu[2]];
        let mut q = 0.0;
        for a in 0..3 {
            for b in 0..3 {
                q += d[a] * inv[a][b] * d[b];
            }
        }
        self.log_norms[j] - 0.5 * q
    }

    /// `ln sum_k w_k N(colour; mu_k, Sigma_k)`.
    pub fn log_likelihood(&self, colour: [f32; 3]) -> f64 {
        let p = colour.map(f64::from);
        let logs = (0..self.weights.len()).map(|j| self.component_log(j, &p));
        let m = logs.clone().fold(f64::NEG_INFINITY, f64::max);
        m + logs.map(|l| (l - m).exp()).sum::<f64>().ln()
    }

    /// The mixture weights (summing to 1).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// The component means.
    pub fn means(&self) -> &[[f64; 3]] {
        &self.means
    }

    /// The component covariances (regularised).
    pub fn covariances(&self) -> &[[[f64; 3]; 3]] {
        &self.covariances
    }
}
