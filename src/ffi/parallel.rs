//! A host's parallel-for: `rnn_set_parallel_for` routes batched work through the host's
//! own workers (a game engine's job system, a host application's pool) instead of the
//! built-in pool ([`crate::ParallelFor`] on the Rust side).

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

use crate::ffi::boundary::ffi_boundary;
use crate::ffi::types::rnn_status;

/// One task of a parallel-for: the host calls it as `task(task_ctx, i)` for each `i` in
/// `0..n`, passing back the `task_ctx` it was given. Never unwinds.
pub type rnn_task = unsafe extern "C" fn(task_ctx: *mut c_void, i: usize);

/// A host's parallel-for: runs `task(task_ctx, i)` once for every `i` in `0..n`, on any
/// threads, and returns when all of them have returned. `ctx` is the pointer given to
/// rnn_set_parallel_for. NULL stands for the built-in pool.
pub type rnn_parallel_for =
    Option<unsafe extern "C" fn(ctx: *mut c_void, n: usize, task: rnn_task, task_ctx: *mut c_void)>;

/// The host's function and context, callable from any thread that calls rnncore.
struct CHost {
    run: unsafe extern "C" fn(*mut c_void, usize, rnn_task, *mut c_void),
    ctx: *mut c_void,
}

// SAFETY: rnn_set_parallel_for's contract: `run` may be called with `ctx` from any thread
// that calls into rnncore, several at once; rnncore never reads or writes `*ctx` itself.
unsafe impl Send for CHost {}
// SAFETY: as above; the fields are never changed after creation.
unsafe impl Sync for CHost {}

impl crate::ParallelFor for CHost {
    fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
        let task_ref: &(dyn Fn(usize) + Sync) = task;
        let task_ctx = std::ptr::from_ref(&task_ref).cast_mut().cast::<c_void>();
        // SAFETY: the host's contract: `run` calls `trampoline` with `task_ctx` only for
        // indices below `n` and only before it returns, while `task_ref` is alive here.
        unsafe { (self.run)(self.ctx, n, trampoline, task_ctx) }
    }
}

/// The `rnn_task` rnncore hands the host: calls the task `task_ctx` points to.
unsafe extern "C" fn trampoline(task_ctx: *mut c_void, i: usize) {
    if task_ctx.is_null() {
        return;
    }
    // SAFETY: `task_ctx` is the pointer `CHost::run` passed, to a `&dyn Fn` that lives
    // until the host's `run` returns (the host calls tasks only before that).
    let task = unsafe { *task_ctx.cast_const().cast::<&(dyn Fn(usize) + Sync)>() };
    // The task catches its own panics (`parallel::run_on_host`); this one keeps any that
    // escapes from unwinding into the host's C code.
    let _ = catch_unwind(AssertUnwindSafe(|| task(i)));
}

/// Runs rnncore's batched work (rnn_model_forward with large batches, training steps)
/// on the host's workers: each parallel section of a call becomes one
/// `run(ctx, n, task, task_ctx)`, which must call `task(task_ctx, i)` once for every i
/// in 0..n, on any threads in any order, and return when all have returned. The results
/// are bit-identical to the built-in pool's and to one thread's. Most sections split into
/// rnn_get_num_threads() parts (the count given to rnn_set_num_threads, or else the CPUs
/// this process may run on); a few split along the data's own blocks, so n may differ.
/// `run` = NULL goes back to the built-in pool.
///
/// `run` is called on the threads that call rnncore, possibly several at once, and not
/// at all for small work (under about 4 million multiply-adds a call runs on its own
/// thread). It must not call `task` after it has returned; an index it skips is run on
/// the calling thread after it returns, and one it repeats does its work once. `ctx` is
/// passed to `run` untouched and must stay valid while any call may use it: until
/// rnn_set_parallel_for is called again and calls already running have returned.
///
/// Errors: none (always RNN_OK). Thread safety: any thread; calls already running
/// finish with the setting they started with. While a host parallel-for is set,
/// rnncore's own pool threads (if any were started) take no work.
///
/// # Safety
/// `run`, if not NULL, must be a function behaving as described above, and `ctx` valid
/// for it for as long as described above.
#[no_mangle]
pub unsafe extern "C" fn rnn_set_parallel_for(
    run: rnn_parallel_for,
    ctx: *mut c_void,
) -> rnn_status {
    ffi_boundary!("rnn_set_parallel_for", {
        let host = run.map(|run| Arc::new(CHost { run, ctx }) as Arc<dyn crate::ParallelFor>);
        crate::set_parallel_for(host);
        Ok(())
    })
}
