//! The one error type of the crate: saving pictures (naming the file and keeping the underlying
//! I/O or encoding error as `#[source]`) and building a confusion matrix from bad input.

use std::path::PathBuf;

/// Errors of saving images and of building inputs for the renderers.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VizError {
    /// A file could not be created, written, synced or renamed.
    #[error("{}: {action}", path.display())]
    Io {
        /// The file being written (the final path, not the temporary one).
        path: PathBuf,
        /// What was being done ("cannot create", "cannot rename", ...).
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The image could not be encoded.
    #[error("{}: cannot encode image", path.display())]
    Encode {
        /// The file being written.
        path: PathBuf,
        /// The encoder's error.
        #[source]
        source: image::ImageError,
    },
    /// The file extension names no supported format.
    #[error("{}: unknown image format (use .png, .jpg or .jpeg)", path.display())]
    UnknownFormat {
        /// The file.
        path: PathBuf,
    },
    /// Confusion-matrix counts do not form a `(classes + 1)` square.
    #[error("confusion matrix for {classes} classes needs {expected}x{expected} counts: {found}")]
    MatrixShape {
        /// Number of classes (without background).
        classes: usize,
        /// Required rows and columns (`classes + 1`).
        expected: usize,
        /// What was given.
        found: String,
    },
    /// A class index is not below the number of classes.
    #[error("class index {index} is out of range for {classes} classes")]
    ClassIndex {
        /// The index.
        index: usize,
        /// Number of classes.
        classes: usize,
    },
}
