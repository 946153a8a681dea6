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
//! picture, and a failed write leaves no temporary file behind.
//!
//! The errors are plain [`std::io::Error`]s, so each crate wraps them in its own typed error
//! with the path and what was being read.

use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Writes `bytes` to `path` through `.<name>.tmp-<pid>-<n>` in the same folder: written,
/// synced, then renamed over `path` (atomic on one file system). On any failure the temporary
/// file is removed and `path` is untouched.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = temporary_path(path);
    let result = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if result.is_err() {
        // The temporary file may not exist (its creation failed); nothing else to clean.
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// A temporary name beside `path`, distinct per process and per call.
fn temporary_path(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name = path.file_name().map_or_else(|| "file".into(), |n| n.to_string_lossy());
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    path.with_file_name(format!(".{name}.tmp-{}-{n}", std::process::id()))
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
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        // Renaming a file over a non-empty folder fails: the folder and its content stay, and
        // no temporary file is left beside it.
        let d = tmp.path().join("taken");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join("keep"), b"k").unwrap();
        assert!(write_atomic(&d, b"x").is_err());
        assert_eq!(std::fs::read(d.join("keep")).unwrap(), b"k");
        let mut names: Vec<String> = std::fs::read_dir(tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, ["out.bin", "taken"]);
    }
}
