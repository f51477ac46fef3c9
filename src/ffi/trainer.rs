//! `rnn_trainer`: optimizer state bound to one model, and the BPTT training steps.

use std::ptr::NonNull;

use crate::ffi::boundary::{
    check_len, check_null, element_count, ffi_boundary, ffi_boundary_void, in_slice, lengths_arg,
    try_mut, write_out, Failure, FfiResult,
};
use crate::ffi::model::rnn_model;
use crate::ffi::state::rnn_state;
use crate::ffi::types::{rnn_status, rnn_train_config};
use crate::model::Model;
use crate::state::State;
use crate::train::{Targets, Trainer};

/// Optimizer state (momentum or Adam moments) for one model, and a pointer to that model,
/// whose weights its steps update in place. Opaque; made by rnn_trainer_new, freed by
/// rnn_trainer_free. Used by one thread at a time.
///
/// Lifetime rule: the model must outlive the trainer (free the trainer first), and while
/// a step runs no other call may use the model.
pub struct rnn_trainer {
    trainer: Trainer,
    model: NonNull<rnn_model>,
}

/// Creates a trainer for `model`. The trainer keeps the pointer: `model` must stay alive
/// until rnn_trainer_free(trainer), and its weights change with every step.
///
/// On RNN_OK `*out` is a new trainer the caller owns and frees with rnn_trainer_free.
/// Errors: RNN_ERR_NULL (model, config, out); RNN_ERR_INVALID for an optimizer outside
/// rnn_optimizer or a hyperparameter out of range (learning_rate, weight_decay,
/// clip_norm >= 0; momentum, beta1, beta2 in [0, 1); eps > 0; all finite). On failure
/// `*out` is not written. Allocation: the trainer (optimizer memory on its first step).
///
/// # Safety
/// `model` is a live model handle that outlives the trainer; `config` points to an
/// rnn_train_config; `out` to writable storage for a pointer.
#[no_mangle]
pub unsafe extern "C" fn rnn_trainer_new(
    model: *mut rnn_model,
    config: *const rnn_train_config,
    out: *mut *mut rnn_trainer,
) -> rnn_status {
    ffi_boundary!("rnn_trainer_new", {
        check_null!(model, config, out);
        // SAFETY: non-NULL (checked), readable (contract); plain data, any bits are valid.
        let config = unsafe { config.read_unaligned() };
        let tc = config.to_train_config()?;
        // SAFETY: non-NULL (checked), a live model handle (contract); only read here.
        let m = unsafe { &*model };
        let trainer = Trainer::new(&m.model, tc)?;
        let handle = Box::into_raw(Box::new(rnn_trainer {
            trainer,
            model: NonNull::new(model).expect("checked non-NULL"),
        }));
        // SAFETY: `out` is non-NULL (checked) and writable (contract).
        unsafe { write_out(out, handle) };
        Ok(())
    })
}

/// Seeds the dropout masks of the trainer's model (a model made with
/// rnn_model_desc.dropout > 0, or loaded from a file that records dropout): step n of
/// this trainer uses masks drawn from a hash of (seed, n), the same for any number of
/// threads, so a run is reproducible from its seed. A new trainer's seed is 0. Without
/// dropout the seed changes nothing.
/// Errors: RNN_ERR_NULL (trainer).
/// Thread safety: no other call may use the trainer at the same time.
///
/// # Safety
/// `trainer` is a live trainer handle.
#[no_mangle]
pub unsafe extern "C" fn rnn_trainer_set_dropout_seed(
    trainer: *mut rnn_trainer,
    seed: u64,
) -> rnn_status {
    ffi_boundary!("rnn_trainer_set_dropout_seed", {
        let t = try_mut!(trainer);
        t.trainer.set_dropout_seed(seed);
        Ok(())
    })
}

/// Frees a trainer (not its model). NULL is a no-op.
///
/// # Safety
/// `trainer` is NULL or a live trainer handle, not used by any other call now or after.
#[no_mangle]
pub unsafe extern "C" fn rnn_trainer_free(trainer: *mut rnn_trainer) {
    ffi_boundary_void!("rnn_trainer_free", {
        if !trainer.is_null() {
            // SAFETY: a live handle made by Box::into_raw in rnn_trainer_new, given back once.
            drop(unsafe { Box::from_raw(trainer) });
        }
    });
}

/// One optimizer step on one batch with a mean-squared-error loss: forward, loss, BPTT,
/// clipping, update of the trainer's model.
///
/// Shapes: `x` is [batch][seq_len][input_size]. `target` is
/// [batch][seq_len][output size] for RNN_TARGETS_EVERY_STEP or [batch][output size] for
/// RNN_TARGETS_LAST_STEP, `target_len` its element count. The loss is the mean over all
/// target elements of the head's pre-activation (torch.nn.MSELoss).
/// `state`: NULL starts from zeros; otherwise a state of this model's config with
/// `batch` streams, which the step starts from and, on success, leaves the final state in
/// (truncated BPTT: gradients stop at the start of the batch).
/// `*loss_out` receives the loss before the update.
/// Errors: RNN_ERR_NULL (trainer, x, target, loss_out); RNN_ERR_INVALID for batch or
/// seq_len 0, overflowing sizes, a wrong target_len, targets outside rnn_targets, or a
/// state of another config or batch; RNN_ERR_NONFINITE for NaN/Inf in x or target, or a
/// non-finite loss, gradient or update. On failure the weights, the optimizer, the state
/// and *loss_out are all unchanged.
/// Thread safety: no other call may use the trainer or its model during the step.
/// Allocation: the forward record and gradients (not real-time). Batches are split over
/// the library's threads with bit-identical results.
///
/// # Safety
/// `trainer` is a live trainer handle whose model is alive; `state` is NULL or a live
/// state handle; `x` points to batch * seq_len * input_size readable floats; `target` to
/// `target_len` readable floats; `loss_out` to a writable float.
#[no_mangle]
pub unsafe extern "C" fn rnn_trainer_step_mse(
    trainer: *mut rnn_trainer,
    state: *mut rnn_state,
    x: *const f32,
    batch: usize,
    seq_len: usize,
    target: *const f32,
    target_len: usize,
    targets: u32,
    loss_out: *mut f32,
) -> rnn_status {
    ffi_boundary!("rnn_trainer_step_mse", {
        let t = try_mut!(trainer);
        check_null!(x, target, loss_out);
        // SAFETY: the caller's contract, pointers checked non-NULL above.
        unsafe {
            step_mse(
                t, state, x, batch, seq_len, None, target, target_len, targets, loss_out,
            )
        }
    })
}

/// One optimizer step on one batch with a softmax cross-entropy loss on the head's
/// pre-activation (logits), as torch.nn.CrossEntropyLoss(ignore_index=-1).
///
/// Shapes: `x` is [batch][seq_len][input_size]; `labels` are int32 class indices in
/// 0..output size, or -1 to ignore, [batch][seq_len] for RNN_TARGETS_EVERY_STEP or
/// [batch] for RNN_TARGETS_LAST_STEP, `labels_len` their count. The loss is the mean over
/// the labels that are not -1 (at least one must be).
/// `state`, `loss_out`, errors, thread safety and allocation: as rnn_trainer_step_mse,
/// plus RNN_ERR_INVALID for a label outside -1..output size or every label -1.
///
/// # Safety
/// As rnn_trainer_step_mse, with `labels` pointing to `labels_len` readable int32s.
#[no_mangle]
pub unsafe extern "C" fn rnn_trainer_step_xent(
    trainer: *mut rnn_trainer,
    state: *mut rnn_state,
    x: *const f32,
    batch: usize,
    seq_len: usize,
    labels: *const i32,
    labels_len: usize,
    targets: u32,
    loss_out: *mut f32,
) -> rnn_status {
    ffi_boundary!("rnn_trainer_step_xent", {
        let t = try_mut!(trainer);
        check_null!(x, labels, loss_out);
        // SAFETY: the caller's contract, pointers checked non-NULL above.
        unsafe {
            step_xent(
                t, state, x, batch, seq_len, None, labels, labels_len, targets, loss_out,
            )
        }
    })
}

/// rnn_trainer_step_mse on a padded batch of sequences of different lengths
/// (pack_padded_sequence): sequence b has lengths[b] (1..=seq_len) valid timesteps.
///
/// `lengths` holds `lengths_len` = batch lengths. The loss is the mean over the valid
/// steps' target elements only: with RNN_TARGETS_EVERY_STEP targets past a sequence's
/// length are ignored (any finite values); with RNN_TARGETS_LAST_STEP each sequence's
/// target is compared with its output at its own last valid step. Padded steps get no
/// gradient; a bidirectional layer's reverse direction starts at each sequence's own
/// end. With `state`, each sequence's state after its own last step is left in it.
/// With every length seq_len this is rnn_trainer_step_mse (the same bits).
/// Shapes, `state`, `loss_out`, thread safety and allocation: as rnn_trainer_step_mse.
/// Errors: as rnn_trainer_step_mse, plus RNN_ERR_NULL (lengths) and RNN_ERR_INVALID for
/// lengths_len not batch or a length of 0 or above seq_len (the message names
/// lengths[b]). On failure the weights, the optimizer, the state and *loss_out are all
/// unchanged.
///
/// # Safety
/// As rnn_trainer_step_mse, with `lengths` pointing to `lengths_len` readable uint32s.
#[no_mangle]
pub unsafe extern "C" fn rnn_trainer_step_mse_lengths(
    trainer: *mut rnn_trainer,
    state: *mut rnn_state,
    x: *const f32,
    batch: usize,
    seq_len: usize,
    lengths: *const u32,
    lengths_len: usize,
    target: *const f32,
    target_len: usize,
    targets: u32,
    loss_out: *mut f32,
) -> rnn_status {
    ffi_boundary!("rnn_trainer_step_mse_lengths", {
        let t = try_mut!(trainer);
        check_null!(x, lengths, target, loss_out);
        let ls = Some((lengths, lengths_len));
        // SAFETY: the caller's contract, pointers checked non-NULL above.
        unsafe {
            step_mse(
                t, state, x, batch, seq_len, ls, target, target_len, targets, loss_out,
            )
        }
    })
}

/// rnn_trainer_step_xent on a padded batch of sequences of different lengths: labels
/// past a sequence's length are ignored (as -1; with RNN_TARGETS_LAST_STEP each
/// sequence's label is for its own last valid step), the loss is the mean over the
/// counted labels of valid steps (at least one). Otherwise as
/// rnn_trainer_step_mse_lengths (lengths, state, errors, thread safety, allocation) and
/// rnn_trainer_step_xent (labels); with every length seq_len this is
/// rnn_trainer_step_xent (the same bits).
///
/// # Safety
/// As rnn_trainer_step_xent, with `lengths` pointing to `lengths_len` readable uint32s.
#[no_mangle]
pub unsafe extern "C" fn rnn_trainer_step_xent_lengths(
    trainer: *mut rnn_trainer,
    state: *mut rnn_state,
    x: *const f32,
    batch: usize,
    seq_len: usize,
    lengths: *const u32,
    lengths_len: usize,
    labels: *const i32,
    labels_len: usize,
    targets: u32,
    loss_out: *mut f32,
) -> rnn_status {
    ffi_boundary!("rnn_trainer_step_xent_lengths", {
        let t = try_mut!(trainer);
        check_null!(x, lengths, labels, loss_out);
        let ls = Some((lengths, lengths_len));
        // SAFETY: the caller's contract, pointers checked non-NULL above.
        unsafe {
            step_xent(
                t, state, x, batch, seq_len, ls, labels, labels_len, targets, loss_out,
            )
        }
    })
}

/// A `_lengths` step's `lengths` argument: the pointer (checked non-NULL) and its count;
/// `None` for the steps without lengths.
type LengthsArg = Option<(*const u32, usize)>;

/// The body of rnn_trainer_step_mse and rnn_trainer_step_mse_lengths, after their NULL
/// checks (trainer, then x, target, loss_out and lengths).
///
/// # Safety
/// As rnn_trainer_step_mse_lengths, with x, target, loss_out and lengths non-NULL.
#[allow(clippy::too_many_arguments)]
unsafe fn step_mse(
    t: &mut rnn_trainer,
    state: *mut rnn_state,
    x: *const f32,
    batch: usize,
    seq_len: usize,
    lengths: LengthsArg,
    target: *const f32,
    target_len: usize,
    targets: u32,
    loss_out: *mut f32,
) -> FfiResult<()> {
    // SAFETY: the trainer's model is alive and used by nothing else during the step
    // (lifetime rule of rnn_trainer_new); `state` is NULL or a live handle (contract).
    let (model, state) = unsafe { parts(t.model, state) };
    let targets = targets_arg(targets)?;
    let width = model.output_size();
    // SAFETY: x non-NULL (caller), batch * seq_len * input_size floats readable (contract).
    let xs = unsafe { x_slice(model, x, batch, seq_len) }?;
    // SAFETY: non-NULL (caller), `lengths_len` uint32s readable (contract).
    let ls = unsafe { lengths_of(lengths, batch, seq_len) }?;
    let count = target_count(batch, seq_len, targets, width)?;
    check_len("target_len", target_len, count, target_shape(targets))?;
    // SAFETY: non-NULL (caller), `target_len` floats readable (contract).
    let ts = unsafe { in_slice(target, target_len, "target") }?;
    let loss =
        t.trainer
            .step_mse_lengths(model, state, xs, batch, seq_len, ls.as_deref(), ts, targets)?;
    // SAFETY: non-NULL (caller), writable (contract).
    unsafe { write_out(loss_out, loss) };
    Ok(())
}

/// The body of rnn_trainer_step_xent and rnn_trainer_step_xent_lengths, after their NULL
/// checks (trainer, then x, labels, loss_out and lengths).
///
/// # Safety
/// As rnn_trainer_step_xent_lengths, with x, labels, loss_out and lengths non-NULL.
#[allow(clippy::too_many_arguments)]
unsafe fn step_xent(
    t: &mut rnn_trainer,
    state: *mut rnn_state,
    x: *const f32,
    batch: usize,
    seq_len: usize,
    lengths: LengthsArg,
    labels: *const i32,
    labels_len: usize,
    targets: u32,
    loss_out: *mut f32,
) -> FfiResult<()> {
    // SAFETY: as in `step_mse`.
    let (model, state) = unsafe { parts(t.model, state) };
    let targets = targets_arg(targets)?;
    // SAFETY: x non-NULL (caller), batch * seq_len * input_size floats readable (contract).
    let xs = unsafe { x_slice(model, x, batch, seq_len) }?;
    // SAFETY: non-NULL (caller), `lengths_len` uint32s readable (contract).
    let ls = unsafe { lengths_of(lengths, batch, seq_len) }?;
    let count = target_count(batch, seq_len, targets, 1)?;
    check_len("labels_len", labels_len, count, label_shape(targets))?;
    // SAFETY: non-NULL (caller), `labels_len` int32s readable (contract).
    let ys = unsafe { in_slice(labels, labels_len, "labels") }?;
    let loss = t.trainer.step_cross_entropy_lengths(
        model,
        state,
        xs,
        batch,
        seq_len,
        ls.as_deref(),
        ys,
        targets,
    )?;
    // SAFETY: non-NULL (caller), writable (contract).
    unsafe { write_out(loss_out, loss) };
    Ok(())
}

/// The checked lengths of a `_lengths` step (`None` when absent or all full).
///
/// # Safety
/// A `Some` pointer is non-NULL and holds its count of readable uint32s.
unsafe fn lengths_of(
    lengths: LengthsArg,
    batch: usize,
    seq_len: usize,
) -> FfiResult<Option<Vec<usize>>> {
    match lengths {
        // SAFETY: the caller's.
        Some((p, n)) => unsafe { lengths_arg(p, n, batch, seq_len, "batch") },
        None => Ok(None),
    }
}

/// The trainer's model and the optional state, as references for one step.
///
/// # Safety
/// The trainer's model is alive and not used by any other call; `state` is NULL or a
/// live state handle used by this thread only.
unsafe fn parts<'a>(
    model: NonNull<rnn_model>,
    state: *mut rnn_state,
) -> (&'a mut Model, Option<&'a mut State>) {
    // SAFETY: guaranteed by the caller (the lifetime rule of rnn_trainer_new).
    let model = unsafe { &mut (*model.as_ptr()).model };
    // SAFETY: NULL or a live handle (caller).
    let state = unsafe { state.as_mut() }.map(|s| &mut s.state);
    (model, state)
}

/// The `targets` argument as the Rust enum.
fn targets_arg(targets: u32) -> FfiResult<Targets> {
    Targets::from_u32(targets).ok_or_else(|| {
        Failure::invalid(format!(
            "targets is {targets}, expected 0 (RNN_TARGETS_EVERY_STEP) or 1 (RNN_TARGETS_LAST_STEP)"
        ))
    })
}

/// `x` as a slice of batch * seq_len * input_size floats (overflow refused).
///
/// # Safety
/// `x` is non-NULL and points to that many readable floats.
unsafe fn x_slice<'a>(
    model: &Model,
    x: *const f32,
    batch: usize,
    seq_len: usize,
) -> FfiResult<&'a [f32]> {
    let n = element_count::<f32>(
        "x",
        &[
            ("batch", batch),
            ("seq_len", seq_len),
            ("input_size", model.input_size()),
        ],
    )?;
    // SAFETY: guaranteed by the caller; the count fits in memory (checked).
    unsafe { in_slice(x, n, "x") }
}

/// Elements of the targets: rows (batch * seq_len, or batch) times `width`.
fn target_count(batch: usize, seq_len: usize, targets: Targets, width: usize) -> FfiResult<usize> {
    match targets {
        Targets::EveryStep => element_count::<f32>(
            "target",
            &[
                ("batch", batch),
                ("seq_len", seq_len),
                ("output size", width),
            ],
        ),
        Targets::LastStep => {
            element_count::<f32>("target", &[("batch", batch), ("output size", width)])
        }
    }
}

fn target_shape(targets: Targets) -> &'static str {
    match targets {
        Targets::EveryStep => "batch * seq_len * output size for RNN_TARGETS_EVERY_STEP",
        Targets::LastStep => "batch * output size for RNN_TARGETS_LAST_STEP",
    }
}

fn label_shape(targets: Targets) -> &'static str {
    match targets {
        Targets::EveryStep => "batch * seq_len for RNN_TARGETS_EVERY_STEP",
        Targets::LastStep => "batch for RNN_TARGETS_LAST_STEP",
    }
}
