//! The C ABI: the only module with `extern "C"`. Its contract is `shared/API.md`; the
//! header `include/rnncore.h` is generated from these files by cbindgen (`cbindgen.toml`)
//! and committed; `tests/header.rs` fails when it is stale.
//!
//! # Conventions (every entry point)
//!
//! - The body runs inside a panic boundary ([`boundary`]): a panic becomes
//!   `RNN_ERR_PANIC` with a message, never an unwind into C. `panic = "unwind"` in every
//!   profile keeps the boundary working.
//! - Required pointers are NULL-checked first (`RNN_ERR_NULL` naming the argument), then
//!   every size, with overflow-checked products (`RNN_ERR_INVALID`), before anything is
//!   written: on failure no out-pointer, buffer, state or weight the caller owns changes.
//! - `rnn_last_error()` is per thread: `""` after a successful call, a message naming
//!   the function, the argument and the expected value after a failure.
//! - Handles are `Box`es handed out with `Box::into_raw` and taken back once by
//!   `*_free`, which accept NULL. `const` handle pointers may be shared across threads,
//!   `mut` ones are used by one thread at a time.
//! - Enum-valued inputs come in as `uint32_t` (config fields, `targets`), so an
//!   out-of-range number is an error, never undefined behaviour.
#![allow(non_camel_case_types)]
// The doc comments here are C documentation (cbindgen copies them into the header):
// `[batch][seq_len][input_size]` is C array notation, not a Rust intra-doc link.
#![allow(rustdoc::broken_intra_doc_links)]

pub(crate) mod boundary;
pub mod library;
pub mod model;
// After `model`, so that the header lists rnn_model_new_desc and rnn_model_describe
// after the other model functions (cbindgen keeps source order).
pub mod desc;
pub mod parallel;
pub mod state;
pub mod trainer;
pub mod types;

pub use desc::*;
pub use library::*;
pub use model::*;
pub use parallel::*;
pub use state::*;
pub use trainer::*;
pub use types::*;
