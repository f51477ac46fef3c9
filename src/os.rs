//! The two operating-system calls the standard library does not offer, for crash-safe
//! saving (`io/atomic.rs`). This is the only file outside `kernels/` and `ffi/` with
//! `unsafe`: each block is one libc call on arguments built and owned right here.
//!
//! - [`link_open_file`]: gives a name to a file opened with `O_TMPFILE` (Linux). The
//!   standard library's `fs::hard_link` calls `linkat` with no flags, which cannot follow
//!   the `/proc/self/fd/N` link to the open file; `AT_SYMLINK_FOLLOW` can.
//! - [`process_may_be_alive`]: `kill(pid, 0)`, which sends nothing and only asks whether
//!   the process exists, so a stale temporary file of a dead save can be told from a live
//!   save's.
//!
//! Neither changes any process-wide state (no signal is sent, no handler installed).

use std::io;
use std::path::Path;

/// Links the open, unnamed file `file` (opened with `O_TMPFILE`) at `dst`, which must not
/// exist (`EEXIST` otherwise: linking never replaces a file). Fails with `ENOENT` where
/// `/proc` is not mounted; callers fall back to a named temporary file.
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn link_open_file(file: &std::fs::File, dst: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::io::AsRawFd;

    let src = CString::new(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let dst = CString::new(dst.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "the path contains a NUL byte"))?;
    // SAFETY: `src` and `dst` are NUL-terminated strings that live until the call
    // returns; `linkat` only reads them. AT_FDCWD makes both paths resolve as given
    // (`dst` may be relative to the working directory, as `fs::rename` takes it).
    let r = unsafe {
        libc::linkat(
            libc::AT_FDCWD,
            src.as_ptr(),
            libc::AT_FDCWD,
            dst.as_ptr(),
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether process `pid` may be running: false only when the system says there is no such
/// process (`ESRCH`). A pid that is 0, or does not fit a `pid_t`, names no single process
/// (`kill` would address a process group), so it counts as alive: the caller then leaves
/// the file alone.
#[cfg(unix)]
pub(crate) fn process_may_be_alive(pid: u64) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return true;
    };
    if pid <= 0 {
        return true;
    }
    // SAFETY: signal 0 delivers nothing; the call only checks that `pid` (a positive
    // pid_t, so one process, never a group) exists and could be signalled. No memory
    // is passed.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Without a way to ask, every process may be alive: nothing is ever removed.
#[cfg(not(unix))]
pub(crate) fn process_may_be_alive(_pid: u64) -> bool {
    true
}
