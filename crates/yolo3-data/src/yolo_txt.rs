//! YOLO / ultralytics txt labels.
//!
//! One label file per image, one object per line: `class cx cy w h`, all but the class
//! normalised to `[0, 1]` by the image width and height (a polygon line `class x1 y1 x2 y2 ...`
//! of ultralytics segmentation labels is reduced to its bounding box). The label file of
//! `.../images/.../name.jpg` is `.../labels/.../name.txt`: the **last** `images` component of
//! the path becomes `labels` and the extension `.txt` (ultralytics' rule); an image path without
//! an `images` component has its label file beside it. A missing label file means an image
//! without objects. The image size comes from the image header, which is therefore always read.
//!
//! The image set is a folder (searched recursively, sorted) or a list file with one image path
//! per line; relative paths in a list file resolve against the list file's folder.

use std::ffi::OsStr;
use std::fmt::Write as _;
use std::path::{Component, Path, PathBuf};

use rayon::prelude::*;
use yolo3_core::BoxXyxy;

use crate::dataset::{Dataset, ImageSize, ReadOptions, Sample};
use crate::error::{DataError, Location, Result};
use crate::image_io::image_size;
use crate::unique::UniqueNames;
use crate::validate::{check_box, parse_class, parse_number};

/// Image file extensions the folder search collects. Formats the decoder does not support are
/// collected too, so they show up as unreadable instead of disappearing.
pub const IMAGE_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png", "bmp", "tif", "tiff", "webp"];

/// The label file of an image (see the module docs).
#[must_use]
pub fn label_path_for(image: &Path) -> PathBuf {
    let comps: Vec<Component<'_>> = image.components().collect();
    let last_images = comps.iter().rposition(|c| c.as_os_str() == OsStr::new("images"));
    let mut out = PathBuf::new();
    for (i, c) in comps.iter().enumerate() {
        if Some(i) == last_images && i + 1 < comps.len() {
            out.push("labels");
        } else {
            out.push(c.as_os_str());
        }
    }
    out.set_extension("txt");
    out
}

/// Image files under `dir`, recursively, sorted. Symbolic links are followed, but a folder or
/// file reached a second time (by device and inode: a link back up the tree, two links to one
/// folder, hard links) is listed once, with one warning that counts what was skipped; without
/// that a link loop lists every image some 40 times, in both the training and the validation
/// split.
pub fn list_images(dir: &Path) -> Result<Vec<PathBuf>> {
    struct Walk {
        seen: std::collections::HashSet<(u64, u64)>,
        out: Vec<PathBuf>,
        skipped: usize,
    }
    impl Walk {
        /// Whether `meta`'s file was not met before (and is now).
        fn first_visit(&mut self, meta: &std::fs::Metadata) -> bool {
            use std::os::unix::fs::MetadataExt as _;
            let new = self.seen.insert((meta.dev(), meta.ino()));
            self.skipped += usize::from(!new);
            new
        }

        fn walk(&mut self, dir: &Path) -> Result<()> {
            let rd =
                std::fs::read_dir(dir).map_err(|e| DataError::io(dir, "cannot list folder", e))?;
            let mut entries = rd
                .map(|e| e.map(|e| e.path()))
                .collect::<std::io::Result<Vec<_>>>()
                .map_err(|e| DataError::io(dir, "cannot list folder", e))?;
            // Name order, so that of two paths to one file the first by name is kept.
            entries.sort();
            for p in entries {
                // A dangling link has no metadata: not an image to list.
                let Ok(meta) = std::fs::metadata(&p) else { continue };
                if meta.is_dir() {
                    if self.first_visit(&meta) {
                        self.walk(&p)?;
                    }
                } else if p
                    .extension()
                    .and_then(OsStr::to_str)
                    .is_some_and(|x| IMAGE_EXTENSIONS.iter().any(|e| x.eq_ignore_ascii_case(e)))
                    && self.first_visit(&meta)
                {
                    self.out.push(p);
                }
            }
            Ok(())
        }
    }
    let mut walk = Walk { seen: std::collections::HashSet::new(), out: Vec::new(), skipped: 0 };
    if let Ok(meta) = std::fs::metadata(dir) {
        walk.first_visit(&meta);
    }
    walk.walk(dir)?;
    if walk.skipped > 0 {
        tracing::warn!(
            "{}: {} paths lead to a folder or image already listed (symbolic links, a link \
             loop or hard links); each is read once",
            dir.display(),
            walk.skipped
        );
    }
    walk.out.sort();
    Ok(walk.out)
}

/// Reads a list file of image paths (one per line, blank lines skipped).
pub fn read_image_list(list: &Path) -> Result<Vec<PathBuf>> {
    let text = yolo3_io::fsio::read_text(list)
        .map_err(|e| DataError::io(list, "cannot read image list", e))?;
    let base = list.parent().unwrap_or(Path::new(""));
    Ok(text.lines().map(str::trim).filter(|l| !l.is_empty()).map(|l| base.join(l)).collect())
}

/// Reads a YOLO txt dataset. `images` is a folder of images or a list file; `class_names` come
/// from a names file (see [`read_class_names`](crate::read_class_names)).
pub fn read_yolo(
    images: &Path,
    class_names: Vec<String>,
    options: &ReadOptions,
) -> Result<Dataset> {
    let paths = if images.is_dir() { list_images(images)? } else { read_image_list(images)? };
    read_yolo_images(&paths, class_names, options)
}

/// Reads the YOLO labels of the given images.
pub fn read_yolo_images(
    images: &[PathBuf],
    class_names: Vec<String>,
    options: &ReadOptions,
) -> Result<Dataset> {
    let mut owner: std::collections::HashMap<PathBuf, &Path> = std::collections::HashMap::new();
    for image in images {
        let label = label_path_for(image);
        if let Some(first) = owner.insert(label.clone(), image) {
            return Err(DataError::syntax(
                Location::file(&label),
                "label file",
                format!(
                    "belongs to both {} and {}: images of one folder need distinct stems",
                    first.display(),
                    image.display()
                ),
            ));
        }
    }
    let num_classes = class_names.len();
    let results: Vec<Result<std::result::Result<Sample, crate::UnreadableImage>>> =
        images.par_iter().map(|p| read_one(p, num_classes, options)).collect();
    let mut dataset =
        Dataset { class_names, samples: Vec::with_capacity(images.len()), unreadable: Vec::new() };
    for r in results {
        match r? {
            Ok(s) => dataset.samples.push(s),
            Err(u) => {
                tracing::warn!(image = %u.path.display(), "unreadable image: {}", u.reason);
                dataset.unreadable.push(u);
            }
        }
    }
    Ok(dataset)
}

fn read_one(
    image: &Path,
    num_classes: usize,
    options: &ReadOptions,
) -> Result<std::result::Result<Sample, crate::UnreadableImage>> {
    let size = match image_size(image) {
        Ok(s) => s,
        Err(e) => {
            let reason = crate::image_io::source_message(&e);
            return Ok(Err(crate::UnreadableImage { path: image.to_path_buf(), reason }));
        }
    };
    let label = label_path_for(image);
    let mut sample = Sample::new(image.to_path_buf(), Vec::new());
    sample.image_size = Some(size);
    let text = match yolo3_io::fsio::read_text(&label) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ok(sample)),
        Err(e) => return Err(DataError::io(&label, "cannot read labels", e)),
    };
    let (w, h) = (f64::from(size.width), f64::from(size.height));
    for (i, line) in text.lines().enumerate() {
        let at = Location::line(&label, i + 1);
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.is_empty() {
            continue;
        }
        let class = parse_class(fields[0], num_classes, &at, "class")?;
        let bbox = if fields.len() == 5 {
            let mut v = [0f64; 4];
            for (k, name) in ["cx", "cy", "w", "h"].iter().enumerate() {
                v[k] = parse_number(fields[k + 1], &at, name)?;
            }
            let (cx, cy, bw, bh) = (v[0] * w, v[1] * h, v[2] * w, v[3] * h);
            BoxXyxy::new(
                (cx - bw / 2.0) as f32,
                (cy - bh / 2.0) as f32,
                (cx + bw / 2.0) as f32,
                (cy + bh / 2.0) as f32,
            )
        } else if fields.len() >= 7 && fields.len() % 2 == 1 {
            let (mut x0, mut y0, mut x1, mut y1) =
                (f64::INFINITY, f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
            for (k, pair) in fields[1..].chunks(2).enumerate() {
                let x = parse_number(pair[0], &at, &format!("polygon x{}", k + 1))? * w;
                let y = parse_number(pair[1], &at, &format!("polygon y{}", k + 1))? * h;
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
            BoxXyxy::new(x0 as f32, y0 as f32, x1 as f32, y1 as f32)
        } else {
            return Err(DataError::syntax(
                at,
                "line",
                format!(
                    "expected `class cx cy w h` (5 values) or a polygon, found {} values",
                    fields.len()
                ),
            ));
        };
        if let Some(lb) = check_box(bbox, class, Some(size), options, &at, "box")? {
            sample.boxes.push(lb);
            sample.difficult.push(false);
        }
    }
    Ok(Ok(sample))
}

/// How [`write_yolo`] places the images under `out_dir/images`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ImagePlacement {
    /// Hard-link when possible, copy otherwise.
    #[default]
    LinkOrCopy,
    /// Always copy.
    Copy,
}

/// What [`write_yolo`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct YoloWritten {
    /// The image paths written, in sample order.
    pub images: Vec<PathBuf>,
    /// `(source image, name written)` of the images whose file name had to change so that
    /// every image has a label file of its own ([`UniqueNames`]).
    pub renamed: Vec<(PathBuf, String)>,
}

/// Writes `dataset` as a YOLO txt dataset: `out_dir/images/<name>`, `out_dir/labels/<stem>.txt`
/// and `out_dir/classes.txt`. `out_dir` must be new or empty: nothing in it is ever replaced or
/// deleted. Images whose stems collide (`a.png` and `a.jpg`, or `x.png` from two folders) get
/// `_2`, `_3`, ... suffixes ([`YoloWritten::renamed`]). Only training boxes are written (the
/// format has no crowd/difficult flags).
pub fn write_yolo(
    dataset: &Dataset,
    out_dir: &Path,
    placement: ImagePlacement,
) -> Result<YoloWritten> {
    let occupied = match std::fs::read_dir(out_dir) {
        Ok(mut rd) => rd.next().is_some(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
        Err(e) => return Err(DataError::io(out_dir, "cannot list folder", e)),
    };
    if occupied {
        return Err(DataError::OutputNotEmpty { path: out_dir.to_path_buf() });
    }
    let img_dir = out_dir.join("images");
    let lbl_dir = out_dir.join("labels");
    for d in [&img_dir, &lbl_dir] {
        std::fs::create_dir_all(d).map_err(|e| DataError::io(d, "cannot create folder", e))?;
    }
    crate::dataset::write_class_names(
        &out_dir.join("classes.txt"),
        &dataset.class_names,
        yolo3_io::fsio::Existing::Keep,
    )?;
    let mut names = UniqueNames::new();
    let mut written = YoloWritten::default();
    for (i, s) in dataset.samples.iter().enumerate() {
        let original = s
            .image_path
            .file_name()
            .map_or_else(|| format!("image{i}.png"), |n| n.to_string_lossy().into_owned());
        let name = names.claim(&original);
        if name != original {
            written.renamed.push((s.image_path.clone(), name.clone()));
        }
        let size = match s.image_size {
            Some(sz) => sz,
            None => image_size(&s.image_path)?,
        };
        let dst = img_dir.join(&name);
        place(&s.image_path, &dst, placement)?;
        let label = label_path_for(&dst);
        write_new(&label, yolo_lines(&s.boxes, size).as_bytes())
            .map_err(|e| DataError::io(&label, "cannot write labels", e))?;
        written.images.push(dst);
    }
    Ok(written)
}

/// Creates `path` and writes `bytes`; an existing file is an error, never replaced.
fn write_new(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write as _;
    std::fs::OpenOptions::new().write(true).create_new(true).open(path)?.write_all(bytes)
}

/// The label-file text of `boxes` in an image of `size`.
#[must_use]
pub fn yolo_lines(boxes: &[yolo3_core::LabeledBox], size: ImageSize) -> String {
    let mut text = String::new();
    for b in boxes {
        push_yolo_line(&mut text, b.class, &b.bbox, size);
        text.push('\n');
    }
    text
}

/// Appends one YOLO label line without its newline: `class cx cy w h`, normalised to `size`
/// with six decimals.
pub fn push_yolo_line(
    text: &mut String,
    class: usize,
    bbox: &yolo3_core::BoxXyxy,
    size: ImageSize,
) {
    let (w, h) = (f64::from(size.width), f64::from(size.height));
    let c = bbox.to_cxcywh();
    let _ = write!(
        text,
        "{class} {:.6} {:.6} {:.6} {:.6}",
        f64::from(c.cx) / w,
        f64::from(c.cy) / h,
        f64::from(c.w) / w,
        f64::from(c.h) / h
    );
}

fn place(src: &Path, dst: &Path, placement: ImagePlacement) -> Result<()> {
    if placement == ImagePlacement::LinkOrCopy && std::fs::hard_link(src, dst).is_ok() {
        return Ok(());
    }
    let bytes =
        yolo3_io::fsio::read_bytes(src).map_err(|e| DataError::io(src, "cannot read image", e))?;
    write_new(dst, &bytes).map_err(|e| DataError::io(dst, "cannot write image", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_path_replaces_the_last_images_component() {
        assert_eq!(
            label_path_for(Path::new("/d/images/train/a.jpg")),
            PathBuf::from("/d/labels/train/a.txt")
        );
        assert_eq!(
            label_path_for(Path::new("images/x/images/b.png")),
            PathBuf::from("images/x/labels/b.txt")
        );
        assert_eq!(label_path_for(Path::new("/d/pics/c.jpeg")), PathBuf::from("/d/pics/c.txt"));
    }

    #[test]
    fn link_loops_and_links_to_listed_files_are_listed_once() {
        let tmp = tempfile::tempdir().unwrap();
        let images = tmp.path().join("images");
        std::fs::create_dir_all(images.join("sub")).unwrap();
        for name in ["a.jpg", "sub/b.png"] {
            std::fs::write(images.join(name), b"x").unwrap();
        }
        // A loop back to the top, a second link to a listed folder, a hard link, a link to a
        // listed file, and a dangling link.
        std::os::unix::fs::symlink(&images, images.join("sub/loop")).unwrap();
        std::os::unix::fs::symlink(images.join("sub"), images.join("sub2")).unwrap();
        std::fs::hard_link(images.join("a.jpg"), images.join("c.jpg")).unwrap();
        std::os::unix::fs::symlink(images.join("a.jpg"), images.join("d.jpg")).unwrap();
        std::os::unix::fs::symlink(images.join("none.jpg"), images.join("e.jpg")).unwrap();
        let listed = list_images(&images).unwrap();
        assert_eq!(listed, [images.join("a.jpg"), images.join("sub/b.png")]);
        // A link to a folder outside is followed like a folder.
        let outside = tmp.path().join("more");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("f.jpg"), b"y").unwrap();
        std::os::unix::fs::symlink(&outside, images.join("more")).unwrap();
        assert_eq!(list_images(&images).unwrap().len(), 3);
    }
}
