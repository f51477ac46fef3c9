//! Thread control. rnncore parallelises over the batch: batch chunks each run their
//! whole recurrence (no per-step synchronisation), and the large hoisted products are
//! split into fixed row blocks. No result depends on the split: each output row is
//! computed by the same sequence of operations whichever chunk or block holds it, and
//! no reduction crosses chunks (the weight gradients are hoisted products over all
//! rows), so 1 thread and N threads give bit-identical results.
//!
//! A call runs on the thread that makes it. Its parallel loops hand their tasks to one
//! of three places: the calling thread alone (small work, one thread), the calling
//! thread together with helpers from a rayon pool ([`scatter`]: the caller takes part,
//! so a helper that is slow to wake never makes a call slower than one thread), or a
//! parallel-for the host provides ([`set_parallel_for`]). rnncore never changes a
//! thread's CPU affinity, priority or signal mask.
// `scatter` erases a task's lifetime for its helpers, with the protocol that makes it
// sound written beside it; everything else here is safe code.
#![deny(unsafe_code)]

use crate::error::{invalid, Result};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

mod scatter;

/// The pool [`set_num_threads`] made; `None`: rayon's global pool.
static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);
/// The count given to [`set_num_threads`] (0: none).
static REQUESTED: AtomicUsize = AtomicUsize::new(0);
/// The host's parallel-for ([`set_parallel_for`]); `None`: the built-in pool.
static HOST: RwLock<Option<Arc<dyn ParallelFor>>> = RwLock::new(None);

/// A host's own way of running work in parallel (a game engine's job system, an audio
/// host's worker pool), which rnncore then uses instead of its built-in pool.
///
/// rnncore hands over `n` independent tasks; `run` must call `task(i)` once for every
/// `i` in `0..n`, on any threads in any order, and return only when all have finished.
/// No result depends on which thread runs which task or on `n`: the results are bit for
/// bit those of the built-in pool. A task that `run` skips is run on the calling thread
/// after `run` returns; one it runs twice does its work once; a panic inside a task is
/// caught and resumed on the caller once `run` has returned.
///
/// ```
/// use std::sync::Arc;
/// /// Every task on the calling thread, in order (a host with no workers to spare).
/// struct InOrder;
/// impl rnncore::ParallelFor for InOrder {
///     fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync)) {
///         (0..n).for_each(task);
///     }
/// }
/// rnncore::set_parallel_for(Some(Arc::new(InOrder)));
/// // ... forward passes and training steps now split their work through `InOrder` ...
/// rnncore::set_parallel_for(None);
/// ```
pub trait ParallelFor: Send + Sync {
    /// Runs `task(i)` for every `i` in `0..n` and returns when all have finished.
    fn run(&self, n: usize, task: &(dyn Fn(usize) + Sync));
}

/// Routes rnncore's batched work through `host` (see [`ParallelFor`]); `None` goes back
/// to the built-in pool. Most parallel sections split into [`num_threads`] parts (the
/// count given to [`set_num_threads`], or else the CPUs this process may run on); a few
/// split along the data's own blocks. Calls already running finish where they started.
pub fn set_parallel_for(host: Option<Arc<dyn ParallelFor>>) {
    *HOST.write().unwrap_or_else(|e| e.into_inner()) = host;
}

fn host() -> Option<Arc<dyn ParallelFor>> {
    HOST.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Where the parallel loops of one call send their tasks.
#[derive(Clone)]
enum Exec {
    /// In order on the calling thread.
    Serial,
    /// The calling thread and helpers in this pool (`None`: the pool of the rayon
    /// worker making the call, or rayon's global pool).
    Rayon(Option<Arc<rayon::ThreadPool>>),
    /// The host's parallel-for.
    Host(Arc<dyn ParallelFor>),
}

thread_local! {
    /// The call this thread is making: where its loops go and how many parts they split
    /// into (fixed for the whole call, so every phase splits alike).
    static CALL: RefCell<Option<(Exec, usize)>> = const { RefCell::new(None) };
    /// Set while this thread runs one task of a parallel loop: loops nested in a task
    /// run in order on its thread.
    static IN_TASK: Cell<bool> = const { Cell::new(false) };
}

/// Sets the number of threads rnncore uses for batched work; `0` goes back to the
/// default: rayon's global pool (one thread per core unless `RAYON_NUM_THREADS` says
/// otherwise), or with a host parallel-for ([`set_parallel_for`]), one part per CPU this
/// process may run on. Streaming steps always run on the calling thread. A new pool's
/// threads have each run once when this returns. No thread's CPU affinity is ever
/// changed.
pub fn set_num_threads(n: usize) -> Result<()> {
    let pool = if n == 0 {
        None
    } else {
        if n > 4096 {
            return Err(invalid!("threads is {n}, expected 0..=4096"));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .thread_name(|i| format!("rnncore-{i}"))
            .build()
            .map_err(|e| invalid!("cannot start {n} threads: {e}"))?;
        drop(pool.broadcast(|_| ()));
        Some(Arc::new(pool))
    };
    *POOL.write().unwrap_or_else(|e| e.into_inner()) = pool;
    REQUESTED.store(n, Relaxed);
    Ok(())
}

/// The number of threads batched work runs on (with a host parallel-for, the number of
/// parts it is split into).
pub fn num_threads() -> usize {
    let n = REQUESTED.load(Relaxed);
    if n > 0 {
        return n;
    }
    if host().is_some() {
        return std::thread::available_parallelism().map_or(1, |n| n.get());
    }
    match current_pool() {
        Some(p) => p.current_num_threads(),
        None => rayon::current_num_threads(),
    }
}

fn current_pool() -> Option<Arc<rayon::ThreadPool>> {
    POOL.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Runs `f` as one call whose loops split over the configured threads (or the host's
/// parallel-for). Inside a call or a task, `f` just runs.
pub(crate) fn install<R>(f: impl FnOnce() -> R) -> R {
    enter(false, f)
}

/// Multiply-adds below which a call runs on the calling thread whatever the thread
/// count: handing work to other threads costs microseconds to tens of microseconds
/// (more on a virtual machine, whose idle vCPUs are slow to wake), about what this much
/// recurrent work takes on one thread (60-200 µs for LSTM and GRU forwards). Below it,
/// 2 threads made forwards 1.2-1.8x slower than 1 on a 2-vCPU VM (LSTM H32 at batch
/// 4-16, H128 at batch 4). The decision rests on the work's size alone.
pub(crate) const SMALL_WORK: usize = 4 << 20;

/// [`install`] for a call of about `macs` multiply-adds: on the calling thread alone
/// below [`SMALL_WORK`].
pub(crate) fn install_work<R>(macs: usize, f: impl FnOnce() -> R) -> R {
    #[cfg(test)]
    let small = TEST_SMALL_WORK.with(Cell::get).unwrap_or(SMALL_WORK);
    #[cfg(not(test))]
    let small = SMALL_WORK;
    enter(macs < small, f)
}

/// Sets up the call (where its loops go, into how many parts) and runs `f` on this
/// thread. Nested calls keep the outer call's setting.
fn enter<R>(serial: bool, f: impl FnOnce() -> R) -> R {
    if IN_TASK.with(Cell::get) || CALL.with(|c| c.borrow().is_some()) {
        return f();
    }
    let call = if serial {
        (Exec::Serial, 1)
    } else if let Some(h) = host() {
        (Exec::Host(h), num_threads())
    } else if let Some(p) = current_pool() {
        let n = p.current_num_threads();
        (Exec::Rayon(Some(p)), n)
    } else {
        // On a rayon worker, its pool; elsewhere rayon's global pool (started on first use).
        (Exec::Rayon(None), rayon::current_num_threads())
    };
    let call = if call.1 <= 1 { (Exec::Serial, 1) } else { call };
    with_call(Some(call), f)
}

/// `f` with [`CALL`] set to `call`, restored afterwards (also when `f` panics).
fn with_call<R>(call: Option<(Exec, usize)>, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<(Exec, usize)>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let old = self.0.take();
            CALL.with(|c| *c.borrow_mut() = old);
        }
    }
    let _restore = Restore(CALL.with(|c| c.replace(call)));
    f()
}

#[cfg(test)]
thread_local! {
    static TEST_SMALL_WORK: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Unit tests: `f` with [`install_work`]'s threshold `small` on this thread, so that
/// small shapes still take the parallel paths.
#[cfg(test)]
pub(crate) fn with_small_work<R>(small: usize, f: impl FnOnce() -> R) -> R {
    with_set(&TEST_SMALL_WORK, Some(small), f)
}

/// `f` with the thread-local `key` holding `value`, restored afterwards (also when `f`
/// panics).
fn with_set<T: Copy + 'static, R>(
    key: &'static std::thread::LocalKey<Cell<T>>,
    value: T,
    f: impl FnOnce() -> R,
) -> R {
    struct Restore<T: Copy + 'static>(&'static std::thread::LocalKey<Cell<T>>, T);
    impl<T: Copy + 'static> Drop for Restore<T> {
        fn drop(&mut self) {
            self.0.with(|c| c.set(self.1));
        }
    }
    let _restore = Restore(key, key.with(|c| c.replace(value)));
    f()
}

/// Parts the batched work now running splits into: 1 inside a task or a call on the
/// calling thread alone, the call's thread count inside a call, else [`num_threads`].
pub(crate) fn threads() -> usize {
    if IN_TASK.with(Cell::get) {
        return 1;
    }
    CALL.with(|c| c.borrow().as_ref().map(|c| c.1))
        .unwrap_or_else(num_threads)
        .max(1)
}

/// Where a loop started on this thread now sends its tasks.
fn exec() -> Exec {
    if IN_TASK.with(Cell::get) {
        return Exec::Serial;
    }
    CALL.with(|c| c.borrow().as_ref().map(|c| c.0.clone()))
        .unwrap_or(Exec::Serial)
}

/// `task(i)` for every `i` in `0..n` as the current call runs its loops: in order here,
/// on this thread and pool helpers ([`scatter`]), or through the host's parallel-for.
/// Every task runs with [`IN_TASK`] set.
fn scatter_tasks(n: usize, task: &(dyn Fn(usize) + Sync)) {
    let in_task = |i: usize| with_set(&IN_TASK, true, || task(i));
    match exec() {
        Exec::Serial => (0..n).for_each(in_task),
        Exec::Rayon(pool) => {
            let helpers = threads().saturating_sub(1);
            let spawn = |job: scatter::Job| match &pool {
                Some(p) => p.spawn(job),
                None => rayon::spawn(job),
            };
            scatter::run(n, helpers, spawn, &in_task);
        }
        Exec::Host(h) => run_on_host(&*h, n, &in_task),
    }
}

/// [`ParallelFor::run`] with the guarantees its documentation gives: each index runs at
/// most once there (and only below `n`), any index it skipped runs here afterwards, and
/// a task's panic is resumed here.
fn run_on_host(h: &dyn ParallelFor, n: usize, task: &(dyn Fn(usize) + Sync)) {
    let ran: Vec<AtomicBool> = (0..n).map(|_| AtomicBool::new(false)).collect();
    let panicked: Mutex<Option<Box<dyn std::any::Any + Send>>> = Mutex::new(None);
    let once = |i: usize| {
        if i < n && !ran[i].swap(true, Relaxed) {
            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| task(i)));
            if let Err(p) = r {
                let mut slot = panicked.lock().unwrap_or_else(|e| e.into_inner());
                slot.get_or_insert(p);
            }
        }
    };
    h.run(n, &once);
    // `run` has returned, so by its contract no task is running: the skipped ones run here.
    for (i, r) in ran.iter().enumerate() {
        if !r.load(Relaxed) {
            once(i);
        }
    }
    if let Some(p) = panicked.into_inner().unwrap_or_else(|e| e.into_inner()) {
        std::panic::resume_unwind(p);
    }
}

/// Whether loops started here run in order on this thread.
fn serial_here() -> bool {
    matches!(exec(), Exec::Serial)
}

/// `f(item)` for every item: in order on this thread in a serial call, else as parallel
/// tasks.
pub(crate) fn each<T: Send>(items: Vec<T>, f: impl Fn(T) + Sync) {
    if serial_here() || items.len() < 2 {
        items.into_iter().for_each(f);
        return;
    }
    let slots: Vec<Mutex<Option<T>>> = items.into_iter().map(|t| Mutex::new(Some(t))).collect();
    scatter_tasks(slots.len(), &|i| {
        let item = slots[i].lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = item {
            f(t);
        }
    });
}

/// `f(i, chunk)` for the `i`-th chunk of `size` elements of `v` (the last may be short),
/// as [`each`] runs them.
pub(crate) fn each_chunk<T: Send>(v: &mut [T], size: usize, f: impl Fn(usize, &mut [T]) + Sync) {
    each(v.chunks_mut(size).enumerate().collect(), |(i, c)| f(i, c));
}

/// `f(item)` for every element of `v`, as [`each`] runs them.
pub(crate) fn each_mut<T: Send>(v: &mut [T], f: impl Fn(&mut T) + Sync) {
    each(v.iter_mut().collect(), f);
}

/// `f(item)` for every item as [`each`] runs them, the results in the items' order.
pub(crate) fn map_each<T: Send, R: Send>(items: Vec<T>, f: impl Fn(T) -> R + Sync) -> Vec<R> {
    if serial_here() {
        return items.into_iter().map(f).collect();
    }
    let out: Vec<Mutex<Option<R>>> = items.iter().map(|_| Mutex::new(None)).collect();
    each(items.into_iter().enumerate().collect(), |(i, t)| {
        let r = f(t);
        *out[i].lock().unwrap_or_else(|e| e.into_inner()) = Some(r);
    });
    out.into_iter()
        .map(|m| {
            let r = m.into_inner().unwrap_or_else(|e| e.into_inner());
            r.expect("every item ran")
        })
        .collect()
}

/// [`crate::error::check_finite`] for large batch operands (inputs, targets, a
/// training step's gradients): fixed blocks checked in parallel, the serial search for
/// the first bad element (and its message) only when one is not finite. At 2 threads the
/// serial passes left the second thread idle for about 1 % of a training step. Enters the
/// thread pool, so never for the streaming paths.
pub(crate) fn check_finite_par(what: &str, data: &[f32]) -> Result<()> {
    use crate::error::all_finite;
    const BLOCK: usize = 1 << 15;
    // On the calling thread (an idle pool, see `install`) the serial check below runs.
    if data.len() > 2 * BLOCK
        && num_threads() > 1
        && install(|| {
            if threads() < 2 {
                return false;
            }
            let ok = AtomicBool::new(true);
            let blocks: Vec<&[f32]> = data.chunks(BLOCK).collect();
            each(blocks, |b| {
                if !all_finite(b) {
                    ok.store(false, Relaxed);
                }
            });
            ok.load(Relaxed)
        })
    {
        return Ok(());
    }
    crate::error::check_finite(what, data)
}

/// Rows of the batch that one task runs through the whole recurrence: one chunk per
/// thread. The chunking never shows in the results: every per-step product is a
/// packed GEMM whose rows do not depend on the other rows of the call
/// (`kernels::packed`), and the pointwise pass is per row.
pub(crate) fn batch_chunk(batch: usize) -> usize {
    batch.div_ceil(threads()).max(1)
}

/// Most rows of `A` per block of a packed product (a block of `A` stays in L2).
const ROW_BLOCK: usize = 256;

/// Rows per parallel block of an `m`-row product: enough blocks for every thread (and at
/// most `cap` rows each), in multiples of 32. Blocks never change a bit of the result
/// (each element is computed by the same operations whichever block holds its row), so
/// the split may follow the thread count.
fn row_block(m: usize, cap: usize) -> usize {
    m.div_ceil(threads()).next_multiple_of(32).clamp(32, cap)
}

/// `C = bias + A · B` for every row of `C` (`bias` is one row), with `B` packed once
/// (`kernels::packed`), rows split into blocks of up to `ROW_BLOCK` run in parallel: a
/// block of `A` (256 rows) stays in L2 while every panel of `B` streams past it. The
/// kernel starts each element from the bias ([`gemm_packed_bias`]), so no pass writes
/// the bias rows first. Rows are independent in the packed kernel, so the split changes
/// no bit.
///
/// [`gemm_packed_bias`]: crate::kernels::packed::gemm_packed_bias
pub(crate) fn gemm_packed_rows_bias(
    m: usize,
    a: &[f32],
    lda: usize,
    b: &crate::kernels::packed::PackedB,
    c: &mut [f32],
    ldc: usize,
    bias: &[f32],
) {
    use crate::kernels::packed::gemm_packed_bias;
    let n = bias.len();
    if m == 0 {
        return;
    }
    let c = &mut c[..(m - 1) * ldc + n];
    let block = row_block(m, ROW_BLOCK);
    if m <= block || b.n() == 0 {
        gemm_packed_bias(m, a, lda, b, c, ldc, bias);
        return;
    }
    each_chunk(c, block * ldc, |i, cblk| {
        let r0 = i * block;
        let rows = (m - r0).min(block);
        gemm_packed_bias(rows, &a[r0 * lda..], lda, b, cblk, ldc, bias);
    });
}

/// `C = alpha·A·B + beta·C` split into fixed blocks of rows run in parallel. Every
/// element of `C` is computed by one call over the whole inner dimension, so the split
/// does not change a single bit.
pub(crate) fn gemm_rows(
    alpha: f32,
    a: crate::kernels::gemm::Mat<'_>,
    b: crate::kernels::gemm::Mat<'_>,
    beta: f32,
    c: &mut [f32],
    ldc: usize,
) {
    use crate::kernels::gemm::{gemm, Mat};
    let m = a.rows;
    if m == 0 || b.cols == 0 {
        return;
    }
    let c = &mut c[..(m - 1) * ldc + b.cols];
    let small = (m as u128) * (a.cols as u128) * (b.cols as u128) < (1 << 21);
    let rows_per = row_block(m, usize::MAX);
    if small || m <= rows_per {
        gemm(alpha, a, b, beta, c, ldc);
        return;
    }
    // `c` ends at the last row's last column, so the last chunk is the short one.
    each_chunk(c, rows_per * ldc, |i, cblk| {
        let r0 = i * rows_per;
        let sub = Mat {
            data: &a.data[r0 * a.rs..],
            rows: (m - r0).min(rows_per),
            ..a
        };
        gemm(alpha, sub, b, beta, cblk, ldc);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::gemm::{gemm, Mat};

    #[test]
    fn parallel_finite_check_finds_the_first_bad_element() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(3)
            .build()
            .unwrap();
        let mut v = vec![0.5f32; 200_000];
        assert!(pool.install(|| check_finite_par("x", &v)).is_ok());
        for (at, bad) in [
            (199_999, f32::NAN),
            (70_000, f32::INFINITY),
            (3, -f32::INFINITY),
        ] {
            v[at] = bad;
            let e = pool.install(|| check_finite_par("x", &v)).unwrap_err();
            assert!(e.message().contains(&format!("x[{at}]")), "{}", e.message());
        }
        // Small operands take the serial path, with the same message.
        let e = check_finite_par("y", &[1.0, f32::NAN]).unwrap_err();
        assert!(e.message().contains("y[1]"), "{}", e.message());
    }

    /// One thread, or a call below `SMALL_WORK`, runs on the calling thread with every
    /// split seeing one thread and every parallel loop in order on that thread; a larger
    /// call in a bigger pool splits for the pool.
    #[test]
    fn small_or_one_thread_calls_stay_on_the_calling_thread() {
        use std::sync::Mutex;
        use std::thread::{current, ThreadId};
        let pool = |n| {
            rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
        };
        // Where `each` and `each_chunk` ran their items, and the split `threads()` saw.
        let probe = || {
            let seen: Mutex<Vec<(usize, ThreadId)>> = Mutex::new(Vec::new());
            each((0..64).collect(), |i| {
                seen.lock().unwrap().push((i, current().id()))
            });
            let mut v = vec![0usize; 64];
            each_chunk(&mut v, 4, |i, c| {
                c.fill(i);
                seen.lock().unwrap().push((100 + i, current().id()));
            });
            assert!(v.iter().enumerate().all(|(j, &i)| i == j / 4));
            (threads(), batch_chunk(30), seen.into_inner().unwrap())
        };
        let three = pool(3);
        three.install(|| {
            let me = current().id();
            let (n, chunk, seen) = install_work(SMALL_WORK - 1, probe);
            assert_eq!((n, chunk), (1, 30));
            let order: Vec<usize> = seen.iter().map(|s| s.0).collect();
            let want: Vec<usize> = (0..64).chain(100..116).collect();
            assert_eq!(order, want, "in order");
            assert!(seen.iter().all(|s| s.1 == me), "on the calling thread");
            // Nested calls inside a serial run stay serial.
            assert_eq!(install_work(SMALL_WORK - 1, || install(threads)), 1);
            let (n, chunk, seen) = install_work(SMALL_WORK, probe);
            assert_eq!((n, chunk, seen.len()), (3, 10, 80));
        });
        pool(1).install(|| {
            let me = current().id();
            let (n, _, seen) = install(probe);
            assert_eq!(n, 1);
            assert!(seen.iter().all(|s| s.1 == me));
        });
        // The call's setting is cleared after it, also when it panics.
        let caught = std::panic::catch_unwind(|| install_work(0, || panic!("inside")));
        assert!(caught.is_err());
        assert!(CALL.with(|c| c.borrow().is_none()));
        assert!(!IN_TASK.with(Cell::get));
    }

    #[test]
    fn row_blocked_gemm_is_bit_identical_to_one_call() {
        let (m, k, n) = (700, 300, 40);
        let a: Vec<f32> = (0..m * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 997.0 - 0.5)
            .collect();
        let b: Vec<f32> = (0..k * n)
            .map(|i| ((i * 104729) % 1000) as f32 / 991.0 - 0.5)
            .collect();
        let mut one = vec![0.0; m * n];
        gemm(
            1.0,
            Mat::rm(&a, m, k, k),
            Mat::rm(&b, k, n, n),
            0.0,
            &mut one,
            n,
        );
        // Transposed A as well (the backward weight gradients use Aᵀ): a view of the
        // k x m matrix `a` as m x k.
        let at = Mat::rm(&a, k, m, m).t();
        let mut one_t = vec![0.0; m * n];
        gemm(1.0, at, Mat::rm(&b, k, n, n), 0.0, &mut one_t, n);
        // The split follows the pool size: every split gives the same bits.
        for threads in [1, 2, 3, 5, 7, 16] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let (split, split_t) = pool.install(|| {
                let mut split = vec![f32::NAN; m * n];
                gemm_rows(
                    1.0,
                    Mat::rm(&a, m, k, k),
                    Mat::rm(&b, k, n, n),
                    0.0,
                    &mut split,
                    n,
                );
                let mut split_t = vec![f32::NAN; m * n];
                gemm_rows(1.0, at, Mat::rm(&b, k, n, n), 0.0, &mut split_t, n);
                (split, split_t)
            });
            let same =
                |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| p.to_bits() == q.to_bits());
            assert!(same(&one, &split), "{threads} threads");
            assert!(same(&one_t, &split_t), "{threads} threads, transposed A");
        }
    }
}
