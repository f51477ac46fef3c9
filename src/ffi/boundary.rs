//! The panic boundary, the argument checks every entry point runs first, and this
//! thread's last error message.
//!
//! Every `extern "C"` body runs inside [`ffi_boundary!`] (status functions) or
//! [`ffi_boundary_value!`] (functions that return a value): the body is a closure
//! returning `FfiResult<T>`, so argument checks are `?` or an early `return Err(..)`,
//! and a panic anywhere below becomes `RNN_ERR_PANIC` instead of crossing into C.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};

use super::types::rnn_status;
use crate::Error;

/// Why a call failed: the status it returns and a message naming the argument.
#[derive(Debug)]
pub(crate) struct Failure {
    pub(crate) status: rnn_status,
    pub(crate) message: String,
}

/// What every body inside the boundary returns.
pub(crate) type FfiResult<T> = Result<T, Failure>;

impl Failure {
    /// `RNN_ERR_NULL` for the argument `arg`.
    pub(crate) fn null(arg: &str) -> Failure {
        Failure {
            status: rnn_status::RNN_ERR_NULL,
            message: format!("{arg} is NULL, expected a valid pointer"),
        }
    }

    /// `RNN_ERR_INVALID` with this message.
    pub(crate) fn invalid(message: String) -> Failure {
        Failure {
            status: rnn_status::RNN_ERR_INVALID,
            message,
        }
    }
}

impl From<Error> for Failure {
    fn from(e: Error) -> Failure {
        let status = match e {
            Error::Invalid(_) => rnn_status::RNN_ERR_INVALID,
            Error::Io(_) => rnn_status::RNN_ERR_IO,
            Error::Format(_) => rnn_status::RNN_ERR_FORMAT,
            Error::NonFinite(_) => rnn_status::RNN_ERR_NONFINITE,
            Error::Alloc(_) => rnn_status::RNN_ERR_ALLOC,
        };
        debug_assert_eq!(status as u32, e.status_code());
        Failure {
            status,
            message: e.message().to_owned(),
        }
    }
}

// The last error of this thread. `HAS_ERROR` has no destructor and a const initializer,
// so the success path (which only clears it) never allocates, not even on a thread's
// first call: `rnn_model_step` stays allocation-free on an audio thread. `MESSAGE` is
// touched only on failure and by `rnn_last_error` after one.
thread_local! {
    static HAS_ERROR: Cell<bool> = const { Cell::new(false) };
    static MESSAGE: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Whether any thread has ever recorded an error. Until one has, every thread's last
/// error is "" already, and a success need not reach thread-local storage, which in a
/// shared library is a `__tls_get_addr` call on every `rnn_model_step`. Never reset.
/// Relaxed is enough: a thread's `HAS_ERROR` is set only by that thread, after its own
/// store here, and a thread's later load of an atomic sees its own earlier store.
static ANY_ERROR: AtomicBool = AtomicBool::new(false);

/// Records `message` as this thread's last error, prefixed with the function's name.
#[cold]
#[inline(never)]
fn set_last_error(function: &str, message: &str) {
    ANY_ERROR.store(true, Ordering::Relaxed);
    MESSAGE.with(|m| {
        let mut m = m.borrow_mut();
        m.clear();
        m.extend_from_slice(function.as_bytes());
        m.extend_from_slice(b": ");
        // A C string ends at the first NUL: show an embedded one instead of cutting there.
        for &b in message.as_bytes() {
            if b == 0 {
                m.extend_from_slice(b"\\0");
            } else {
                m.push(b);
            }
        }
        m.push(0);
    });
    HAS_ERROR.with(|h| h.set(true));
}

/// Clears this thread's last error (every successful call does).
#[inline(always)]
fn clear_last_error() {
    if ANY_ERROR.load(Ordering::Relaxed) {
        clear_thread_error();
    }
}

/// [`clear_last_error`] once some thread has recorded an error.
#[inline(never)]
fn clear_thread_error() {
    HAS_ERROR.with(|h| h.set(false));
}

/// This thread's last error as a NUL-terminated string, `""` when there is none.
pub(crate) fn last_error_ptr() -> *const c_char {
    if HAS_ERROR.with(|h| h.get()) {
        MESSAGE.with(|m| m.borrow().as_ptr().cast())
    } else {
        c"".as_ptr()
    }
}

/// The text of a panic payload.
fn panic_text(payload: &(dyn Any + Send)) -> &str {
    if let Some(s) = payload.downcast_ref::<&str>() {
        s
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}

/// Runs `body` behind the panic boundary: its value on success (clearing the last error),
/// or `fallback` with the last error set and the failure's status. Inlined: each entry
/// point has its own instance (its closure), so this costs no code, and the per-sample
/// step saves a call and a second frame.
#[inline(always)]
pub(crate) fn run<T>(
    function: &'static str,
    fallback: T,
    body: impl FnOnce() -> FfiResult<T>,
) -> (T, rnn_status) {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => {
            clear_last_error();
            (v, rnn_status::RNN_OK)
        }
        Ok(Err(f)) => {
            set_last_error(function, &f.message);
            (fallback, f.status)
        }
        Err(payload) => {
            record_panic(function, payload);
            (fallback, rnn_status::RNN_ERR_PANIC)
        }
    }
}

/// Runs `body` behind the panic boundary, touching the last error only if it panics:
/// for the `*_free` functions, which cannot fail and return nothing.
pub(crate) fn run_void(function: &'static str, body: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(body)) {
        record_panic(function, payload);
    }
}

/// Makes a caught panic this thread's last error.
fn record_panic(function: &str, payload: Box<dyn Any + Send>) {
    set_last_error(
        function,
        &format!(
            "internal error (panic: {}); this is a bug in rnncore, please report it",
            panic_text(&*payload)
        ),
    );
    // Dropping a payload can itself panic; that must not unwind into C either.
    if let Err(again) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
}

/// Body of a function returning `rnn_status`: `ffi_boundary!("name", { ...; Ok(()) })`.
macro_rules! ffi_boundary {
    ($function:literal, $body:block) => {
        $crate::ffi::boundary::run(
            $function,
            (),
            move || -> $crate::ffi::boundary::FfiResult<()> { $body },
        )
        .1
    };
}

/// Body of a function returning a value: `ffi_boundary_value!("name", fallback, { Ok(v) })`.
/// On failure it returns `fallback` and sets the last error.
macro_rules! ffi_boundary_value {
    ($function:literal, $fallback:expr, $body:block) => {
        $crate::ffi::boundary::run($function, $fallback, move || $body).0
    };
}

/// Body of a function that cannot fail and returns nothing (`*_free`): catches a panic
/// (recording it as the last error) and otherwise leaves the last error alone.
macro_rules! ffi_boundary_void {
    ($function:literal, $body:block) => {
        $crate::ffi::boundary::run_void($function, || $body)
    };
}

/// Returns `RNN_ERR_NULL`, naming the argument, when any of the pointers is NULL.
/// Every entry point runs it (or [`try_ref!`]/[`try_mut!`]) before any other check.
macro_rules! check_null {
    ($($p:ident),+ $(,)?) => {
        $(
            if $p.is_null() {
                // `r#in` is called `in` in C.
                let name = stringify!($p).trim_start_matches("r#");
                return Err($crate::ffi::boundary::Failure::null(name));
            }
        )+
    };
}

/// `&T` from a required handle argument, or `RNN_ERR_NULL` naming it.
macro_rules! try_ref {
    ($p:ident) => {{
        $crate::ffi::boundary::check_null!($p);
        // SAFETY: non-NULL (checked above); the entry point's `# Safety` contract makes it
        // a live handle from the matching `*_new`, not used mutably elsewhere during the call.
        unsafe { &*$p }
    }};
}

/// `&mut T` from a required handle argument, or `RNN_ERR_NULL` naming it.
macro_rules! try_mut {
    ($p:ident) => {{
        $crate::ffi::boundary::check_null!($p);
        // SAFETY: non-NULL (checked above); the entry point's `# Safety` contract makes it
        // a live handle from the matching `*_new`, used by this thread only during the call.
        unsafe { &mut *$p }
    }};
}

pub(crate) use {
    check_null, ffi_boundary, ffi_boundary_value, ffi_boundary_void, try_mut, try_ref,
};

/// The product of named sizes, or `RNN_ERR_INVALID` naming them when it overflows or
/// would not fit in the address space as `T` elements.
pub(crate) fn element_count<T>(what: &str, dims: &[(&str, usize)]) -> FfiResult<usize> {
    let n = dims
        .iter()
        .try_fold(1usize, |acc, &(_, d)| acc.checked_mul(d))
        .filter(|n| {
            n.checked_mul(std::mem::size_of::<T>())
                .is_some_and(|b| b <= isize::MAX as usize)
        });
    n.ok_or_else(|| {
        let names: Vec<&str> = dims.iter().map(|d| d.0).collect();
        let values: Vec<String> = dims.iter().map(|d| d.1.to_string()).collect();
        Failure::invalid(format!(
            "{what}: {} = {} overflows (too large for memory)",
            names.join(" * "),
            values.join(" * ")
        ))
    })
}

/// `RNN_ERR_INVALID` naming `arg` unless `len == expected`; `how` says where `expected`
/// comes from.
#[inline]
pub(crate) fn check_len(arg: &str, len: usize, expected: usize, how: &str) -> FfiResult<()> {
    if len == expected {
        Ok(())
    } else {
        Err(wrong_len(arg, len, expected, how))
    }
}

// The failures of the checks that per-sample entry points make on every call are built
// out of line (`#[cold]`, by value): formatted inline, their argument setup made
// `rnn_model_step` of an 8-unit LSTM measurably slower (51 -> 43 ns, benches/c/run.sh).

#[cold]
#[inline(never)]
fn wrong_len(arg: &str, len: usize, expected: usize, how: &str) -> Failure {
    Failure::invalid(format!("{arg} is {len}, expected {expected} ({how})"))
}

/// Refuses a pointer that is not aligned for `T` (a `float *` into a byte buffer, say).
#[inline]
fn check_aligned<T>(p: *const T, arg: &str) -> FfiResult<()> {
    if p.is_aligned() {
        Ok(())
    } else {
        Err(misaligned(arg, std::mem::align_of::<T>()))
    }
}

/// `len` elements at `p` as a shared slice.
///
/// # Safety
/// `p` is non-NULL and points to `len` readable `T`s that nothing writes during the call;
/// `len` came from [`element_count`] or equals such a count.
pub(crate) unsafe fn in_slice<'a, T>(p: *const T, len: usize, arg: &str) -> FfiResult<&'a [T]> {
    check_aligned(p, arg)?;
    // SAFETY: non-NULL and valid for `len` reads (caller), aligned (checked), and
    // `len * size_of::<T>() <= isize::MAX` (the count was checked by `element_count`).
    Ok(unsafe { std::slice::from_raw_parts(p, len) })
}

/// `len` elements at `p` as a mutable slice.
///
/// # Safety
/// As [`in_slice`], and writable, with no other reference to that memory during the call.
pub(crate) unsafe fn out_slice<'a, T>(p: *mut T, len: usize, arg: &str) -> FfiResult<&'a mut [T]> {
    check_aligned(p, arg)?;
    // SAFETY: as in `in_slice`, plus exclusive access for the call (caller).
    Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
}

/// The `lengths` argument of the `_lengths` entry points: `lengths_len` (which must be
/// `batch`, `how` saying where it comes from) lengths, each `1..=seq_len`, as `usize`s;
/// `None` when every one is `seq_len`, which means exactly no lengths (the callers then
/// take the non-lengths path, with its bits).
///
/// # Safety
/// `lengths` is non-NULL and points to `lengths_len` readable `u32`s.
pub(crate) unsafe fn lengths_arg(
    lengths: *const u32,
    lengths_len: usize,
    batch: usize,
    seq_len: usize,
    how: &str,
) -> FfiResult<Option<Vec<usize>>> {
    if lengths_len != batch {
        return Err(Failure::invalid(format!(
            "lengths_len is {lengths_len}, expected {batch} (lengths holds one length per \
             sequence: {how})"
        )));
    }
    // SAFETY: non-NULL and `lengths_len` u32s readable (caller); `lengths_len` equals
    // `batch`, whose product with the other sizes of x was checked by `element_count`.
    let ls = unsafe { in_slice(lengths, lengths_len, "lengths") }?;
    if let Some((b, &n)) = ls
        .iter()
        .enumerate()
        .find(|(_, &n)| n == 0 || n as usize > seq_len)
    {
        return Err(Failure::invalid(format!(
            "lengths[{b}] is {n}, expected 1..={seq_len} (seq_len)"
        )));
    }
    if ls.iter().all(|&n| n as usize == seq_len) {
        return Ok(None);
    }
    let mut v = Vec::new();
    v.try_reserve_exact(ls.len()).map_err(|_| Failure {
        status: rnn_status::RNN_ERR_ALLOC,
        message: format!("lengths: {} entries could not be allocated", ls.len()),
    })?;
    v.extend(ls.iter().map(|&n| n as usize));
    Ok(Some(v))
}

/// Refuses an input buffer that overlaps the output buffer: Rust may not alias them,
/// and a forward pass that reads what it has just written would be wrong anyway.
pub(crate) fn check_disjoint<T, U>(
    a: *const T,
    a_len: usize,
    a_name: &str,
    b: *const U,
    b_len: usize,
    b_name: &str,
) -> FfiResult<()> {
    if overlaps(a, a_len, b, b_len) {
        Err(overlap(a_name, b_name))
    } else {
        Ok(())
    }
}

/// Whether `a_len` `T`s at `a` and `b_len` `U`s at `b` share a byte.
#[inline]
pub(crate) fn overlaps<T, U>(a: *const T, a_len: usize, b: *const U, b_len: usize) -> bool {
    let (a0, b0) = (a as usize, b as usize);
    let a1 = a0.saturating_add(a_len.saturating_mul(std::mem::size_of::<T>()));
    let b1 = b0.saturating_add(b_len.saturating_mul(std::mem::size_of::<U>()));
    a0 < b1 && b0 < a1
}

/// For a per-sample step, whose buffers are a model's few inputs and outputs: whether
/// `x` (`x_len` floats) and `y` (`y_len`) are both aligned and share no byte, in a few
/// instructions where [`in_slice`], [`out_slice`] and [`check_disjoint`] take some twenty
/// (each instruction before a step's kernel delays it: a step ends where the next one's
/// window starts). The sums wrap instead of saturating: a buffer that reaches the end of
/// the address space is outside the contract already. Where false, the caller takes the
/// whole path, whose checks name the buffer.
#[inline(always)]
pub(crate) fn step_buffers_ok(x: *const f32, x_len: usize, y: *const f32, y_len: usize) -> bool {
    let (a0, b0) = (x as usize, y as usize);
    let (a1, b1) = (
        a0.wrapping_add(x_len.wrapping_mul(4)),
        b0.wrapping_add(y_len.wrapping_mul(4)),
    );
    (a0 | b0) % std::mem::align_of::<f32>() == 0 && !(a0 < b1 && b0 < a1)
}

/// `x` and `y` of a per-sample step as slices, once [`step_buffers_ok`] passed.
///
/// # Safety
/// `x` and `y` are non-NULL, [`step_buffers_ok`] holds for them, `x` points to `x_len`
/// readable floats and `y` to `y_len` writable ones, not otherwise referenced during the
/// call, and the lengths are a model's input and output sizes (bounded when the model
/// was made, so their bytes fit `isize`).
#[inline(always)]
pub(crate) unsafe fn step_slices<'a>(
    x: *const f32,
    x_len: usize,
    y: *mut f32,
    y_len: usize,
) -> (&'a [f32], &'a mut [f32]) {
    // SAFETY: the caller's contract.
    unsafe {
        (
            std::slice::from_raw_parts(x, x_len),
            std::slice::from_raw_parts_mut(y, y_len),
        )
    }
}

#[cold]
#[inline(never)]
fn misaligned(arg: &str, align: usize) -> Failure {
    Failure::invalid(format!("{arg} is not aligned to {align} bytes"))
}

#[cold]
#[inline(never)]
fn overlap(a_name: &str, b_name: &str) -> Failure {
    Failure::invalid(format!(
        "{a_name} and {b_name} overlap; pass separate buffers"
    ))
}

/// Writes the result of a successful call through a (NULL-checked) out-pointer.
///
/// # Safety
/// `p` is non-NULL and writable (any alignment).
pub(crate) unsafe fn write_out<T>(p: *mut T, v: T) {
    // SAFETY: guaranteed by the caller (checked non-NULL by `check_null!`, writable by the
    // entry point's contract).
    unsafe { p.write_unaligned(v) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::CStr;

    fn last_error() -> String {
        // SAFETY: last_error_ptr returns a NUL-terminated string that lives until the
        // next call on this thread.
        unsafe { CStr::from_ptr(last_error_ptr()) }
            .to_string_lossy()
            .into_owned()
    }

    /// The last error is per thread, and a success clears it, whether or not any thread
    /// has failed yet (a success skips thread-local storage until one has).
    #[test]
    fn the_last_error_is_per_thread_and_a_success_clears_it() {
        let ok = || run("rnn_ok", (), || -> FfiResult<()> { Ok(()) }).1;
        let fail = || {
            run("rnn_fail", (), || -> FfiResult<()> {
                Err(Failure::invalid("no".into()))
            })
            .1
        };
        assert_eq!(ok(), rnn_status::RNN_OK);
        assert_eq!(last_error(), "");
        // A thread fails and keeps its message; the others keep "".
        let failed = std::thread::spawn(move || {
            assert_eq!(fail(), rnn_status::RNN_ERR_INVALID);
            last_error()
        })
        .join()
        .unwrap();
        assert_eq!(failed, "rnn_fail: no");
        assert_eq!(last_error(), "");
        assert_eq!(std::thread::spawn(last_error).join().unwrap(), "");
        // Here: a failure, then a success clears it.
        assert_eq!(fail(), rnn_status::RNN_ERR_INVALID);
        assert_eq!(last_error(), "rnn_fail: no");
        assert_eq!(ok(), rnn_status::RNN_OK);
        assert_eq!(last_error(), "");
    }

    #[test]
    fn a_panic_becomes_a_status_and_a_message() {
        let (v, s) = run("rnn_test", 7u32, || -> FfiResult<u32> { panic!("boom") });
        assert_eq!((v, s), (7, rnn_status::RNN_ERR_PANIC));
        let e = last_error();
        assert!(
            e.starts_with("rnn_test: internal error (panic: boom)"),
            "{e}"
        );
        // A formatted payload (String) too.
        let (_, s) = run("rnn_test", (), || -> FfiResult<()> { panic!("n = {}", 3) });
        assert_eq!(s, rnn_status::RNN_ERR_PANIC);
        assert!(last_error().contains("panic: n = 3"));
        // The void form records it and returns normally.
        run_void("rnn_test_free", || panic!("in drop"));
        assert!(last_error().starts_with("rnn_test_free: internal error (panic: in drop)"));
    }

    #[test]
    fn success_clears_and_failure_sets_the_last_error() {
        let (_, s) = run("f", (), || Err(Failure::null("x")));
        assert_eq!(s, rnn_status::RNN_ERR_NULL);
        assert_eq!(last_error(), "f: x is NULL, expected a valid pointer");
        let (v, s) = run("f", 0, || Ok(5));
        assert_eq!((v, s), (5, rnn_status::RNN_OK));
        assert_eq!(last_error(), "");
        // The void form leaves it alone.
        let _ = run("f", (), || Err(Failure::invalid("kept".into())));
        run_void("g", || {});
        assert_eq!(last_error(), "f: kept");
        // An embedded NUL is shown, not cut at.
        let _ = run("f", (), || Err(Failure::invalid("a\0b".into())));
        assert_eq!(last_error(), "f: a\\0b");
        // Other threads have their own.
        std::thread::spawn(|| assert_eq!(last_error(), ""))
            .join()
            .unwrap();
    }

    #[test]
    fn element_counts_refuse_overflow_and_oversized_buffers() {
        assert_eq!(element_count::<f32>("x", &[("a", 2), ("b", 3)]).unwrap(), 6);
        assert_eq!(
            element_count::<f32>("x", &[("a", 0), ("b", usize::MAX)]).unwrap(),
            0
        );
        let e = element_count::<f32>("x", &[("batch", usize::MAX), ("seq_len", 2)]).unwrap_err();
        assert_eq!(e.status, rnn_status::RNN_ERR_INVALID);
        assert!(e.message.contains("batch * seq_len"), "{}", e.message);
        // Fits in usize as a count, not as bytes.
        let n = isize::MAX as usize / 2;
        assert!(element_count::<f32>("x", &[("n", n)]).is_err());
        assert!(element_count::<u8>("x", &[("n", n)]).is_ok());
    }

    #[test]
    fn overlapping_buffers_are_refused() {
        let buf = [0f32; 16];
        let p = buf.as_ptr();
        assert!(check_disjoint(p, 8, "x", p.wrapping_add(8), 8, "y").is_ok());
        assert!(check_disjoint(p, 9, "x", p.wrapping_add(8), 8, "y").is_err());
        assert!(check_disjoint(p.wrapping_add(4), 2, "x", p, 8, "y").is_err());
        assert!(check_disjoint(p, 0, "x", p, 8, "y").is_ok());
        // The step's short form agrees, and refuses misaligned buffers.
        for (x, xl, y, yl) in [(0, 8, 8, 8), (0, 9, 8, 8), (4, 2, 0, 8), (0, 0, 0, 8)] {
            let (xp, yp) = (p.wrapping_add(x), p.wrapping_add(y));
            let apart = check_disjoint(xp, xl, "x", yp, yl, "y").is_ok();
            assert_eq!(step_buffers_ok(xp, xl, yp, yl), apart, "{x} {xl} {y} {yl}");
        }
        let odd = p.cast::<u8>().wrapping_add(1).cast::<f32>();
        assert!(!step_buffers_ok(odd, 1, p.wrapping_add(8), 1));
        assert!(!step_buffers_ok(p, 1, odd.wrapping_add(8), 1));
    }
}
