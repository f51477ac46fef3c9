//! The only code that knows instruction sets, raw memory and the OS: GEMM through
//! `matrixmultiply`, the streaming GEMV, the vectorized activations, and the CPUs a
//! call's pool workers run on.

/// Calls `f` in the module of the SIMD tier `tier` names (`x86_64::avx512`, `avx2`,
/// `sse`, `aarch64::neon`: each defines the same entry points, most of them through
/// `simd::tier_entries!`), or evaluates the last arm for any other tier (scalar, or one
/// this architecture lacks): `on_tier!(unsafe tier => f(args), other => fallback)`.
///
/// The one list of the SIMD tiers' modules for the kernels' dispatch: a new tier adds an
/// arm to each form here, not one to every call site. The `unsafe` in the call marks
/// what the caller must justify, in a SAFETY line above the call: `tier` runs on this
/// CPU (a `Detected`, `kernel_tier()` or `available_or_best()`, which only give
/// detected tiers), and the arguments meet `f`'s own contract.
/// `on_tier!(fn tier => f, other => fallback)` gives `Some(f)`, to call later.
macro_rules! on_tier {
    (unsafe $tier:expr => $f:ident($($a:expr),* $(,)?), $other:pat => $fallback:expr $(,)?) => {
        match $tier {
            #[cfg(target_arch = "x86_64")]
            $crate::kernels::activation::Tier::Avx512 => unsafe {
                $crate::kernels::x86_64::avx512::$f($($a),*)
            },
            #[cfg(target_arch = "x86_64")]
            $crate::kernels::activation::Tier::Avx2 => unsafe {
                $crate::kernels::x86_64::avx2::$f($($a),*)
            },
            #[cfg(target_arch = "x86_64")]
            $crate::kernels::activation::Tier::Avx => unsafe {
                $crate::kernels::x86_64::avx::$f($($a),*)
            },
            #[cfg(target_arch = "x86_64")]
            $crate::kernels::activation::Tier::Sse41 => unsafe {
                $crate::kernels::x86_64::sse::$f($($a),*)
            },
            #[cfg(target_arch = "aarch64")]
            $crate::kernels::activation::Tier::Neon => unsafe {
                $crate::kernels::aarch64::neon::$f($($a),*)
            },
            $other => $fallback,
        }
    };
    // `on_tier!(fn tier => f, other => fallback)`: `Some(f)`, to call later (the caller
    // then justifies that call), or the fallback (`None` where no tier's `f` runs).
    (fn $tier:expr => $f:ident, $other:pat => $fallback:expr $(,)?) => {
        match $tier {
            #[cfg(target_arch = "x86_64")]
            $crate::kernels::activation::Tier::Avx512 => {
                Some($crate::kernels::x86_64::avx512::$f)
            }
            #[cfg(target_arch = "x86_64")]
            $crate::kernels::activation::Tier::Avx2 => Some($crate::kernels::x86_64::avx2::$f),
            #[cfg(target_arch = "x86_64")]
            $crate::kernels::activation::Tier::Avx => Some($crate::kernels::x86_64::avx::$f),
            #[cfg(target_arch = "x86_64")]
            $crate::kernels::activation::Tier::Sse41 => Some($crate::kernels::x86_64::sse::$f),
            #[cfg(target_arch = "aarch64")]
            $crate::kernels::activation::Tier::Neon => {
                Some($crate::kernels::aarch64::neon::$f)
            }
            $other => $fallback,
        }
    };
}

#[cfg(target_arch = "aarch64")]
mod aarch64;
pub mod activation;
pub(crate) mod aligned;
pub mod backward;
pub(crate) mod cells;
pub mod gemm;
pub(crate) mod microkernel;
pub mod outer;
pub mod packed;
pub(crate) mod passes;
pub mod reference;
pub(crate) mod simd;
#[cfg(target_arch = "x86_64")]
mod x86_64;
