//! Sums over long `f32` runs, in 8 (or 32) independent lanes so that rounding error grows with
//! `sqrt(n / lanes)` rather than `n`, returned as `f64`.

use super::simd;

/// `Σ x`.
pub fn sum(x: &[f32]) -> f64 {
    #[cfg(target_arch = "x86_64")]
    if simd::isa().has_avx2() {
        // SAFETY: AVX2 and FMA are present (checked at run time).
        return unsafe { dot_avx2(x, None) };
    }
    x.iter().map(|&v| v as f64).sum()
}

/// `Σ x·y`.
pub fn dot(x: &[f32], y: &[f32]) -> f64 {
    assert_eq!(x.len(), y.len());
    #[cfg(target_arch = "x86_64")]
    if simd::isa().has_avx2() {
        // SAFETY: AVX2 and FMA are present (checked at run time).
        return unsafe { dot_avx2(x, Some(y)) };
    }
    x.iter().zip(y).map(|(&a, &b)| a as f64 * b as f64).sum()
}

/// `Σ x` (`y` = None) or `Σ x·y`, four 8-lane accumulators.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(x: &[f32], y: Option<&[f32]>) -> f64 {
    use std::arch::x86_64::*;
    let n = x.len();
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    let (px, py) = (x.as_ptr(), y.map(|y| y.as_ptr()));
    // SAFETY (loads): i + 32 <= n or i + 8 <= n before each load; y has n elements too.
    unsafe {
        while i + 32 <= n {
            for (k, a) in acc.iter_mut().enumerate() {
                let v = _mm256_loadu_ps(px.add(i + 8 * k));
                *a = match py {
                    Some(py) => _mm256_fmadd_ps(v, _mm256_loadu_ps(py.add(i + 8 * k)), *a),
                    None => _mm256_add_ps(v, *a),
                };
            }
            i += 32;
        }
        while i + 8 <= n {
            let v = _mm256_loadu_ps(px.add(i));
            acc[0] = match py {
                Some(py) => _mm256_fmadd_ps(v, _mm256_loadu_ps(py.add(i)), acc[0]),
                None => _mm256_add_ps(v, acc[0]),
            };
            i += 8;
        }
    }
    let mut total = acc.iter().map(|&a| simd::x86::hsum(a) as f64).sum::<f64>();
    for k in i..n {
        total += x[k] as f64 * y.map_or(1.0, |y| y[k] as f64);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_match_f64_on_every_length() {
        for n in [0, 1, 7, 8, 9, 31, 32, 33, 100, 1000] {
            let x: Vec<f32> = (0..n).map(|i| (i as f32 * 0.37).sin()).collect();
            let y: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
            let s: f64 = x.iter().map(|&v| v as f64).sum();
            let d: f64 = x.iter().zip(&y).map(|(&a, &b)| a as f64 * b as f64).sum();
            assert!((sum(&x) - s).abs() < 1e-4, "sum of {n}");
            assert!((dot(&x, &y) - d).abs() < 1e-4, "dot of {n}");
        }
    }
}
