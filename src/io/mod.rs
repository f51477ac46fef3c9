//! Weight files. [`Model::load`] / [`Model::save`] read and write safetensors with
//! PyTorch's `state_dict()` tensor names (see `shared/API.md`, "Weight files"):
//!
//! | tensor | shape |
//! | --- | --- |
//! | `weight_ih_l{k}` | `[G·H, I]` for k = 0, `[G·H, H]` above |
//! | `weight_hh_l{k}` | `[G·H, H]` |
//! | `bias_ih_l{k}`, `bias_hh_l{k}` | `[G·H]` |
//! | `head.weight`, `head.bias` | `[output_size, H]`, `[output_size]` |
//!
//! Gate order is PyTorch's (LSTM `i,f,g,o`; GRU `r,z,n`), the order rnncore keeps in
//! memory, so loading never permutes. Loading is strict and loud: anything missing,
//! extra, mis-shaped, of an unsupported dtype, duplicated, overlapping, truncated or
//! non-finite is an [`Error::Format`](crate::Error::Format) naming the tensor; OS errors
//! are [`Error::Io`](crate::Error::Io).
//!
//! Saving is crash-safe ([`write_atomic`]): an unnamed temporary file where Linux offers one,
//! fsync, link/rename into place, fsync of the directory; a save killed at any moment
//! leaves the old file or the new one, and the next save or load of the path removes any
//! temporary file a dead save left. Every file format goes through [`write_atomic`].
//! (The two system calls this needs and `std` lacks are in `src/os.rs`.)
#![forbid(unsafe_code)]

pub(crate) mod atomic;
mod dense;
pub mod json;
pub(crate) mod safetensors;

use crate::error::Result;
use crate::model::Model;
use std::path::Path;

pub use self::atomic::{remove_stale_temps, write_atomic};
pub use self::safetensors::{
    from_safetensors, load, read_metadata, save, save_with_metadata, to_safetensors,
    to_safetensors_with_metadata, MAX_FILE_BYTES,
};

impl Model {
    /// Loads a model from a safetensors file (PyTorch tensor names; f32, f16, bf16 or f64).
    ///
    /// The config comes from the file's `__metadata__` where present, otherwise it is
    /// inferred from the shapes (see `shared/API.md`). Errors: [`crate::Error::Io`] when
    /// the file cannot be opened or read, [`crate::Error::Format`] (naming the tensor)
    /// when it is not a valid model file.
    pub fn load(path: impl AsRef<Path>) -> Result<Model> {
        load(path.as_ref())
    }

    /// Parses a model from the bytes of any file [`Model::load`] reads: safetensors, or
    /// one of the JSON formats of [`json`] (recognised by content).
    pub fn from_bytes(bytes: &[u8]) -> Result<Model> {
        if json::looks_like_json(bytes) {
            json::from_json(bytes)
        } else {
            from_safetensors(bytes)
        }
    }

    /// Parses a model from the bytes of a safetensors file (as [`Model::load`]).
    pub fn from_safetensors(bytes: &[u8]) -> Result<Model> {
        from_safetensors(bytes)
    }

    /// The model as the bytes of a safetensors file: f32 tensors without prefix in
    /// `state_dict()` order, and every config key in `__metadata__`.
    pub fn to_safetensors(&self) -> Result<Vec<u8>> {
        to_safetensors(self)
    }

    /// Writes [`Model::to_safetensors`] to `path` crash-safely ([`write_atomic`]): a
    /// temporary file in the same directory (unnamed where Linux allows), fsync, then
    /// link/rename over `path`. On failure, or if the process is killed at any moment,
    /// `path` holds the old file or the new one, whole; an error leaves no temporary
    /// file, and one left by a killed save is removed by the next save or load of `path`.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        save(self, path.as_ref())
    }

    /// [`Model::to_safetensors`] with `extra` entries in `__metadata__` (an application's
    /// own keys, a vocabulary, say). They cannot replace the config keys
    /// ([`crate::Error::Invalid`]); the loader ignores keys it does not know, and
    /// [`read_metadata`] reads them back.
    pub fn to_safetensors_with_metadata(&self, extra: &[(&str, &str)]) -> Result<Vec<u8>> {
        to_safetensors_with_metadata(self, extra)
    }

    /// [`Model::save`] with `extra` metadata (see [`Model::to_safetensors_with_metadata`]).
    pub fn save_with_metadata(&self, path: impl AsRef<Path>, extra: &[(&str, &str)]) -> Result<()> {
        save_with_metadata(self, path.as_ref(), extra)
    }
}
