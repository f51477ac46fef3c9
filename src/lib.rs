//! rnncore: vanilla RNN, LSTM and GRU on the CPU — inference and training.
#![deny(unsafe_op_in_unsafe_fn)]

pub mod config;
pub mod error;
pub mod kernels;
pub mod model;
pub mod rng;

pub use config::{CellKind, ModelConfig, OutputActivation};
pub use error::{Error, Result};
pub use model::Model;

/// The crate version, "MAJOR.MINOR.PATCH".
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}
