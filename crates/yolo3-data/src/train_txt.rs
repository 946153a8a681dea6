//! keras-yolo3 `train.txt` annotations and `classes.txt`.
//!
//! One image per line: `path x_min,y_min,x_max,y_max,class x_min,y_min,x_max,y_max,class ...`,
//! fields separated by whitespace (so paths cannot contain spaces, as in keras-yolo3), box
//! coordinates in pixels of the original image as integers or decimals, class an index into
//! `classes.txt` (one name per line). Blank lines are skipped; a line with only a path is an
//! image without objects.
//!
//! **Relative image paths resolve against the folder of the annotation file** (keras-yolo3
//! resolves them against the working directory; resolving against the file makes a dataset
//! folder relocatable). Absolute paths are used as they are. The writer does the reverse:
//! images under the annotation file's folder are written relative to it.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use yolo3_core::BoxXyxy;

use crate::dataset::{Dataset, ImageSize, ReadOptions, Sample};
use crate::error::{DataError, Location, Result};
use crate::image_io::image_sizes;
use crate::validate::{check_box, parse_class, parse_number};

/// One parsed line before validation against the image size.
struct RawLine {
    line: usize,
    image: PathBuf,
    boxes: Vec<(BoxXyxy, usize)>,
}

/// Reads a keras-yolo3 annotation file with the class names of `classes_path`.
pub fn read_train_txt(
    annotation_path: &Path,
    classes_path: &Path,
    options: &ReadOptions,
) -> Result<Dataset> {
    let class_names = crate::dataset::read_class_names(classes_path)?;
    read_train_txt_with_classes(annotation_path, class_names, options)
}

/// Reads a keras-yolo3 annotation file with the given class names.
pub fn read_train_txt_with_classes(
    annotation_path: &Path,
    class_names: Vec<String>,
    options: &ReadOptions,
) -> Result<Dataset> {
    let text = yolo3_io::fsio::read_text(annotation_path)
        .map_err(|e| DataError::io(annotation_path, "cannot read annotations", e))?;
    let base = annotation_path.parent().unwrap_or(Path::new(""));
    let num_classes = class_names.len();
    let mut raw = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let at = Location::line(annotation_path, i + 1);
        let mut fields = line.split_whitespace();
        let Some(path) = fields.next() else { continue };
        let mut boxes = Vec::new();
        for (b, field) in fields.enumerate() {
            let parts: Vec<&str> = field.split(',').collect();
            if parts.len() != 5 {
                return Err(DataError::syntax(
                    at,
                    format!("box {}", b + 1),
                    format!(
                        "{field:?} should be x_min,y_min,x_max,y_max,class ({} values found)",
                        parts.len()
                    ),
                ));
            }
            let mut v = [0f32; 4];
            for (k, name) in ["x_min", "y_min", "x_max", "y_max"].iter().enumerate() {
                v[k] = parse_number(parts[k], &at, &format!("box {} {name}", b + 1))? as f32;
            }
            let class = parse_class(parts[4], num_classes, &at, &format!("box {} class", b + 1))?;
            boxes.push((BoxXyxy::new(v[0], v[1], v[2], v[3]), class));
        }
        raw.push(RawLine { line: i + 1, image: base.join(path), boxes });
    }
    let sizes: Vec<Option<Result<ImageSize, _>>> = if options.read_image_headers {
        let paths: Vec<PathBuf> = raw.iter().map(|r| r.image.clone()).collect();
        image_sizes(&paths).into_iter().map(Some).collect()
    } else {
        raw.iter().map(|_| None).collect()
    };
    let mut dataset =
        Dataset { class_names, samples: Vec::with_capacity(raw.len()), unreadable: Vec::new() };
    for (r, size) in raw.into_iter().zip(sizes) {
        let size = match size {
            Some(Ok(s)) => Some(s),
            Some(Err(u)) => {
                tracing::warn!(image = %u.path.display(), "unreadable image: {}", u.reason);
                dataset.unreadable.push(u);
                continue;
            }
            None => None,
        };
        let at = Location::line(annotation_path, r.line);
        let mut boxes = Vec::with_capacity(r.boxes.len());
        for (b, (bbox, class)) in r.boxes.into_iter().enumerate() {
            if let Some(lb) = check_box(bbox, class, size, options, &at, &format!("box {}", b + 1))?
            {
                boxes.push(lb);
            }
        }
        let mut sample = Sample::new(r.image, boxes);
        sample.image_size = size;
        dataset.samples.push(sample);
    }
    Ok(dataset)
}

/// Writes `dataset` as a keras-yolo3 annotation file (training boxes only: the format has no
/// crowd/difficult flags, so ignored boxes are not written). Image paths under the annotation
/// file's folder are written relative to it; other relative paths are made absolute (a reader
/// resolves relative paths against the annotation file's folder, not the current one); absolute
/// paths are kept. Paths containing whitespace cannot be represented and are an error.
pub fn write_train_txt(
    dataset: &Dataset,
    annotation_path: &Path,
    existing: yolo3_io::fsio::Existing,
) -> Result<()> {
    let base = annotation_path.parent().unwrap_or(Path::new(""));
    let mut text = String::new();
    for (i, s) in dataset.samples.iter().enumerate() {
        let mut rel = relative_to(&s.image_path, base);
        if rel.is_relative() && rel == s.image_path && !base.as_os_str().is_empty() {
            rel = std::path::absolute(&s.image_path).unwrap_or(rel);
        }
        let shown = rel.to_string_lossy();
        if shown.chars().any(char::is_whitespace) || shown.is_empty() {
            return Err(DataError::syntax(
                Location::line(annotation_path, i + 1),
                "path",
                format!("image path {shown:?} is empty or contains whitespace, which train.txt cannot represent"),
            ));
        }
        text.push_str(&shown);
        for b in &s.boxes {
            let bb = &b.bbox;
            let _ =
                write!(text, " {},{},{},{},{}", bb.x_min, bb.y_min, bb.x_max, bb.y_max, b.class);
        }
        text.push('\n');
    }
    yolo3_io::fsio::write_atomic(annotation_path, text.as_bytes(), existing)
        .map_err(|e| DataError::io(annotation_path, "cannot write annotations", e))
}

/// `path` relative to `base` when it lies under it (lexically), else `path` itself.
pub(crate) fn relative_to(path: &Path, base: &Path) -> PathBuf {
    if base.as_os_str().is_empty() {
        return path.to_path_buf();
    }
    match path.strip_prefix(base) {
        Ok(rel) => rel.to_path_buf(),
        Err(_) => path.to_path_buf(),
    }
}
