#![forbid(unsafe_code)]
//! Thread control. rnncore parallelises with rayon over the batch: batch chunks each run
//! their whole recurrence (no per-step synchronisation), and the large hoisted products
//! are split into fixed row blocks. No result depends on the split: each output row is
//! computed by the same sequence of operations whichever chunk or block holds it, and
//! no reduction crosses chunks (the weight gradients are hoisted products over all
//! rows), so 1 thread and N threads give bit-identical results.

use crate::error::{invalid, Result};
use rayon::prelude::*;
use std::cell::Cell;
use std::sync::{Arc, RwLock};

mod wake;

static POOL: RwLock<Option<Arc<rayon::ThreadPool>>> = RwLock::new(None);

thread_local! {
    /// Set while a call's batched work runs on the calling thread alone ([`install`] with
    /// one thread): the splits see one thread and the parallel loops run as plain loops.
    static SERIAL: Cell<bool> = const { Cell::new(false) };
}

/// Sets the number of threads rnncore uses for batched work; `0` goes back to rayon's
/// default (its global pool, one thread per core unless `RAYON_NUM_THREADS` says otherwise).
/// Streaming steps always run on the calling thread. A new pool's threads have each run
/// once when this returns.
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
        start_threads(Some(&pool));
        Some(Arc::new(pool))
    };
    *POOL.write().unwrap_or_else(|e| e.into_inner()) = pool;
    wake::WAKE.reset();
    Ok(())
}

/// Runs a no-op once on every thread of `pool` (rayon's global pool if `None`) and
/// waits for them, so that a pool's first routed call does not measure its threads'
/// start as the wake-up: the first wake-up of a thread just started took 3.9 ms on the
/// development VM (later ones 50-80 µs after 20 ms pauses), and measured by the first
/// call it sent every call of the next second to the calling thread alone (see `wake`).
fn start_threads(pool: Option<&rayon::ThreadPool>) {
    match pool {
        Some(p) => drop(p.broadcast(|_| ())),
        None => drop(rayon::broadcast(|_| ())),
    }
}

/// The number of threads batched work runs on.
pub fn num_threads() -> usize {
    match current_pool() {
        Some(p) => p.current_num_threads(),
        None => rayon::current_num_threads(),
    }
}

fn current_pool() -> Option<Arc<rayon::ThreadPool>> {
    POOL.read().unwrap_or_else(|e| e.into_inner()).clone()
}

/// Runs `f` inside the configured pool (or rayon's global one); with one thread, on the
/// calling thread with no pool at all. A one-thread pool would run `f` on its worker: two
/// thread hand-offs per call, each a futex wake that costs tens of microseconds on a
/// virtual machine (a batch-4, 64-step LSTM H32 forward took 110 µs, half of it waking
/// threads). Inside a serial run a nested call stays serial, whatever the setting now.
/// A pool that has been idle for a while takes the call only where [`wake`] says so
/// (its work is not estimated here, so it counts as small).
pub(crate) fn install<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    enter(None, f)
}

/// Multiply-adds below which a call runs on the calling thread whatever the thread
/// count: handing a call to the pool and waking a second thread costs tens of
/// microseconds (more on a virtual machine, whose idle vCPUs are slow to wake), about
/// what this much recurrent work takes on one thread (60-200 µs for LSTM and GRU
/// forwards). Below it, 2 threads made forwards 1.2-1.8x slower than 1 on the 2-vCPU
/// development VM (LSTM H32 at batch 4-16, H128 at batch 4).
pub(crate) const SMALL_WORK: usize = 4 << 20;

/// [`install`] for a call of about `macs` multiply-adds on layers `hidden` units wide:
/// on the calling thread below [`SMALL_WORK`], and when the pool has been idle and
/// [`wake`] finds the work too small to gain from waking it.
pub(crate) fn install_work<R: Send>(macs: usize, hidden: usize, f: impl FnOnce() -> R + Send) -> R {
    #[cfg(test)]
    let small = TEST_SMALL_WORK.with(Cell::get).unwrap_or(SMALL_WORK);
    #[cfg(not(test))]
    let small = SMALL_WORK;
    if macs < small {
        serial(f)
    } else {
        enter(Some(wake::serial_ns(macs, hidden)), f)
    }
}

/// [`install`] and [`install_work`]: serial inside a serial run or with one thread; on a
/// pool worker already (a nested call), in that pool; else where [`wake`] routes it.
fn enter<R: Send>(one_thread_ns: Option<u64>, f: impl FnOnce() -> R + Send) -> R {
    if SERIAL.with(Cell::get) {
        return f();
    }
    let pool = current_pool();
    let (n, nested) = match &pool {
        Some(p) => (p.current_num_threads(), p.current_thread_index().is_some()),
        None => (
            rayon::current_num_threads(),
            rayon::current_thread_index().is_some(),
        ),
    };
    if n <= 1 {
        return serial(f);
    }
    if nested {
        return f();
    }
    if pool.is_none() {
        // rayon starts its global pool at first use.
        static STARTED: std::sync::Once = std::sync::Once::new();
        STARTED.call_once(|| start_threads(None));
    }
    match wake::WAKE.route_now(one_thread_ns) {
        wake::Route::Caller => serial(f),
        wake::Route::Pool { wake } => wake::WAKE.run(wake, pool.as_deref(), f),
    }
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

/// `f` with [`SERIAL`] set.
fn serial<R>(f: impl FnOnce() -> R) -> R {
    with_set(&SERIAL, true, f)
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

/// Threads the batched work now running splits over: 1 in a serial run, else the size of
/// the rayon pool the caller is in.
pub(crate) fn threads() -> usize {
    if SERIAL.with(Cell::get) {
        1
    } else {
        rayon::current_num_threads().max(1)
    }
}

/// `f(item)` for every item: in order on this thread in a serial run, else as rayon tasks.
pub(crate) fn each<T: Send>(items: Vec<T>, f: impl Fn(T) + Sync + Send) {
    if SERIAL.with(Cell::get) {
        items.into_iter().for_each(f);
    } else {
        items.into_par_iter().for_each(f);
    }
}

/// `f(i, chunk)` for the `i`-th chunk of `size` elements of `v` (the last may be short),
/// as [`each`] runs them.
pub(crate) fn each_chunk<T: Send>(
    v: &mut [T],
    size: usize,
    f: impl Fn(usize, &mut [T]) + Sync + Send,
) {
    if SERIAL.with(Cell::get) {
        v.chunks_mut(size).enumerate().for_each(|(i, c)| f(i, c));
    } else {
        v.par_chunks_mut(size)
            .enumerate()
            .for_each(|(i, c)| f(i, c));
    }
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
        && install(|| threads() > 1 && data.par_chunks(BLOCK).all(all_finite))
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
            let (n, chunk, seen) = install_work(SMALL_WORK - 1, 64, probe);
            assert_eq!((n, chunk), (1, 30));
            let order: Vec<usize> = seen.iter().map(|s| s.0).collect();
            let want: Vec<usize> = (0..64).chain(100..116).collect();
            assert_eq!(order, want, "in order");
            assert!(seen.iter().all(|s| s.1 == me), "on the calling thread");
            // Nested calls inside a serial run stay serial.
            assert_eq!(install_work(SMALL_WORK - 1, 64, || install(threads)), 1);
            let (n, chunk, seen) = install_work(SMALL_WORK, 64, probe);
            assert_eq!((n, chunk, seen.len()), (3, 10, 80));
        });
        pool(1).install(|| {
            let me = current().id();
            let (n, _, seen) = install(probe);
            assert_eq!(n, 1);
            assert!(seen.iter().all(|s| s.1 == me));
        });
        // The flag is cleared after a serial run, also when it panics.
        let caught = std::panic::catch_unwind(|| serial(|| panic!("inside")));
        assert!(caught.is_err());
        assert!(!SERIAL.with(Cell::get));
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
