//! What detection writes per image (the annotated picture, YOLO txt labels, box crops) and for
//! the run (`predictions.json`: a COCO results list `{image_id, category_id, bbox: [x, y, w,
//! h], score}` in original-image pixels, `category_id` the 0-based class index;
//! `images.json`: `{id, file_name, width, height}` of every image read, to join the two).

use std::fmt::Write as _;
use std::path::Path;

use image::RgbImage;
use serde::Serialize;
use yolo3_data::ImageSize;
use yolo3_io::fsio::FileError;
use yolo3_io::one_line;
use yolo3_model::DetectedBox;
use yolo3_viz::{annotate, palette, AnnotateOptions, Annotation};

use crate::error::{PredictError, Result};
use crate::inputs::ImageJob;

/// One entry of `predictions.json`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// The image's id ([`ImageJob::id`]).
    pub image_id: i64,
    /// 0-based class index.
    pub category_id: usize,
    /// `[x, y, w, h]` in image pixels, rounded to 3 decimals.
    pub bbox: [f64; 4],
    /// Rounded to 5 decimals.
    pub score: f64,
}

/// One entry of `images.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ImageEntry {
    /// The image's id.
    pub id: i64,
    /// Its output name.
    pub file_name: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// Which per-image outputs to write (`detect`'s `--no-images`, `--save-txt`, `--save-conf`,
/// `--line-width`, `--save-crop`).
#[derive(Debug, Clone, Default)]
pub struct ImageOutputs {
    /// No annotated image.
    pub no_images: bool,
    /// `labels/<stem>.txt` in YOLO's format.
    pub save_txt: bool,
    /// The score after each label line.
    pub save_conf: bool,
    /// Box outline width (`None`: from the image size).
    pub line_width: Option<u32>,
    /// With `--save-crop`, the folder under `crops/` of each class (distinct names).
    pub crop_dirs: Option<Vec<String>>,
}

/// One folder name per class for `crops/`: the class name with anything but letters, digits,
/// `-` and `_` replaced by `_`, made distinct (`_2`, ...) where two names collide.
#[must_use]
pub fn crop_dirs(names: &[String]) -> Vec<String> {
    let mut unique = yolo3_data::UniqueNames::new();
    names
        .iter()
        .map(|n| {
            let clean: String = n
                .chars()
                .map(|c| if c.is_alphanumeric() || c == '-' || c == '_' { c } else { '_' })
                .collect();
            unique.claim(if clean.is_empty() { "_" } else { &clean })
        })
        .collect()
}

/// What was written for one image.
#[derive(Clone, Debug)]
pub struct ImageResult {
    /// Its `images.json` entry.
    pub entry: ImageEntry,
    /// Its `predictions.json` entries.
    pub predictions: Vec<Prediction>,
    /// A write error in one line (the image was detected, but its outputs failed).
    pub error: Option<String>,
}

/// A detection as COCO's `[x, y, w, h]` and score, rounded to 3 and 5 decimals (what
/// `predictions.json` and the video JSON lines hold).
pub(crate) fn coco_box(d: &DetectedBox) -> ([f64; 4], f64) {
    let round = |v: f32, digits: i32| {
        let f = 10f64.powi(digits);
        (f64::from(v) * f).round() / f
    };
    let b = &d.bbox;
    (
        [round(b.x_min, 3), round(b.y_min, 3), round(b.width(), 3), round(b.height(), 3)],
        round(d.score, 5),
    )
}

/// `image` with its detections drawn (labels `name score`, one colour per class).
pub(crate) fn drawn(
    image: &RgbImage,
    dets: &[DetectedBox],
    names: &[String],
    saving: &ImageOutputs,
) -> RgbImage {
    let annotations: Vec<Annotation> = dets
        .iter()
        .map(|d| Annotation {
            bbox: d.bbox,
            label: format!("{} {:.2}", names.get(d.class).map_or("?", String::as_str), d.score),
            color: palette::color(d.class),
        })
        .collect();
    let mut drawn = image.clone();
    let options = AnnotateOptions { thickness: saving.line_width, ..AnnotateOptions::default() };
    annotate(&mut drawn, &annotations, &options);
    drawn
}

/// Writes the annotated image, labels and crops of one image and returns its predictions.
#[must_use]
pub fn write_outputs(
    job: &ImageJob,
    image: &RgbImage,
    dets: &[DetectedBox],
    names: &[String],
    out_dir: &Path,
    saving: &ImageOutputs,
) -> ImageResult {
    let (w, h) = image.dimensions();
    let predictions = dets
        .iter()
        .map(|d| {
            let (bbox, score) = coco_box(d);
            Prediction { image_id: job.id, category_id: d.class, bbox, score }
        })
        .collect();
    let mut errors = Vec::new();
    if !saving.no_images {
        let drawn = drawn(image, dets, names, saving);
        let path = out_dir.join(&job.out_name);
        if let Err(e) = yolo3_viz::save_image(&drawn, &path) {
            // The error names the file; its chain says why ("No space left on device").
            errors.push(one_line(&e));
        }
    }
    if saving.save_txt {
        let mut text = String::new();
        for d in dets {
            yolo3_data::push_yolo_line(
                &mut text,
                d.class,
                &d.bbox,
                ImageSize { width: w, height: h },
            );
            if saving.save_conf {
                let _ = write!(text, " {:.5}", d.score);
            }
            text.push('\n');
        }
        let stem = Path::new(&job.out_name)
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let path = out_dir.join("labels").join(format!("{stem}.txt"));
        if let Err(e) = std::fs::write(&path, text) {
            errors.push(format!("writing {}: {e}", path.display()));
        }
    }
    if let Some(dirs) = &saving.crop_dirs {
        write_crops(job, image, dets, dirs, out_dir, &mut errors);
    }
    ImageResult {
        entry: ImageEntry { id: job.id, file_name: job.out_name.clone(), width: w, height: h },
        predictions,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    }
}

/// Writes `crops/<class>/<stem>_<k>.<ext>`: the pixels of detection `k`, its box rounded
/// outwards to whole pixels (boxes are already clipped to the image).
fn write_crops(
    job: &ImageJob,
    image: &RgbImage,
    dets: &[DetectedBox],
    dirs: &[String],
    out_dir: &Path,
    errors: &mut Vec<String>,
) {
    let name = Path::new(&job.out_name);
    let stem = name.file_stem().map_or_else(String::new, |s| s.to_string_lossy().into_owned());
    let ext = name.extension().map_or_else(|| "png".into(), |e| e.to_string_lossy().into_owned());
    let (w, h) = image.dimensions();
    for (k, d) in dets.iter().enumerate() {
        let x0 = (d.bbox.x_min.floor().max(0.0) as u32).min(w.saturating_sub(1));
        let y0 = (d.bbox.y_min.floor().max(0.0) as u32).min(h.saturating_sub(1));
        let x1 = (d.bbox.x_max.ceil() as u32).clamp(x0 + 1, w);
        let y1 = (d.bbox.y_max.ceil() as u32).clamp(y0 + 1, h);
        let crop = image::imageops::crop_imm(image, x0, y0, x1 - x0, y1 - y0).to_image();
        let dir = out_dir.join("crops").join(dirs.get(d.class).map_or("_", String::as_str));
        let path = dir.join(format!("{stem}_{k}.{ext}"));
        let written = std::fs::create_dir_all(&dir)
            .map_err(|e| format!("creating {}: {e}", dir.display()))
            .and_then(|()| yolo3_viz::save_image(&crop, &path).map_err(|e| one_line(&e)));
        if let Err(e) = written {
            errors.push(e);
        }
    }
}

/// Writes `value` as pretty JSON to `path`, atomically.
pub fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> Result<()> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|source| PredictError::Json { path: path.to_owned(), source })?;
    yolo3_io::fsio::write_atomic(path, text.as_bytes(), yolo3_io::fsio::Existing::Replace)
        .map_err(FileError::on("writing", path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A failed write names the output once and says why (it said "writing X: X: cannot
    /// write", with the cause, a full disk say, left out).
    #[test]
    fn a_failed_write_names_the_output_once_with_its_cause() {
        let tmp = tempfile::tempdir().unwrap();
        // The run folder's place taken by a file: every write into it fails.
        let out_dir = tmp.path().join("run");
        std::fs::write(&out_dir, b"not a folder").unwrap();
        let job =
            ImageJob { path: "photo.png".into(), id: 0, out_name: "photo.png".into(), taken: None };
        let saving = ImageOutputs::default();
        let image = RgbImage::new(8, 8);
        let result = write_outputs(&job, &image, &[], &[], &out_dir, &saving);
        let error = result.error.expect("the write failed");
        let shown = out_dir.join("photo.png").display().to_string();
        assert_eq!(error.matches(&shown).count(), 1, "{error}");
        assert!(error.contains("Not a directory"), "{error}");
    }
}
