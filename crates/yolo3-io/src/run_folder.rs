//! Run folders: `<project>/<name>`, then `<name>2`, `<name>3`, ... as ultralytics names its
//! runs. Every command that writes a set of outputs (`train`, `detect`, `eval`, `anchors`)
//! gets a fresh folder here, created by this process (`create_dir` is atomic, so two
//! processes started together get two folders), so no run writes into another's.

use std::path::{Component, Path, PathBuf};

/// Why a run folder could not be made.
#[derive(Debug, thiserror::Error)]
pub enum RunFolderError {
    /// The name is not one plain folder name.
    #[error(
        "run name {0:?}: must be one folder name (no path separators, not empty, not . or ..)"
    )]
    Name(String),
    /// The project path is a file.
    #[error("--project {}: is a file, not a folder (the run folders go inside it)", .0.display())]
    ProjectIsFile(PathBuf),
    /// The file system refused.
    #[error("creating {}", path.display())]
    Create {
        /// The folder.
        path: PathBuf,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
}

/// Checks that a run name is one plain folder name, so the run folder stays inside its
/// project folder (`""`, `.`, `..`, `a/b` and absolute paths are refused).
pub fn check_name(name: &str) -> Result<(), RunFolderError> {
    let mut parts = Path::new(name).components();
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(n)), None) if n == name => Ok(()),
        _ => Err(RunFolderError::Name(name.to_owned())),
    }
}

/// Creates `<project>/<name>`, or `<project>/<name>N` with the smallest `N >= 2` that is free.
pub fn create(project: &Path, name: &str) -> Result<PathBuf, RunFolderError> {
    check_name(name)?;
    if std::fs::metadata(project).is_ok_and(|m| !m.is_dir()) {
        return Err(RunFolderError::ProjectIsFile(project.to_owned()));
    }
    std::fs::create_dir_all(project)
        .map_err(|source| RunFolderError::Create { path: project.to_owned(), source })?;
    for n in 1.. {
        let dir = if n == 1 { project.join(name) } else { project.join(format!("{name}{n}")) };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(source) => return Err(RunFolderError::Create { path: dir, source }),
        }
    }
    unreachable!("an unbounded range always yields a free name")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_folders_count_up() {
        let tmp = tempfile::tempdir().unwrap();
        let a = create(tmp.path(), "exp").unwrap();
        let b = create(tmp.path(), "exp").unwrap();
        assert_eq!(a.file_name().unwrap(), "exp");
        assert_eq!(b.file_name().unwrap(), "exp2");
    }

    #[test]
    fn names_that_leave_the_project_are_refused() {
        for bad in ["", ".", "..", "a/b", "/tmp/x"] {
            assert!(matches!(check_name(bad), Err(RunFolderError::Name(_))), "{bad:?}");
        }
        check_name("exp_1").unwrap();
    }

    #[test]
    fn a_project_that_is_a_file_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        let err = create(&file, "exp").unwrap_err();
        assert!(err.to_string().contains("is a file"), "{err}");
    }
}
