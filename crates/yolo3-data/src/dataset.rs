//! The in-memory dataset every reader produces and every writer and loader consumes.
//!
//! Conventions fixed here:
//! * boxes are [`LabeledBox`]es in **pixels of the original image**, corner form, continuous
//!   coordinates (a box from 10 to 20 is 10 wide; `x_max` may equal the image width);
//! * class indices are `0..class_names.len()`, contiguous;
//! * `Sample::boxes` are the boxes to train on. Boxes a format marks as "not for training"
//!   (COCO `iscrowd`, VOC `difficult` when skipped) are kept in `Sample::ignored` so evaluation
//!   can treat them as "ignore" regions instead of false positives.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use yolo3_io::fsio::Existing;

use yolo3_core::LabeledBox;

use crate::error::{DataError, Location, Result};

/// Size of an image in pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ImageSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Why a box is in [`Sample::ignored`] rather than [`Sample::boxes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IgnoreReason {
    /// COCO `iscrowd: 1`.
    Crowd,
    /// Pascal VOC `<difficult>1</difficult>` with [`DifficultPolicy::Skip`].
    Difficult,
}

/// A box kept for evaluation but never trained on.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct IgnoredBox {
    /// The box, in pixels of the image.
    pub bbox: LabeledBox,
    /// Why it is not trained on.
    pub reason: IgnoreReason,
}

/// One image and its annotations.
#[derive(Clone, Debug, PartialEq)]
pub struct Sample {
    /// Path of the image file (absolute, or relative to the working directory).
    pub image_path: PathBuf,
    /// The format's image id, when it has one (COCO `id`).
    pub image_id: Option<u64>,
    /// Image size when known from the annotation or the image header.
    pub image_size: Option<ImageSize>,
    /// Boxes to train on, in pixels of this image.
    pub boxes: Vec<LabeledBox>,
    /// Parallel to `boxes`: whether each box is marked difficult (VOC with
    /// [`DifficultPolicy::Keep`]); all `false` for formats without the flag.
    pub difficult: Vec<bool>,
    /// Boxes excluded from training but kept for evaluation.
    pub ignored: Vec<IgnoredBox>,
}

impl Sample {
    /// A sample with training boxes only (no flags, no ignored boxes).
    #[must_use]
    pub fn new(image_path: PathBuf, boxes: Vec<LabeledBox>) -> Self {
        let difficult = vec![false; boxes.len()];
        Self { image_path, image_id: None, image_size: None, boxes, difficult, ignored: Vec::new() }
    }
}

/// An image listed by the annotations whose header could not be read. It is not in
/// [`Dataset::samples`]; the summary lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnreadableImage {
    /// The image path.
    pub path: PathBuf,
    /// The decoder's message.
    pub reason: String,
}

/// A labelled image collection.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Dataset {
    /// Class names; a box's `class` indexes this list.
    pub class_names: Vec<String>,
    /// The images with their boxes.
    pub samples: Vec<Sample>,
    /// Images named by the annotations that could not be read (excluded from `samples`).
    pub unreadable: Vec<UnreadableImage>,
}

/// What to do with VOC boxes marked `difficult`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DifficultPolicy {
    /// Keep them out of training (keras-yolo3's `voc_annotation.py` does this) but in
    /// [`Sample::ignored`] for evaluation.
    #[default]
    Skip,
    /// Train on them; [`Sample::difficult`] flags them.
    Keep,
}

/// Validation options shared by the readers.
///
/// Boxes are validated against the image size when it is known: a box that extends beyond the
/// image by more than `bounds_tolerance` pixels is an error ([`DataError::BoxOutsideImage`])
/// unless `clip` is set, in which case it is clipped and a warning is logged. Boxes within the
/// tolerance are clipped to the image silently (annotation tools often write `x_max = width`
/// or one pixel more). A box that is degenerate after clipping is dropped with a warning.
/// Degenerate boxes as read (width or height <= 0), class ids out of range and non-finite
/// numbers are always errors.
#[derive(Clone, Debug, PartialEq)]
pub struct ReadOptions {
    /// Clip boxes that leave the image instead of failing.
    pub clip: bool,
    /// How far (pixels) a box may leave the image before it counts as outside.
    pub bounds_tolerance: f32,
    /// Read every image header (in parallel) to find unreadable images and learn the true image
    /// size. keras `train.txt` has no sizes, so without headers its boxes are only checked for
    /// degeneracy; for VOC and COCO the annotated size is used when this is off. The YOLO txt
    /// reader always reads headers (it needs the size to convert normalised boxes).
    pub read_image_headers: bool,
    /// VOC `difficult` handling.
    pub difficult: DifficultPolicy,
    /// With a given class list, skip VOC objects whose name is not in it (keras-yolo3's
    /// `voc_annotation.py` does) instead of failing with [`DataError::UnknownClass`].
    pub skip_unknown_classes: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        Self {
            clip: false,
            bounds_tolerance: 1.0,
            read_image_headers: true,
            difficult: DifficultPolicy::Skip,
            skip_unknown_classes: false,
        }
    }
}

/// Reads a class-name file: one name per line, surrounding whitespace trimmed, blank lines
/// ignored (keras-yolo3 `classes.txt`, darknet `.names`). Duplicates are an error.
pub fn read_class_names(path: &Path) -> Result<Vec<String>> {
    let text = yolo3_io::fsio::read_text(path)
        .map_err(|e| DataError::io(path, "cannot read class names", e))?;
    let mut names: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let name = line.trim();
        if name.is_empty() {
            continue;
        }
        if names.iter().any(|n| n == name) {
            return Err(DataError::Classes {
                at: Location::line(path, i + 1),
                message: format!("duplicate class name {name:?}"),
            });
        }
        names.push(name.to_string());
    }
    if names.is_empty() {
        return Err(DataError::Classes {
            at: Location::file(path),
            message: "no class names".into(),
        });
    }
    Ok(names)
}

/// Writes class names one per line (atomically; over an existing file only with
/// [`Existing::Replace`]).
pub fn write_class_names(path: &Path, names: &[String], existing: Existing) -> Result<()> {
    let mut text = names.join("\n");
    text.push('\n');
    yolo3_io::fsio::write_atomic(path, text.as_bytes(), existing)
        .map_err(|e| DataError::io(path, "cannot write class names", e))
}

/// Counts printed before training.
#[derive(Clone, Debug, PartialEq)]
pub struct DatasetSummary {
    /// Readable images.
    pub images: usize,
    /// Images with no training box (background images).
    pub images_without_boxes: usize,
    /// Training boxes in total.
    pub boxes: usize,
    /// `(class name, training boxes)` in class order.
    pub per_class: Vec<(String, usize)>,
    /// Ignored boxes by reason: crowd, difficult.
    pub ignored_crowd: usize,
    /// Difficult boxes excluded from training.
    pub ignored_difficult: usize,
    /// Difficult boxes kept for training.
    pub difficult_kept: usize,
    /// Unreadable images.
    pub unreadable: Vec<UnreadableImage>,
}

impl Dataset {
    /// Number of classes.
    #[must_use]
    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// The width and height of every box with an area, in the pixels of the network's `input`
    /// square (what anchors are clustered on and what a run's advice measures): its image
    /// letterboxed into it, or with `tile` the tile it is seen in when its image is larger than
    /// a tile (tiles are letterboxed to `input`, see [`crate::tiles`]); and how many images had
    /// no known size (their boxes are taken unscaled).
    #[must_use]
    pub fn input_box_sizes(&self, input: u32, tile: Option<u32>) -> (Vec<[f64; 2]>, usize) {
        let input = f64::from(input);
        let unknown = self.samples.iter().filter(|s| s.image_size.is_none()).count();
        let sizes = self
            .samples
            .iter()
            .flat_map(|s| {
                let scale = s.image_size.map_or(1.0, |sz| {
                    let (w, h) = (f64::from(sz.width.max(1)), f64::from(sz.height.max(1)));
                    match tile.map(f64::from) {
                        Some(side) if w > side || h > side => input / side,
                        _ => (input / w).min(input / h),
                    }
                });
                s.boxes.iter().map(move |b| {
                    [f64::from(b.bbox.width()) * scale, f64::from(b.bbox.height()) * scale]
                })
            })
            .filter(|[w, h]| *w > 0.0 && *h > 0.0)
            .collect();
        (sizes, unknown)
    }

    /// Counts images, boxes per class and unreadable files (no I/O).
    #[must_use]
    pub fn summary(&self) -> DatasetSummary {
        let mut per_class = vec![0usize; self.class_names.len()];
        let mut boxes = 0;
        let mut images_without_boxes = 0;
        let mut ignored_crowd = 0;
        let mut ignored_difficult = 0;
        let mut difficult_kept = 0;
        for s in &self.samples {
            if s.boxes.is_empty() {
                images_without_boxes += 1;
            }
            for b in &s.boxes {
                boxes += 1;
                if let Some(c) = per_class.get_mut(b.class) {
                    *c += 1;
                }
            }
            difficult_kept += s.difficult.iter().filter(|d| **d).count();
            for ig in &s.ignored {
                match ig.reason {
                    IgnoreReason::Crowd => ignored_crowd += 1,
                    IgnoreReason::Difficult => ignored_difficult += 1,
                }
            }
        }
        DatasetSummary {
            images: self.samples.len(),
            images_without_boxes,
            boxes,
            per_class: self.class_names.iter().cloned().zip(per_class).collect(),
            ignored_crowd,
            ignored_difficult,
            difficult_kept,
            unreadable: self.unreadable.clone(),
        }
    }

    /// A dataset with the samples at `indices` (same classes, no unreadable list).
    #[must_use]
    pub fn subset(&self, indices: &[usize]) -> Self {
        Self {
            class_names: self.class_names.clone(),
            samples: indices.iter().map(|&i| self.samples[i].clone()).collect(),
            unreadable: Vec::new(),
        }
    }

    /// Image paths that appear in more than one sample (sorted).
    #[must_use]
    pub fn duplicate_images(&self) -> Vec<PathBuf> {
        let mut seen: BTreeMap<&Path, usize> = BTreeMap::new();
        for s in &self.samples {
            *seen.entry(s.image_path.as_path()).or_default() += 1;
        }
        seen.into_iter().filter(|(_, n)| *n > 1).map(|(p, _)| p.to_path_buf()).collect()
    }
}

impl fmt::Display for DatasetSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} images ({} without boxes), {} boxes, {} classes",
            self.images,
            self.images_without_boxes,
            self.boxes,
            self.per_class.len()
        )?;
        let width = self.per_class.iter().map(|(n, _)| n.len()).max().unwrap_or(0).max(5);
        writeln!(f, "  {:>3}  {:<width$}  {:>8}", "id", "class", "boxes")?;
        for (i, (name, n)) in self.per_class.iter().enumerate() {
            writeln!(f, "  {i:>3}  {name:<width$}  {n:>8}")?;
        }
        if self.ignored_crowd + self.ignored_difficult > 0 {
            writeln!(
                f,
                "  not trained on: {} crowd, {} difficult (kept for evaluation)",
                self.ignored_crowd, self.ignored_difficult
            )?;
        }
        if self.difficult_kept > 0 {
            writeln!(f, "  difficult boxes trained on: {}", self.difficult_kept)?;
        }
        if self.unreadable.is_empty() {
            write!(f, "  unreadable images: none")
        } else {
            write!(f, "  unreadable images: {}", self.unreadable.len())?;
            for u in self.unreadable.iter().take(10) {
                write!(f, "\n    {}: {}", u.path.display(), u.reason)?;
            }
            if self.unreadable.len() > 10 {
                write!(f, "\n    ... and {} more", self.unreadable.len() - 10)?;
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use yolo3_core::BoxXyxy;

    use super::*;

    #[test]
    fn box_sizes_are_those_of_the_input_letterboxed_or_of_the_tile() {
        let sample = |w: u32, h: u32| Sample {
            image_size: Some(ImageSize { width: w, height: h }),
            ..Sample::new(
                PathBuf::from("x.png"),
                vec![LabeledBox { bbox: BoxXyxy::new(0.0, 0.0, 20.0, 10.0), class: 0 }],
            )
        };
        let dataset = Dataset {
            class_names: vec!["a".into()],
            samples: vec![sample(2000, 1000), sample(300, 200)],
            unreadable: Vec::new(),
        };
        let close =
            |a: [f64; 2], b: [f64; 2]| (a[0] - b[0]).abs() < 1e-9 && (a[1] - b[1]).abs() < 1e-9;
        let (whole, unknown) = dataset.input_box_sizes(416, None);
        assert_eq!(unknown, 0);
        assert!(close(whole[0], [20.0 * 0.208, 10.0 * 0.208]), "{whole:?}");
        // In tiles of 400: the large image's box at 416/400; the small one letterboxed whole.
        let (tiled, _) = dataset.input_box_sizes(416, Some(400));
        assert!(close(tiled[0], [20.8, 10.4]), "{tiled:?}");
        assert!(close(tiled[1], [20.0 * 416.0 / 300.0, 10.0 * 416.0 / 300.0]), "{tiled:?}");
        assert!(close(whole[1], tiled[1]));
    }
}
