//! `rnn_model`: create, inspect, free and run a model.

use std::ffi::{c_char, CStr};
use std::path::Path;

use crate::ffi::boundary::{
    check_disjoint, check_len, check_null, element_count, ffi_boundary, ffi_boundary_value,
    ffi_boundary_void, in_slice, lengths_arg, out_slice, step_buffers_ok, step_slices, try_mut,
    try_ref, write_out, Failure, FfiResult,
};
use crate::ffi::state::rnn_state;
use crate::ffi::types::{rnn_config, rnn_status};
use crate::model::Model;

/// A model: the weights of a stack of recurrent layers and an optional dense head.
/// Opaque; made by rnn_model_new or rnn_model_load, freed by rnn_model_free.
/// Immutable except through a trainer, so `const rnn_model *` may be shared by threads.
pub struct rnn_model {
    pub(crate) model: Model,
}

/// Creates a model of shape `*config`, its weights drawn like PyTorch's,
/// U(-1/sqrt(H), 1/sqrt(H)), from a generator seeded with `seed`: the same config and
/// seed give the same weights on every machine.
///
/// On RNN_OK `*out` is a new model that the caller owns and frees with rnn_model_free.
/// Errors: RNN_ERR_NULL (config, out); RNN_ERR_INVALID for a cell or output_activation
/// outside its enum, a size of 0 or above 2^20, num_layers above 1024, or a softmax
/// without a head; RNN_ERR_ALLOC. On failure `*out` is not written.
/// Thread safety: any thread. Allocation: the weights.
///
/// # Safety
/// `config` points to an rnn_config; `out` to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn rnn_model_new(
    config: *const rnn_config,
    seed: u64,
    out: *mut *mut rnn_model,
) -> rnn_status {
    ffi_boundary!("rnn_model_new", {
        check_null!(config, out);
        // SAFETY: non-NULL (checked) and readable (contract); rnn_config is plain data, so
        // any bit pattern is a valid value.
        let config = unsafe { config.read_unaligned() };
        let model = Model::new(config.to_model_config()?, seed)?;
        let handle = Box::into_raw(Box::new(rnn_model { model }));
        // SAFETY: `out` is non-NULL (checked) and writable (contract).
        unsafe { write_out(out, handle) };
        Ok(())
    })
}

/// Loads a model from a file, recognised by its content:
///
/// - safetensors with PyTorch's tensor names (`state_dict()` of an nn.LSTM / nn.GRU /
///   nn.RNN, with an optional nn.Linear head); f32, f16, bf16 or f64. The config comes
///   from the file's metadata, or is inferred from the shapes. Dense layers around the
///   recurrent stack are the tensors `pre.{k}.weight` `[out, in]` and `pre.{k}.bias`
///   `[out]` (before the stack, applied to every timestep, k = 0, 1, ...) and
///   `post.{k}.weight`, `post.{k}.bias` (after it), with the metadata keys
///   `pre_activations` and `post_activations` (one of identity, tanh, relu, sigmoid, elu,
///   softmax per layer, comma-separated; softmax only last) and `skip` ("true": the
///   model's input is added to its output). The config keys then describe the recurrent
///   stack alone (output_size 0).
/// - RTNeural's JSON export of a Keras model (`layers`: dense, time-distributed-dense,
///   activation, lstm, gru), RTNeural's PyTorch helper JSON (a state_dict of nested
///   lists), GuitarML / Automated-GuitarAmpModelling JSON (`model_data` + `state_dict`,
///   SimpleRNN with its skip connection), and Neural Amp Modeler `.nam` files of
///   architecture LSTM (file versions 0.5.0 to 0.7.x; the file's learned initial state is
///   not kept: states start from zeros). JSON files are read up to 256 MiB.
///
/// For a model with dense layers, rnn_model_config reports the model's input and output
/// widths; rnn_model_describe lists the layers, and rnn_model_new_desc of that
/// description builds a model of the same shape (rnn_model_new cannot).
///
/// `path` is a NUL-terminated file name (bytes, as the OS takes them).
/// On RNN_OK `*out` is a new model that the caller owns and frees with rnn_model_free.
/// Errors: RNN_ERR_NULL (path, out); RNN_ERR_IO when the file cannot be opened or read
/// (missing, a directory, no permission); RNN_ERR_FORMAT when it is not a valid model
/// file (corrupt, truncated, wrong dtype or shape, missing or extra tensor, invalid JSON,
/// a layer rnncore does not run such as conv1d or WaveNet, a non-finite weight: the
/// message names the tensor or layer); RNN_ERR_ALLOC. On failure `*out` is not written.
/// Thread safety: any thread. Allocation: the file's contents and the weights.
///
/// # Safety
/// `path` points to a NUL-terminated string; `out` to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn rnn_model_load(
    path: *const c_char,
    out: *mut *mut rnn_model,
) -> rnn_status {
    ffi_boundary!("rnn_model_load", {
        check_null!(path, out);
        // SAFETY: non-NULL (checked), NUL-terminated (contract).
        let path = unsafe { path_arg(path) }?;
        let model = Model::load(path)?;
        let handle = Box::into_raw(Box::new(rnn_model { model }));
        // SAFETY: `out` is non-NULL (checked) and writable (contract).
        unsafe { write_out(out, handle) };
        Ok(())
    })
}

/// Saves the model to a safetensors file with PyTorch's tensor names and the config in
/// its metadata, so rnn_model_load (or safetensors.torch.load_file) reads it back.
///
/// Atomic: the bytes go to a temporary file in the same directory (unnamed where Linux
/// allows), which is flushed to disk and then linked or renamed over `path`; a failure,
/// or the process killed at any moment, never leaves a partial file: `path` holds the old
/// file or the new one, whole. A temporary file left by a killed save is removed by the
/// next save or load of `path`.
/// Errors: RNN_ERR_NULL (model, path); RNN_ERR_IO (missing directory, no permission,
/// disk full, `path` is a directory); RNN_ERR_ALLOC.
/// Thread safety: any number of threads may save or run the model at once. Allocation:
/// the file's bytes.
///
/// # Safety
/// `model` is a live model handle; `path` points to a NUL-terminated string.
#[no_mangle]
pub unsafe extern "C" fn rnn_model_save(
    model: *const rnn_model,
    path: *const c_char,
) -> rnn_status {
    ffi_boundary!("rnn_model_save", {
        let m = try_ref!(model);
        check_null!(path);
        // SAFETY: non-NULL (checked), NUL-terminated (contract).
        let path = unsafe { path_arg(path) }?;
        m.model.save(path).map_err(Failure::from)
    })
}

/// A C path argument as a `Path`: bytes as they are on Unix, UTF-8 elsewhere.
///
/// # Safety
/// `p` is non-NULL and NUL-terminated.
unsafe fn path_arg<'a>(p: *const c_char) -> Result<&'a Path, Failure> {
    // SAFETY: guaranteed by the caller.
    let bytes = unsafe { CStr::from_ptr(p) }.to_bytes();
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        Ok(Path::new(std::ffi::OsStr::from_bytes(bytes)))
    }
    #[cfg(not(unix))]
    {
        std::str::from_utf8(bytes)
            .map(Path::new)
            .map_err(|_| Failure::invalid("path is not valid UTF-8".to_owned()))
    }
}

/// Copies the model's config into `*out`. For a model loaded with dense layers around its
/// recurrent stack (see rnn_model_load), input_size and output_size are the model's input
/// and output widths, output_activation says whether its last layer is a softmax, and
/// cell, hidden_size and num_layers describe the stack.
///
/// Errors: RNN_ERR_NULL (model, out); `*out` untouched on failure.
/// Thread safety: any number of threads at once. No allocation.
///
/// # Safety
/// `model` is a live model handle; `out` points to writable storage for an rnn_config.
#[no_mangle]
pub unsafe extern "C" fn rnn_model_config(
    model: *const rnn_model,
    out: *mut rnn_config,
) -> rnn_status {
    ffi_boundary!("rnn_model_config", {
        let m = try_ref!(model);
        check_null!(out);
        let c = rnn_config::from_model_config(&m.model.outer_config());
        // SAFETY: `out` is non-NULL (checked) and writable (contract).
        unsafe { write_out(out, c) };
        Ok(())
    })
}

/// The width of the model's outputs per timestep: config.output_size, or hidden_size when
/// the model has no head. 0 (and the last error set) when `model` is NULL.
///
/// Thread safety: any number of threads at once. No allocation.
///
/// # Safety
/// `model` is NULL or a live model handle.
#[no_mangle]
pub unsafe extern "C" fn rnn_model_output_size(model: *const rnn_model) -> usize {
    ffi_boundary_value!("rnn_model_output_size", 0, {
        let m = try_ref!(model);
        Ok(m.model.output_size())
    })
}

/// Frees a model. NULL is a no-op. No state or trainer made from it is freed, and none
/// may use it afterwards; a trainer must be freed before its model.
///
/// # Safety
/// `model` is NULL or a live handle from rnn_model_new/rnn_model_load, not used by any
/// other call now or after this one.
#[no_mangle]
pub unsafe extern "C" fn rnn_model_free(model: *mut rnn_model) {
    ffi_boundary_void!("rnn_model_free", {
        if !model.is_null() {
            // SAFETY: a live handle made by Box::into_raw in rnn_model_new/load, given
            // back exactly once (contract).
            drop(unsafe { Box::from_raw(model) });
        }
    });
}

/// Runs whole sequences from a zero initial state.
///
/// Shapes: `x` is [batch][seq_len][input_size] (batch * seq_len * input_size floats);
/// `y` is [batch][seq_len][rnn_model_output_size(model)], `y_len` its element count.
/// The output activation (softmax) is applied.
/// Errors: RNN_ERR_NULL (model, x, y; even for empty buffers); RNN_ERR_INVALID for batch
/// or seq_len 0, sizes whose product overflows, y_len not equal to the size above, or x
/// and y overlapping; RNN_ERR_NONFINITE for NaN/Inf in x; RNN_ERR_ALLOC. On failure y is
/// not written.
/// Thread safety: any number of threads may run one model at once.
/// Allocation: working memory for the whole pass; batches are split over the library's
/// threads (rnn_set_num_threads) with bit-identical results. For allocation-free,
/// lock-free streaming use rnn_model_forward_state or rnn_model_step.
///
/// # Safety
/// `model` is a live model handle; `x` points to batch * seq_len * input_size readable
/// floats; `y` to `y_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn rnn_model_forward(
    model: *const rnn_model,
    x: *const f32,
    batch: usize,
    seq_len: usize,
    y: *mut f32,
    y_len: usize,
) -> rnn_status {
    ffi_boundary!("rnn_model_forward", {
        let m = try_ref!(model);
        check_null!(x, y);
        // SAFETY: x and y non-NULL (checked), valid for the sizes (this function's contract).
        unsafe { run_whole(m, x, batch, seq_len, None, y, y_len) }
    })
}

/// Runs whole sequences of different lengths (a padded batch) from a zero initial state,
/// as PyTorch's pack_padded_sequence / pad_packed_sequence do.
///
/// `lengths` holds `lengths_len` = batch lengths, lengths[b] in 1..=seq_len being the
/// number of valid timesteps of sequence b; its steps past that in `x` are padding
/// (any finite values) that no valid output depends on.
/// Shapes: as rnn_model_forward. y receives each sequence's outputs at its valid steps
/// (the output activation applied) and zeros past its length. With every length
/// seq_len this is rnn_model_forward (the same bits). A bidirectional layer's reverse
/// direction starts at each sequence's own last valid step.
/// Errors: RNN_ERR_NULL (model, x, lengths, y); RNN_ERR_INVALID for lengths_len not
/// batch, a length of 0 or above seq_len (the message names lengths[b]), and everything
/// rnn_model_forward refuses; RNN_ERR_NONFINITE for NaN/Inf in x (padding included);
/// RNN_ERR_ALLOC. On failure y is not written.
/// Thread safety: any number of threads may run one model at once.
/// Allocation: as rnn_model_forward (working memory for the whole pass).
///
/// # Safety
/// `model` is a live model handle; `x` points to batch * seq_len * input_size readable
/// floats; `lengths` to `lengths_len` readable uint32s; `y` to `y_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn rnn_model_forward_lengths(
    model: *const rnn_model,
    x: *const f32,
    batch: usize,
    seq_len: usize,
    lengths: *const u32,
    lengths_len: usize,
    y: *mut f32,
    y_len: usize,
) -> rnn_status {
    ffi_boundary!("rnn_model_forward_lengths", {
        let m = try_ref!(model);
        check_null!(x, lengths, y);
        // SAFETY: x and y non-NULL (checked), valid for the sizes (this function's contract).
        unsafe { run_whole(m, x, batch, seq_len, Some((lengths, lengths_len)), y, y_len) }
    })
}

/// The checks and the call shared by rnn_model_forward and rnn_model_forward_lengths;
/// `lengths` (pointer and count) is given by the latter.
///
/// # Safety
/// `x`, `y` and the lengths pointer are non-NULL and valid as the public entry points
/// require.
unsafe fn run_whole(
    m: &rnn_model,
    x: *const f32,
    batch: usize,
    seq_len: usize,
    lengths: Option<(*const u32, usize)>,
    y: *mut f32,
    y_len: usize,
) -> Result<(), Failure> {
    let cfg = m.model.outer_config();
    let x_count = element_count::<f32>(
        "x",
        &[
            ("batch", batch),
            ("seq_len", seq_len),
            ("input_size", cfg.input_size),
        ],
    )?;
    let y_count = element_count::<f32>(
        "y",
        &[
            ("batch", batch),
            ("seq_len", seq_len),
            ("output size", cfg.output_dim()),
        ],
    )?;
    check_len("y_len", y_len, y_count, "batch * seq_len * output size")?;
    let lengths = match lengths {
        // SAFETY: non-NULL, `n` uint32s readable (caller).
        Some((p, n)) => unsafe { lengths_arg(p, n, batch, seq_len, "batch") }?,
        None => None,
    };
    check_disjoint(x, x_count, "x", y, y_len, "y")?;
    // SAFETY: non-NULL (caller), `x_count` floats readable (contract), size checked.
    let xs = unsafe { in_slice(x, x_count, "x") }?;
    // SAFETY: non-NULL (caller), `y_len` floats writable (contract), size checked, and
    // disjoint from x (checked).
    let ys = unsafe { out_slice(y, y_len, "y") }?;
    m.model
        .forward_with_state_lengths(xs, batch, seq_len, lengths.as_deref(), None, ys, None)
        .map_err(Failure::from)
}

/// Runs a block of `seq_len` timesteps of every stream of `state` (an audio buffer, a
/// chunk of text), starting from the state and leaving the final state in it.
///
/// Shapes: `x` is [batch][seq_len][input_size], `y` [batch][seq_len][output size], with
/// `batch` the state's and output size rnn_model_output_size(model); y_len is y's element
/// count. seq_len may be 0 (nothing happens) and at most the state's max_block.
/// Errors: RNN_ERR_NULL (model, state, x, y); RNN_ERR_INVALID for a state made for a
/// model of another config, seq_len > max_block, y_len not as above, or x and y
/// overlapping; RNN_ERR_NONFINITE for NaN/Inf in x. On failure neither y nor the state
/// changes.
/// Thread safety: many threads may share the model, each with its own state; a state is
/// used by one thread at a time.
/// Real time: no heap allocation, no lock, time bounded by batch * seq_len; runs on the
/// calling thread.
///
/// # Safety
/// `model` and `state` are live handles; `x` points to batch * seq_len * input_size
/// readable floats; `y` to `y_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn rnn_model_forward_state(
    model: *const rnn_model,
    state: *mut rnn_state,
    x: *const f32,
    seq_len: usize,
    y: *mut f32,
    y_len: usize,
) -> rnn_status {
    ffi_boundary!("rnn_model_forward_state", {
        let m = try_ref!(model);
        let s = try_mut!(state);
        check_null!(x, y);
        // SAFETY: x and y non-NULL (checked), valid for the sizes (this function's contract).
        unsafe { run_block(m, s, x, None, seq_len, y, y_len) }
    })
}

/// Advances every stream of `state` one timestep: rnn_model_forward_state with
/// seq_len = 1, with the input length given.
///
/// Shapes: `x` is [batch][input_size] (`x_len` its element count), `y` is
/// [batch][output size] (`y_len`), batch being the state's.
/// Errors: as rnn_model_forward_state, plus RNN_ERR_INVALID when x_len is not
/// batch * input_size. On failure neither y nor the state changes.
/// Thread safety and real time: as rnn_model_forward_state (no allocation, no lock).
///
/// # Safety
/// `model` and `state` are live handles; `x` points to `x_len` readable floats; `y` to
/// `y_len` writable floats.
#[no_mangle]
pub unsafe extern "C" fn rnn_model_step(
    model: *const rnn_model,
    state: *mut rnn_state,
    x: *const f32,
    x_len: usize,
    y: *mut f32,
    y_len: usize,
) -> rnn_status {
    ffi_boundary!("rnn_model_step", {
        let m = try_ref!(model);
        let s = try_mut!(state);
        check_null!(x, y);
        // A state that stepped this model before needs only the buffers checked (a
        // model with dense layers apart: the plain model's step is the one to keep
        // short). Overlapping buffers take the whole path, which names them.
        if m.model.audio_ready(&s.state, x_len, y_len) && step_buffers_ok(x, x_len, y, y_len) {
            // SAFETY: non-NULL and aligned (checked), `x_len` floats readable and `y_len`
            // writable (contract), disjoint (checked); the lengths are the model's input
            // and output sizes, which the state's creation bounded.
            let (xs, ys) = unsafe { step_slices(x, x_len, y, y_len) };
            m.model.audio_step(&mut s.state, xs, ys)?;
            return Ok(());
        }
        if let Some(ls) = m.model.layers.as_deref() {
            if m.model.audio_ready_layered(&s.state, x_len, y_len)
                && step_buffers_ok(x, x_len, y, y_len)
            {
                // SAFETY: as for the plain model's step just above.
                let (xs, ys) = unsafe { step_slices(x, x_len, y, y_len) };
                return crate::layers::audio_step_again(&m.model, ls, &mut s.state, xs, ys)
                    .map_err(Failure::from);
            }
        }
        // SAFETY: x and y non-NULL (checked), valid for the sizes (this function's contract).
        unsafe { step_general(m, s, x, x_len, y, y_len) }
    })
}

/// [`rnn_model_step`] where neither audio case applies (a state's first step, bad sizes,
/// several streams): the general path, out of line, so that the audio cases' frame
/// holds only what they use.
///
/// # Safety
/// `x` and `y` are non-NULL and valid for `x_len` and `y_len` floats.
#[inline(never)]
unsafe fn step_general(
    m: &rnn_model,
    s: &mut rnn_state,
    x: *const f32,
    x_len: usize,
    y: *mut f32,
    y_len: usize,
) -> FfiResult<()> {
    // SAFETY: the caller's contract.
    unsafe { run_block(m, s, x, Some(x_len), 1, y, y_len) }
}

/// Runs a block of `seq_len` timesteps from `state` in which stream b advances only
/// lengths[b] (1..=seq_len) steps: for streams that end at different points within a
/// buffer (the end of an utterance, of a document).
///
/// Shapes: `x` is [batch][seq_len][input_size] (a stream's steps past its length are
/// padding: any finite values, never read into a valid result), `y`
/// [batch][seq_len][output size], batch being the state's, `lengths` `lengths_len` =
/// batch lengths. Stream b's outputs are those of its first lengths[b] steps, then
/// zeros; the state keeps, for stream b, the one after its own last step. With every
/// length seq_len and seq_len <= max_block this is rnn_model_forward_state (the same
/// bits). seq_len >= 1, and it is not limited by the state's max_block.
/// Errors: RNN_ERR_NULL (model, state, x, lengths, y); RNN_ERR_INVALID for lengths_len
/// not the state's batch, a length of 0 or above seq_len (the message names
/// lengths[b]), a bidirectional model, a state made for a model of another config, y_len
/// not as above, sizes that overflow, or x and y overlapping; RNN_ERR_NONFINITE for
/// NaN/Inf in x; RNN_ERR_ALLOC. On failure neither y nor the state changes.
/// Thread safety: as rnn_model_forward_state.
/// Allocation: unlike rnn_model_forward_state, working memory for the block (it runs
/// the whole-sequence pass from the state): not for a real-time thread.
///
/// # Safety
/// `model` and `state` are live handles; `x` points to batch * seq_len * input_size
/// readable floats; `lengths` to `lengths_len` readable uint32s; `y` to `y_len` writable
/// floats.
#[no_mangle]
pub unsafe extern "C" fn rnn_model_forward_state_lengths(
    model: *const rnn_model,
    state: *mut rnn_state,
    x: *const f32,
    seq_len: usize,
    lengths: *const u32,
    lengths_len: usize,
    y: *mut f32,
    y_len: usize,
) -> rnn_status {
    ffi_boundary!("rnn_model_forward_state_lengths", {
        let m = try_ref!(model);
        let s = try_mut!(state);
        check_null!(x, lengths, y);
        s.state.check_model(m.model.config())?;
        let batch = s.state.batch();
        let x_count = element_count::<f32>(
            "x",
            &[
                ("the state's batch", batch),
                ("seq_len", seq_len),
                ("input_size", m.model.input_size()),
            ],
        )?;
        let y_count = element_count::<f32>(
            "y",
            &[
                ("the state's batch", batch),
                ("seq_len", seq_len),
                ("output size", m.model.output_size()),
            ],
        )?;
        check_len(
            "y_len",
            y_len,
            y_count,
            "the state's batch * seq_len * output size",
        )?;
        // SAFETY: non-NULL (checked), `lengths_len` uint32s readable (contract).
        let ls = unsafe { lengths_arg(lengths, lengths_len, batch, seq_len, "the state's batch") }?
            .unwrap_or_else(|| vec![seq_len; batch]);
        check_disjoint(x, x_count, "x", y, y_len, "y")?;
        // SAFETY: non-NULL (checked), `x_count` floats readable (contract), size checked.
        let xs = unsafe { in_slice(x, x_count, "x") }?;
        // SAFETY: non-NULL (checked), `y_len` floats writable (contract), size checked,
        // disjoint from x (checked).
        let ys = unsafe { out_slice(y, y_len, "y") }?;
        m.model
            .forward_state_lengths(&mut s.state, xs, seq_len, &ls, ys)
            .map_err(Failure::from)
    })
}

/// [`run_block`]'s failures, out of line (see `boundary::check_len`).
#[cold]
#[inline(never)]
fn block_too_long(seq_len: usize, max_block: usize) -> Failure {
    Failure::invalid(format!(
        "seq_len is {seq_len}, expected at most {max_block} (the state's max_block; \
         make it with rnn_state_new_block)"
    ))
}

#[cold]
#[inline(never)]
fn too_large(x_count: usize, y_count: usize) -> Failure {
    Failure::invalid(format!(
        "x or y: {x_count} or {y_count} floats are too large for memory"
    ))
}

/// The checks and the call shared by forward_state and step; `x_len` is given by step.
///
/// # Safety
/// `x` and `y` are non-NULL and valid as the public entry points require.
#[inline(always)]
unsafe fn run_block(
    m: &rnn_model,
    s: &mut rnn_state,
    x: *const f32,
    x_len: Option<usize>,
    seq_len: usize,
    y: *mut f32,
    y_len: usize,
) -> Result<(), Failure> {
    s.state.check_model(m.model.config())?;
    if seq_len > s.state.max_block() {
        return Err(block_too_long(seq_len, s.state.max_block()));
    }
    let batch = s.state.batch();
    // Cannot overflow: the state was made with batch * max_block * max(I, O) checked,
    // and seq_len <= max_block (checked above). Plain products, not `element_count`:
    // this runs once per sample on an audio thread.
    let x_count = batch * seq_len * m.model.input_size();
    let y_count = batch * seq_len * m.model.output_size();
    if x_count.max(y_count) > isize::MAX as usize / std::mem::size_of::<f32>() {
        return Err(too_large(x_count, y_count));
    }
    if let Some(x_len) = x_len {
        check_len("x_len", x_len, x_count, "the state's batch * input_size")?;
    }
    check_len(
        "y_len",
        y_len,
        y_count,
        "the state's batch * seq_len * output size",
    )?;
    check_disjoint(x, x_count, "x", y, y_len, "y")?;
    // SAFETY: non-NULL (checked by the caller), `x_count` floats readable (contract).
    let xs = unsafe { in_slice(x, x_count, "x") }?;
    // SAFETY: non-NULL (checked by the caller), `y_len` floats writable (contract),
    // disjoint from x (checked).
    let ys = unsafe { out_slice(y, y_len, "y") }?;
    // The state's model, seq_len and both lengths are checked above.
    m.model
        .forward_state_shaped(&mut s.state, xs, seq_len, ys)
        .map_err(Failure::from)
}
