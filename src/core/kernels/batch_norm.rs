//! Batch normalisation with the batch's own statistics, fused with the ReLU that follows it in
//! every UNet block: training forward and backward on NCHW `f32`, two passes each.
//!
//! Per channel `c`, over the `N = batch * h * w` values `x` of that channel:
//!
//! ```text
//! mean = Σx / N          var = Σ(x - mean)² / N   (biased, as burn's running statistics take it)
//! inv  = 1 / sqrt(var + eps)      x̂ = (x - mean) · inv
//! y    = max(0, gamma · x̂ + beta)
//!
//! dz     = dy · [y > 0]                                   (ReLU)
//! dbeta  = Σ dz          dgamma = Σ dz · x̂
//! dx     = gamma · inv · (dz - dbeta / N - x̂ · dgamma / N)
//! ```
//!
//! The statistics pass sums `x - s` and `(x - s)²` with `s` the channel's first value, which
//! keeps the one-pass variance free of cancellation whenever the values are not spread far wider
//! than their offset from `s`; sums are in `f64`.

use rayon::prelude::*;

use super::macros::multiversion;

/// What the forward pass computed, besides its output.
#[derive(Debug, Clone, PartialEq)]
pub struct Stats {
    /// Per-channel mean.
    pub mean: Vec<f32>,
    /// Per-channel biased variance.
    pub var: Vec<f32>,
}

/// `relu(batch_norm(x))` for `x: [batch, channels, area]` contiguous; returns the output and the
/// batch statistics.
pub fn forward_relu(
    x: &[f32],
    [batch, channels, area]: [usize; 3],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Stats) {
    assert_eq!(x.len(), batch * channels * area, "input size");
    assert_eq!(gamma.len(), channels, "gamma size");
    assert_eq!(beta.len(), channels, "beta size");
    let n = (batch * area) as f64;
    let (mean, var): (Vec<f32>, Vec<f32>) = (0..channels)
        .into_par_iter()
        .map(|c| {
            if batch * area == 0 {
                return (0.0, 0.0);
            }
            let shift = x[c * area];
            let (mut s1, mut s2) = (0.0f64, 0.0f64);
            for b in 0..batch {
                let start = (b * channels + c) * area;
                let (a, q) = shifted_sums(&x[start..start + area], shift);
                s1 += a;
                s2 += q;
            }
            let m = s1 / n;
            let var = (s2 / n - m * m).max(0.0);
            ((shift as f64 + m) as f32, var as f32)
        })
        .unzip();
    let (scale, offset) = scale_offset(&mean, &var, gamma, beta, epsilon);
    let mut y = Vec::with_capacity(x.len());
    y.spare_capacity_mut()
        .par_chunks_mut(area.max(1))
        .zip(x.par_chunks(area.max(1)))
        .enumerate()
        .for_each(|(plane, (out, x))| {
            let c = plane % channels;
            affine_relu(x, out, scale[c], offset[c]);
        });
    // SAFETY: every plane of the output was written above.
    unsafe { y.set_len(x.len()) };
    (y, Stats { mean, var })
}

/// Gradients of [`forward_relu`]: `(dx, dgamma, dbeta)`, from the forward input `x`, its output
/// `y` and statistics, and the output gradient `dy`.
#[allow(clippy::too_many_arguments)]
pub fn backward_relu(
    x: &[f32],
    y: &[f32],
    dy: &[f32],
    [batch, channels, area]: [usize; 3],
    gamma: &[f32],
    stats: &Stats,
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), batch * channels * area, "input size");
    assert_eq!(y.len(), x.len(), "output size");
    assert_eq!(dy.len(), x.len(), "output gradient size");
    let n = (batch * area) as f64;
    let inv: Vec<f64> = stats
        .var
        .iter()
        .map(|&v| 1.0 / (v as f64 + epsilon).sqrt())
        .collect();
    // Per channel: Σdz and Σdz·(x - mean).
    let sums: Vec<(f64, f64)> = (0..channels)
        .into_par_iter()
        .map(|c| {
            let (mut sdz, mut sdzx) = (0.0, 0.0);
            for b in 0..batch {
                let at = (b * channels + c) * area..(b * channels + c + 1) * area;
                let (a, q) = relu_grad_sums(&x[at.clone()], &y[at.clone()], &dy[at], stats.mean[c]);
                sdz += a;
                sdzx += q;
            }
            (sdz, sdzx)
        })
        .collect();
    let dbeta: Vec<f32> = sums.iter().map(|&(s, _)| s as f32).collect();
    let dgamma: Vec<f32> = sums
        .iter()
        .zip(&inv)
        .map(|(&(_, sx), &inv)| (sx * inv) as f32)
        .collect();
    // dx = k1·dz - k2 - k3·(x - mean)
    let coefficients: Vec<[f32; 4]> = (0..channels)
        .map(|c| {
            let k1 = gamma[c] as f64 * inv[c];
            let k2 = k1 * sums[c].0 / n;
            let k3 = k1 * inv[c] * inv[c] * sums[c].1 / n;
            [k1 as f32, k2 as f32, k3 as f32, stats.mean[c]]
        })
        .collect();
    let mut dx = Vec::with_capacity(x.len());
    dx.spare_capacity_mut()
        .par_chunks_mut(area.max(1))
        .enumerate()
        .for_each(|(plane, out)| {
            let c = plane % channels;
            let at = plane * area..(plane + 1) * area;
            input_grad(
                &x[at.clone()],
                &y[at.clone()],
                &dy[at],
                out,
                coefficients[c],
            );
        });
    // SAFETY: every plane of dx was written above.
    unsafe { dx.set_len(x.len()) };
    (dx, dgamma, dbeta)
}

/// Per-channel `scale = gamma / sqrt(var + eps)` and `offset = beta - mean · scale`: batch norm
/// as one multiply-add, also how inference folds it into the preceding convolution.
pub fn scale_offset(
    mean: &[f32],
    var: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>) {
    (0..mean.len())
        .map(|c| {
            let scale = gamma[c] as f64 / (var[c] as f64 + epsilon).sqrt();
            (
                scale as f32,
                (beta[c] as f64 - mean[c] as f64 * scale) as f32,
            )
        })
        .unzip()
}

multiversion! {
    /// `(Σ(x - s), Σ(x - s)²)`.
    fn shifted_sums(x: &[f32], shift: f32) -> (f64, f64) {
        let mut a = [0.0f32; 16];
        let mut q = [0.0f32; 16];
        let mut chunks = x.chunks_exact(16);
        for chunk in &mut chunks {
            for k in 0..16 {
                let d = chunk[k] - shift;
                a[k] += d;
                q[k] += d * d;
            }
        }
        let (mut sa, mut sq) = (0.0f64, 0.0f64);
        for k in 0..16 {
            sa += a[k] as f64;
            sq += q[k] as f64;
        }
        for &v in chunks.remainder() {
            let d = (v - shift) as f64;
            sa += d;
            sq += d * d;
        }
        (sa, sq)
    }
}

multiversion! {
    /// `out = max(0, x · scale + offset)`.
    fn affine_relu(x: &[f32], out: &mut [std::mem::MaybeUninit<f32>], scale: f32, offset: f32) {
        for (o, &v) in out.iter_mut().zip(x) {
            let z = v * scale + offset;
            // Not `max(0.0)`, which would hide a NaN from the loss.
            *o = std::mem::MaybeUninit::new(if z < 0.0 { 0.0 } else { z });
        }
    }
}

multiversion! {
    /// `(Σdz, Σdz·(x - mean))` with `dz = dy · [y > 0]`.
    fn relu_grad_sums(x: &[f32], y: &[f32], dy: &[f32], mean: f32) -> (f64, f64) {
        let mut a = [0.0f32; 8];
        let mut q = [0.0f32; 8];
        let n = x.len() / 8 * 8;
        for ((x, y), dy) in x[..n]
            .chunks_exact(8)
            .zip(y[..n].chunks_exact(8))
            .zip(dy[..n].chunks_exact(8))
        {
            for k in 0..8 {
                let dz = if y[k] > 0.0 { dy[k] } else { 0.0 };
                a[k] += dz;
                q[k] += dz * (x[k] - mean);
            }
        }
        let (mut sa, mut sq) = (0.0f64, 0.0f64);
        for k in 0..8 {
            sa += a[k] as f64;
            sq += q[k] as f64;
        }
        for k in n..x.len() {
            let dz = if y[k] > 0.0 { dy[k] as f64 } else { 0.0 };
            sa += dz;
            sq += dz * (x[k] - mean) as f64;
        }
        (sa, sq)
    }
}

multiversion! {
    /// `out = k1·dz - k2 - k3·(x - mean)` with `dz = dy · [y > 0]`; `k = [k1, k2, k3, mean]`.
    fn input_grad(
        x: &[f32],
        y: &[f32],
        dy: &[f32],
        out: &mut [std::mem::MaybeUninit<f32>],
        k: [f32; 4],
    ) {
        let [k1, k2, k3, mean] = k;
        for (((o, &x), &y), &dy) in out.iter_mut().zip(x).zip(y).zip(dy) {
            let dz = if y > 0.0 { dy } else { 0.0 };
            *o = std::mem::MaybeUninit::new(k1 * dz - k2 - k3 * (x - mean));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(n: usize, seed: u64, offset: f32) -> Vec<f32> {
        let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                offset + ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
            })
            .collect()
    }

    /// The formulas of the module comment, in f64, straight from their definitions.
    #[allow(clippy::type_complexity)]
    fn reference(
        x: &[f32],
        dy: &[f32],
        [b, c, a]: [usize; 3],
        gamma: &[f32],
        beta: &[f32],
        eps: f64,
    ) -> (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        let n = (b * a) as f64;
        let at = |bi: usize, ci: usize, p: usize| (bi * c + ci) * a + p;
        let (mut y, mut dx) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        let (mut means, mut vars, mut dg, mut db) = (vec![], vec![], vec![], vec![]);
        for ci in 0..c {
            let vals: Vec<(usize, f64)> = (0..b)
                .flat_map(|bi| (0..a).map(move |p| at(bi, ci, p)))
                .map(|i| (i, x[i] as f64))
                .collect();
            let mean = vals.iter().map(|v| v.1).sum::<f64>() / n;
            let var = vals.iter().map(|v| (v.1 - mean).powi(2)).sum::<f64>() / n;
            let inv = 1.0 / (var + eps).sqrt();
            let g = gamma[ci] as f64;
            let mut sdz = 0.0;
            let mut sdzh = 0.0;
            for &(i, v) in &vals {
                let z = g * (v - mean) * inv + beta[ci] as f64;
                y[i] = z.max(0.0);
                let dz = if z > 0.0 { dy[i] as f64 } else { 0.0 };
                sdz += dz;
                sdzh += dz * (v - mean) * inv;
            }
            for &(i, v) in &vals {
                let z = g * (v - mean) * inv + beta[ci] as f64;
                let dz = if z > 0.0 { dy[i] as f64 } else { 0.0 };
                dx[i] = g * inv * (dz - sdz / n - (v - mean) * inv * sdzh / n);
            }
            means.push(mean);
            vars.push(var);
            dg.push(sdzh);
            db.push(sdz);
        }
        (y, means, vars, dx, dg, db)
    }

    fn close(a: f32, b: f64, tol: f64) -> bool {
        (a as f64 - b).abs() <= tol * (1.0 + b.abs())
    }

    #[test]
    fn forward_and_backward_match_the_formulas() {
        // Odd areas exercise the vector remainders; an offset of 50 tests the shifted sums.
        for &(shape, offset) in &[
            ([2, 3, 7], 0.0),
            ([1, 1, 1], 0.0),
            ([3, 2, 37], 50.0),
            ([2, 5, 64], -3.0),
        ] {
            let [b, c, a] = shape;
            let x = values(b * c * a, 1, offset);
            let dy = values(b * c * a, 2, 0.0);
            let gamma = values(c, 3, 1.0);
            let beta = values(c, 4, 0.0);
            let eps = 1e-5;
            let (y_ref, m_ref, v_ref, dx_ref, dg_ref, db_ref) =
                reference(&x, &dy, shape, &gamma, &beta, eps);
            let (y, stats) = forward_relu(&x, shape, &gamma, &beta, eps);
            let (dx, dg, db) = backward_relu(&x, &y, &dy, shape, &gamma, &stats, eps);
            for i in 0..x.len() {
                assert!(close(y[i], y_ref[i], 1e-4), "{shape:?} y[{i}]");
                assert!(
                    close(dx[i], dx_ref[i], 1e-3),
                    "{shape:?} dx[{i}] {} vs {}",
                    dx[i],
                    dx_ref[i]
                );
            }
            for ci in 0..c {
                assert!(close(stats.mean[ci], m_ref[ci], 1e-5), "{shape:?} mean");
                assert!(close(stats.var[ci], v_ref[ci], 1e-4), "{shape:?} var");
                assert!(close(dg[ci], dg_ref[ci], 1e-4), "{shape:?} dgamma");
                assert!(close(db[ci], db_ref[ci], 1e-4), "{shape:?} dbeta");
            }
        }
    }
}
