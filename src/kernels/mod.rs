//! The only code that knows instruction sets, raw memory and the OS: GEMM through
//! `matrixmultiply`, the streaming GEMV, the vectorized activations, and the two hints
//! given to the OS (huge pages for large buffers, CPUs for a call's pool workers).

pub mod activation;
pub mod backward;
pub(crate) mod cpu;
pub mod gemm;
pub(crate) mod memory;
pub mod outer;
pub mod packed;
pub(crate) mod passes;
pub mod reference;
#[cfg(target_arch = "x86_64")]
mod x86_64;
