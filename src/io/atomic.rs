//! Crash-safe replacement of a file: after a save interrupted at any moment (an error, a
//! full disk, SIGKILL, a power cut once the data reached the disk) the path holds either
//! the old file or the new one, whole, and no temporary file outlives the crash.
//!
//! How, on Linux (where the file system supports `O_TMPFILE`: ext4, xfs, btrfs, tmpfs,
//! overlayfs and others):
//!
//! 1. the bytes go into an *unnamed* file opened in the target's directory, which is
//!    fsynced; a crash up to here leaves nothing behind, as the kernel frees a file
//!    with no name when its last descriptor closes;
//! 2. if the target does not exist yet, the file is linked straight at the target's name
//!    (`linkat` never replaces, so an existing target needs step 3);
//! 3. otherwise it is linked under a temporary name `.NAME.PID.N.tmp` and renamed over
//!    the target. Only a crash between this link and the rename (two consecutive system
//!    calls) can leave that name behind, and the next save or load of the same path
//!    removes it (below).
//!
//! Elsewhere, and where `O_TMPFILE` or `/proc` is unavailable, the bytes go to a named
//! temporary file `.NAME.PID.N.tmp` from the start (write, fsync, rename). A process
//! killed during the write leaves that file, which again the next save or load removes.
//!
//! Stale temporary files: every save and every load of `dir/NAME` first removes the
//! regular files `dir/.NAME.PID.N.tmp` whose process `PID` no longer exists (`kill(pid, 0)`
//! says `ESRCH`). A live process's file is never touched, nor this process's own (another
//! thread may be saving), nor anything not matching the pattern exactly. Caveat: processes
//! in another PID namespace (containers sharing a volume) or on another host (a network
//! file system) look dead; removing such a live save's temporary file makes that save fail
//! with an error, the target intact, never a damaged file. A reused PID only delays the
//! removal until that process exits.
//!
//! The directory is fsynced after the rename or link, so the new name is durable.

use crate::error::{Error, Result};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Points in [`write_atomic_with`] where a test can inject a failure.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Stage {
    /// The temporary file (named or not) exists, empty.
    Created,
    /// The bytes are written, not yet synced.
    Written,
    /// The bytes are on disk; the file is not in place yet.
    Synced,
    /// An unnamed file was linked under a temporary name; the rename is next.
    Linked,
}

/// How the temporary file is made.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum TempFile {
    /// Unnamed (`O_TMPFILE`) where the platform and file system allow it, else named.
    Best,
    /// Named `.NAME.PID.N.tmp` from the start: the portable fallback (tests force it).
    Named,
}

/// Writes `bytes` to `path` so that a crash at any moment leaves the old file or the new
/// one and, after the next save or load of `path`, no temporary file (see the module
/// docs). On an error `path` is untouched and nothing is left behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, bytes, TempFile::Best, &mut |_| Ok(()))
}

/// [`write_atomic`] with the temporary file forced to be of one kind; exists so tests can
/// run the fallback on a file system that has `O_TMPFILE`.
#[doc(hidden)]
pub fn write_atomic_using(path: &Path, bytes: &[u8], how: TempFile) -> Result<()> {
    write_atomic_with(path, bytes, how, &mut |_| Ok(()))
}

/// [`write_atomic`] with a `fault` hook called at each [`Stage`] (tests make it fail).
pub(crate) fn write_atomic_with(
    path: &Path,
    bytes: &[u8],
    how: TempFile,
    fault: &mut dyn FnMut(Stage) -> io::Result<()>,
) -> Result<()> {
    let shown = path.display();
    let Some(file_name) = path.file_name() else {
        return Err(Error::Io(format!(
            "cannot save {shown}: the path does not name a file"
        )));
    };
    if fs::metadata(path).is_ok_and(|m| m.is_dir()) {
        return Err(Error::Io(format!("cannot save {shown}: it is a directory")));
    }
    let dir = parent_dir(path);
    match fs::metadata(dir) {
        Err(e) => {
            return Err(Error::Io(format!(
                "cannot save {shown}: directory {}: {e}",
                dir.display()
            )))
        }
        Ok(m) if !m.is_dir() => {
            return Err(Error::Io(format!(
                "cannot save {shown}: {} is not a directory",
                dir.display()
            )))
        }
        Ok(_) => {}
    }
    remove_stale_temps(path);
    let save = Save {
        path,
        dir,
        file_name,
        bytes,
    };
    if how == TempFile::Best {
        if let Some(done) = save.unnamed(fault) {
            return done;
        }
    }
    save.named(fault)
}

/// The directory `path` is in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Removes the temporary files of earlier saves to `path` whose process is gone (see the
/// module docs); returns how many. Errors are ignored: this is housekeeping, and a load
/// from a read-only directory must still work.
pub fn remove_stale_temps(path: &Path) -> usize {
    let Some(file_name) = path.file_name() else {
        return 0;
    };
    let Ok(entries) = fs::read_dir(parent_dir(path)) else {
        return 0;
    };
    let own = u64::from(std::process::id());
    let mut removed = 0;
    for entry in entries.flatten() {
        let Some(pid) = temp_owner(file_name, &entry.file_name()) else {
            continue;
        };
        if pid == own || crate::os::process_may_be_alive(pid) {
            continue;
        }
        // Only regular files: never follow a symlink or empty a directory of that name.
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        if is_file && fs::remove_file(entry.path()).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// The PID in `candidate` if it is exactly `.{file_name}.{PID}.{N}.tmp` (decimal digits).
fn temp_owner(file_name: &OsStr, candidate: &OsStr) -> Option<u64> {
    let c = candidate.as_encoded_bytes();
    let rest = c.strip_prefix(b".")?;
    let rest = rest.strip_prefix(file_name.as_encoded_bytes())?;
    let rest = rest.strip_prefix(b".")?.strip_suffix(b".tmp")?;
    let dot = rest.iter().position(|&b| b == b'.')?;
    let (pid, n) = (&rest[..dot], &rest[dot + 1..]);
    let digits = |s: &[u8]| !s.is_empty() && s.len() <= 19 && s.iter().all(u8::is_ascii_digit);
    if !digits(pid) || !digits(n) {
        return None;
    }
    std::str::from_utf8(pid).ok()?.parse().ok()
}

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// A fresh temporary name beside the target: `.{file_name}.{pid}.{n}.tmp`.
fn temp_name(dir: &Path, file_name: &OsStr) -> PathBuf {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut name = OsString::from(".");
    name.push(file_name);
    name.push(format!(".{}.{n}.tmp", std::process::id()));
    dir.join(name)
}

/// Removes a named temporary file when dropped, unless disarmed.
struct TempGuard(Option<PathBuf>);

impl Drop for TempGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0.take() {
            let _ = fs::remove_file(p);
        }
    }
}

struct Save<'a> {
    path: &'a Path,
    dir: &'a Path,
    file_name: &'a OsStr,
    bytes: &'a [u8],
}

impl Save<'_> {
    fn err(&self, what: &str, e: impl std::fmt::Display) -> Error {
        Error::Io(format!("cannot save {}: {what}: {e}", self.path.display()))
    }

    /// Writes and syncs `file`, keeping the permissions of the file being replaced.
    fn fill(
        &self,
        file: &mut File,
        shown: &str,
        fault: &mut dyn FnMut(Stage) -> io::Result<()>,
    ) -> Result<()> {
        fault(Stage::Created).map_err(|e| self.err("injected", e))?;
        if let Ok(m) = fs::metadata(self.path) {
            let _ = file.set_permissions(m.permissions());
        }
        file.write_all(self.bytes)
            .map_err(|e| self.err(&format!("writing {shown}"), e))?;
        fault(Stage::Written).map_err(|e| self.err("injected", e))?;
        file.sync_all()
            .map_err(|e| self.err(&format!("syncing {shown}"), e))?;
        fault(Stage::Synced).map_err(|e| self.err("injected", e))
    }

    /// The `O_TMPFILE` path. `None`: not available here, use a named file instead.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn unnamed(&self, fault: &mut dyn FnMut(Stage) -> io::Result<()>) -> Option<Result<()>> {
        use std::os::unix::fs::OpenOptionsExt;
        // Any failure to open (EOPNOTSUPP, EISDIR on kernels before 3.11, EINVAL, ...)
        // means "not here"; a real problem such as EACCES recurs in the fallback, which
        // reports it.
        let mut file = OpenOptions::new()
            .write(true)
            .mode(0o666)
            .custom_flags(libc::O_TMPFILE)
            .open(self.dir)
            .ok()?;
        let shown = format!("an unnamed temporary file in {}", self.dir.display());
        // From here on errors are real: nothing is left behind (the file has no name and
        // vanishes when `file` is dropped), and the fallback would meet them again.
        if let Err(e) = self.fill(&mut file, &shown, fault) {
            return Some(Err(e));
        }
        // A first save: link straight at the target, no temporary name ever exists.
        match crate::os::link_open_file(&file, self.path) {
            Ok(()) => {
                sync_dir(self.dir);
                return Some(Ok(()));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            // No /proc, or the file system refuses links: write it again, named.
            Err(_) => return None,
        }
        let tmp = loop {
            let tmp = temp_name(self.dir, self.file_name);
            match crate::os::link_open_file(&file, &tmp) {
                Ok(()) => break tmp,
                // Someone else's leftover under this name: take the next number.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(_) => return None,
            }
        };
        drop(file);
        let mut guard = TempGuard(Some(tmp.clone()));
        if let Err(e) = fault(Stage::Linked) {
            return Some(Err(self.err("injected", e)));
        }
        if let Err(e) = fs::rename(&tmp, self.path) {
            return Some(Err(
                self.err(&format!("renaming {} over it", tmp.display()), e)
            ));
        }
        guard.0 = None;
        sync_dir(self.dir);
        Some(Ok(()))
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn unnamed(&self, _fault: &mut dyn FnMut(Stage) -> io::Result<()>) -> Option<Result<()>> {
        None
    }

    /// The portable path: a named temporary file, written, synced and renamed.
    fn named(&self, fault: &mut dyn FnMut(Stage) -> io::Result<()>) -> Result<()> {
        let mut tries = 0;
        let (tmp, mut file) = loop {
            let tmp = temp_name(self.dir, self.file_name);
            match OpenOptions::new().write(true).create_new(true).open(&tmp) {
                Ok(f) => break (tmp, f),
                // A leftover with this name (a reused PID): try the next number.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 64 => {
                    tries += 1;
                    continue;
                }
                Err(e) => {
                    return Err(self.err(
                        &format!("cannot create a temp file in {}", self.dir.display()),
                        e,
                    ))
                }
            }
        };
        let mut guard = TempGuard(Some(tmp.clone()));
        let shown = tmp.display().to_string();
        self.fill(&mut file, &shown, fault)?;
        drop(file);
        fs::rename(&tmp, self.path)
            .map_err(|e| self.err(&format!("renaming {shown} over it"), e))?;
        guard.0 = None;
        sync_dir(self.dir);
        Ok(())
    }
}

/// Makes a rename or link durable where the platform allows syncing a directory (best
/// effort: by then the new file is in place).
fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CellKind, ModelConfig};
    use crate::model::Model;

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("rnncore-atomic-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_failure_at_any_stage_leaves_the_target_and_no_temp_file() {
        for how in [TempFile::Best, TempFile::Named] {
            let dir = scratch(&format!("{how:?}"));
            let target = dir.join("m.safetensors");
            let old = Model::new(ModelConfig::new(CellKind::Lstm, 2, 3, 1), 1).unwrap();
            old.save(&target).unwrap();
            let before = fs::read(&target).unwrap();
            let new = Model::new(ModelConfig::new(CellKind::Gru, 2, 3, 2), 2).unwrap();
            let bytes = new.to_safetensors().unwrap();
            let mut seen = Vec::new();
            for stage in [Stage::Created, Stage::Written, Stage::Synced, Stage::Linked] {
                let r = write_atomic_with(&target, &bytes, how, &mut |s| {
                    seen.push(s);
                    if s == stage {
                        Err(io::Error::other("injected failure"))
                    } else {
                        Ok(())
                    }
                });
                let reached = seen.contains(&stage);
                seen.clear();
                // Stage::Linked exists only on the unnamed path with an existing target.
                if !reached {
                    assert!(stage == Stage::Linked, "{how:?} {stage:?}: {r:?}");
                    assert!(r.is_ok(), "{how:?}: {r:?}");
                    fs::write(&target, &before).unwrap();
                    continue;
                }
                assert!(matches!(r, Err(Error::Io(_))), "{how:?} {stage:?}: {r:?}");
                assert_eq!(fs::read(&target).unwrap(), before, "{how:?} {stage:?}");
                assert_eq!(entries(&dir), vec!["m.safetensors"], "{how:?} {stage:?}");
            }
            write_atomic_using(&target, &bytes, how).unwrap();
            assert_eq!(fs::read(&target).unwrap(), bytes);
            assert_eq!(entries(&dir), vec!["m.safetensors"]);
            // A first save into an empty directory.
            fs::remove_file(&target).unwrap();
            write_atomic_using(&target, &bytes, how).unwrap();
            assert_eq!(fs::read(&target).unwrap(), bytes);
            assert_eq!(entries(&dir), vec!["m.safetensors"]);
            fs::remove_dir_all(&dir).unwrap();
        }
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_unnamed_path_is_taken_on_this_file_system() {
        // The link stage is reached only through O_TMPFILE; this machine's temp dir
        // supports it (ext4/tmpfs), so the test shows the path is not silently skipped.
        let dir = scratch("unnamed");
        let target = dir.join("m.bin");
        fs::write(&target, b"old").unwrap();
        let mut seen = Vec::new();
        write_atomic_with(&target, b"new", TempFile::Best, &mut |s| {
            seen.push(s);
            Ok(())
        })
        .unwrap();
        assert_eq!(
            seen,
            [Stage::Created, Stage::Written, Stage::Synced, Stage::Linked]
        );
        assert_eq!(fs::read(&target).unwrap(), b"new");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn temp_names_are_recognized_exactly() {
        let f = OsStr::new("m.safetensors");
        let owner = |s: &str| temp_owner(f, OsStr::new(s));
        assert_eq!(owner(".m.safetensors.123.0.tmp"), Some(123));
        assert_eq!(owner(".m.safetensors.7.99.tmp"), Some(7));
        for other in [
            "m.safetensors",
            ".m.safetensors.tmp",
            ".m.safetensors.123.tmp",
            ".m.safetensors.12a.0.tmp",
            ".m.safetensors.123.0.tmp~",
            ".m.safetensors..0.tmp",
            ".m.safetensors.1.2.3.tmp",
            ".x.safetensors.123.0.tmp",
            "..m.safetensors.123.0.tmp",
            ".m.safetensors.99999999999999999999.0.tmp",
        ] {
            assert_eq!(owner(other), None, "{other}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn stale_temps_of_dead_processes_go_and_live_ones_stay() {
        let dir = scratch("stale");
        let target = dir.join("m.safetensors");
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let own = std::process::id();
        let dead_tmp = format!(".m.safetensors.{dead}.3.tmp");
        let kept = [
            format!(".m.safetensors.{own}.5.tmp"), // this process: maybe another thread's
            "..m.safetensors.1.1.tmp".to_string(), // not the pattern
            format!(".other.{dead}.1.tmp"),        // another file's
            ".m.safetensors.0.1.tmp".to_string(),  // pid 0 names a process group
        ];
        for n in kept.iter().chain([&dead_tmp]) {
            fs::write(dir.join(n), b"x").unwrap();
        }
        // A directory with a stale name is not a file this code made: left alone.
        fs::create_dir(dir.join(format!(".m.safetensors.{dead}.4.tmp"))).unwrap();
        let m = Model::new(ModelConfig::new(CellKind::RnnTanh, 1, 2, 1), 1).unwrap();
        m.save(&target).unwrap();
        let left = entries(&dir);
        assert!(!left.contains(&dead_tmp), "{left:?}");
        for k in &kept {
            assert!(left.contains(k), "{k} removed: {left:?}");
        }
        // A load removes them too.
        fs::write(dir.join(&dead_tmp), b"x").unwrap();
        Model::load(&target).unwrap();
        assert!(!entries(&dir).contains(&dead_tmp));
        fs::remove_dir_all(&dir).unwrap();
    }
}
