//! The only code that knows instruction sets, raw memory and the OS: GEMM through
//! `matrixmultiply`, the streaming GEMV, the vectorized activations, and the CPUs a
//! call's pool workers run on.

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
