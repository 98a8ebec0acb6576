/// Defines a function twice: once for the baseline target and once compiled with AVX2 + FMA,
/// choosing between them at run time ([`simd::isa`](super::simd::isa)). Plain loops over
/// fixed-size lane arrays inside get vectorised with the wider registers; no intrinsics needed.
macro_rules! multiversion {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? $body:block) => {
        $(#[$meta])*
        #[allow(clippy::needless_range_loop)]
        fn $name($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            if super::simd::isa().has_avx2() {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::needless_range_loop)]
                fn avx2($($arg: $ty),*) $(-> $ret)? $body
                // SAFETY: AVX2 and FMA are present (checked at run time).
                return unsafe { avx2($($arg),*) };
            }
            $body
        }
    };
}
pub(crate) use multiversion;
