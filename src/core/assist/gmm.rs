//! Gaussian mixture colour models, as GrabCut fits them (Rother, Kolmogorov and Blake,
//! "GrabCut: interactive foreground extraction using iterated graph cuts", SIGGRAPH 2004; OpenCV's
//! `grabcut.cpp`): a few full-covariance components over CIELAB, each colour's cost the
//! negative log of the mixture's density.
//!
//! Fitting is deterministic: the components start from k-means++-style farthest points (the
//! first the sample nearest the mean, each next the sample farthest from the chosen ones), then
//! a few rounds of hard assignment to the most likely component and refitting (GrabCut's
//! "assign and learn" step; a soft EM changes little for colour models and costs more). A
//! component's covariance gets [`MIN_VARIANCE`] added to its diagonal, so flat or tiny clusters
//! (a painted line, a single sample) stay invertible.
//!
//! Cost: `k * samples * rounds` density evaluations to fit (callers pass at most a few thousand
//! samples), `k` per colour to evaluate.

/// Added to each covariance's diagonal, in squared CIELAB units: about the quantisation and
/// JPEG noise of a flat 8-bit area, so a flat cluster does not claim zero variance.
pub const MIN_VARIANCE: f64 = 1.0;

/// One component: weight, mean, inverse covariance, and `ln(weight) - ln(det(cov))/2`.
#[derive(Clone, Debug, PartialEq)]
struct Component {
    weight: f64,
    mean: [f64; 3],
    inverse: [[f64; 3]; 3],
    log_norm: f64,
}

/// A fitted mixture. Empty (no samples) means "no evidence": every colour costs the same.
#[derive(Clone, Debug, PartialEq)]
pub struct Gmm {
    components: Vec<Component>,
}

impl Gmm {
    /// Fits at most `k` components to `samples` with `rounds` rounds of assign-and-refit.
    pub fn fit(samples: &[[f32; 3]], k: usize, rounds: usize) -> Self {
        if samples.is_empty() || k == 0 {
            return Self {
                components: Vec::new(),
            };
        }
        let mut gmm = Self::from_assignment(samples, &farthest_point_assignment(samples, k), k);
        let mut assignment = vec![0usize; samples.len()];
        for _ in 0..rounds {
            for (a, s) in assignment.iter_mut().zip(samples) {
                *a = gmm.most_likely(*s);
            }
            gmm = Self::from_assignment(samples, &assignment, k);
        }
        gmm
    }

    /// The components' weights (summing to 1) and means, for tests and diagnostics.
    pub fn weights_and_means(&self) -> Vec<(f64, [f64; 3])> {
        self.components.iter().map(|c| (c.weight, c.mean)).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.components.is_empty()
    }

    /// The colour's cost, GrabCut's `D`: `-ln(weight_k N(colour; mean_k, cov_k))` of its most
    /// likely component `k` (the paper assigns each pixel one component; the full mixture's
    /// log-sum-exp costs five exponentials more and differs by at most `ln k`), up to a
    /// constant shared by every mixture; 0 for an empty mixture.
    pub fn cost(&self, colour: [f32; 3]) -> f64 {
        match self.components.is_empty() {
            true => 0.0,
            false => -self
                .components
                .iter()
                .map(|c| c.log_density(colour))
                .fold(f64::NEG_INFINITY, f64::max),
        }
    }

    fn most_likely(&self, colour: [f32; 3]) -> usize {
        let mut best = (0, f64::NEG_INFINITY);
        for (i, c) in self.components.iter().enumerate() {
            let l = c.log_density(colour);
            if l > best.1 {
                best = (i, l);
            }
        }
        best.0
    }

    /// Weights, means and covariances from a hard assignment of the samples to `k` components;
    /// components left without samples are dropped.
    fn from_assignment(samples: &[[f32; 3]], assignment: &[usize], k: usize) -> Self {
        let mut count = vec![0f64; k];
        let mut sum = vec![[0f64; 3]; k];
        let mut prod = vec![[[0f64; 3]; 3]; k];
        for (s, &a) in samples.iter().zip(assignment) {
            let x = s.map(f64::from);
            count[a] += 1.0;
            for i in 0..3 {
                sum[a][i] += x[i];
                for j in 0..3 {
                    prod[a][i][j] += x[i] * x[j];
                }
            }
        }
        let total = samples.len() as f64;
        let components = (0..k)
            .filter(|&c| count[c] > 0.0)
            .map(|c| {
                let n = count[c];
                let mean = sum[c].map(|v| v / n);
                let mut cov = [[0f64; 3]; 3];
                for i in 0..3 {
                    for j in 0..3 {
                        cov[i][j] = prod[c][i][j] / n - mean[i] * mean[j];
                    }
                    cov[i][i] += MIN_VARIANCE;
                }
                let (inverse, det) = invert(&cov);
                Component {
                    weight: n / total,
                    mean,
                    inverse,
                    log_norm: (n / total).ln() - 0.5 * det.ln(),
                }
            })
            .collect();
        Self { components }
    }
}

impl Component {
    /// `ln(weight * N(colour; mean, cov))` without the `(2 pi)^(3/2)`.
    fn log_density(&self, colour: [f32; 3]) -> f64 {
        let d = [
            colour[0] as f64 - self.mean[0],
            colour[1] as f64 - self.mean[1],
            colour[2] as f64 - self.mean[2],
        ];
        let m = &self.inverse;
        let mut q = 0.0;
        for i in 0..3 {
            q += d[i] * (m[i][0] * d[0] + m[i][1] * d[1] + m[i][2] * d[2]);
        }
        self.log_norm - 0.5 * q
    }
}

/// The inverse and determinant of a symmetric positive-definite 3x3 matrix (the diagonal
/// already holds [`MIN_VARIANCE`], so the determinant is positive).
fn invert(c: &[[f64; 3]; 3]) -> ([[f64; 3]; 3], f64) {
    let cof =
        |r0: usize, r1: usize, c0: usize, c1: usize| c[r0][c0] * c[r1][c1] - c[r0][c1] * c[r1][c0];
    let adj = [
        [cof(1, 2, 1, 2), -cof(0, 2, 1, 2), cof(0, 1, 1, 2)],
        [-cof(1, 2, 0, 2), cof(0, 2, 0, 2), -cof(0, 1, 0, 2)],
        [cof(1, 2, 0, 1), -cof(0, 2, 0, 1), cof(0, 1, 0, 1)],
    ];
    let det =
        (c[0][0] * adj[0][0] + c[0][1] * adj[1][0] + c[0][2] * adj[2][0]).max(f64::MIN_POSITIVE);
    (adj.map(|row| row.map(|v| v / det)), det)
}

/// The initial assignment: `k` centres chosen as farthest points, each sample to its nearest.
fn farthest_point_assignment(samples: &[[f32; 3]], k: usize) -> Vec<usize> {
    let d2 = |a: [f32; 3], b: [f32; 3]| {
        (a[0] - b[0]).powi(2) + (a[1] - b[1]).powi(2) + (a[2] - b[2]).powi(2)
    };
    let n = samples.len() as f32;
    let mean = samples.iter().fold([0f32; 3], |m, s| {
        [m[0] + s[0] / n, m[1] + s[1] / n, m[2] + s[2] / n]
    });
    let first = (0..samples.len())
        .min_by(|&a, &b| d2(samples[a], mean).total_cmp(&d2(samples[b], mean)))
        .expect("samples are not empty");
    let mut centres = vec![samples[first]];
    let mut nearest: Vec<f32> = samples.iter().map(|&s| d2(s, samples[first])).collect();
    while centres.len() < k {
        let (far, &dist) = nearest
            .iter()
            .enumerate()
            .max_by(|a, b| a.1.total_cmp(b.1))
            .expect("samples are not empty");
        if dist == 0.0 {
            break; // fewer distinct colours than components
        }
        centres.push(samples[far]);
        for (m, &s) in nearest.iter_mut().zip(samples) {
            *m = m.min(d2(s, samples[far]));
        }
    }
    samples
        .iter()
        .map(|&s| {
            (0..centres.len())
                .min_by(|&a, &b| d2(s, centres[a]).total_cmp(&d2(s, centres[b])))
                .expect("at least one centre")
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rng::Rng;

    /// `n` samples of N(mean, diag(sd^2)).
    fn draw(rng: &mut Rng, n: usize, mean: [f32; 3], sd: [f32; 3]) -> Vec<[f32; 3]> {
        (0..n)
            .map(|_| {
                [
                    mean[0] + sd[0] * rng.normal(),
                    mean[1] + sd[1] * rng.normal(),
                    mean[2] + sd[2] * rng.normal(),
                ]
            })
            .collect()
    }

    #[test]
    fn a_known_mixture_is_recovered() {
        let mut rng = Rng::new(7);
        let mut samples = draw(&mut rng, 3000, [30.0, 0.0, 0.0], [2.0, 1.0, 1.0]);
        samples.extend(draw(&mut rng, 1000, [70.0, 20.0, -10.0], [3.0, 2.0, 2.0]));
        samples.extend(draw(&mut rng, 2000, [50.0, -30.0, 40.0], [1.5, 3.0, 1.0]));
        let gmm = Gmm::fit(&samples, 3, 4);
        let mut found = gmm.weights_and_means();
        found.sort_by(|a, b| a.1[0].total_cmp(&b.1[0]));
        let expected = [
            (0.5, [30.0, 0.0, 0.0]),
            (1.0 / 3.0, [50.0, -30.0, 40.0]),
            (1.0 / 6.0, [70.0, 20.0, -10.0]),
        ];
        assert_eq!(found.len(), 3);
        for ((w, m), (ew, em)) in found.iter().zip(expected) {
            assert!((w - ew).abs() < 0.01, "weight {w} for {ew}");
            for (a, b) in m.iter().zip(em) {
                assert!((a - b).abs() < 0.3, "mean {m:?} for {em:?}");
            }
        }
        // A colour of a component costs less than one between components, and far less than
        // one far from all.
        let near = gmm.cost([30.0, 0.0, 0.0]);
        let between = gmm.cost([40.0, -15.0, 20.0]);
        let far = gmm.cost([100.0, 80.0, 80.0]);
        assert!(near < between && between < far, "{near} {between} {far}");
        assert!(far.is_finite(), "far colours stay finite");
    }

    #[test]
    fn the_variance_of_a_component_is_measured() {
        // One Gaussian: the cost grows as (x - mean)^2 / (2 sd^2) along each axis.
        let mut rng = Rng::new(11);
        let sd = 4.0f32;
        let samples = draw(&mut rng, 20_000, [50.0, 10.0, -5.0], [sd, sd, sd]);
        let gmm = Gmm::fit(&samples, 1, 1);
        let rise = gmm.cost([50.0 + 2.0 * sd, 10.0, -5.0]) - gmm.cost([50.0, 10.0, -5.0]);
        // (2 sd)^2 / (2 (sd^2 + MIN_VARIANCE)) = 2 * 16 / 17.
        let expected = 2.0 * 16.0 / (16.0 + MIN_VARIANCE);
        assert!((rise - expected).abs() < 0.1, "{rise} vs {expected}");
    }

    #[test]
    fn flat_single_and_empty_samples() {
        // A flat colour (zero variance) stays finite thanks to MIN_VARIANCE; asking for more
        // components than there are colours gives one per colour.
        let flat = vec![[40.0f32, 5.0, 5.0]; 100];
        let gmm = Gmm::fit(&flat, 5, 3);
        assert_eq!(gmm.weights_and_means().len(), 1);
        assert!(gmm.cost([40.0, 5.0, 5.0]).is_finite());
        assert!(gmm.cost([40.0, 5.0, 5.0]) < gmm.cost([45.0, 5.0, 5.0]));
        let one = Gmm::fit(&[[1.0, 2.0, 3.0]], 5, 3);
        assert_eq!(one.weights_and_means(), vec![(1.0, [1.0, 2.0, 3.0])]);
        let empty = Gmm::fit(&[], 5, 3);
        assert!(empty.is_empty());
        assert_eq!(empty.cost([1.0, 2.0, 3.0]), 0.0);
    }

    #[test]
    fn inversion_is_exact_on_a_known_matrix() {
        let c = [[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]];
        let (inv, det) = invert(&c);
        let expected_det = 4.0 * (3.0 * 2.0 - 0.04) - 1.0 * (2.0 - 0.1) + 0.5 * (0.2 - 1.5);
        assert!((det - expected_det).abs() < 1e-12);
        for (i, row) in c.iter().enumerate() {
            for j in 0..3 {
                let v: f64 = row.iter().zip(&inv).map(|(a, r)| a * r[j]).sum();
                assert!((v - f64::from(u8::from(i == j))).abs() < 1e-12);
            }
        }
    }
}
