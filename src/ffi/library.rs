//! Library-wide entry points: versions, the last error, status names, threads.

use std::ffi::c_char;

use crate::ffi::boundary::{ffi_boundary, ffi_boundary_value, Failure};
use crate::ffi::types::{rnn_status, rnn_status_value, RNN_ABI_VERSION};

/// The most threads rnn_set_num_threads accepts (as `crate::set_num_threads`).
const MAX_THREADS: usize = 4096;

/// `"MAJOR.MINOR.PATCH"`, NUL-terminated.
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The library's version, "MAJOR.MINOR.PATCH".
///
/// Returns a static string (never NULL, never to be freed). Any thread, any time.
#[no_mangle]
pub extern "C" fn rnn_version() -> *const c_char {
    VERSION.as_ptr().cast()
}

/// The ABI generation of the linked library (see RNN_ABI_VERSION). Check at start-up
/// that it is at least the RNN_ABI_VERSION of the header the program was built with: a
/// smaller one means the library is older than the header and lacks some of its
/// functions; a larger one is a newer library, which runs the program unchanged.
///
/// Any thread, any time.
#[no_mangle]
pub extern "C" fn rnn_abi_version() -> u32 {
    RNN_ABI_VERSION
}

/// The SIMD kernel tier this process uses: "avx512", "avx2", "avx", "sse41", "neon" or
/// "scalar".
/// The best the CPU supports, unless the environment variable RNNCORE_KERNEL names another
/// (read once, at the first use; a tier the CPU lacks falls back to the best available).
/// Callers should treat a name they do not know as some other SIMD tier: later versions
/// may add tiers.
///
/// Returns a static string (never NULL, never to be freed). Any thread, any time.
#[no_mangle]
pub extern "C" fn rnn_kernel_name() -> *const c_char {
    let s: &'static std::ffi::CStr = match crate::kernel_name() {
        "avx512" => c"avx512",
        "avx2" => c"avx2",
        "avx" => c"avx",
        "sse41" => c"sse41",
        "neon" => c"neon",
        _ => c"scalar",
    };
    s.as_ptr()
}

/// This thread's last error message: which function failed, naming the argument and the
/// value it expected, e.g. "rnn_model_forward: y_len is 5, expected 6 (...)".
///
/// Every call into rnncore sets it, "" on success and a message on failure, except
/// rnn_last_error itself, rnn_version, rnn_abi_version, rnn_status_str and the *_free
/// functions, which leave it unchanged. Never NULL. The string belongs to the library
/// and stays valid until this thread's next call into rnncore; copy it to keep it.
/// Each thread has its own: errors never leak across threads.
#[no_mangle]
pub extern "C" fn rnn_last_error() -> *const c_char {
    crate::ffi::boundary::last_error_ptr()
}

/// A short English description of a status, e.g. "a required pointer was NULL".
///
/// Returns a static string (never NULL, never to be freed); "unknown rnn_status" for a
/// value outside the enum. Any thread, any time.
#[no_mangle]
pub extern "C" fn rnn_status_str(status: rnn_status_value) -> *const c_char {
    let s: &'static std::ffi::CStr = match status {
        0 => c"ok",
        1 => c"a required pointer was NULL",
        2 => c"a size, enum value or option is out of range or does not match the model",
        3 => c"a file could not be opened, read or written",
        4 => c"not a valid model file",
        5 => c"NaN or Inf in inputs or targets, or produced by a training step",
        6 => c"memory could not be allocated",
        7 => c"internal error (a bug in rnncore, please report it)",
        _ => c"unknown rnn_status",
    };
    s.as_ptr()
}

/// Sets the number of threads batched work (rnn_model_forward with batch > 1, training)
/// runs on; 0 goes back to the default (one per core). Streaming calls
/// (rnn_model_step, rnn_model_forward_state) always run on the calling thread, and so
/// does batched work with n = 1 or under about 4 million multiply-adds per call. Above
/// that, the calling thread works through the call's parallel sections together with
/// the pool's threads, so a worker slow to wake leaves its share to the caller rather
/// than delaying the call. No thread's CPU affinity is changed. Results are
/// bit-identical for every thread count. With a host parallel-for
/// (rnn_set_parallel_for), n is the number of parts the work is split into.
///
/// Errors: RNN_ERR_INVALID for n > 4096 or when the threads cannot be started.
/// Thread safety: may be called from any thread; calls already running keep the pool they
/// started with. Allocation: starts a new thread pool (the old one ends when idle) and
/// returns once each of its threads has run.
#[no_mangle]
pub extern "C" fn rnn_set_num_threads(n: usize) -> rnn_status {
    ffi_boundary!("rnn_set_num_threads", {
        if n > MAX_THREADS {
            return Err(Failure::invalid(format!(
                "n is {n}, expected 0 (the default) ..= {MAX_THREADS}"
            )));
        }
        crate::set_num_threads(n).map_err(Failure::from)
    })
}

/// The number of threads batched work runs on (see rnn_set_num_threads). Any thread.
#[no_mangle]
pub extern "C" fn rnn_get_num_threads() -> usize {
    ffi_boundary_value!("rnn_get_num_threads", 1, { Ok(crate::num_threads()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    #[test]
    fn version_matches_the_crate() {
        // SAFETY: rnn_version returns a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(rnn_version()) };
        assert_eq!(v.to_str().unwrap(), crate::version());
    }

    #[test]
    fn status_strings_are_distinct() {
        let all: Vec<&CStr> = (0..=8)
            // SAFETY: rnn_status_str returns static NUL-terminated strings.
            .map(|s| unsafe { CStr::from_ptr(rnn_status_str(s)) })
            .collect();
        for i in 0..all.len() {
            for j in 0..i {
                assert_ne!(all[i], all[j]);
            }
        }
        assert_eq!(rnn_status_str(u32::MAX), rnn_status_str(8));
    }
}
