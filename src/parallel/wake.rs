//! Whether a call should wait for idle threads to wake. A thread pool that has been idle
//! for a while is slow to get going: its workers sleep, and where a core has gone idle
//! too (a virtual machine's vCPU in particular), waking it can take far longer than the
//! futex call itself. On the 2-vCPU development VM the second worker started about 80 µs
//! after a call that came within a millisecond of the last one, but 2-3 ms after one that
//! came 2 ms or more later; a 1.4 ms LSTM forward (H128, batch 16) then took 1.6 ms on
//! one thread and 1.9 ms on two. So the pool measures how long its workers take to wake
//! after an idle spell, and a call that arrives at an idle pool runs on the calling
//! thread when its work is too small to gain from that wait. Which thread runs what
//! never changes a result (see the module above), so the decision may follow the clock.

use crate::kernels::cpu::{keep_apart, Claims};
use std::sync::atomic::{
    AtomicBool, AtomicU64, AtomicUsize, Ordering::Acquire, Ordering::Relaxed, Ordering::Release,
};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// A pool counts as idle (cold) when no batched work has run in it for this long: under
/// a millisecond the workers were still quick to start on the development VM.
pub(crate) const COLD_AFTER_NS: u64 = 1_000_000;
/// A cold pool is measured again at most this often while calls keep avoiding it, so
/// that the estimate follows the machine (a measurement costs one slow call at most).
pub(crate) const REPROBE_NS: u64 = 1_000_000_000;
/// Multiply-adds per nanosecond one thread reaches on wide layers, the `R` of
/// [`serial_ns`].
const SERIAL_MACS_PER_NS: u64 = 80;
/// Hidden size at which one thread runs at half of [`SERIAL_MACS_PER_NS`].
const HALF_RATE_HIDDEN: u64 = 64;

/// The estimated one-thread time of a call of `macs` multiply-adds whose layers are
/// `hidden` units wide, at `R · H / (H + 64)` multiply-adds per ns, `R` =
/// [`SERIAL_MACS_PER_NS`]: narrow layers run their products in short pieces. Measured on
/// the development VM (1 thread): H = 32 at 15-29 per ns (audio-shaped LSTM/GRU
/// training and inference; the formula says 27), H = 128 at 50-74 (53), H = 512-1024
/// at 75-90 (71-75). A flat 64 per ns had put the audio GRU training step (156 M, about
/// 11 ms) at 2.4 ms, and after a 1.3-2.6 ms wake-up it ran on the calling thread alone.
pub(crate) fn serial_ns(macs: usize, hidden: usize) -> u64 {
    let h = hidden.max(1) as u128;
    let ns = macs as u128 * (h + HALF_RATE_HIDDEN as u128) / (SERIAL_MACS_PER_NS as u128 * h);
    u64::try_from(ns).unwrap_or(u64::MAX)
}

/// A worker kept awake through a call goes back to sleep after this long without work
/// (the call's serial stretches between parallel loops are shorter; a call that splits
/// into fewer pieces than there are workers leaves the rest spinning otherwise).
pub(crate) const SPIN_IDLE_NS: u64 = 1_000_000;
/// ... and after this long if it has had no work from the call yet (1 ms there cost a
/// 16-thread pool serving a batch-4 call up to 12 idle workers spinning 1 ms each).
pub(crate) const SPIN_FIRST_NS: u64 = 200_000;

/// Where a call's batched work runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    /// On the calling thread, as one thread.
    Caller,
    /// In the pool; `wake`: wake every worker up front, measure how long they take,
    /// and keep them awake through the call ([`Wake::run`]).
    Pool { wake: bool },
}

/// The pool's clock readings, in nanoseconds of [`now_ns`] (0: never).
pub(crate) struct Wake {
    /// Calls now inside the pool.
    active: AtomicUsize,
    /// When the last call inside the pool finished.
    last_busy: AtomicU64,
    /// When the pool was last measured.
    last_probe: AtomicU64,
    /// The estimated time for a second worker to start work after an idle spell.
    wake_ns: AtomicU64,
    /// Workers now kept awake by [`Wake::run`].
    spinning: AtomicUsize,
}

/// Nanoseconds since the first reading in this process, plus one (so 0 means never).
pub(crate) fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    let ns = EPOCH.get_or_init(Instant::now).elapsed().as_nanos();
    u64::try_from(ns).unwrap_or(u64::MAX - 1) + 1
}

/// The decision, from the readings: a busy or recently busy pool takes the call; an idle
/// one takes it when it has not been measured, when the call's estimated one-thread time
/// is at least twice the wake-up (then waiting pays), or to measure again after
/// [`REPROBE_NS`]; otherwise the caller runs it. `serial: None` (work not estimated)
/// counts as small.
pub(crate) fn route(
    active: bool,
    idle_ns: u64,
    wake_ns: u64,
    since_probe_ns: u64,
    serial: Option<u64>,
) -> Route {
    if active || idle_ns < COLD_AFTER_NS {
        return Route::Pool { wake: false };
    }
    if wake_ns == 0 {
        return Route::Pool { wake: true };
    }
    let one_thread = serial.unwrap_or(0);
    if one_thread >= wake_ns.saturating_mul(2) || (serial.is_some() && since_probe_ns >= REPROBE_NS)
    {
        Route::Pool { wake: true }
    } else {
        Route::Caller
    }
}

impl Wake {
    /// A pool never used or measured.
    pub(crate) const fn new() -> Wake {
        Wake {
            active: AtomicUsize::new(0),
            last_busy: AtomicU64::new(0),
            last_probe: AtomicU64::new(0),
            wake_ns: AtomicU64::new(0),
            spinning: AtomicUsize::new(0),
        }
    }

    /// The route for a call of `serial` estimated one-thread nanoseconds arriving now.
    pub(crate) fn route_now(&self, serial: Option<u64>) -> Route {
        let now = now_ns();
        // Never (0) is long ago.
        let since = |at: &AtomicU64| match at.load(Relaxed) {
            0 => u64::MAX,
            t => now.saturating_sub(t),
        };
        route(
            self.active.load(Relaxed) > 0,
            since(&self.last_busy),
            self.wake_ns.load(Relaxed),
            since(&self.last_probe),
            serial,
        )
    }

    /// Runs `f` in `pool` (rayon's global pool if `None`: `f` then runs here and its
    /// loops enter that pool), counted as busy. With `wake`, every worker is first sent a
    /// job that notes when it starts (the second start measures the wake-up) and then
    /// keeps its thread awake, running the pool's pending work, until `f` returns. An
    /// idle worker would otherwise go back to sleep in each serial stretch of the call,
    /// and on a virtual machine a vCPU that has been idle for milliseconds is slow to wake
    /// every time (the hypervisor stops polling for it): after 20 ms pauses an LSTM H128
    /// training step at batch 16 on 2 threads took 4.4-4.8 ms with workers woken up
    /// front but free to sleep, 3.9-4.0 ms kept awake (4.3-4.7 on 1 thread). The jobs are
    /// queued before `f`'s work, so each worker takes its own as soon as it wakes. While
    /// kept awake, each worker is bound to a CPU no other worker of the call is on
    /// ([`keep_apart`]): after a long idle spell the scheduler otherwise ran two of them
    /// on one CPU for much of the call.
    pub(crate) fn run<R: Send>(
        &'static self,
        wake: bool,
        pool: Option<&rayon::ThreadPool>,
        f: impl FnOnce() -> R + Send,
    ) -> R {
        struct Done<'a>(&'a Wake);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.last_busy.store(now_ns(), Relaxed);
                self.0.active.fetch_sub(1, Relaxed);
            }
        }
        self.active.fetch_add(1, Relaxed);
        let _done = Done(self);
        if !wake {
            return match pool {
                Some(p) => p.install(f),
                None => f(),
            };
        }
        // Set when `f` returns (or unwinds), inside the pool: the workers stop as soon
        // as the work is done rather than when the caller has woken up.
        struct Finished(Arc<AtomicBool>);
        impl Drop for Finished {
            fn drop(&mut self) {
                self.0.store(true, Release);
            }
        }
        let t0 = now_ns();
        self.last_probe.store(t0, Relaxed);
        let finished = Arc::new(AtomicBool::new(false));
        let started = Arc::new(AtomicUsize::new(0));
        let stop = Arc::clone(&finished);
        let claims = Arc::new(Claims::default());
        let job = move |_: rayon::BroadcastContext<'_>| {
            if started.fetch_add(1, Relaxed) == 1 {
                self.record(now_ns().saturating_sub(t0));
            }
            // Bound to a CPU of its own until the job ends (see `kernels::cpu`).
            let _apart = keep_apart(&claims);
            self.spinning.fetch_add(1, Relaxed);
            let mut last_work = now_ns();
            // Until this worker gets a piece of the call, a shorter wait: a call that
            // splits into fewer pieces than the pool has workers lets the rest go soon.
            let mut idle_limit = SPIN_FIRST_NS;
            while !stop.load(Acquire) {
                if rayon::yield_now() == Some(rayon::Yield::Executed) {
                    last_work = now_ns();
                    idle_limit = SPIN_IDLE_NS;
                } else if now_ns().saturating_sub(last_work) > idle_limit {
                    // Go back to sleep.
                    break;
                } else {
                    // Nothing to run: let any other thread of this core (the caller,
                    // once woken) go first.
                    std::thread::yield_now();
                }
            }
            self.spinning.fetch_sub(1, Relaxed);
        };
        let work = move || {
            let _finished = Finished(finished);
            f()
        };
        match pool {
            Some(p) => {
                p.spawn_broadcast(job);
                p.install(work)
            }
            None => {
                rayon::spawn_broadcast(job);
                work()
            }
        }
    }

    /// Folds one measured wake-up into the estimate (the mean of the last and the new).
    fn record(&self, ns: u64) {
        let ns = ns.max(1);
        let old = self.wake_ns.load(Relaxed);
        let new = if old == 0 { ns } else { old / 2 + ns / 2 };
        self.wake_ns.store(new.max(1), Relaxed);
    }

    /// Forgets the measurement (a new pool has new threads).
    pub(crate) fn reset(&self) {
        self.wake_ns.store(0, Relaxed);
        self.last_probe.store(0, Relaxed);
    }

    #[cfg(test)]
    pub(crate) fn wake_ns(&self) -> u64 {
        self.wake_ns.load(Relaxed)
    }
}

/// The process's pool readings (there is one pool in use at a time).
pub(crate) static WAKE: Wake = Wake::new();

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn an_idle_pool_takes_only_calls_that_gain_from_waiting() {
        let pool = Route::Pool { wake: false };
        let wake = Route::Pool { wake: true };
        let work = |ms: u64| Some(ms * MS);
        // Busy, or idle for less than COLD_AFTER: the pool, whatever the work.
        assert_eq!(route(true, 50 * MS, 3 * MS, 0, Some(1)), pool);
        assert_eq!(route(false, COLD_AFTER_NS - 1, 3 * MS, 0, None), pool);
        // Idle and never measured: the pool, measured.
        assert_eq!(route(false, COLD_AFTER_NS, 0, 0, None), wake);
        // Idle, workers 3 ms to wake: 6 ms of work or more waits for them (and measures
        // again); less runs on the caller, as does unestimated work.
        assert_eq!(route(false, 20 * MS, 3 * MS, 0, work(6)), wake);
        assert_eq!(route(false, 20 * MS, 3 * MS, 0, work(5)), Route::Caller);
        assert_eq!(route(false, 20 * MS, 3 * MS, 0, None), Route::Caller);
        // ... until the measurement is REPROBE_NS old (estimated calls only).
        assert_eq!(route(false, 20 * MS, 3 * MS, REPROBE_NS, work(1)), wake);
        assert_eq!(
            route(false, 20 * MS, 3 * MS, REPROBE_NS, None),
            Route::Caller
        );
        // A fast-waking machine (50 µs) keeps the pool for anything over 100 µs.
        assert_eq!(route(false, 20 * MS, MS / 20, 0, work(1)), wake);
    }

    #[test]
    fn narrow_layers_are_estimated_slower_per_multiply_add() {
        let m = 80_000_000;
        // Half the wide rate at H = 64, a third at H = 32, most of it at H = 1024.
        assert_eq!(serial_ns(m, 64), 2_000_000);
        assert_eq!(serial_ns(m, 32), 3_000_000);
        assert_eq!(serial_ns(m, 1024), 1_062_500);
        assert_eq!(serial_ns(m, 0), serial_ns(m, 1));
        assert!(serial_ns(usize::MAX, 1) > u64::MAX / 2, "no overflow");
    }

    /// A measurement on an idle two-thread pool records a wake-up time, and the busy
    /// count and clock follow the call (also when it panics).
    #[test]
    fn a_probe_measures_the_wake_up_and_busy_tracks_the_call() {
        static W: Wake = Wake::new();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(5));
        assert_eq!(W.route_now(Some(1)), Route::Pool { wake: true });
        // Busy: the pool, no measurement; on a worker of the pool.
        let inside = W.run(true, Some(&pool), || {
            (W.route_now(None), pool.current_thread_index().is_some())
        });
        assert_eq!(inside, (Route::Pool { wake: false }, true));
        let t0 = Instant::now();
        while W.wake_ns() == 0 && t0.elapsed().as_secs() < 10 {
            std::thread::yield_now();
        }
        assert!(W.wake_ns() > 0, "no wake-up recorded");
        // The workers kept awake let go once the call is over.
        while W.spinning.load(Relaxed) > 0 && t0.elapsed().as_secs() < 10 {
            std::thread::yield_now();
        }
        assert_eq!(W.spinning.load(Relaxed), 0, "workers still held");
        assert_eq!(W.active.load(Relaxed), 0);
        assert!(W.last_busy.load(Relaxed) > 0);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            W.run(true, Some(&pool), || panic!("inside"))
        }));
        assert!(caught.is_err());
        assert_eq!(W.active.load(Relaxed), 0);
        W.reset();
        assert_eq!(W.wake_ns(), 0);
    }
}
