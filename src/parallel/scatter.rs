//! Running `n` independent tasks on the calling thread and on helpers, the caller taking
//! part: the caller claims tasks like any helper, so a helper that wakes late finds the
//! work done and leaves, and no call waits for a sleeping thread to start. A call is
//! never slower than running its tasks in order on the calling thread by more than the
//! hand-off itself: the caller waits only for tasks some helper has already begun.
//!
//! This is the one place outside the kernels and the FFI layer with `unsafe`: helpers
//! are `'static` jobs (rayon's `spawn`), and the tasks borrow the caller's buffers, so
//! the task's lifetime is erased for them. The protocol that makes it sound is in
//! [`run`].
#![allow(unsafe_code)]

use std::any::Any;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// A task body: called with each index in `0..n` exactly once.
pub(crate) type Task<'a> = dyn Fn(usize) + Sync + 'a;

/// A helper job: runs whatever tasks are left when it starts.
pub(crate) type Job = Box<dyn FnOnce() + Send + 'static>;

/// How long the caller spins for helpers' last tasks before it sleeps: tasks the
/// helpers have begun are usually about as long as the caller's own, so the wait is
/// short, and waking from a sleep costs tens of microseconds on a virtual machine.
const SPIN: Duration = Duration::from_micros(50);

/// The task with its lifetime erased. Dereferenced only under [`run`]'s protocol.
struct TaskRef(*const Task<'static>);

// SAFETY: the pointee is `Sync` (shared calls from any thread are allowed), and helpers
// dereference it only while the caller is blocked in `run` (see there).
unsafe impl Send for TaskRef {}
// SAFETY: as above; the pointer itself is never written after creation.
unsafe impl Sync for TaskRef {}

struct Shared {
    n: usize,
    /// The next index to claim; values at or past `n` mean nothing is left.
    next: AtomicUsize,
    /// Tasks finished (run, or panicked and caught).
    done: AtomicUsize,
    task: TaskRef,
    /// Where the caller sleeps when helpers' tasks outlast its spin (a condition
    /// variable rather than `park`, which would leave a wake-up token on the host's
    /// thread).
    sleep: Mutex<()>,
    woken: Condvar,
    panic: Mutex<Option<Box<dyn Any + Send>>>,
}

impl Shared {
    /// Claims and runs tasks until none is left.
    fn work(&self) {
        loop {
            let i = self.next.fetch_add(1, Ordering::Relaxed);
            if i >= self.n {
                return;
            }
            // SAFETY: index `i < n` is claimed and not yet counted in `done`, so the
            // caller is still inside `run`, which does not return before `done == n`:
            // the closure and everything it borrows are alive until this task ends.
            let task = unsafe { &*self.task.0 };
            if let Err(p) = catch_unwind(AssertUnwindSafe(|| task(i))) {
                let mut slot = self.panic.lock().unwrap_or_else(|e| e.into_inner());
                slot.get_or_insert(p);
            }
            // Release: the task's writes happen before the caller's Acquire load sees n.
            if self.done.fetch_add(1, Ordering::AcqRel) + 1 == self.n {
                // Under the lock: the caller checks `done` holding it before it waits.
                let _g = self.sleep.lock().unwrap_or_else(|e| e.into_inner());
                self.woken.notify_one();
            }
        }
    }
}

/// Runs `task(i)` for every `i` in `0..n`, on this thread and on up to `helpers` jobs
/// handed to `spawn`, and returns when all have finished. Each index runs exactly once.
/// A panic in a task is caught, the other tasks still run, and the first panic is
/// resumed here once all are done.
///
/// Soundness: a helper dereferences the task only after claiming an index below `n`,
/// and this function returns (or unwinds) only once every claimed index is counted
/// done, with the count's Acquire pairing the helpers' Release. A helper that starts
/// after that finds `next >= n` and touches nothing but the shared counters, which it
/// owns through its `Arc`.
pub(crate) fn run(n: usize, helpers: usize, spawn: impl Fn(Job), task: &Task<'_>) {
    let helpers = helpers.min(n.saturating_sub(1));
    if helpers == 0 {
        (0..n).for_each(task);
        return;
    }
    // SAFETY: only the lifetime changes (same fat-pointer layout); see the protocol
    // above for why no use outlives the borrow.
    let erased: *const Task<'static> =
        unsafe { std::mem::transmute::<*const Task<'_>, *const Task<'static>>(task) };
    let shared = Arc::new(Shared {
        n,
        next: AtomicUsize::new(0),
        done: AtomicUsize::new(0),
        task: TaskRef(erased),
        sleep: Mutex::new(()),
        woken: Condvar::new(),
        panic: Mutex::new(None),
    });
    // A failing `spawn` must not unwind past the wait: jobs already handed out may run.
    let spawned = catch_unwind(AssertUnwindSafe(|| {
        for _ in 0..helpers {
            let s = Arc::clone(&shared);
            spawn(Box::new(move || s.work()));
        }
    }));
    shared.work();
    let t0 = Instant::now();
    let mut spins = 0u32;
    while shared.done.load(Ordering::Acquire) < n && t0.elapsed() < SPIN {
        spins = spins.wrapping_add(1);
        if spins.is_multiple_of(64) {
            std::thread::yield_now();
        } else {
            std::hint::spin_loop();
        }
    }
    let mut g = shared.sleep.lock().unwrap_or_else(|e| e.into_inner());
    while shared.done.load(Ordering::Acquire) < n {
        // Woken by the helper finishing the last task (the timeout only guards the wait).
        g = match shared.woken.wait_timeout(g, Duration::from_millis(10)) {
            Ok((g, _)) => g,
            Err(e) => e.into_inner().0,
        };
    }
    drop(g);
    if let Err(p) = spawned {
        resume_unwind(p);
    }
    let first = shared
        .panic
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .take();
    if let Some(p) = first {
        resume_unwind(p);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn on_threads(job: Job) {
        std::thread::spawn(job);
    }

    #[test]
    fn every_index_runs_once_with_any_number_of_helpers() {
        for n in [0usize, 1, 2, 7, 100] {
            for helpers in [0usize, 1, 3, 16] {
                let hits: Vec<AtomicU32> = (0..n).map(|_| AtomicU32::new(0)).collect();
                run(n, helpers, on_threads, &|i| {
                    hits[i].fetch_add(1, Ordering::Relaxed);
                });
                assert!(
                    hits.iter().all(|h| h.load(Ordering::Relaxed) == 1),
                    "{n} {helpers}"
                );
            }
        }
    }

    /// Helpers that never start (jobs dropped) or start long after: the caller does
    /// everything and does not wait for them.
    #[test]
    fn late_or_missing_helpers_do_not_hold_the_caller() {
        let sum = AtomicUsize::new(0);
        run(50, 4, drop, &|i| {
            sum.fetch_add(i, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 50 * 49 / 2);
        let late = |job: Job| {
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(200));
                job()
            });
        };
        let t0 = Instant::now();
        let sum = AtomicUsize::new(0);
        run(8, 2, late, &|i| {
            sum.fetch_add(i, Ordering::Relaxed);
        });
        assert_eq!(sum.load(Ordering::Relaxed), 28);
        assert!(
            t0.elapsed() < Duration::from_millis(150),
            "waited for a late helper"
        );
    }

    #[test]
    fn a_panicking_task_is_resumed_after_all_others_ran() {
        let ran = AtomicUsize::new(0);
        let caught = catch_unwind(AssertUnwindSafe(|| {
            run(20, 3, on_threads, &|i| {
                ran.fetch_add(1, Ordering::Relaxed);
                if i == 7 {
                    panic!("task 7");
                }
            })
        }));
        let msg = caught.unwrap_err();
        assert_eq!(msg.downcast_ref::<&str>(), Some(&"task 7"));
        assert_eq!(ran.load(Ordering::Relaxed), 20);
    }
}
