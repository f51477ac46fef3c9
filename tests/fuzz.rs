//! The seeded mutation fuzzer over every model format (`tests/fuzzing/mod.rs`).
//!
//! In the suite: a fixed number of cases (`CASES`, under a second in release). With
//! `RNNCORE_FUZZ_SECONDS=N` (what `scripts/fuzz.sh N` sets) it runs for N seconds instead
//! and prints the figures; `RNNCORE_FUZZ_SEED` picks another seed. Memory: a global
//! allocator counts live heap bytes, which must not grow between the end of the warm-up
//! and the end of the run (this binary has this one test, so nothing else allocates), and
//! the resident set (`/proc/self/statm`) is reported and bounded.

mod fuzzing;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::time::{Duration, Instant};

struct LiveBytes;
static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards every call to the system allocator unchanged; only counts bytes.
unsafe impl GlobalAlloc for LiveBytes {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(l) };
        if !p.is_null() {
            LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let q = unsafe { System.realloc(p, l, n) };
        if !q.is_null() {
            LIVE.fetch_add(n as isize - l.size() as isize, Ordering::Relaxed);
        }
        q
    }
}

#[global_allocator]
static ALLOC: LiveBytes = LiveBytes;

const CASES: u64 = 50_000;
const WARMUP: u64 = 500;

/// Resident set size in KiB (Linux), else 0.
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |pages| pages * 4)
}

#[test]
fn mutated_model_files_are_refused_with_a_message_or_run_finitely() {
    let seconds: Option<u64> = std::env::var("RNNCORE_FUZZ_SECONDS")
        .ok()
        .map(|s| s.parse().expect("RNNCORE_FUZZ_SECONDS is a whole number"));
    let seed: u64 = std::env::var("RNNCORE_FUZZ_SEED")
        .ok()
        .map_or(22, |s| s.parse().expect("RNNCORE_FUZZ_SEED is a number"));
    // Panics are caught and reported as failures by the harness; keep their noise out.
    std::panic::set_hook(Box::new(|_| {}));
    let start = Instant::now();
    let deadline = seconds.map(|s| start + Duration::from_secs(s));
    let (mut live0, mut rss0, mut live_max) = (0isize, 0u64, 0isize);
    let mut more = |cases: u64| {
        if cases == WARMUP {
            live0 = LIVE.load(Ordering::Relaxed);
            rss0 = rss_kib();
        }
        if cases > WARMUP && cases.is_multiple_of(64) {
            live_max = live_max.max(LIVE.load(Ordering::Relaxed) - live0);
        }
        match deadline {
            Some(d) => cases < WARMUP || Instant::now() < d,
            None => cases < CASES,
        }
    };
    let result = fuzzing::run(seed, &mut more);
    let _ = std::panic::take_hook();
    let stats = result.unwrap_or_else(|e| panic!("{e}"));
    let live_end = LIVE.load(Ordering::Relaxed) - live0;
    let rss_end = rss_kib();
    let secs = start.elapsed().as_secs_f64();
    let formats: Vec<&str> = fuzzing::FORMATS.iter().map(|f| f.name).collect();
    eprintln!(
        "fuzz {formats:?} seed {seed}: {} cases, {} accepted ({} with weights beyond 1e4), {} refused, {secs:.1} s; \
         live heap after warm-up {live_end:+} bytes (peak {live_max:+} between cases), \
         RSS {rss0} -> {rss_end} KiB",
        stats.cases, stats.accepted, stats.extreme, stats.refused
    );
    assert_eq!(stats.cases, stats.accepted + stats.refused);
    assert!(
        stats.refused > 0 && stats.accepted > 0,
        "{stats:?}: the mutations are too weak or too strong"
    );
    // Between cases nothing is kept: the heap is back where it was after the warm-up
    // (a few KiB of slack for lazily grown thread-local buffers).
    assert!(
        live_end <= 64 << 10,
        "live heap grew by {live_end} bytes over the run"
    );
    // The resident set may move with the allocator's caching, but not without bound.
    assert!(
        rss_end <= rss0 + 64 * 1024,
        "RSS grew from {rss0} to {rss_end} KiB"
    );
}
