//! The AArch64 tier: [`neon`] (Advanced SIMD, 4 lanes), a [`super::simd::Simd`]
//! implementation and its `#[target_feature]` entry points into the kernels' one generic
//! body, as the x86-64 tiers are. The dispatchers call its entry points only after
//! detecting NEON at run time.

pub(crate) mod neon;
