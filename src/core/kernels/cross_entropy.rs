//! Pixel-wise cross-entropy on logits `[batch, classes, area]` with class-id targets
//! `[batch, area]`, fused into one forward pass that also keeps what the backward needs.
//!
//! With `p = softmax(l)` over classes, `t` a pixel's target and `w_t` its class weight (1 without
//! weights, 0 for an ignored pixel: a target outside `0..classes`, such as 255):
//!
//! ```text
//! loss     = Σ_pixels w_t · (log Σ_k exp(l_k) - l_t) / max(Σ_pixels w_t, 1e-12)
//! dloss/dl = w_t / max(Σ w_t, 1e-12) · (p - onehot(t))
//! ```
//!
//! which is [`crate::core::train::loss::cross_entropy`] (PyTorch's weighted mean reduction, but
//! 0 instead of NaN for an all-ignored batch). `exp` and `ln` are vectorisable polynomial
//! approximations accurate to a few `f32` ulps.

use rayon::prelude::*;

use super::macros::multiversion;

/// Same floor as the composite loss's normaliser.
const MIN_NORMALISER: f64 = 1e-12;

/// What the backward pass needs: the probabilities and each pixel's coefficient.
#[derive(Debug, Clone)]
pub struct Saved {
    /// `[batch, classes, area]` softmax probabilities.
    pub probs: Vec<f32>,
    /// `[batch, area]` target class, `u32::MAX` where ignored.
    pub targets: Vec<u32>,
    /// `[batch, area]` `w_t / max(Σ w_t, 1e-12)` (0 where ignored).
    pub coefficients: Vec<f32>,
}

/// Loss and saved state for `logits: [batch, classes, area]`, `targets: [batch, area]`.
pub fn forward(
    logits: &[f32],
    targets: &[i64],
    [batch, classes, area]: [usize; 3],
    class_weights: Option<&[f32]>,
) -> (f32, Saved) {
    assert_eq!(logits.len(), batch * classes * area, "logits size");
    assert_eq!(targets.len(), batch * area, "targets size");
    if let Some(w) = class_weights {
        assert_eq!(w.len(), classes, "one weight per class");
    }
    let weight_of = |t: i64| -> f32 {
        if t < 0 || t as usize >= classes {
            0.0
        } else {
            class_weights.map_or(1.0, |w| w[t as usize])
        }
    };
    let targets: Vec<u32> = targets
        .iter()
        .map(|&t| {
            if (0..classes as i64).contains(&t) {
                t as u32
            } else {
                u32::MAX
            }
        })
        .collect();
    let mut probs = vec![0.0f32; logits.len()];
    // Per image: (Σ w·nll, Σ w).
    let parts: Vec<(f64, f64)> = probs
        .par_chunks_mut(classes * area)
        .zip(logits.par_chunks(classes * area))
        .zip(targets.par_chunks(area))
        .map(|((probs, logits), targets)| {
            let mut lse = vec![0.0f32; area];
            softmax_planes(logits, probs, &mut lse, classes, area);
            let (mut loss, mut norm) = (0.0f64, 0.0f64);
            for (p, &t) in targets.iter().enumerate() {
                if t == u32::MAX {
                    continue;
                }
                let w = weight_of(t as i64) as f64;
                loss += w * (lse[p] as f64 - logits[t as usize * area + p] as f64);
                norm += w;
            }
            (loss, norm)
        })
        .collect();
    let loss: f64 = parts.iter().map(|p| p.0).sum();
    let norm = parts.iter().map(|p| p.1).sum::<f64>().max(MIN_NORMALISER);
    let coefficients = targets
        .iter()
        .map(|&t| {
            if t == u32::MAX {
                0.0
            } else {
                (weight_of(t as i64) as f64 / norm) as f32
            }
        })
        .collect();
    (
        (loss / norm) as f32,
        Saved {
            probs,
            targets,
            coefficients,
        },
    )
}

/// `dloss/dlogits` scaled by the loss's own gradient `grad`, written over the probabilities.
pub fn backward(saved: Saved, grad: f32, [batch, classes, area]: [usize; 3]) -> Vec<f32> {
    let Saved {
        mut probs,
        targets,
        coefficients,
    } = saved;
    assert_eq!(probs.len(), batch * classes * area, "probabilities size");
    probs
        .par_chunks_mut(classes * area)
        .zip(targets.par_chunks(area))
        .zip(coefficients.par_chunks(area))
        .for_each(|((plane, targets), coefficients)| {
            for (k, class) in plane.chunks_exact_mut(area).enumerate() {
                scale_by(class, coefficients, grad);
                for (p, &t) in targets.iter().enumerate() {
                    if t as usize == k {
                        class[p] -= grad * coefficients[p];
                    }
                }
            }
        });
    probs
}

multiversion! {
    /// `x *= c · s` element-wise.
    fn scale_by(x: &mut [f32], c: &[f32], s: f32) {
        for (x, &c) in x.iter_mut().zip(c) {
            *x *= c * s;
        }
    }
}

/// Softmax over `classes` planes of `area` pixels each, plus `log Σ exp` per pixel.
fn softmax_planes(logits: &[f32], probs: &mut [f32], lse: &mut [f32], classes: usize, area: usize) {
    // Column blocks keep the per-pixel running values in cache across the class planes.
    const BLOCK: usize = 256;
    let mut max = [0.0f32; BLOCK];
    let mut sum = [0.0f32; BLOCK];
    for start in (0..area).step_by(BLOCK) {
        let n = BLOCK.min(area - start);
        let (max, sum) = (&mut max[..n], &mut sum[..n]);
        max.copy_from_slice(&logits[start..start + n]);
        for k in 1..classes {
            max_into(max, &logits[k * area + start..][..n]);
        }
        sum.fill(0.0);
        for k in 0..classes {
            let at = k * area + start;
            exp_shifted(&logits[at..at + n], max, &mut probs[at..at + n], sum);
        }
        for k in 0..classes {
            let at = k * area + start;
            divide(&mut probs[at..at + n], sum);
        }
        log_plus(sum, max, &mut lse[start..start + n]);
    }
}

multiversion! {
    /// Element-wise maximum that keeps NaNs (so that a NaN logit makes a NaN loss).
    fn max_into(max: &mut [f32], x: &[f32]) {
        for (m, &v) in max.iter_mut().zip(x) {
            *m = if v > *m || v.is_nan() { v } else { *m };
        }
    }
}

multiversion! {
    /// `out = exp(x - max)`, `sum += out`.
    fn exp_shifted(x: &[f32], max: &[f32], out: &mut [f32], sum: &mut [f32]) {
        for k in 0..out.len() {
            let e = exp_approx(x[k] - max[k]);
            out[k] = e;
            sum[k] += e;
        }
    }
}

multiversion! {
    fn divide(x: &mut [f32], by: &[f32]) {
        for (x, &d) in x.iter_mut().zip(by) {
            *x /= d;
        }
    }
}

multiversion! {
    /// `out = ln(sum) + max`.
    fn log_plus(sum: &[f32], max: &[f32], out: &mut [f32]) {
        for k in 0..out.len() {
            out[k] = ln_approx(sum[k]) + max[k];
        }
    }
}

/// `e^x` for `x <= 0` (clamped at -87, where it is ~1e-38), NaN for NaN: range reduction to
/// `x = n·ln2 + r`, `|r| <= ln2/2`, then a degree-6 polynomial (Cephes `expf` coefficients).
#[inline(always)]
pub(super) fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    // Not `max`, which would turn a NaN into -87: a NaN logit must give a NaN loss.
    let x = if x < -87.0 { -87.0 } else { x };
    let n = (x * LOG2E).round();
    let r = x - n * LN2_HI - n * LN2_LO;
    let mut p = 1.987_569_1e-4f32;
    p = p * r + 1.398_199_9e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 1.666_666_5e-1;
    p = p * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// `ln x` for finite `x >= 1` (a sum of exponentials whose largest term is 1): `x = 2^e·m`
/// with `m` in `[sqrt(1/2), sqrt(2))`, then `ln m = 2·atanh((m - 1)/(m + 1))` as an odd series
/// (`|z| < 0.172`, so five terms reach `f32` precision).
#[inline(always)]
pub(super) fn ln_approx(x: f32) -> f32 {
    let bits = x.to_bits();
    let e = ((bits >> 23) & 0xff) as i32 - 127;
    let m = f32::from_bits((bits & 0x007f_ffff) | 0x3f80_0000);
    let high = m > std::f32::consts::SQRT_2;
    let m = if high { m * 0.5 } else { m };
    let e = e + high as i32;
    let z = (m - 1.0) / (m + 1.0);
    let z2 = z * z;
    let series = z * (2.0 + z2 * (2.0 / 3.0 + z2 * (0.4 + z2 * (2.0 / 7.0 + z2 * (2.0 / 9.0)))));
    e as f32 * std::f32::consts::LN_2 + series
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_and_ln_approximations_are_accurate() {
        for i in 0..=8700 {
            let x = -(i as f32) / 100.0;
            let (got, want) = (exp_approx(x) as f64, (x as f64).exp());
            assert!(
                (got - want).abs() <= 2e-7 * want + 1e-38,
                "exp({x}): {got} vs {want}"
            );
        }
        for i in 0..=10000 {
            let x = 1.0 + i as f32 * 0.0255;
            let (got, want) = (ln_approx(x) as f64, (x as f64).ln());
            assert!(
                (got - want).abs() <= 1e-6 * want.max(1.0),
                "ln({x}): {got} vs {want}"
            );
        }
    }

    #[test]
    fn loss_and_gradient_match_the_formulas() {
        let (b, k, a) = (2, 5, 37);
        let logits: Vec<f32> = (0..b * k * a)
            .map(|i| ((i * 7919 % 1000) as f32 / 100.0) - 5.0)
            .collect();
        let targets: Vec<i64> = (0..b * a)
            .map(|i| match i % 9 {
                8 => 255,
                7 => -1,
                v => (v % k) as i64,
            })
            .collect();
        for weights in [None, Some(vec![0.5f32, 2.0, 1.0, 0.0, 3.0])] {
            let (loss, saved) = forward(&logits, &targets, [b, k, a], weights.as_deref());
            let grad = backward(saved, 0.7, [b, k, a]);
            // Reference in f64.
            let (mut total, mut norm) = (0.0f64, 0.0f64);
            let mut probs = vec![0.0f64; logits.len()];
            for bi in 0..b {
                for p in 0..a {
                    let l = |c: usize| logits[(bi * k + c) * a + p] as f64;
                    let m = (0..k).map(l).fold(f64::MIN, f64::max);
                    let s: f64 = (0..k).map(|c| (l(c) - m).exp()).sum();
                    for c in 0..k {
                        probs[(bi * k + c) * a + p] = (l(c) - m).exp() / s;
                    }
                    let t = targets[bi * a + p];
                    if (0..k as i64).contains(&t) {
                        let w = weights.as_ref().map_or(1.0, |w| w[t as usize] as f64);
                        total += w * (s.ln() + m - l(t as usize));
                        norm += w;
                    }
                }
            }
            let expected = total / norm;
            assert!(
                (loss as f64 - expected).abs() < 1e-5 * expected,
                "{loss} vs {expected}"
            );
            for bi in 0..b {
                for p in 0..a {
                    let t = targets[bi * a + p];
                    for c in 0..k {
                        let i = (bi * k + c) * a + p;
                        let want = if (0..k as i64).contains(&t) {
                            let w = weights.as_ref().map_or(1.0, |w| w[t as usize] as f64);
                            0.7 * w / norm * (probs[i] - if c as i64 == t { 1.0 } else { 0.0 })
                        } else {
                            0.0
                        };
                        assert!((grad[i] as f64 - want).abs() < 1e-6, "grad[{i}]");
                    }
                }
            }
        }
    }

    #[test]
    fn an_all_ignored_batch_has_zero_loss_and_gradient() {
        let (loss, saved) = forward(&[1.0, 2.0, 3.0, 4.0], &[255, 255], [1, 2, 2], None);
        assert_eq!(loss, 0.0);
        assert!(backward(saved, 1.0, [1, 2, 2]).iter().all(|&g| g == 0.0));
    }
}
