#![forbid(unsafe_code)]
//! What each cell computes, one row (one stream at one timestep) at a time: the fused
//! pointwise pass that follows the gate GEMM, forward and backward. No unsafe here; the
//! activations come from `kernels::activation`, which picks the instruction set.
//!
//! Conventions shared by every cell: `gates` is one row of the packed pre-activations
//! `[G*H]` (gate order as PyTorch), overwritten in place by the activated gates, which
//! is exactly what backward needs later. `dpre` is the gradient with respect to the
//! pre-activations (the same packed layout).

pub mod gru;
pub mod lstm;
pub mod rnn;
