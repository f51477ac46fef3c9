//! `rnn_state`: the carried h (and c) of a batch of streams, with the scratch a
//! streaming step needs.

use crate::ffi::boundary::{
    check_len, check_null, ffi_boundary, ffi_boundary_value, ffi_boundary_void, in_slice,
    out_slice, try_mut, try_ref, write_out, Failure,
};
use crate::ffi::model::rnn_model;
use crate::ffi::types::rnn_status;
use crate::state::State;

/// The carried state of `batch` independent streams of one model (h, and c for LSTM),
/// plus the scratch space its steps use. Opaque; made by rnn_state_new or
/// rnn_state_new_block, freed by rnn_state_free. Used by one thread at a time.
///
/// A state fits every model of the config it was made for (cell, sizes, layers, head):
/// the model it was made from, or a copy loaded from a file. It does not keep a pointer
/// to the model, which may be freed first.
pub struct rnn_state {
    pub(crate) state: State,
}

/// Creates a zero state for `batch` streams of `model`, for single steps (max_block = 1).
/// Same as rnn_state_new_block(model, batch, 1, out).
///
/// # Safety
/// As rnn_state_new_block.
#[no_mangle]
pub unsafe extern "C" fn rnn_state_new(
    model: *const rnn_model,
    batch: usize,
    out: *mut *mut rnn_state,
) -> rnn_status {
    ffi_boundary!("rnn_state_new", {
        let m = try_ref!(model);
        check_null!(out);
        // SAFETY: `out` is non-NULL (checked) and writable (contract).
        unsafe { new_state(m, batch, 1, out) }
    })
}

/// Creates a zero state for `batch` streams of `model` and blocks of up to `max_block`
/// timesteps (rnn_model_forward_state); all the scratch those blocks need is allocated
/// here, so the streaming calls never allocate.
///
/// On RNN_OK `*out` is a new state the caller owns and frees with rnn_state_free.
/// Errors: RNN_ERR_NULL (model, out); RNN_ERR_INVALID for batch or max_block 0, or sizes
/// that overflow; RNN_ERR_ALLOC. On failure `*out` is not written.
/// Thread safety: any thread; `model` may be in use by others. Allocation: the state.
///
/// # Safety
/// `model` is a live model handle; `out` points to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn rnn_state_new_block(
    model: *const rnn_model,
    batch: usize,
    max_block: usize,
    out: *mut *mut rnn_state,
) -> rnn_status {
    ffi_boundary!("rnn_state_new_block", {
        let m = try_ref!(model);
        check_null!(out);
        // SAFETY: `out` is non-NULL (checked) and writable (contract).
        unsafe { new_state(m, batch, max_block, out) }
    })
}

/// # Safety
/// `out` is non-NULL and writable.
unsafe fn new_state(
    m: &rnn_model,
    batch: usize,
    max_block: usize,
    out: *mut *mut rnn_state,
) -> Result<(), Failure> {
    let state = State::with_block(&m.model, batch, max_block)?;
    let handle = Box::into_raw(Box::new(rnn_state { state }));
    // SAFETY: guaranteed by the caller.
    unsafe { write_out(out, handle) };
    Ok(())
}

/// Frees a state. NULL is a no-op.
///
/// # Safety
/// `state` is NULL or a live state handle, not used by any other call now or after.
#[no_mangle]
pub unsafe extern "C" fn rnn_state_free(state: *mut rnn_state) {
    ffi_boundary_void!("rnn_state_free", {
        if !state.is_null() {
            // SAFETY: a live handle made by Box::into_raw in new_state, given back once.
            drop(unsafe { Box::from_raw(state) });
        }
    });
}

/// Sets every stream back to zeros. Errors: RNN_ERR_NULL. No allocation.
///
/// # Safety
/// `state` is a live state handle used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn rnn_state_reset(state: *mut rnn_state) -> rnn_status {
    ffi_boundary!("rnn_state_reset", {
        try_mut!(state).state.reset();
        Ok(())
    })
}

/// Sets stream `stream` (0-based, < the state's batch) back to zeros, in every layer,
/// leaving the other streams as they are.
/// Errors: RNN_ERR_NULL; RNN_ERR_INVALID for stream >= batch. No allocation.
///
/// # Safety
/// `state` is a live state handle used by no other thread during the call.
#[no_mangle]
pub unsafe extern "C" fn rnn_state_reset_stream(
    state: *mut rnn_state,
    stream: usize,
) -> rnn_status {
    ffi_boundary!("rnn_state_reset_stream", {
        try_mut!(state)
            .state
            .reset_stream(stream)
            .map_err(Failure::from)
    })
}

/// The number of floats in a snapshot: num_layers * batch * hidden_size, twice that for
/// LSTM (with a projection, rnn_model_desc's proj_size, h is proj_size wide: num_layers *
/// batch * (proj_size + hidden_size)). 0 (and the last error set) when `state` is NULL.
///
/// # Safety
/// `state` is NULL or a live state handle.
#[no_mangle]
pub unsafe extern "C" fn rnn_state_len(state: *const rnn_state) -> usize {
    ffi_boundary_value!("rnn_state_len", 0, { Ok(try_ref!(state).state.len()) })
}

/// Copies the state into `out`, laid out as PyTorch returns state: h as
/// [num_layers][batch][hidden_size], then, for LSTM, c as [num_layers][batch][hidden_size]
/// (with a projection h as [num_layers][batch][proj_size]).
/// `len` must be rnn_state_len(state).
/// Errors: RNN_ERR_NULL (state, out); RNN_ERR_INVALID for a wrong len (out not written).
///
/// # Safety
/// `state` is a live state handle; `out` points to `len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn rnn_state_get(
    state: *const rnn_state,
    out: *mut f32,
    len: usize,
) -> rnn_status {
    ffi_boundary!("rnn_state_get", {
        let s = try_ref!(state);
        check_null!(out);
        check_len("len", len, s.state.len(), "rnn_state_len(state)")?;
        // SAFETY: non-NULL (checked), `len` floats writable (contract); len equals the
        // state's length, which fits in memory.
        let o = unsafe { out_slice(out, len, "out") }?;
        s.state.get(o).map_err(Failure::from)
    })
}

/// Replaces the state with `in` (layout as rnn_state_get), e.g. to restore a snapshot or
/// start from a warmed-up state. `len` must be rnn_state_len(state).
/// Errors: RNN_ERR_NULL (state, in); RNN_ERR_INVALID for a wrong len; RNN_ERR_NONFINITE
/// for NaN/Inf in `in`. On failure the state is unchanged. No allocation.
///
/// # Safety
/// `state` is a live state handle used by no other thread during the call; `in` points to
/// `len` readable floats.
#[no_mangle]
pub unsafe extern "C" fn rnn_state_set(
    state: *mut rnn_state,
    r#in: *const f32,
    len: usize,
) -> rnn_status {
    ffi_boundary!("rnn_state_set", {
        let s = try_mut!(state);
        check_null!(r#in);
        check_len("len", len, s.state.len(), "rnn_state_len(state)")?;
        // SAFETY: non-NULL (checked), `len` floats readable (contract), len fits in memory.
        let v = unsafe { in_slice(r#in, len, "in") }?;
        s.state.set(v).map_err(Failure::from)
    })
}
