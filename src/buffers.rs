#![forbid(unsafe_code)]
//! Buffer helpers shared by the passes: allocation that fails with [`Error::Alloc`]
//! instead of aborting, resizing kept buffers, and splitting optional buffers.

use crate::error::{Error, Result};

/// A zeroed buffer, or `Error::Alloc` when memory cannot be had.
pub(crate) fn try_zeroed(n: usize) -> Result<Vec<f32>> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| Error::Alloc(format!("cannot allocate {n} floats")))?;
    v.resize(n, 0.0);
    Ok(v)
}

/// Makes `v` exactly `n` long, keeping its allocation: shrinking truncates, growing
/// zero-fills only the new tail (`Error::Alloc` when memory cannot be had). The old
/// contents stay: callers overwrite every element (or fill) before reading.
pub(crate) fn fit(v: &mut Vec<f32>, n: usize) -> Result<()> {
    if n > v.len() {
        v.try_reserve_exact(n - v.len())
            .map_err(|_| Error::Alloc(format!("cannot allocate {n} floats")))?;
    }
    v.resize(n, 0.0);
    Ok(())
}

/// Splits `buf` into consecutive pieces of `piece` elements (the last may be shorter);
/// an empty `buf` yields `count` empty pieces, so optional buffers zip with the rest.
pub(crate) fn pieces(buf: &mut [f32], piece: usize, count: usize) -> Vec<&mut [f32]> {
    if buf.is_empty() {
        return (0..count).map(|_| <&mut [f32]>::default()).collect();
    }
    buf.chunks_mut(piece.max(1)).collect()
}

/// `v[from..]`, or `v` itself when it is empty (an optional buffer).
pub(crate) fn tail(v: &mut [f32], from: usize) -> &mut [f32] {
    if v.is_empty() {
        v
    } else {
        &mut v[from..]
    }
}
