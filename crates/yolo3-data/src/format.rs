//! Dataset format detection and one entry point that reads any supported format.
//!
//! Detection is by path only (no contents beyond the first lines of a `.txt` file):
//! * a `.json` file is COCO;
//! * an `.xml` file is a single VOC annotation;
//! * a `.txt` file with a comma in one of its first 100 non-blank lines is a keras-yolo3
//!   `train.txt` (images without boxes have no comma), otherwise a YOLO image list;
//! * a folder with `Annotations/` is a VOC folder;
//! * a folder with `images/` (labels in `labels/`) is a YOLO dataset.
//!
//! Class names, when the format does not carry them, come from [`OpenOptions::classes`] or a
//! `classes.txt` (or a single `*.names` file) found beside the annotation file, in the
//! dataset folder, or in its parent.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::dataset::{read_class_names, Dataset, ReadOptions};
use crate::error::{DataError, Location, Result};

/// The supported annotation formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DatasetFormat {
    /// keras-yolo3 `train.txt` + `classes.txt`.
    TrainTxt,
    /// Pascal VOC XML.
    Voc,
    /// COCO instances JSON.
    Coco,
    /// YOLO / ultralytics txt labels.
    Yolo,
}

impl fmt::Display for DatasetFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TrainTxt => "keras",
            Self::Voc => "voc",
            Self::Coco => "coco",
            Self::Yolo => "yolo",
        })
    }
}

impl std::str::FromStr for DatasetFormat {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "keras" | "keras-yolo3" | "txt" => Ok(Self::TrainTxt),
            "voc" | "pascal" | "pascal-voc" => Ok(Self::Voc),
            "coco" | "json" => Ok(Self::Coco),
            "yolo" | "ultralytics" | "darknet" => Ok(Self::Yolo),
            _ => Err(format!("unknown dataset format {s:?} (expected keras, voc, coco or yolo)")),
        }
    }
}

/// Detects the format of a dataset path (see the module docs).
pub fn detect_format(path: &Path) -> Result<DatasetFormat> {
    let unknown = |reason: &str| DataError::UnknownFormat {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    if path.is_dir() {
        if path.join("Annotations").is_dir() {
            return Ok(DatasetFormat::Voc);
        }
        if path.join("images").is_dir() {
            return Ok(DatasetFormat::Yolo);
        }
        return Err(unknown("a folder needs Annotations/ (VOC) or images/ (YOLO)"));
    }
    if !path.exists() {
        return Err(unknown("no such file or folder"));
    }
    let ext =
        path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "json" => Ok(DatasetFormat::Coco),
        "xml" => Ok(DatasetFormat::Voc),
        "txt" => {
            let text = yolo3_io::fsio::read_text(path)
                .map_err(|e| DataError::io(path, "cannot read", e))?;
            let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty()).take(100);
            Ok(if lines.any(|l| l.contains(',')) {
                DatasetFormat::TrainTxt
            } else {
                DatasetFormat::Yolo
            })
        }
        _ => Err(unknown("expected a .txt, .json or .xml file, or a VOC or YOLO folder")),
    }
}

/// Options of [`read_dataset`].
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OpenOptions {
    /// Force a format instead of detecting it.
    pub format: Option<DatasetFormat>,
    /// Class-name file (keras, YOLO; for VOC it fixes the class list and order).
    pub classes: Option<PathBuf>,
    /// COCO image folder (default: see [`crate::coco::default_coco_image_dir`]).
    pub image_dir: Option<PathBuf>,
    /// VOC split (`ImageSets/Main/<split>.txt`).
    pub split: Option<String>,
    /// Validation options.
    pub read: ReadOptions,
}

/// Finds a class-name file for `path` (see the module docs).
#[must_use]
pub fn find_class_file(path: &Path) -> Option<PathBuf> {
    let dir = if path.is_dir() {
        path.to_path_buf()
    } else {
        path.parent().unwrap_or(Path::new("")).to_path_buf()
    };
    let mut dirs = vec![dir.clone()];
    if let Some(up) = dir.parent() {
        dirs.push(up.to_path_buf());
    }
    for d in dirs {
        let c = d.join("classes.txt");
        if c.is_file() {
            return Some(c);
        }
        let names: Vec<PathBuf> = std::fs::read_dir(&d)
            .into_iter()
            .flatten()
            .filter_map(std::result::Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|x| x == "names"))
            .collect();
        if names.len() == 1 {
            return names.into_iter().next();
        }
    }
    None
}

fn class_file(path: &Path, options: &OpenOptions) -> Result<PathBuf> {
    options.classes.clone().or_else(|| find_class_file(path)).ok_or_else(|| DataError::Classes {
        at: Location::file(path),
        message: "no class-name file found (looked for classes.txt or *.names beside it); give one"
            .into(),
    })
}

/// Reads a dataset in any supported format.
pub fn read_dataset(path: &Path, options: &OpenOptions) -> Result<Dataset> {
    let format = match options.format {
        Some(f) => f,
        None => detect_format(path)?,
    };
    tracing::debug!(path = %path.display(), %format, "reading dataset");
    match format {
        DatasetFormat::TrainTxt => {
            crate::train_txt::read_train_txt(path, &class_file(path, options)?, &options.read)
        }
        DatasetFormat::Coco => {
            crate::coco::read_coco(path, options.image_dir.as_deref(), &options.read)
        }
        DatasetFormat::Voc => {
            let classes = options.classes.as_deref().map(read_class_names).transpose()?;
            if path.is_dir() {
                crate::voc::read_voc_dir(path, options.split.as_deref(), classes, &options.read)
            } else {
                crate::voc::read_voc_files(&[path.to_path_buf()], classes, &options.read)
            }
        }
        DatasetFormat::Yolo => {
            let names = read_class_names(&class_file(path, options)?)?;
            let images = if path.is_dir() { path.join("images") } else { path.to_path_buf() };
            crate::yolo_txt::read_yolo(&images, names, &options.read)
        }
    }
}
