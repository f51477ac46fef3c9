#![forbid(unsafe_code)]
//! One error type for the whole crate, mapped 1:1 onto the C ABI's `rnn_status`.

use std::fmt;

/// Everything that can go wrong in rnncore. Bad input is always an `Error`, never a panic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// A size, enum value or option is out of range or does not match the model (`RNN_ERR_INVALID`).
    Invalid(String),
    /// A file could not be opened, read or written (`RNN_ERR_IO`).
    Io(String),
    /// Not a valid model file: corrupt, truncated, wrong dtype or shape, missing tensor (`RNN_ERR_FORMAT`).
    Format(String),
    /// NaN or Inf in inputs or targets, or produced by a training step (`RNN_ERR_NONFINITE`).
    NonFinite(String),
    /// Memory could not be allocated (`RNN_ERR_ALLOC`).
    Alloc(String),
}

/// Shorthand used throughout the crate.
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// The `rnn_status` number of this error (see `shared/API.md`).
    pub(crate) fn status_code(&self) -> u32 {
        match self {
            Error::Invalid(_) => 2,
            Error::Io(_) => 3,
            Error::Format(_) => 4,
            Error::NonFinite(_) => 5,
            Error::Alloc(_) => 6,
        }
    }

    /// The human-readable message, without the kind.
    pub fn message(&self) -> &str {
        match self {
            Error::Invalid(m)
            | Error::Io(m)
            | Error::Format(m)
            | Error::NonFinite(m)
            | Error::Alloc(m) => m,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self {
            Error::Invalid(_) => "invalid argument",
            Error::Io(_) => "I/O error",
            Error::Format(_) => "bad model file",
            Error::NonFinite(_) => "non-finite value",
            Error::Alloc(_) => "allocation failed",
        };
        write!(f, "{kind}: {}", self.message())
    }
}

impl std::error::Error for Error {}

/// `Err(Error::Invalid(format!(..)))` in one line.
macro_rules! invalid {
    ($($arg:tt)*) => { $crate::error::Error::Invalid(format!($($arg)*)) };
}
pub(crate) use invalid;

/// Checks that `len` equals `expected`, naming the argument in the error.
#[inline]
pub(crate) fn check_len(what: &str, len: usize, expected: usize) -> Result<()> {
    if len == expected {
        Ok(())
    } else {
        Err(wrong_len(what, len, expected))
    }
}

/// [`check_len`]'s failure, out of line (`#[cold]`, by value): a step runs the check on
/// every call, and formatted inline its argument setup slowed the step's code.
#[cold]
#[inline(never)]
fn wrong_len(what: &str, len: usize, expected: usize) -> Error {
    invalid!("{what} has {len} elements, expected {expected}")
}

/// Overflow-checked product of sizes, as an `Invalid` error naming `what` on overflow.
pub(crate) fn checked_size(what: &str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| invalid!("{what}: size {dims:?} overflows"))
}

/// Whether every element is finite: one branch-free pass, which vectorizes (with the
/// kernel tier's vectors).
#[inline]
pub(crate) fn all_finite(data: &[f32]) -> bool {
    crate::kernels::passes::all_finite(data)
}

/// Refuses NaN and Inf, naming the argument and the first bad index.
#[inline]
pub(crate) fn check_finite(what: &str, data: &[f32]) -> Result<()> {
    // A branch-free pass first (it vectorizes); the search only when something is wrong.
    if all_finite(data) {
        Ok(())
    } else {
        Err(non_finite(what, data))
    }
}

/// [`check_finite`]'s failure, out of line (`#[cold]`): the first bad element, named.
#[cold]
#[inline(never)]
fn non_finite(what: &str, data: &[f32]) -> Error {
    let i = data.iter().position(|v| !v.is_finite()).unwrap_or(0);
    let v = data.get(i).copied().unwrap_or(f32::NAN);
    Error::NonFinite(format!("{what}[{i}] is {v} (inputs must be finite)"))
}
