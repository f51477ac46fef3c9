#![doc = include_str!("../README.md")]
#![deny(unsafe_op_in_unsafe_fn)]
#![deny(missing_docs)]

// The product: everything a user names is re-exported below (or is one of the public
// modules `io` and `train`). The other modules are the implementation.
mod bidir;
mod buffers;
mod cell;
mod config;
mod dropout;
mod error;
// The C ABI is its own surface: `#[no_mangle] extern "C"` functions are exported from the
// cdylib and staticlib whatever the Rust visibility of their module.
mod ffi;
mod forward;
pub mod io;
mod kernels;
mod layers;
mod model;
mod os;
mod parallel;
mod proj;
mod reference;
mod rng;
mod state;
mod step;
pub mod train;

pub use config::{
    CellKind, ModelConfig, OutputActivation, ParamEntry, ParamLayout, MAX_DIM, MAX_LAYERS,
};
pub use error::{Error, Result};
pub use forward::Tape;
pub use layers::{Activation, Dense, Layers, MAX_DENSE};
pub use model::Model;
pub use parallel::{num_threads, set_num_threads, set_parallel_for, ParallelFor};
pub use rng::Rng;
pub use state::State;
pub use train::{Gradients, Optimizer, Targets, TrainConfig, Trainer};

/// The kernel tier in use: "avx512", "avx2", "avx", "sse41", "neon" or "scalar" (best the CPU runs,
/// unless the environment variable `RNNCORE_KERNEL` names another, read once per
/// process).
pub fn kernel_name() -> &'static str {
    kernels::activation::tier().name()
}

/// The crate version, "MAJOR.MINOR.PATCH".
pub fn version() -> &'static str {
    env!("CARGO_PKG_VERSION")
}

/// Not API: internals that rnncore's own tests, examples and fuzz targets reach into
/// (f64 reference implementations to check against, kernel tiers, the C ABI called from
/// Rust, the crash-safe writer's temporary-file modes). No stability promise; may change
/// or disappear in any release.
#[doc(hidden)]
pub mod __testing {
    /// The C ABI's functions and types, to call from Rust tests.
    pub mod ffi {
        pub use crate::ffi::*;
    }
    pub use crate::io::atomic::{write_atomic_using, TempFile};
    /// Kernel tiers and the activations on a chosen tier.
    pub mod activation {
        pub use crate::kernels::activation::{
            available_tiers, sigmoid, sigmoid_with, tanh, tanh_with, tier, Tier,
        };
    }
    /// The packed GEMM the batched paths run (`benches/fraction.rs` times it against
    /// `matrixmultiply`'s sgemm on the same products).
    pub mod packed {
        /// `B` (`[k][n]`, row-major) packed for [`gemm`].
        pub struct Packed(crate::kernels::packed::PackedB);

        impl Packed {
            /// Packs the `k × n` row-major `b`.
            pub fn from_rows(b: &[f32], k: usize, n: usize) -> Packed {
                Packed(crate::kernels::packed::PackedB::from_rows(b, k, n, n))
            }
        }

        /// `C = (accumulate ? C : 0) + A · B` for `m` rows of `A` (stride `lda`) into `C`
        /// (stride `ldc`), on the process tier, `B`'s column groups last to first when
        /// `reverse` (as the forward alternates them step by step). Panics if a buffer is
        /// too short.
        #[allow(clippy::too_many_arguments)]
        pub fn gemm(
            m: usize,
            a: &[f32],
            lda: usize,
            b: &Packed,
            c: &mut [f32],
            ldc: usize,
            accumulate: bool,
            reverse: bool,
        ) {
            let b = &b.0;
            crate::kernels::packed::gemm_packed_sweep(m, a, lda, b, c, ldc, accumulate, reverse)
        }

        /// `C = bias + A · B` (each row of `C` starts from `bias`).
        pub fn gemm_bias(
            m: usize,
            a: &[f32],
            lda: usize,
            b: &Packed,
            c: &mut [f32],
            ldc: usize,
            bias: &[f32],
        ) {
            crate::kernels::packed::gemm_packed_bias(m, a, lda, &b.0, c, ldc, bias)
        }
    }
    /// The f64 reference of the dense layers and the skip connection.
    pub mod layers_reference {
        pub use crate::layers::reference::*;
    }
    /// The f64 reference forward and backward of the recurrent stack.
    pub mod reference {
        pub use crate::reference::*;
    }
    /// The dropout masks: the factor (0 or `1 / (1 − p)`) of one element of layer
    /// `layer`'s output in a pass seeded by `seed`, and a trainer's seed for its step
    /// `step`.
    pub mod dropout {
        /// See the module.
        pub fn factor(p: f32, seed: u64, layer: usize, row: usize, t: usize, unit: usize) -> f32 {
            crate::dropout::DropoutMask { p, seed }.factor(layer, row, t, unit)
        }
        pub use crate::dropout::step_seed;
    }
}
