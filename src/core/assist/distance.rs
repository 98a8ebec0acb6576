//! The exact Euclidean distance transform of a binary mask (Felzenszwalb & Huttenlocher,
//! "Distance Transforms of Sampled Functions", 2012).
//!
//! For every pixel `p`, `D(p) = min_{q : !inside(q)} |p - q|^2`: the squared distance to the
//! nearest pixel outside, 0 outside. The 2-D transform is two 1-D passes, columns then rows,
//! each the lower envelope of parabolas: `d(q) = min_p (q - p)^2 + f(p)`, where `f` is 0 outside
//! and infinite inside for the first pass and the first pass's result for the second. The
//! envelope is built left to right: parabola `p` starts where it crosses the last one kept,
//! `s = ((f(p) + p^2) - (f(v) + v^2)) / (2p - 2v)`, and parabolas it hides are dropped.
//!
//! Cost: `O(width · height)` time, `O(width · height)` memory for the intermediate (columns are
//! transformed into a transposed buffer so that both passes split into independent, contiguous
//! lines across threads). Values are exact: squared distances are whole numbers, held in `f64`
//! (exact to 2^53) while computing and returned as `u32` (the largest, `2 · 16384^2`, fits).

use rayon::prelude::*;

/// `D(p)` for a pixel with no outside pixel anywhere in the image.
pub const NO_OUTSIDE: u32 = u32::MAX;

/// Squared Euclidean distance from each pixel to the nearest pixel where `inside` is false
/// (0 there), row-major like `inside` (`width * height` values). [`NO_OUTSIDE`] everywhere when
/// every pixel is inside. Callers that want the image border to count as outside pad the mask
/// with a ring of outside pixels first, as the click protocol does.
pub fn squared_edt(inside: &[bool], width: usize, height: usize) -> Vec<u32> {
    assert_eq!(inside.len(), width * height, "mask size");
    if inside.is_empty() {
        return Vec::new();
    }
    // Pass 1, columns: columns[x * height + y] = squared distance within column x.
    let mut columns = vec![0.0f64; width * height];
    columns.par_chunks_mut(height).enumerate().for_each_init(
        || (Envelope::new(height), vec![0.0f64; height]),
        |(envelope, f), (x, column)| {
            for (y, v) in f.iter_mut().enumerate() {
                *v = if inside[y * width + x] {
                    f64::INFINITY
                } else {
                    0.0
                };
            }
            envelope.transform(f, column);
        },
    );
    // Pass 2, rows, over the columns' results.
    let mut out = vec![0u32; width * height];
    out.par_chunks_mut(width).enumerate().for_each_init(
        || {
            (
                Envelope::new(width),
                vec![0.0f64; width],
                vec![0.0f64; width],
            )
        },
        |(envelope, f, d), (y, row)| {
            for (x, v) in f.iter_mut().enumerate() {
                *v = columns[x * height + y];
            }
            envelope.transform(f, d);
            for (o, &v) in row.iter_mut().zip(d.iter()) {
                *o = if v.is_finite() { v as u32 } else { NO_OUTSIDE };
            }
        },
    );
    out
}

/// Scratch of the 1-D transform: `v[k]` the parabola (its apex) of the envelope's k-th piece,
/// `z[k]..z[k + 1]` the range where that piece is lowest.
struct Envelope {
    v: Vec<usize>,
    z: Vec<f64>,
}

impl Envelope {
    fn new(n: usize) -> Self {
        Self {
            v: vec![0; n],
            z: vec![0.0; n + 1],
        }
    }

    /// `d[q] = min_p (q - p)^2 + f[p]` over the finite `f[p]`; infinite everywhere when none is.
    fn transform(&mut self, f: &[f64], d: &mut [f64]) {
        let n = f.len();
        let (v, z) = (&mut self.v, &mut self.z);
        let mut k = 0usize; // index of the last piece; meaningful once `started`
        let mut started = false;
        for q in 0..n {
            if !f[q].is_finite() {
                continue;
            }
            if !started {
                v[0] = q;
                z[0] = f64::NEG_INFINITY;
                z[1] = f64::INFINITY;
                started = true;
                continue;
            }
            // z[0] is -inf, so the search stops at the first piece at the latest.
            let qf = q as f64;
            let mut s;
            loop {
                let p = v[k] as f64;
                s = ((f[q] + qf * qf) - (f[v[k]] + p * p)) / (2.0 * qf - 2.0 * p);
                if s > z[k] {
                    break;
                }
                k -= 1;
            }
            k += 1;
            v[k] = q;
            z[k] = s;
            z[k + 1] = f64::INFINITY;
        }
        if !started {
            d.fill(f64::INFINITY);
            return;
        }
        let mut k = 0;
        for (q, out) in d.iter_mut().enumerate() {
            let qf = q as f64;
            while z[k + 1] < qf {
                k += 1;
            }
            let p = v[k] as f64;
            *out = (qf - p) * (qf - p) + f[v[k]];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rng::Rng;

    /// The definition, by brute force over every pair of pixels.
    fn brute_force(inside: &[bool], width: usize, height: usize) -> Vec<u32> {
        (0..width * height)
            .map(|p| {
                let (px, py) = ((p % width) as i64, (p / width) as i64);
                (0..width * height)
                    .filter(|&q| !inside[q])
                    .map(|q| {
                        let (qx, qy) = ((q % width) as i64, (q / width) as i64);
                        ((px - qx).pow(2) + (py - qy).pow(2)) as u32
                    })
                    .min()
                    .unwrap_or(NO_OUTSIDE)
            })
            .collect()
    }

    #[test]
    fn matches_brute_force_on_random_masks() {
        let mut rng = Rng::new(17);
        for case in 0..300 {
            let width = 1 + rng.below(13);
            let height = 1 + rng.below(11);
            // From nearly empty to nearly full, so that long runs and lone outside pixels occur.
            let density = rng.unit();
            let inside: Vec<bool> = (0..width * height).map(|_| rng.unit() < density).collect();
            assert_eq!(
                squared_edt(&inside, width, height),
                brute_force(&inside, width, height),
                "case {case}: {width}x{height}, {inside:?}"
            );
        }
    }

    #[test]
    fn a_full_mask_has_no_outside_and_an_empty_one_is_zero() {
        assert_eq!(squared_edt(&[true; 6], 3, 2), vec![NO_OUTSIDE; 6]);
        assert_eq!(squared_edt(&[false; 6], 2, 3), vec![0; 6]);
        assert!(squared_edt(&[], 0, 0).is_empty());
    }

    #[test]
    fn distances_are_euclidean_not_city_block() {
        // One outside pixel in the corner of a 4x4 mask: the far corner is 3^2 + 3^2 away.
        let mut inside = vec![true; 16];
        inside[0] = false;
        let d = squared_edt(&inside, 4, 4);
        assert_eq!(d[15], 18);
        assert_eq!(d[4 + 2], 5); // (2, 1)
    }
}
