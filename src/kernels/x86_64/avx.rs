//! The AVX tier: 8 `f32` lanes in a `__m256`, for the x86-64 CPUs with AVX but without
//! AVX2 and FMA (Intel Sandy Bridge and Ivy Bridge, 2011-2012; AMD's Bulldozer to
//! Steamroller and Jaguar-class cores), which ran the 4-lane SSE4.1 tier before it. The AVX2 tier's 8-lane body
//! ([`super::avx2::Ymm`]) without its two extensions: a multiply and then an add where
//! AVX2's tier fuses them (rounded twice, as on SSE4.1), and the activations' 32-bit
//! integer minimum and maximum on the two 128-bit halves (AVX has no 256-bit integer
//! instructions). Its sums therefore differ from the FMA tiers' in the last bits, as
//! SSE4.1's do; every tier is checked against the reference within its stated bound.
//! The kernels' bodies and layouts are the AVX2 tier's (`kernels::packed::stream`).

/// The AVX tier's token: a value exists only where AVX and SSE4.1 were detected.
pub(crate) type Avx = super::avx2::Ymm<false, false>;

crate::kernels::simd::tier_entries!(Avx, "avx");
