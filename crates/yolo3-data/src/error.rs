//! The one error type of the crate.
//!
//! Every variant that comes from a file carries a [`Location`] (the file and, where the format
//! has lines, the 1-based line) and the name of the offending field, so a message reads like
//! `data/train.txt:12: field "box 3 x_max": ...`. Underlying errors (I/O, XML, JSON, image
//! decoding, number parsing) are kept as `#[source]` so callers can walk the chain.

use std::fmt;
use std::path::{Path, PathBuf};

use yolo3_core::BoxXyxy;

/// Where in an annotation source a problem was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    /// The file (annotation file, XML file, JSON file or label file).
    pub path: PathBuf,
    /// 1-based line number, when the format has meaningful lines. COCO JSON files are usually a
    /// single line, so their errors name a JSON path in the field instead.
    pub line: Option<usize>,
}

impl Location {
    /// A location with a line number.
    #[must_use]
    pub fn line(path: &Path, line: usize) -> Self {
        Self { path: path.to_path_buf(), line: Some(line) }
    }

    /// A location that is a whole file.
    #[must_use]
    pub fn file(path: &Path) -> Self {
        Self { path: path.to_path_buf(), line: None }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(line) => write!(f, "{}:{line}", self.path.display()),
            None => write!(f, "{}", self.path.display()),
        }
    }
}

/// Formats a box as `x_min,y_min,x_max,y_max` for messages.
struct ShowBox<'a>(&'a BoxXyxy);

impl fmt::Display for ShowBox<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(f, "{},{},{},{}", b.x_min, b.y_min, b.x_max, b.y_max)
    }
}

/// Errors of dataset reading, writing, image decoding and batching.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DataError {
    /// A file or folder could not be read or written.
    #[error("{}: {action}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// What was being done ("cannot read", "cannot create", ...).
        action: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A field is missing or malformed.
    #[error("{at}: field \"{field}\": {message}")]
    Syntax {
        /// Where.
        at: Location,
        /// Which field.
        field: String,
        /// What is wrong.
        message: String,
    },
    /// A field that should be a number is not one.
    #[error("{at}: field \"{field}\": {value:?} is not a number")]
    Number {
        /// Where.
        at: Location,
        /// Which field.
        field: String,
        /// The text that failed to parse.
        value: String,
        /// The parse error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A number is NaN or infinite.
    #[error("{at}: field \"{field}\": {value} is not finite")]
    NonFinite {
        /// Where.
        at: Location,
        /// Which field.
        field: String,
        /// The value.
        value: f64,
    },
    /// A class index is not below the number of classes.
    #[error("{at}: field \"{field}\": class {class} is out of range (the dataset has {num_classes} classes)")]
    ClassOutOfRange {
        /// Where.
        at: Location,
        /// Which field.
        field: String,
        /// The class index found.
        class: i64,
        /// The number of classes.
        num_classes: usize,
    },
    /// A class name is not in the class list.
    #[error("{at}: field \"{field}\": class name {name:?} is not in the class list")]
    UnknownClass {
        /// Where.
        at: Location,
        /// Which field.
        field: String,
        /// The name found.
        name: String,
    },
    /// A box has zero or negative width or height.
    #[error("{at}: field \"{field}\": box {} is degenerate (width or height <= 0)", ShowBox(bbox))]
    DegenerateBox {
        /// Where.
        at: Location,
        /// Which field.
        field: String,
        /// The box as read, in pixels.
        bbox: BoxXyxy,
    },
    /// A box extends beyond the image by more than the tolerance.
    #[error(
        "{at}: field \"{field}\": box {} lies outside the {width}x{height} image",
        ShowBox(bbox)
    )]
    BoxOutsideImage {
        /// Where.
        at: Location,
        /// Which field.
        field: String,
        /// The box as read, in pixels.
        bbox: BoxXyxy,
        /// Image width in pixels.
        width: u32,
        /// Image height in pixels.
        height: u32,
    },
    /// An XML file is not well formed.
    #[error("{}: invalid XML", path.display())]
    Xml {
        /// The XML file.
        path: PathBuf,
        /// The parser error (it carries the position).
        #[source]
        source: roxmltree::Error,
    },
    /// A JSON file is not well formed or does not have the expected shape.
    #[error("{}:{line}:{column}: invalid JSON", path.display())]
    Json {
        /// The JSON file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// The parser error.
        #[source]
        source: serde_json::Error,
    },
    /// The class list is unusable (empty, duplicate names).
    #[error("{at}: {message}")]
    Classes {
        /// Where.
        at: Location,
        /// What is wrong.
        message: String,
    },
    /// An image could not be opened or decoded.
    #[error("{}: cannot decode image", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// The decoder error.
        #[source]
        source: image::ImageError,
    },
    /// An image in a format this program does not read (WebP, TIFF, BMP, GIF, ...).
    #[error(
        "{}: {format} images are not supported (JPEG and PNG are); convert it, for example \
         with `convert IN OUT.png` (ImageMagick) or `ffmpeg -i IN OUT.png`",
        path.display()
    )]
    UnsupportedImageFormat {
        /// The image file.
        path: PathBuf,
        /// The format its first bytes show.
        format: &'static str,
    },
    /// An image with more pixels than [`crate::MAX_PIXELS`] (a decompression bomb, or a scan
    /// far beyond any network input): refused from its header, before decoding.
    #[error(
        "{}: the image is {width}x{height} ({} megapixels), above the limit of {} megapixels",
        path.display(),
        u64::from(*width) * u64::from(*height) / 1_000_000,
        crate::MAX_PIXELS / 1_000_000
    )]
    ImageTooLarge {
        /// The image file.
        path: PathBuf,
        /// Width in pixels (as displayed, after the EXIF orientation).
        width: u32,
        /// Height in pixels.
        height: u32,
    },
    /// The format of a dataset path could not be determined.
    #[error("{}: cannot detect the dataset format: {reason}", path.display())]
    UnknownFormat {
        /// The path given.
        path: PathBuf,
        /// Why no format matched.
        reason: String,
    },
    /// An output folder that must be new or empty holds files.
    #[error(
        "{}: the folder is not empty; a dataset is written into a new or empty folder only, so \
         that nothing already there is replaced",
        path.display()
    )]
    OutputNotEmpty {
        /// The folder.
        path: PathBuf,
    },
    /// Options or arguments are inconsistent (for example a batch size of 0).
    #[error("invalid option {option}: {message}")]
    InvalidOption {
        /// The option's name.
        option: &'static str,
        /// What is wrong.
        message: String,
    },
}

impl DataError {
    /// An [`DataError::Io`] for `path`.
    pub(crate) fn io(path: &Path, action: &'static str, source: std::io::Error) -> Self {
        Self::Io { path: path.to_path_buf(), action, source }
    }

    /// A [`DataError::Syntax`].
    pub(crate) fn syntax(
        at: Location,
        field: impl Into<String>,
        message: impl Into<String>,
    ) -> Self {
        Self::Syntax { at, field: field.into(), message: message.into() }
    }

    /// A [`DataError::Json`] with the position taken from the serde error.
    pub(crate) fn json(path: &Path, source: serde_json::Error) -> Self {
        Self::Json {
            path: path.to_path_buf(),
            line: source.line(),
            column: source.column(),
            source,
        }
    }
}

/// Result alias of the crate.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
