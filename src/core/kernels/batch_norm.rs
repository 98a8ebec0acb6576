//! Batch normalisation with the batch's own statistics (training), optionally followed by a
//! ReLU, or by a residual add and a ReLU (the end of every ResNet block): forward and backward on
//! NCHW `f32`, two passes each.
//!
//! Per channel `c`, over the `N = batch * h * w` values `x` of that channel, with `r` the
//! residual (0 when there is none):
//!
//! ```text
//! mean = Σx / N          var = Σ(x - mean)² / N   (biased, as burn's running statistics take it)
//! inv  = 1 / sqrt(var + eps)      x̂ = (x - mean) · inv      z = gamma · x̂ + beta
//! y    = z                 (After::Nothing)
//!      = max(0, z)         (After::Relu)
//!      = max(0, z + r)     (After::AddRelu)
//!
//! dz     = dy, dy · [z > 0] or dy · [z + r > 0]            (y itself is not read)
//! dr     = dz                                               (the residual's gradient)
//! dbeta  = Σ dz          dgamma = Σ dz · x̂
//! dx     = gamma · inv · (dz - dbeta / N - x̂ · dgamma / N)
//! ```
//!
//! The statistics pass sums `x - s` and `(x - s)²` with `s` the channel's first value, which
//! keeps the one-pass variance free of cancellation whenever the values are not spread far wider
//! than their offset from `s`; sums are in `f64`. The UNet's case (a ReLU, no residual) has
//! hand-written AVX2 loops; the others are plain loops compiled per instruction set.

use std::mem::MaybeUninit;

use rayon::prelude::*;

use super::macros::multiversion;
use super::simd::{self, Isa};

/// What follows the normalisation.
#[derive(Debug, Clone, Copy)]
pub enum After<'a> {
    Nothing,
    Relu,
    /// `max(0, z + residual)`, `residual` shaped like `x`.
    AddRelu(&'a [f32]),
}

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
    shape: [usize; 3],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Stats) {
    forward_relu_with(simd::isa(), x, shape, gamma, beta, epsilon)
}

/// [`forward_relu`] with a chosen instruction set.
pub fn forward_relu_with(
    isa: Isa,
    x: &[f32],
    shape: [usize; 3],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f64,
) -> (Vec<f32>, Stats) {
    forward_with(isa, x, shape, gamma, beta, After::Relu, epsilon)
}

/// `batch_norm(x)` followed by `after`, for `x: [batch, channels, area]` contiguous; returns the
/// output and the batch statistics.
pub fn forward(
    x: &[f32],
    shape: [usize; 3],
    gamma: &[f32],
    beta: &[f32],
    after: After,
    epsilon: f64,
) -> (Vec<f32>, Stats) {
    forward_with(simd::isa(), x, shape, gamma, beta, after, epsilon)
}

/// [`forward`] with a chosen instruction set.
pub fn forward_with(
    isa: Isa,
    x: &[f32],
    [batch, channels, area]: [usize; 3],
    gamma: &[f32],
    beta: &[f32],
    after: After,
    epsilon: f64,
) -> (Vec<f32>, Stats) {
    assert_eq!(x.len(), batch * channels * area, "input size");
    if let After::AddRelu(r) = after {
        assert_eq!(r.len(), x.len(), "residual size");
    }
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
                let (a, q) = shifted_sums(isa, &x[start..start + area], shift);
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
            match after {
                After::Relu => affine_relu(isa, x, out, scale[c], offset[c]),
                After::Nothing => affine(x, None, false, out, scale[c], offset[c]),
                After::AddRelu(r) => {
                    let r = &r[plane * area..][..x.len()];
                    affine(x, Some(r), true, out, scale[c], offset[c])
                }
            }
        });
    // SAFETY: every plane of the output was written above.
    unsafe { y.set_len(x.len()) };
    (y, Stats { mean, var })
}

/// Gradients of [`forward_relu`]: `(dx, dgamma, dbeta)`, from the forward input `x` and
/// statistics and the output gradient `dy`. The ReLU's mask is recomputed from `x` exactly as
/// the forward pass computed it, which saves reading the output (one array less per pass).
#[allow(clippy::too_many_arguments)]
pub fn backward_relu(
    x: &[f32],
    dy: &[f32],
    shape: [usize; 3],
    gamma: &[f32],
    beta: &[f32],
    stats: &Stats,
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    backward_relu_with(simd::isa(), x, dy, shape, gamma, beta, stats, epsilon)
}

/// [`backward_relu`] with a chosen instruction set.
#[allow(clippy::too_many_arguments)]
pub fn backward_relu_with(
    isa: Isa,
    x: &[f32],
    dy: &[f32],
    [batch, channels, area]: [usize; 3],
    gamma: &[f32],
    beta: &[f32],
    stats: &Stats,
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(x.len(), batch * channels * area, "input size");
    assert_eq!(dy.len(), x.len(), "output gradient size");
    let n = (batch * area) as f64;
    let (scale, offset) = scale_offset(&stats.mean, &stats.var, gamma, beta, epsilon);
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
                let (a, q) = relu_grad_sums(
                    isa,
                    &x[at.clone()],
                    &dy[at],
                    [scale[c], offset[c], stats.mean[c]],
                );
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
    let coefficients: Vec<[f32; 6]> = (0..channels)
        .map(|c| {
            let k1 = gamma[c] as f64 * inv[c];
            let k2 = k1 * sums[c].0 / n;
            let k3 = k1 * inv[c] * inv[c] * sums[c].1 / n;
            [
                k1 as f32,
                k2 as f32,
                k3 as f32,
                stats.mean[c],
                scale[c],
                offset[c],
            ]
        })
        .collect();
    let mut dx = Vec::with_capacity(x.len());
    dx.spare_capacity_mut()
        .par_chunks_mut(area.max(1))
        .enumerate()
        .for_each(|(plane, out)| {
            let c = plane % channels;
            let at = plane * area..(plane + 1) * area;
            input_grad(isa, &x[at.clone()], &dy[at], out, coefficients[c]);
        });
    // SAFETY: every plane of dx was written above.
    unsafe { dx.set_len(x.len()) };
    (dx, dgamma, dbeta)
}

/// Gradients of [`forward`].
#[derive(Debug, Clone)]
pub struct Gradients {
    pub dx: Vec<f32>,
    pub dgamma: Vec<f32>,
    pub dbeta: Vec<f32>,
    /// The residual's gradient ([`After::AddRelu`] only).
    pub dresidual: Option<Vec<f32>>,
}

/// Gradients of [`forward`] from the forward input `x` (and residual, in `after`), statistics
/// and the output gradient `dy`.
#[allow(clippy::too_many_arguments)]
pub fn backward(
    x: &[f32],
    dy: &[f32],
    shape: [usize; 3],
    gamma: &[f32],
    beta: &[f32],
    stats: &Stats,
    after: After,
    epsilon: f64,
) -> Gradients {
    backward_with(
        simd::isa(),
        x,
        dy,
        shape,
        gamma,
        beta,
        stats,
        after,
        epsilon,
    )
}

/// [`backward`] with a chosen instruction set.
#[allow(clippy::too_many_arguments)]
pub fn backward_with(
    isa: Isa,
    x: &[f32],
    dy: &[f32],
    shape: [usize; 3],
    gamma: &[f32],
    beta: &[f32],
    stats: &Stats,
    after: After,
    epsilon: f64,
) -> Gradients {
    let [batch, channels, area] = shape;
    assert_eq!(x.len(), batch * channels * area, "input size");
    assert_eq!(dy.len(), x.len(), "output gradient size");
    let (dx, dgamma, dbeta, dresidual) = match after {
        After::Relu => {
            let (dx, dg, db) = backward_relu_with(isa, x, dy, shape, gamma, beta, stats, epsilon);
            (dx, dg, db, None)
        }
        After::Nothing => {
            let (dx, dg, db) = backward_linear(x, dy, shape, gamma, stats, epsilon);
            (dx, dg, db, None)
        }
        After::AddRelu(r) => {
            assert_eq!(r.len(), x.len(), "residual size");
            let (scale, offset) = scale_offset(&stats.mean, &stats.var, gamma, beta, epsilon);
            let mut dz = Vec::with_capacity(x.len());
            dz.spare_capacity_mut()
                .par_chunks_mut(area.max(1))
                .enumerate()
                .for_each(|(plane, out)| {
                    let c = plane % channels;
                    let at = plane * area..(plane + 1) * area;
                    mask_add_relu(
                        &x[at.clone()],
                        &r[at.clone()],
                        &dy[at],
                        out,
                        scale[c],
                        offset[c],
                    );
                });
            // SAFETY: every plane of dz was written above.
            unsafe { dz.set_len(x.len()) };
            let (dx, dg, db) = backward_linear(x, &dz, shape, gamma, stats, epsilon);
            (dx, dg, db, Some(dz))
        }
    };
    Gradients {
        dx,
        dgamma,
        dbeta,
        dresidual,
    }
}

/// The backward pass of the normalisation alone, from `dz` (the gradient of `z`).
fn backward_linear(
    x: &[f32],
    dz: &[f32],
    [batch, channels, area]: [usize; 3],
    gamma: &[f32],
    stats: &Stats,
    epsilon: f64,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let n = (batch * area) as f64;
    let inv: Vec<f64> = stats
        .var
        .iter()
        .map(|&v| 1.0 / (v as f64 + epsilon).sqrt())
        .collect();
    let sums: Vec<(f64, f64)> = (0..channels)
        .into_par_iter()
        .map(|c| {
            (0..batch).fold((0.0, 0.0), |(a, q), b| {
                let at = (b * channels + c) * area..(b * channels + c + 1) * area;
                let (da, dq) = centred_sums(&x[at.clone()], &dz[at], stats.mean[c]);
                (a + da, q + dq)
            })
        })
        .collect();
    let dbeta = sums.iter().map(|&(s, _)| s as f32).collect();
    let dgamma = sums
        .iter()
        .zip(&inv)
        .map(|(&(_, sx), &inv)| (sx * inv) as f32)
        .collect();
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
            let at = plane * area..(plane + 1) * area;
            linear_input_grad(&x[at.clone()], &dz[at], out, coefficients[plane % channels]);
        });
    // SAFETY: every plane of dx was written above.
    unsafe { dx.set_len(x.len()) };
    (dx, dgamma, dbeta)
}

/// Lanes of the plain loops' partial sums (wide enough for AVX-512).
const SUM_LANES: usize = 16;

multiversion! {
    /// `out = x·scale + offset`, or with `residual`/`relu`: `max(0, x·scale + offset + r)`
    /// (NaNs kept).
    fn affine(
        x: &[f32],
        residual: Option<&[f32]>,
        relu: bool,
        out: &mut [MaybeUninit<f32>],
        scale: f32,
        offset: f32,
    ) {
        match (residual, relu) {
            (Some(r), _) => {
                for ((o, &v), &r) in out.iter_mut().zip(x).zip(r) {
                    let z = v * scale + offset + r;
                    *o = MaybeUninit::new(if z < 0.0 { 0.0 } else { z });
                }
            }
            (None, true) => {
                for (o, &v) in out.iter_mut().zip(x) {
                    let z = v * scale + offset;
                    *o = MaybeUninit::new(if z < 0.0 { 0.0 } else { z });
                }
            }
            (None, false) => {
                for (o, &v) in out.iter_mut().zip(x) {
                    *o = MaybeUninit::new(v * scale + offset);
                }
            }
        }
    }
}

multiversion! {
    /// `out = dy · [x·scale + offset + r > 0]`, the mask computed exactly as [`affine`] did.
    fn mask_add_relu(
        x: &[f32],
        r: &[f32],
        dy: &[f32],
        out: &mut [MaybeUninit<f32>],
        scale: f32,
        offset: f32,
    ) {
        for (((o, &v), &r), &g) in out.iter_mut().zip(x).zip(r).zip(dy) {
            let z = v * scale + offset + r;
            *o = MaybeUninit::new(if z > 0.0 { g } else { 0.0 });
        }
    }
}

multiversion! {
    /// `(Σdz, Σdz·(x - mean))`, in 16 f32 lanes summed in f64.
    fn centred_sums(x: &[f32], dz: &[f32], mean: f32) -> (f64, f64) {
        let n = x.len().min(dz.len()) / SUM_LANES * SUM_LANES;
        let (mut a, mut q) = ([0.0f32; SUM_LANES], [0.0f32; SUM_LANES]);
        for (xs, gs) in x[..n].chunks_exact(SUM_LANES).zip(dz[..n].chunks_exact(SUM_LANES)) {
            for k in 0..SUM_LANES {
                a[k] += gs[k];
                q[k] += gs[k] * (xs[k] - mean);
            }
        }
        let mut sa: f64 = a.iter().map(|&v| v as f64).sum();
        let mut sq: f64 = q.iter().map(|&v| v as f64).sum();
        for (&x, &g) in x[n..].iter().zip(&dz[n..]) {
            sa += g as f64;
            sq += g as f64 * (x - mean) as f64;
        }
        (sa, sq)
    }
}

multiversion! {
    /// `out = k1·dz - k2 - k3·(x - mean)`; `k = [k1, k2, k3, mean]`.
    fn linear_input_grad(x: &[f32], dz: &[f32], out: &mut [MaybeUninit<f32>], k: [f32; 4]) {
        let [k1, k2, k3, mean] = k;
        for ((o, &x), &g) in out.iter_mut().zip(x).zip(dz) {
            *o = MaybeUninit::new(k1 * g - k2 - k3 * (x - mean));
        }
    }
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

/// `(Σ(x - s), Σ(x - s)²)`.
fn shifted_sums(isa: Isa, x: &[f32], shift: f32) -> (f64, f64) {
    let _ = isa; // only x86-64 has a vector path
    #[cfg(target_arch = "x86_64")]
    if isa.has_avx2() {
        // SAFETY: AVX2 and FMA are present (an AVX2 Isa is only chosen after checking).
        return unsafe { x86::shifted_sums(x, shift) };
    }
    x.iter().fold((0.0, 0.0), |(a, q), &v| {
        let d = (v - shift) as f64;
        (a + d, q + d * d)
    })
}

/// `out = relu(x · scale + offset)`, keeping NaNs (so that a diverged step is seen).
fn affine_relu(isa: Isa, x: &[f32], out: &mut [MaybeUninit<f32>], scale: f32, offset: f32) {
    let _ = isa;
    #[cfg(target_arch = "x86_64")]
    if isa.has_avx2() {
        // SAFETY: AVX2 and FMA are present (an AVX2 Isa is only chosen after checking).
        return unsafe { x86::affine_relu(x, out, scale, offset) };
    }
    for (o, &v) in out.iter_mut().zip(x) {
        let z = v * scale + offset;
        *o = MaybeUninit::new(if z < 0.0 { 0.0 } else { z });
    }
}

/// `(Σdz, Σdz·(x - mean))` with `dz = dy · [x·scale + offset > 0]`; `k = [scale, offset,
/// mean]`.
fn relu_grad_sums(isa: Isa, x: &[f32], dy: &[f32], k: [f32; 3]) -> (f64, f64) {
    let _ = isa;
    #[cfg(target_arch = "x86_64")]
    if isa.has_avx2() {
        // SAFETY: AVX2 and FMA are present (an AVX2 Isa is only chosen after checking).
        return unsafe { x86::relu_grad_sums(x, dy, k) };
    }
    let [scale, offset, mean] = k;
    x.iter().zip(dy).fold((0.0, 0.0), |(a, q), (&x, &dy)| {
        let dz = if x * scale + offset > 0.0 {
            dy as f64
        } else {
            0.0
        };
        (a + dz, q + dz * (x - mean) as f64)
    })
}

/// `out = k1·dz - k2 - k3·(x - mean)` with `dz = dy · [x·scale + offset > 0]`;
/// `k = [k1, k2, k3, mean, scale, offset]`.
fn input_grad(isa: Isa, x: &[f32], dy: &[f32], out: &mut [MaybeUninit<f32>], k: [f32; 6]) {
    let _ = isa;
    #[cfg(target_arch = "x86_64")]
    if isa.has_avx2() {
        // SAFETY: AVX2 and FMA are present (an AVX2 Isa is only chosen after checking).
        return unsafe { x86::input_grad(x, dy, out, k) };
    }
    let [k1, k2, k3, mean, scale, offset] = k;
    for ((o, &x), &dy) in out.iter_mut().zip(x).zip(dy) {
        let dz = if x * scale + offset > 0.0 { dy } else { 0.0 };
        *o = MaybeUninit::new(k1 * dz - k2 - k3 * (x - mean));
    }
}

/// The AVX2 versions: 8 values per step, the ReLU mask as a compare-and-AND, the scalar
/// remainder as above. The mask is computed with a multiply and an add (no FMA) in both
/// passes so that it is bit for bit the forward pass's.
#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    use super::super::simd::x86::hsum;

    #[target_feature(enable = "avx2,fma")]
    pub fn shifted_sums(x: &[f32], shift: f32) -> (f64, f64) {
        let n = x.len() / 16 * 16;
        let s = _mm256_set1_ps(shift);
        let (mut a0, mut a1, mut q0, mut q1) = (
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
            _mm256_setzero_ps(),
        );
        for i in (0..n).step_by(16) {
            // SAFETY: i + 16 <= n <= x.len().
            let (d0, d1) = unsafe {
                (
                    _mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i)), s),
                    _mm256_sub_ps(_mm256_loadu_ps(x.as_ptr().add(i + 8)), s),
                )
            };
            a0 = _mm256_add_ps(a0, d0);
            a1 = _mm256_add_ps(a1, d1);
            q0 = _mm256_fmadd_ps(d0, d0, q0);
            q1 = _mm256_fmadd_ps(d1, d1, q1);
        }
        let mut a = hsum(a0) as f64 + hsum(a1) as f64;
        let mut q = hsum(q0) as f64 + hsum(q1) as f64;
        for &v in &x[n..] {
            let d = (v - shift) as f64;
            a += d;
            q += d * d;
        }
        (a, q)
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn affine_relu(x: &[f32], out: &mut [MaybeUninit<f32>], scale: f32, offset: f32) {
        let n = x.len().min(out.len()) / 8 * 8;
        let (sc, of, zero) = (
            _mm256_set1_ps(scale),
            _mm256_set1_ps(offset),
            _mm256_setzero_ps(),
        );
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n, within both slices.
            unsafe {
                let z = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x.as_ptr().add(i)), sc), of);
                // maxps returns its second operand when either is NaN: NaNs pass through.
                let y = _mm256_max_ps(zero, z);
                _mm256_storeu_ps(out.as_mut_ptr().add(i) as *mut f32, y);
            }
        }
        for (o, &v) in out[n..].iter_mut().zip(&x[n..]) {
            let z = v * scale + offset;
            *o = MaybeUninit::new(if z < 0.0 { 0.0 } else { z });
        }
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn relu_grad_sums(x: &[f32], dy: &[f32], k: [f32; 3]) -> (f64, f64) {
        let [scale, offset, mean] = k;
        let n = x.len().min(dy.len()) / 8 * 8;
        let (sc, of, m, zero) = (
            _mm256_set1_ps(scale),
            _mm256_set1_ps(offset),
            _mm256_set1_ps(mean),
            _mm256_setzero_ps(),
        );
        let (mut a, mut q) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n, within both slices.
            let (xv, g) = unsafe {
                (
                    _mm256_loadu_ps(x.as_ptr().add(i)),
                    _mm256_loadu_ps(dy.as_ptr().add(i)),
                )
            };
            let z = _mm256_add_ps(_mm256_mul_ps(xv, sc), of);
            let dz = _mm256_and_ps(g, _mm256_cmp_ps::<_CMP_GT_OQ>(z, zero));
            a = _mm256_add_ps(a, dz);
            q = _mm256_fmadd_ps(dz, _mm256_sub_ps(xv, m), q);
        }
        let (mut sa, mut sq) = (hsum(a) as f64, hsum(q) as f64);
        for (&x, &dy) in x[n..].iter().zip(&dy[n..]) {
            let dz = if x * scale + offset > 0.0 {
                dy as f64
            } else {
                0.0
            };
            sa += dz;
            sq += dz * (x - mean) as f64;
        }
        (sa, sq)
    }

    #[target_feature(enable = "avx2,fma")]
    pub fn input_grad(x: &[f32], dy: &[f32], out: &mut [MaybeUninit<f32>], k: [f32; 6]) {
        let [k1, k2, k3, mean, scale, offset] = k;
        let n = x.len().min(dy.len()).min(out.len()) / 8 * 8;
        let v = |c: f32| _mm256_set1_ps(c);
        let (vk1, vk2, vk3, m, sc, of) = (v(k1), v(k2), v(k3), v(mean), v(scale), v(offset));
        let zero = _mm256_setzero_ps();
        for i in (0..n).step_by(8) {
            // SAFETY: i + 8 <= n, within all three slices.
            unsafe {
                let xv = _mm256_loadu_ps(x.as_ptr().add(i));
                let g = _mm256_loadu_ps(dy.as_ptr().add(i));
                let z = _mm256_add_ps(_mm256_mul_ps(xv, sc), of);
                let dz = _mm256_and_ps(g, _mm256_cmp_ps::<_CMP_GT_OQ>(z, zero));
                // k1·dz - k2 - k3·(x - mean)
                let r = _mm256_fnmadd_ps(vk3, _mm256_sub_ps(xv, m), _mm256_fmsub_ps(vk1, dz, vk2));
                _mm256_storeu_ps(out.as_mut_ptr().add(i) as *mut f32, r);
            }
        }
        for ((o, &x), &dy) in out[n..].iter_mut().zip(&x[n..]).zip(&dy[n..]) {
            let dz = if x * scale + offset > 0.0 { dy } else { 0.0 };
            *o = MaybeUninit::new(k1 * dz - k2 - k3 * (x - mean));
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
            for isa in simd::available() {
                let (y, stats) = forward_relu_with(isa, &x, shape, &gamma, &beta, eps);
                let (dx, dg, db) =
                    backward_relu_with(isa, &x, &dy, shape, &gamma, &beta, &stats, eps);
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

    /// Without a ReLU, and with a residual add + ReLU: the formulas of the module comment in
    /// f64, every instruction set.
    #[test]
    fn plain_and_residual_variants_match_the_formulas() {
        for &(shape, offset) in &[([2, 3, 7], 0.0), ([1, 1, 1], 0.0), ([3, 2, 37], 20.0)] {
            let [b, c, a] = shape;
            let n = (b * a) as f64;
            let x = values(b * c * a, 5, offset);
            let dy = values(b * c * a, 6, 0.0);
            let r = values(b * c * a, 7, 0.0);
            let gamma = values(c, 8, 1.0);
            let beta = values(c, 9, 0.0);
            let eps = 1e-5;
            for residual in [false, true] {
                let after = if residual {
                    After::AddRelu(&r)
                } else {
                    After::Nothing
                };
                // Reference: z, the mask, then the normalisation's backward pass from dz.
                let mut y_ref = vec![0.0f64; x.len()];
                let mut dz_ref = vec![0.0f64; x.len()];
                let mut dx_ref = vec![0.0f64; x.len()];
                let (mut dg_ref, mut db_ref) = (vec![0.0; c], vec![0.0; c]);
                for ci in 0..c {
                    let idx: Vec<usize> = (0..b)
                        .flat_map(|bi| (0..a).map(move |p| (bi * c + ci) * a + p))
                        .collect();
                    let mean = idx.iter().map(|&i| x[i] as f64).sum::<f64>() / n;
                    let var = idx
                        .iter()
                        .map(|&i| (x[i] as f64 - mean).powi(2))
                        .sum::<f64>()
                        / n;
                    let inv = 1.0 / (var + eps).sqrt();
                    for &i in &idx {
                        let z = gamma[ci] as f64 * (x[i] as f64 - mean) * inv + beta[ci] as f64;
                        (y_ref[i], dz_ref[i]) = match residual {
                            true if z + r[i] as f64 > 0.0 => (z + r[i] as f64, dy[i] as f64),
                            true => (0.0, 0.0),
                            false => (z, dy[i] as f64),
                        };
                        db_ref[ci] += dz_ref[i];
                        dg_ref[ci] += dz_ref[i] * (x[i] as f64 - mean) * inv;
                    }
                    for &i in &idx {
                        let xh = (x[i] as f64 - mean) * inv;
                        dx_ref[i] = gamma[ci] as f64
                            * inv
                            * (dz_ref[i] - db_ref[ci] / n - xh * dg_ref[ci] / n);
                    }
                }
                for isa in simd::available() {
                    let what = format!("{isa:?} {shape:?} residual {residual}");
                    let (y, stats) = forward_with(isa, &x, shape, &gamma, &beta, after, eps);
                    let g = backward_with(isa, &x, &dy, shape, &gamma, &beta, &stats, after, eps);
                    for i in 0..x.len() {
                        assert!(close(y[i], y_ref[i], 1e-4), "{what} y[{i}]");
                        assert!(close(g.dx[i], dx_ref[i], 1e-3), "{what} dx[{i}]");
                    }
                    for ci in 0..c {
                        assert!(close(g.dgamma[ci], dg_ref[ci], 1e-4), "{what} dgamma");
                        assert!(close(g.dbeta[ci], db_ref[ci], 1e-4), "{what} dbeta");
                    }
                    match (&g.dresidual, residual) {
                        (Some(dr), true) => {
                            for i in 0..x.len() {
                                assert!(close(dr[i], dz_ref[i], 1e-6), "{what} dr[{i}]");
                            }
                        }
                        (None, false) => {}
                        _ => panic!("{what}: a residual gradient exactly when there is a residual"),
                    }
                }
            }
        }
    }
}
