//! What a command may write: never one of its own inputs, and an existing file only when the
//! user said so.
//!
//! Every command that takes an output path checks it here before it writes anything. "Same
//! file" is decided by device and inode where the output exists (so `./a`, `a` and a hard link
//! or symlink to it are one file) and by the absolute path where it does not yet.

use std::path::{Path, PathBuf};

use anyhow::bail;

/// Whether `a` and `b` name one file.
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        if let (Ok(x), Ok(y)) = (std::fs::metadata(a), std::fs::metadata(b)) {
            return x.dev() == y.dev() && x.ino() == y.ino();
        }
    }
    absolute(a) == absolute(b)
}

fn absolute(p: &Path) -> PathBuf {
    std::fs::canonicalize(p).or_else(|_| std::path::absolute(p)).unwrap_or_else(|_| p.into())
}

/// Whether `out` is `input`, or lies inside `input` when that is a folder (a dataset folder's
/// files are all inputs).
fn is_input(out: &Path, input: &Path) -> bool {
    same_file(out, input) || (input.is_dir() && absolute(out).starts_with(absolute(input)))
}

/// What a command that reads `dataset` from `data` takes as input: the annotation file or
/// folder, the class file (given, or the one the reader found beside the data) and every image.
pub(crate) fn dataset_inputs<'a>(
    data: &'a Path,
    classes: Option<&'a Path>,
    dataset: &'a yolo3_data::Dataset,
) -> Vec<std::borrow::Cow<'a, Path>> {
    let mut inputs = vec![std::borrow::Cow::Borrowed(data)];
    match classes {
        Some(c) => inputs.push(c.into()),
        None => inputs.extend(yolo3_data::format::find_class_file(data).map(Into::into)),
    }
    inputs.extend(dataset.samples.iter().map(|s| s.image_path.as_path().into()));
    inputs
}

/// Refuses an output that is one of `inputs`, or (unless `replace`) that exists already.
/// `flag` names the option the output came from, for the message.
pub(crate) fn check_output<P: AsRef<Path>>(
    flag: &str,
    out: &Path,
    inputs: impl IntoIterator<Item = P>,
    replace: bool,
) -> anyhow::Result<()> {
    let exists = std::fs::symlink_metadata(out).is_ok();
    if exists {
        if let Some(input) = inputs.into_iter().find(|i| is_input(out, i.as_ref())) {
            bail!(
                "{flag} {}: that is an input of this command ({}); choose another output",
                out.display(),
                input.as_ref().display()
            );
        }
        if std::fs::metadata(out).is_ok_and(|m| !m.is_file()) {
            bail!("{flag} {}: exists and is not a regular file", out.display());
        }
        if !replace {
            bail!("{flag} {}: exists already; pass --force to replace it", out.display());
        }
    }
    Ok(())
}

/// How the last step of writing an output treats a file at its name: replaced with `--force`;
/// without it, also a file that appeared after [`check_output`] is kept (the write fails).
pub(crate) fn existing(force: bool) -> yolo3_io::fsio::Existing {
    if force {
        yolo3_io::fsio::Existing::Replace
    } else {
        yolo3_io::fsio::Existing::Keep
    }
}

/// Refuses an output whose extension is not one of `extensions` (lowercase, without the dot).
pub(crate) fn check_extension(
    flag: &str,
    out: &Path,
    extensions: &[&str],
    what: &str,
) -> anyhow::Result<()> {
    let ext = out.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    if ext.as_deref().is_some_and(|e| extensions.contains(&e)) {
        return Ok(());
    }
    bail!("{flag} {}: {what} is written to a .{} file", out.display(), extensions.join(" or ."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_never_outputs_and_existing_files_need_force() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.safetensors");
        std::fs::write(&a, b"x").unwrap();
        let dotted = dir.path().join(".").join("a.safetensors");
        let e = check_output("--out", &dotted, [a.as_path()], true).unwrap_err();
        assert!(e.to_string().contains("that is an input"), "{e}");
        let b = dir.path().join("b.weights");
        check_output("--out", &b, [a.as_path()], false).unwrap();
        std::fs::write(&b, b"y").unwrap();
        let e = check_output("--out", &b, [a.as_path()], false).unwrap_err();
        assert!(e.to_string().contains("--force"), "{e}");
        check_output("--out", &b, [a.as_path()], true).unwrap();
        let e = check_output("--out", dir.path(), [a.as_path()], true).unwrap_err();
        assert!(e.to_string().contains("not a regular file"), "{e}");
        assert!(check_extension("--out", Path::new("x.png"), &["weights"], "x").is_err());
        check_extension("--out", Path::new("x.WEIGHTS"), &["weights"], "x").unwrap();
    }
}
