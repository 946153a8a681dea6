//! One process at a time in a folder: the lock of a training run's folder.
//!
//! `FOLDER/.lock` is created (or reused) and locked with `flock`, and holds the holder's pid
//! and host for the message another process gets. The kernel releases an `flock` when its
//! process ends in any way, so a lock file left by a killed run is stale by construction: the
//! next run takes it over (and says so) instead of asking the user to delete anything.

use std::fs::{File, OpenOptions};
use std::io::{self, Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};

/// The name of the lock file inside a locked folder.
pub const LOCK_FILE: &str = ".lock";

/// Why a folder could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "{folder} is in use by another yolo3 process ({holder}); wait for it to end, or stop it"
    )]
    Held {
        /// The folder.
        folder: PathBuf,
        /// "pid N on host H" as that process wrote it.
        holder: String,
    },
    /// The lock file could not be created, read or locked.
    #[error("locking {}", path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The OS error.
        source: io::Error,
    },
}

/// A held lock; dropping it removes the lock file and releases the lock.
#[derive(Debug)]
pub struct FolderLock {
    path: PathBuf,
    file: File,
}

impl FolderLock {
    /// Locks `folder` (which must exist). `Ok((lock, Some(previous)))` when a lock file of an
    /// ended process was taken over; `previous` is what it said.
    pub fn acquire(folder: &Path) -> Result<(Self, Option<String>), LockError> {
        let path = folder.join(LOCK_FILE);
        let io_err = |source| LockError::Io { path: path.clone(), source };
        loop {
            let mut file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(io_err)?;
            let mut previous = String::new();
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let _ = file.read_to_string(&mut previous);
                    let holder = previous.trim();
                    return Err(LockError::Held {
                        folder: folder.to_owned(),
                        holder: if holder.is_empty() {
                            "it is starting".to_owned()
                        } else {
                            holder.to_owned()
                        },
                    });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io_err(e)),
            }
            // The holder before us may have removed the file between our open and our lock:
            // then we hold a lock on a name nobody sees, and start again.
            if !same_inode(&file, &path) {
                continue;
            }
            file.read_to_string(&mut previous).map_err(io_err)?;
            file.set_len(0).map_err(io_err)?;
            file.rewind().map_err(io_err)?;
            writeln!(file, "pid {} on host {}", std::process::id(), crate::fsio::host_name())
                .map_err(io_err)?;
            file.flush().map_err(io_err)?;
            let previous = previous.trim().to_owned();
            crate::fsio::list_for_exit(&path);
            return Ok((Self { path, file }, (!previous.is_empty()).then_some(previous)));
        }
    }

    /// The lock file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // Removed while still locked, so no other process can lock this name's old file and
        // believe it holds the folder.
        if same_inode(&self.file, &self.path) {
            let _ = std::fs::remove_file(&self.path);
        }
        crate::fsio::unlist_for_exit(&self.path);
        let _ = self.file.unlock();
    }
}

fn same_inode(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_a_stale_file_taken_over() {
        let tmp = tempfile::tempdir().unwrap();
        let (lock, previous) = FolderLock::acquire(tmp.path()).unwrap();
        assert_eq!(previous, None);
        let text = std::fs::read_to_string(lock.path()).unwrap();
        assert!(text.starts_with(&format!("pid {} on host ", std::process::id())), "{text}");
        // Another open file description is refused, as another process would be.
        let e = FolderLock::acquire(tmp.path()).unwrap_err();
        let message = e.to_string();
        assert!(message.contains("in use by another yolo3 process"), "{message}");
        assert!(message.contains(&format!("pid {}", std::process::id())), "{message}");
        drop(lock);
        assert!(!tmp.path().join(LOCK_FILE).exists());
        // A file nobody locks (its process was killed) is stale: taken over.
        std::fs::write(tmp.path().join(LOCK_FILE), "pid 4242 on host gone\n").unwrap();
        let (lock, previous) = FolderLock::acquire(tmp.path()).unwrap();
        assert_eq!(previous.as_deref(), Some("pid 4242 on host gone"));
        drop(lock);
    }
}
