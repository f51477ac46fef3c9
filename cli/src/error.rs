//! One error type for the program: a message for the user, printed by `main` with a
//! non-zero exit. Library errors keep their kind in the text ("bad model file: ...").

use std::fmt;

/// What went wrong, as the sentence the user sees.
#[derive(Debug)]
pub struct CliError(pub String);

/// Shorthand used throughout the program.
pub type Result<T> = std::result::Result<T, CliError>;

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<rnncore::Error> for CliError {
    fn from(e: rnncore::Error) -> Self {
        CliError(e.to_string())
    }
}

/// `return Err(CliError(format!(..)))` in one line.
macro_rules! fail {
    ($($arg:tt)*) => { return Err($crate::error::CliError(format!($($arg)*))) };
}
pub(crate) use fail;

/// Prefixes an error with what was being done ("reading data.csv: No such file ...").
pub trait Context<T> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T, E: fmt::Display> Context<T> for std::result::Result<T, E> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| CliError(format!("{}: {e}", what())))
    }
}
