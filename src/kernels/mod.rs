//! The only code that knows instruction sets and raw memory: GEMM through
//! `matrixmultiply`, the streaming GEMV, and the vectorized activations.

pub mod activation;
pub mod backward;
pub mod gemm;
pub(crate) mod memory;
pub mod outer;
pub mod packed;
pub(crate) mod passes;
pub mod reference;
#[cfg(target_arch = "x86_64")]
mod x86_64;
