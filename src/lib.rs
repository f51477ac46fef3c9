#![doc = include_str!("../README.md")]
#![deny(unsafe_op_in_unsafe_fn)]

pub mod cell;
pub mod config;
pub mod error;
pub mod ffi;
pub mod forward;
pub mod io;
pub mod kernels;
pub mod layers;
pub mod model;
mod os;
pub mod parallel;
pub mod reference;
pub mod rng;
pub mod state;
pub mod train;

pub use config::{CellKind, ModelConfig, OutputActivation};
pub use error::{Error, Result};
pub use forward::Tape;
pub use layers::{Activation, Dense, Layers};
pub use model::Model;
pub use parallel::{num_threads, set_num_threads, set_parallel_for, ParallelFor};
pub use state::State;
pub use train::{Gradients, Optimizer, Targets, TrainConfig, Trainer};

/// The kernel tier in use: "avx512", "avx2" or "scalar" (best the CPU runs, unless the
/// environment variable `RNNCORE_KERNEL` names another, read once per process).
pub fn kernel_name() -> &'static str {
    kernels::activation::tier().name()
}

/// The crate version, "MAJOR.MINOR.PATCH".
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
