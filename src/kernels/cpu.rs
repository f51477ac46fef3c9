//! Keeping the workers of one call on different CPUs.
//!
//! After the pool has been idle for tens of milliseconds, Linux may wake two of its
//! workers onto the same CPU and leave them there for much of a call while another CPU
//! stays idle: in a virtual machine an idle vCPU the host has descheduled counts as
//! preempted, and the scheduler does not place woken threads on it. On the 2-vCPU
//! development VM a 2-thread LSTM H128 training step (batch 64) took 13-14 ms when calls
//! came 20 ms apart and 20-24 ms when they came 50 ms apart, the workers' CPU numbers
//! showing both on CPU 0; binding each worker to its own CPU brought it back to 14-15.
//! So each worker kept awake through a call (`parallel::wake`) is bound to a CPU of its
//! own for that call only: the one it runs on, or, if another worker of the call has
//! that one already, an allowed CPU nobody has claimed; its former CPU mask comes back
//! when the call is over. Moving only the workers that start on a taken CPU was not
//! enough: the scheduler later moved a running worker onto the other's CPU (18-28 ms).

// Elsewhere `keep_apart` changes nothing, which leaves the claims unused.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// CPUs a call's claims can name: one bit each. A worker on a higher-numbered CPU is
/// left where the scheduler put it.
const CLAIMABLE: usize = 64;

/// The CPUs the workers of one call have claimed (bit `c`: CPU `c`).
#[derive(Debug, Default)]
pub(crate) struct Claims(AtomicU64);

/// A worker bound to a CPU of its own: restores the thread's former CPU mask when
/// dropped, on the same thread.
pub(crate) struct Apart {
    #[cfg(target_os = "linux")]
    old: libc::cpu_set_t,
}

/// Binds this thread to the CPU it runs on, or, where another worker of the call claimed
/// that one first, to the lowest-numbered CPU in its mask that nobody has claimed, until
/// the guard is dropped. `None` when nothing was changed: no CPU was free, or the OS
/// does not say (only Linux does here).
pub(crate) fn keep_apart(claims: &Claims) -> Option<Apart> {
    #[cfg(target_os = "linux")]
    {
        linux::keep_apart(claims)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = claims;
        None
    }
}

/// Claims bit `c` if it is free; `false` if another worker holds it.
fn claim(claims: &Claims, c: usize) -> bool {
    let bit = 1u64 << c;
    claims.0.fetch_or(bit, Relaxed) & bit == 0
}

/// The lowest CPU below [`CLAIMABLE`] that `allowed` admits and nobody has claimed.
fn first_free(claims: &Claims, allowed: impl Fn(usize) -> bool) -> Option<usize> {
    let taken = claims.0.load(Relaxed);
    (0..CLAIMABLE).find(|&c| taken & (1u64 << c) == 0 && allowed(c))
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use libc::cpu_set_t;

    const SET: usize = std::mem::size_of::<cpu_set_t>();

    pub(super) fn empty() -> cpu_set_t {
        // SAFETY: `cpu_set_t` is a plain array of integers, for which all-zero is the
        // empty set.
        unsafe { std::mem::zeroed() }
    }

    pub(super) fn keep_apart(claims: &Claims) -> Option<Apart> {
        // SAFETY: no arguments; returns the CPU number or -1.
        let cpu = usize::try_from(unsafe { libc::sched_getcpu() }).ok()?;
        if cpu >= CLAIMABLE {
            return None;
        }
        let mut old = empty();
        // SAFETY: `old` is a writable `cpu_set_t` of `SET` bytes; pid 0 is this thread.
        if unsafe { libc::sched_getaffinity(0, SET, &mut old) } != 0 {
            return None;
        }
        // Its own CPU if no other worker of the call has it, else the first free one.
        let c = if claim(claims, cpu) {
            cpu
        } else {
            loop {
                // SAFETY: `c < CLAIMABLE`, inside the set's 1024 bits.
                let c = first_free(claims, |c| unsafe { libc::CPU_ISSET(c, &old) })?;
                if claim(claims, c) {
                    break c;
                }
                // Another worker took it between the look and the claim.
            }
        };
        let mut one = empty();
        // SAFETY: `c < CLAIMABLE`, inside the set; `one` is a valid set.
        unsafe { libc::CPU_SET(c, &mut one) };
        // SAFETY: `one` is a readable `cpu_set_t` of `SET` bytes; pid 0 is this thread.
        if unsafe { libc::sched_setaffinity(0, SET, &one) } != 0 {
            return None;
        }
        Some(Apart { old })
    }

    impl Drop for Apart {
        fn drop(&mut self) {
            // SAFETY: `old` is the mask read from this thread when it was bound, a
            // readable `cpu_set_t` of `SET` bytes; pid 0 is this thread (the guard
            // lives in the worker's job). A failure leaves the thread on its one CPU,
            // which is still a valid (if narrower) placement.
            unsafe {
                libc::sched_setaffinity(0, SET, &self.old);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_hand_out_each_cpu_once() {
        let claims = Claims::default();
        assert!(claim(&claims, 3));
        assert!(!claim(&claims, 3));
        assert_eq!(first_free(&claims, |c| c >= 2), Some(2));
        assert!(claim(&claims, 2));
        assert_eq!(first_free(&claims, |c| c >= 2), Some(4));
        assert_eq!(first_free(&claims, |c| c == 3), None);
    }

    /// A worker is bound to its own CPU, a second one on a claimed CPU moves to a free
    /// one, and each gets its own mask back afterwards.
    #[cfg(target_os = "linux")]
    #[test]
    fn workers_are_bound_apart_and_let_go() {
        std::thread::scope(|s| {
            s.spawn(|| {
                // On a machine with more CPUs than the claims name, keep this thread to
                // the ones they do (its mask is its own: a scoped thread's).
                let (all, _) = mask();
                if !all.iter().any(|&c| c) {
                    return;
                }
                let mut low = super::linux::empty();
                for c in (0..CLAIMABLE).filter(|&c| all[c]) {
                    // SAFETY: `c < CLAIMABLE`, inside the set.
                    unsafe { libc::CPU_SET(c, &mut low) };
                }
                // SAFETY: `low` is a readable `cpu_set_t`; pid 0 is this thread.
                let rc = unsafe {
                    libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &low)
                };
                assert_eq!(rc, 0);
                let claims = Claims::default();
                let (before, allowed) = mask();
                let first = keep_apart(&claims).expect("bound to its CPU");
                let (now, n) = mask();
                assert_eq!(n, 1, "bound to one CPU");
                let c1 = now.iter().position(|&c| c).unwrap();
                assert!(claims.0.load(Relaxed) & (1 << c1) != 0, "CPU {c1} claimed");
                drop(first);
                assert_eq!(mask().0, before);
                // Every allowed CPU but one claimed, this thread's own among them: it
                // moves to the one left.
                // SAFETY: no arguments.
                let cpu = unsafe { libc::sched_getcpu() } as usize;
                let spare = (0..CLAIMABLE).find(|&c| before[c] && c != cpu);
                for c in (0..CLAIMABLE).filter(|&c| Some(c) != spare) {
                    claim(&claims, c);
                }
                let second = keep_apart(&claims);
                if allowed < 2 {
                    assert!(second.is_none(), "no CPU was free");
                    return;
                }
                let spare = spare.unwrap();
                assert!(second.is_some());
                let (now, n) = mask();
                assert_eq!((n, now[spare]), (1, true), "moved to CPU {spare}");
                // And with none left, nothing changes.
                assert!(keep_apart(&claims).is_none());
                drop(second);
                assert_eq!(mask().0, before);
            });
        });
    }

    #[cfg(target_os = "linux")]
    fn mask() -> (Vec<bool>, usize) {
        let mut set = super::linux::empty();
        // SAFETY: `set` is a writable `cpu_set_t`; pid 0 is this thread.
        let rc =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        assert_eq!(rc, 0);
        // SAFETY: every index is below the set's 1024 bits.
        let v: Vec<bool> = (0..CLAIMABLE)
            .map(|c| unsafe { libc::CPU_ISSET(c, &set) })
            .collect();
        let n = v.iter().filter(|&&c| c).count();
        (v, n)
    }
}
