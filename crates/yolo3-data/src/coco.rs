//! COCO "instances" JSON annotations.
//!
//! * Category ids (arbitrary, COCO's own run 1..90 with gaps) are remapped to contiguous class
//!   indices in **ascending id order**; class names are the category names in that order.
//! * `bbox` is `[x, y, width, height]` in pixels (top-left corner); it becomes corners
//!   `(x, y, x + width, y + height)`.
//! * `iscrowd: 1` annotations are never trained on; they are kept in
//!   [`Sample::ignored`](crate::Sample::ignored) with [`IgnoreReason::Crowd`] for evaluation.
//! * Every image of `images` becomes a sample, also those without annotations (background).
//! * COCO files are usually one long line, so errors name the JSON path of the field
//!   (`annotations[12] (id 57) bbox`) rather than a line; JSON syntax errors carry line and
//!   column.
//!
//! Image files are `<image_dir>/<file_name>`. Without an explicit `image_dir` the reader looks
//! for the COCO layout (`annotations/instances_val2017.json` next to `val2017/`), then for an
//! `images` folder beside the JSON file, then uses the JSON file's folder.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use yolo3_core::BoxXyxy;

use crate::dataset::{Dataset, IgnoreReason, IgnoredBox, ImageSize, ReadOptions, Sample};
use crate::error::{DataError, Location, Result};
use crate::image_io::image_sizes;
use crate::validate::{check_box, finite};

#[derive(Deserialize)]
struct CocoFile {
    images: Vec<CocoImage>,
    #[serde(default)]
    annotations: Vec<CocoAnnotation>,
    categories: Vec<CocoCategory>,
}

#[derive(Deserialize)]
struct CocoImage {
    id: u64,
    file_name: String,
    #[serde(default)]
    width: u32,
    #[serde(default)]
    height: u32,
}

#[derive(Deserialize)]
struct CocoAnnotation {
    id: u64,
    image_id: u64,
    category_id: u64,
    bbox: Vec<f64>,
    #[serde(default)]
    iscrowd: u8,
}

#[derive(Deserialize)]
struct CocoCategory {
    id: u64,
    name: String,
}

/// The image folder used when none is given (see the module docs).
#[must_use]
pub fn default_coco_image_dir(json_path: &Path) -> PathBuf {
    let dir = json_path.parent().unwrap_or(Path::new(""));
    let stem = json_path.file_stem().unwrap_or_default().to_string_lossy();
    if let (Some(split), Some(up)) = (stem.strip_prefix("instances_"), dir.parent()) {
        let candidate = up.join(split);
        if candidate.is_dir() {
            return candidate;
        }
        let candidate = up.join("images").join(split);
        if candidate.is_dir() {
            return candidate;
        }
    }
    let images = dir.join("images");
    if images.is_dir() {
        images
    } else {
        dir.to_path_buf()
    }
}

/// Reads a COCO instances JSON file.
pub fn read_coco(
    json_path: &Path,
    image_dir: Option<&Path>,
    options: &ReadOptions,
) -> Result<Dataset> {
    let text = yolo3_io::fsio::read_text(json_path)
        .map_err(|e| DataError::io(json_path, "cannot read annotations", e))?;
    let file: CocoFile = serde_json::from_str(&text).map_err(|e| DataError::json(json_path, e))?;
    let at = Location::file(json_path);
    let image_dir = image_dir.map_or_else(|| default_coco_image_dir(json_path), Path::to_path_buf);

    let mut categories: Vec<&CocoCategory> = file.categories.iter().collect();
    categories.sort_by_key(|c| c.id);
    let mut class_of: HashMap<u64, usize> = HashMap::new();
    for (i, c) in categories.iter().enumerate() {
        if class_of.insert(c.id, i).is_some() {
            return Err(DataError::Classes {
                at,
                message: format!("category id {} appears twice", c.id),
            });
        }
    }
    let class_names: Vec<String> = categories.iter().map(|c| c.name.clone()).collect();

    let mut sample_of: HashMap<u64, usize> = HashMap::new();
    let mut samples = Vec::with_capacity(file.images.len());
    for (i, im) in file.images.iter().enumerate() {
        if sample_of.insert(im.id, i).is_some() {
            return Err(DataError::syntax(
                at,
                format!("images[{i}] id"),
                format!("image id {} appears twice", im.id),
            ));
        }
        let mut s = Sample::new(image_dir.join(&im.file_name), Vec::new());
        s.image_id = Some(im.id);
        s.image_size = (im.width > 0 && im.height > 0)
            .then_some(ImageSize { width: im.width, height: im.height });
        samples.push(s);
    }

    let mut unreadable = Vec::new();
    let mut keep = vec![true; samples.len()];
    if options.read_image_headers {
        let paths: Vec<PathBuf> = samples.iter().map(|s| s.image_path.clone()).collect();
        for ((s, k), h) in samples.iter_mut().zip(keep.iter_mut()).zip(image_sizes(&paths)) {
            match h {
                Ok(size) => {
                    if s.image_size.is_some_and(|a| a != size) {
                        tracing::warn!(image = %s.image_path.display(), "annotated size {:?} differs from the image's {:?}; using the image's", s.image_size, size);
                    }
                    s.image_size = Some(size);
                }
                Err(u) => {
                    tracing::warn!(image = %u.path.display(), "unreadable image: {}", u.reason);
                    unreadable.push(u);
                    *k = false;
                }
            }
        }
    }

    let mut annotation_ids: HashMap<u64, usize> = HashMap::new();
    for (i, a) in file.annotations.iter().enumerate() {
        let field = |name: &str| format!("annotations[{i}] (id {}) {name}", a.id);
        if let Some(j) = annotation_ids.insert(a.id, i) {
            // Two boxes under one id: a copy-paste of the file, or two exports merged; COCO's
            // tools keep only one of them.
            return Err(DataError::syntax(
                at,
                field("id"),
                format!("annotation id {} is already used by annotations[{j}]", a.id),
            ));
        }
        let Some(&si) = sample_of.get(&a.image_id) else {
            return Err(DataError::syntax(
                at,
                field("image_id"),
                format!("no image has id {}", a.image_id),
            ));
        };
        let Some(&class) = class_of.get(&a.category_id) else {
            return Err(DataError::syntax(
                at,
                field("category_id"),
                format!("no category has id {}", a.category_id),
            ));
        };
        if a.bbox.len() != 4 {
            return Err(DataError::syntax(
                at,
                field("bbox"),
                format!("expected [x, y, width, height], found {} values", a.bbox.len()),
            ));
        }
        if !keep[si] {
            continue;
        }
        let mut v = [0f64; 4];
        for (k, name) in ["x", "y", "width", "height"].iter().enumerate() {
            v[k] = finite(a.bbox[k], &at, &field(&format!("bbox {name}")))?;
        }
        let bbox =
            BoxXyxy::new(v[0] as f32, v[1] as f32, (v[0] + v[2]) as f32, (v[1] + v[3]) as f32);
        let s = &mut samples[si];
        let Some(lb) = check_box(bbox, class, s.image_size, options, &at, &field("bbox"))? else {
            continue;
        };
        if a.iscrowd != 0 {
            s.ignored.push(IgnoredBox { bbox: lb, reason: IgnoreReason::Crowd });
        } else {
            s.boxes.push(lb);
            s.difficult.push(false);
        }
    }
    let samples = samples.into_iter().zip(keep).filter_map(|(s, k)| k.then_some(s)).collect();
    Ok(Dataset { class_names, samples, unreadable })
}
