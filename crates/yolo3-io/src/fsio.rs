//! Reading the user's files safely: one place that every reader of every crate goes through.
//!
//! Two hazards are handled here rather than in each reader:
//! * a path that is not a regular file. Opening a FIFO for reading blocks until a writer
//!   appears (forever, in practice), and `/dev/zero` or `/dev/urandom` never end; a folder
//!   gives an OS message that does not say what was wrong. Such paths are refused before they
//!   are opened, with an error that names what the path is;
//! * a UTF-8 byte-order mark at the start of a text file (Windows editors write one). Left in,
//!   it becomes part of the first line's first field, so `train.txt` would silently lose its
//!   first image and a cfg would not start with a section. [`read_text`] strips it.
//!
//! Writes go through [`write_atomic`]: a temporary file beside the destination, synced and
//! renamed over it, so a crash or a full disk never leaves a half-written checkpoint, table or
//! picture, and a failed write leaves no temporary file behind. Where the user did not allow
//! replacing, the rename itself refuses to replace, so a file that appears while the temporary
//! one is written is never lost.
//!
//! The errors are plain [`std::io::Error`]s, so each crate wraps them in its own typed error
//! with the path and what was being read.

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::path::Path;

/// A file operation that failed: what was being done, the file, and the system's reason.
/// Crates above wrap it in their own errors (`#[from]`), so every file error reads the same.
#[derive(Debug, thiserror::Error)]
#[error("{action} {}", path.display())]
pub struct FileError {
    /// What was being done ("reading", "writing", "creating", "removing").
    pub action: &'static str,
    /// The file or folder.
    pub path: std::path::PathBuf,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

impl FileError {
    /// The error of `action` on `path`, for `map_err`.
    pub fn on<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Self + 'a {
        move |source| Self { action, path: path.to_owned(), source }
    }
}

/// The UTF-8 byte-order mark.
const BOM: &str = "\u{feff}";

/// Why a path that exists cannot be read as a file.
#[derive(Debug, thiserror::Error)]
#[error("is {kind}, not a regular file")]
pub struct NotRegularFile {
    /// What the path is instead: "a folder", "a FIFO", "a device", "a socket".
    pub kind: &'static str,
}

/// What kind of file `meta` describes, in words, when it is not a regular file.
fn irregular_kind(meta: &std::fs::Metadata) -> Option<&'static str> {
    let t = meta.file_type();
    if t.is_file() {
        return None;
    }
    if t.is_dir() {
        return Some("a folder");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt as _;
        if t.is_fifo() {
            return Some("a FIFO");
        }
        if t.is_socket() {
            return Some("a socket");
        }
        if t.is_block_device() || t.is_char_device() {
            return Some("a device");
        }
    }
    Some("not a file")
}

/// Checks that `path` is a regular file (following symlinks) without opening it.
pub fn check_regular(path: &Path) -> io::Result<std::fs::Metadata> {
    let meta = std::fs::metadata(path)?;
    match irregular_kind(&meta) {
        None => Ok(meta),
        Some(kind) => Err(io::Error::new(io::ErrorKind::InvalidInput, NotRegularFile { kind })),
    }
}

/// Opens a regular file for reading; any other kind of path is refused unopened.
pub fn open_regular(path: &Path) -> io::Result<File> {
    check_regular(path)?;
    File::open(path)
}

/// Reads a whole regular file.
pub fn read_bytes(path: &Path) -> io::Result<Vec<u8>> {
    let mut file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Reads a whole regular file as UTF-8 text, without a leading byte-order mark.
pub fn read_text(path: &Path) -> io::Result<String> {
    let bytes = read_bytes(path)?;
    let mut text = String::from_utf8(bytes).map_err(|e| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("not UTF-8 text (byte {} is invalid)", e.utf8_error().valid_up_to()),
        )
    })?;
    if text.starts_with(BOM) {
        text.drain(..BOM.len());
    }
    Ok(text)
}

/// What a write does when its destination exists when the write completes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Existing {
    /// Replace it (the command's own files, or the user passed `--force`).
    Replace,
    /// Leave it and fail with [`io::ErrorKind::AlreadyExists`]: also a file that appeared
    /// while this one was being written (the last step is a rename that refuses to replace).
    Keep,
}

/// Writes `bytes` to `path` through `.<name>.tmp-<pid>-<n>` in the same folder: written,
/// synced, then renamed over `path` (atomic on one file system), or, with [`Existing::Keep`],
/// renamed only where nothing is at `path` by then. On any failure the temporary file is
/// removed and `path` is untouched.
///
/// While it exists the temporary file is listed for [`remove_temporaries`] (a second Ctrl-C
/// ends the process there); temporary files of this naming left in the folder by a process of
/// this host that no longer runs (a `kill -9`, a power cut) are removed on the first write
/// into that folder.
pub fn write_atomic(path: &Path, bytes: &[u8], existing: Existing) -> io::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    temporaries::clean_stale_once(dir);
    let tmp = temporaries::Temporary::new(path);
    let result = (|| {
        let mut file = File::create(tmp.path())?;
        file.write_all(bytes)?;
        file.sync_all()?;
        match existing {
            Existing::Replace => std::fs::rename(tmp.path(), path),
            Existing::Keep => rename_no_replace(tmp.path(), path),
        }
    })();
    tmp.done(result.is_ok());
    result
}

/// Renames `from` to `to` unless something is at `to`: `renameat2(RENAME_NOREPLACE)`, and
/// where the file system does not offer it, a hard link (which never replaces) and an unlink.
fn rename_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::ffi::OsStrExt as _;
        let c = |p: &Path| {
            std::ffi::CString::new(p.as_os_str().as_bytes())
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in the path"))
        };
        let (a, b) = (c(from)?, c(to)?);
        // SAFETY: both are NUL-terminated strings that live across the call; AT_FDCWD makes
        // relative paths relative to the working folder, as `std::fs::rename` does.
        #[allow(unsafe_code)]
        let rc = unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                a.as_ptr(),
                libc::AT_FDCWD,
                b.as_ptr(),
                libc::RENAME_NOREPLACE,
            )
        };
        if rc == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if !matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS | libc::ENOTSUP)) {
            return Err(e);
        }
    }
    link_no_replace(from, to)
}

/// The portable form of [`rename_no_replace`]: a hard link never replaces what is there.
fn link_no_replace(from: &Path, to: &Path) -> io::Result<()> {
    std::fs::hard_link(from, to)?;
    std::fs::remove_file(from)
}

/// Removes every temporary file [`write_atomic`] has open in this process, and the lock files
/// it holds ([`crate::lock`]): for an exit that does not unwind (the second Ctrl-C).
pub fn remove_temporaries() {
    temporaries::remove_all();
}

/// This host's name (`/proc/sys/kernel/hostname`), read once per process; `localhost` where
/// it cannot be read.
pub(crate) fn host_name() -> &'static str {
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "localhost".into())
    })
}

/// Lists `path` for [`remove_temporaries`] until [`unlist_for_exit`].
pub(crate) fn list_for_exit(path: &Path) {
    temporaries::list(path.to_owned());
}

/// Takes `path` off the list of [`list_for_exit`].
pub(crate) fn unlist_for_exit(path: &Path) {
    temporaries::unlist(path);
}

mod temporaries {
    //! The temporary files of [`super::write_atomic`]: named `.<name>.tmp-<host>-<pid>-<n>`,
    //! listed while they exist, and cleaned up when a dead process left them behind.

    use std::collections::HashSet;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Mutex, PoisonError};

    /// The temporary files that exist now.
    static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    /// Folders already checked for stale temporary files.
    static CLEANED: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);

    /// One temporary file, listed in [`LIVE`] until [`Temporary::done`].
    pub(super) struct Temporary(PathBuf);

    impl Temporary {
        pub(super) fn new(dest: &Path) -> Self {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let name = dest.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy());
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = dest.with_file_name(format!(
                ".{name}.tmp-{}-{}-{n}",
                host_tag(),
                std::process::id()
            ));
            list(path.clone());
            Self(path)
        }

        pub(super) fn path(&self) -> &Path {
            &self.0
        }

        /// Unlists the file, removing it unless it was renamed into place.
        pub(super) fn done(self, renamed: bool) {
            if !renamed {
                // It may not exist (its creation failed); nothing else to clean.
                let _ = std::fs::remove_file(&self.0);
            }
            unlist(&self.0);
        }
    }

    pub(super) fn list(path: PathBuf) {
        LIVE.lock().unwrap_or_else(PoisonError::into_inner).push(path);
    }

    pub(super) fn unlist(path: &Path) {
        LIVE.lock().unwrap_or_else(PoisonError::into_inner).retain(|p| p != path);
    }

    pub(super) fn remove_all() {
        let live = LIVE.lock().unwrap_or_else(PoisonError::into_inner);
        for p in live.iter() {
            let _ = std::fs::remove_file(p);
        }
    }

    /// This host's name as it appears in temporary names (`-`, `/` and `.` replaced, so that
    /// the name splits back into its parts).
    pub(super) fn host_tag() -> &'static str {
        static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
        TAG.get_or_init(|| super::host_name().replace(['-', '/', '.'], "_"))
    }

    /// Whether a process `pid` runs on this host.
    fn alive(pid: u32) -> bool {
        Path::new("/proc").join(pid.to_string()).exists()
    }

    /// The pid in a temporary name of this host's (`.<name>.tmp-<host>-<pid>-<n>`).
    pub(super) fn owner(file_name: &str, host: &str) -> Option<u32> {
        let rest = file_name.strip_prefix('.')?;
        let (_, tail) = rest.rsplit_once(&format!(".tmp-{host}-"))?;
        let (pid, n) = tail.split_once('-')?;
        n.parse::<u64>().ok()?;
        pid.parse().ok()
    }

    /// Removes, once per folder and process, the temporary files of dead processes of this
    /// host in `dir` (on Linux, where `/proc` tells which processes run).
    pub(super) fn clean_stale_once(dir: &Path) {
        if !Path::new("/proc/self").exists() {
            return;
        }
        {
            let mut cleaned = CLEANED.lock().unwrap_or_else(PoisonError::into_inner);
            if !cleaned.get_or_insert_with(HashSet::new).insert(dir.to_owned()) {
                return;
            }
        }
        let host = host_tag();
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(pid) = name.to_str().and_then(|n| owner(n, host)) else { continue };
            if pid != std::process::id() && !alive(pid) && entry.path().is_file() {
                say_removed(&entry.path());
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }

    /// Says on stderr which stale file is removed (core has no logger of its own).
    fn say_removed(path: &Path) {
        eprintln!("removing {}: a temporary file left by an interrupted run", path.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bom_is_stripped_and_text_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("a.txt");
        std::fs::write(&p, "\u{feff}img.png 1,2,3,4,0\n").unwrap();
        assert_eq!(read_text(&p).unwrap(), "img.png 1,2,3,4,0\n");
        std::fs::write(&p, "plain").unwrap();
        assert_eq!(read_text(&p).unwrap(), "plain");
        std::fs::write(&p, [b'a', 0xff, b'b']).unwrap();
        let e = read_text(&p).unwrap_err();
        assert_eq!(e.to_string(), "not UTF-8 text (byte 1 is invalid)");
    }

    #[test]
    fn folders_and_fifos_are_refused_unopened() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let e = read_bytes(dir).unwrap_err();
        assert_eq!(e.to_string(), "is a folder, not a regular file");
        #[cfg(unix)]
        {
            let fifo = dir.join("fifo");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
            assert!(made.success(), "mkfifo failed");
            // Opening a FIFO would block this test forever; refusing it returns at once.
            let e = read_text(&fifo).unwrap_err();
            assert_eq!(e.to_string(), "is a FIFO, not a regular file");
            let e = read_bytes(Path::new("/dev/null")).unwrap_err();
            assert_eq!(e.to_string(), "is a device, not a regular file");
        }
        let e = read_bytes(&dir.join("missing")).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
    }

    #[test]
    fn atomic_write_replaces_and_cleans_up_on_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("out.bin");
        write_atomic(&p, b"one", Existing::Keep).unwrap();
        write_atomic(&p, b"two", Existing::Replace).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        // Renaming a file over a non-empty folder fails: the folder and its content stay, and
        // no temporary file is left beside it.
        let d = tmp.path().join("taken");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("keep"), b"k").unwrap();
        assert!(write_atomic(&d, b"x", Existing::Replace).is_err());
        assert_eq!(std::fs::read(d.join("keep")).unwrap(), b"k");
        let mut names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["out.bin", "taken"]);
    }

    #[test]
    fn keep_never_replaces_a_file_that_appeared_meanwhile() {
        let tmp = tempfile::tempdir().unwrap();
        let p = tmp.path().join("anchors.txt");
        std::fs::write(&p, b"someone else's").unwrap();
        let e = write_atomic(&p, b"ours", Existing::Keep).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&p).unwrap(), b"someone else's");
        // A symlink at the destination (even a dangling one) is something there too.
        let link = tmp.path().join("link");
        std::os::unix::fs::symlink(tmp.path().join("nowhere"), &link).unwrap();
        assert!(write_atomic(&link, b"ours", Existing::Keep).is_err());
        assert!(!tmp.path().join("nowhere").exists());
        // Only the two files are left: no temporary file.
        assert_eq!(std::fs::read_dir(tmp.path()).unwrap().count(), 2);
        // The fallback of file systems without RENAME_NOREPLACE refuses as well.
        let a = tmp.path().join("a");
        std::fs::write(&a, b"a").unwrap();
        assert_eq!(link_no_replace(&a, &p).unwrap_err().kind(), io::ErrorKind::AlreadyExists);
        let fresh = tmp.path().join("fresh");
        link_no_replace(&a, &fresh).unwrap();
        assert_eq!(std::fs::read(&fresh).unwrap(), b"a");
        assert!(!a.exists());
    }

    #[test]
    fn stale_temporaries_of_dead_processes_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path();
        let host = temporaries::host_tag();
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let dead = child.id();
        child.wait().unwrap();
        let stale = dir.join(format!(".last.safetensors.tmp-{host}-{dead}-3"));
        let live = dir.join(format!(".x.tmp-{host}-1-0")); // pid 1 always runs
        let other_host = dir.join(format!(".x.tmp-elsewhere-{dead}-0"));
        let users = dir.join(format!(".notes.tmp-{host}-{dead}")); // not our naming
        for p in [&stale, &live, &other_host, &users] {
            std::fs::write(p, b"x").unwrap();
        }
        assert_eq!(temporaries::owner(&format!(".a.b.tmp-{host}-{dead}-3"), host), Some(dead));
        write_atomic(&dir.join("out"), b"o", Existing::Keep).unwrap();
        assert!(!stale.exists());
        for p in [&live, &other_host, &users] {
            assert!(p.exists(), "{}", p.display());
        }
    }
}
