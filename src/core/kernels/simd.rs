//! Which vector instructions the kernels may use, decided once at run time.
//!
//! The binary is compiled for the baseline x86-64 (or aarch64) target, never for a CPU feature a
//! user may lack; the kernels carry `#[target_feature(enable = "avx2,fma")]` variants that are
//! only called after [`isa`] chose them, and a portable path that is always correct (and is
//! what the tests compare the vector paths with). `ROADSEG_KERNELS=portable` forces the portable
//! path and `ROADSEG_KERNELS=avx2` AVX2 + FMA without AVX-512, for comparisons.

use std::sync::OnceLock;

/// An instruction set a kernel can be run with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Plain Rust, any CPU.
    Portable,
    /// x86-64 AVX2 + FMA (checked at run time before it is chosen).
    Avx2Fma,
    /// AVX2 + FMA with AVX-512 F and VL (checked likewise): the AVX2 kernels, and wider 3x3
    /// convolution tiles in AVX-512's 32 vector registers.
    Avx512,
}

impl Isa {
    /// Whether AVX2 + FMA may be used (both x86 sets have them).
    pub fn has_avx2(self) -> bool {
        matches!(self, Self::Avx2Fma | Self::Avx512)
    }
}

/// The best instruction set this CPU has (unless `ROADSEG_KERNELS` says `portable` or `avx2`).
#[inline]
pub fn isa() -> Isa {
    static DETECTED: OnceLock<Isa> = OnceLock::new();
    *DETECTED.get_or_init(|| {
        let best = available().pop().unwrap_or(Isa::Portable);
        let cap = std::env::var("ROADSEG_KERNELS").unwrap_or_default();
        match cap.to_ascii_lowercase().as_str() {
            "portable" => Isa::Portable,
            "avx2" if best.has_avx2() => Isa::Avx2Fma,
            _ => best,
        }
    })
}

/// Every instruction set this CPU can run, from the most portable, for tests that compare them.
pub fn available() -> Vec<Isa> {
    let mut all = vec![Isa::Portable];
    if detect_avx2() {
        all.push(Isa::Avx2Fma);
        if detect_avx512() {
            all.push(Isa::Avx512);
        }
    }
    all
}

#[cfg(target_arch = "x86_64")]
fn detect_avx2() -> bool {
    std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
}

#[cfg(target_arch = "x86_64")]
fn detect_avx512() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512vl")
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_avx2() -> bool {
    false
}

#[cfg(not(target_arch = "x86_64"))]
fn detect_avx512() -> bool {
    false
}

/// A short name of the kernel set in use, for bench output.
pub fn describe() -> &'static str {
    match isa() {
        Isa::Portable => "portable",
        Isa::Avx2Fma => "avx2+fma",
        Isa::Avx512 => "avx2+fma, avx-512 3x3 tiles",
    }
}

#[cfg(target_arch = "x86_64")]
pub(crate) mod x86 {
    use std::arch::x86_64::*;

    /// Lane mask with the first `n` (0..=8) lanes set, for masked loads and stores.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn first_lanes(n: usize) -> __m256i {
        const LANES: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];
        debug_assert!(n <= 8);
        // SAFETY: 8 - n is in 0..=8, so the 8 lanes read lie inside LANES.
        unsafe { _mm256_loadu_si256(LANES.as_ptr().add(8 - n) as *const __m256i) }
    }

    /// Sum of the 8 lanes.
    #[inline]
    #[target_feature(enable = "avx2")]
    pub fn hsum(v: __m256) -> f32 {
        let pair = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps::<1>(v));
        let pair = _mm_add_ps(pair, _mm_movehl_ps(pair, pair));
        let one = _mm_add_ss(pair, _mm_shuffle_ps::<0b01>(pair, pair));
        _mm_cvtss_f32(one)
    }
}
