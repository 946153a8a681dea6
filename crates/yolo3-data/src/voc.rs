//! Pascal VOC XML annotations.
//!
//! A VOC folder holds `Annotations/*.xml` and `JPEGImages/`; an image path is
//! `<root>/JPEGImages/<filename>` (falling back to the XML file's own folder when there is no
//! `JPEGImages` folder, and to `<xml stem>.jpg` when `<filename>` is missing).
//!
//! VOC box corners are 1-based inclusive pixel indices; they are converted to the crate's
//! continuous 0-based corners as `(xmin - 1, ymin - 1, xmax, ymax)`, so a box covering pixels
//! 1..=10 is 10 wide. Class names come from a given list, or are collected from all files and
//! sorted. `difficult` objects follow [`DifficultPolicy`]. Error lines are the XML lines.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use roxmltree::{Document, Node};
use yolo3_core::{BoxXyxy, LabeledBox};

use crate::dataset::{
    Dataset, DifficultPolicy, IgnoreReason, IgnoredBox, ImageSize, ReadOptions, Sample,
};
use crate::error::{DataError, Location, Result};
use crate::image_io::image_sizes;
use crate::validate::{check_box, parse_number};

struct RawObject {
    name: String,
    name_line: usize,
    box_line: usize,
    index: usize,
    bbox: BoxXyxy,
    difficult: bool,
}

struct RawFile {
    xml: PathBuf,
    image: PathBuf,
    size: Option<ImageSize>,
    objects: Vec<RawObject>,
}

/// Reads a VOC folder: every `Annotations/*.xml` (sorted by name), or only the ids listed in
/// `ImageSets/Main/<split>.txt` when `split` is given.
pub fn read_voc_dir(
    root: &Path,
    split: Option<&str>,
    class_names: Option<Vec<String>>,
    options: &ReadOptions,
) -> Result<Dataset> {
    let ann = root.join("Annotations");
    let files = if let Some(split) = split {
        let list = root.join("ImageSets").join("Main").join(format!("{split}.txt"));
        let text = yolo3_io::fsio::read_text(&list)
            .map_err(|e| DataError::io(&list, "cannot read split list", e))?;
        text.split_whitespace().map(|id| ann.join(format!("{id}.xml"))).collect()
    } else {
        list_files(&ann, "xml")?
    };
    read_voc_files(&files, class_names, options)
}

/// Lists files with extension `ext` (case-insensitive) in `dir`, sorted.
pub(crate) fn list_files(dir: &Path, ext: &str) -> Result<Vec<PathBuf>> {
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, "cannot list folder", e))?;
    let mut files = Vec::new();
    for entry in rd {
        let p = entry.map_err(|e| DataError::io(dir, "cannot list folder", e))?.path();
        if p.is_file() && p.extension().is_some_and(|x| x.eq_ignore_ascii_case(ext)) {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads a list of VOC XML files.
pub fn read_voc_files(
    xml_files: &[PathBuf],
    class_names: Option<Vec<String>>,
    options: &ReadOptions,
) -> Result<Dataset> {
    let parsed: Vec<Result<RawFile>> = xml_files.par_iter().map(|p| parse_file(p)).collect();
    let raw: Vec<RawFile> = parsed.into_iter().collect::<Result<_>>()?;
    let given = class_names.is_some();
    let class_names = class_names.unwrap_or_else(|| {
        let set: BTreeSet<&str> =
            raw.iter().flat_map(|f| f.objects.iter().map(|o| o.name.as_str())).collect();
        set.into_iter().map(str::to_string).collect()
    });
    let headers: Vec<Option<Result<ImageSize, _>>> = if options.read_image_headers {
        let paths: Vec<PathBuf> = raw.iter().map(|f| f.image.clone()).collect();
        image_sizes(&paths).into_iter().map(Some).collect()
    } else {
        raw.iter().map(|_| None).collect()
    };
    let mut dataset =
        Dataset { class_names, samples: Vec::with_capacity(raw.len()), unreadable: Vec::new() };
    for (f, header) in raw.into_iter().zip(headers) {
        let size = match header {
            Some(Ok(h)) => {
                if f.size.is_some_and(|s| s != h) {
                    tracing::warn!(xml = %f.xml.display(), "annotated size {:?} differs from the image's {:?}; using the image's", f.size, h);
                }
                Some(h)
            }
            Some(Err(u)) => {
                tracing::warn!(image = %u.path.display(), "unreadable image: {}", u.reason);
                dataset.unreadable.push(u);
                continue;
            }
            None => f.size,
        };
        let mut sample = Sample::new(f.image, Vec::new());
        sample.image_size = size;
        for o in f.objects {
            let at = Location::line(&f.xml, o.name_line);
            let field = format!("object {} name", o.index);
            let Some(class) = dataset.class_names.iter().position(|n| *n == o.name) else {
                if given && options.skip_unknown_classes {
                    continue;
                }
                return Err(DataError::UnknownClass { at, field, name: o.name });
            };
            let at = Location::line(&f.xml, o.box_line);
            let field = format!("object {} bndbox", o.index);
            let Some(lb) = check_box(o.bbox, class, size, options, &at, &field)? else { continue };
            if o.difficult && options.difficult == DifficultPolicy::Skip {
                sample.ignored.push(IgnoredBox { bbox: lb, reason: IgnoreReason::Difficult });
            } else {
                sample.boxes.push(lb);
                sample.difficult.push(o.difficult);
            }
        }
        dataset.samples.push(sample);
    }
    Ok(dataset)
}

fn line_of(doc: &Document<'_>, node: Node<'_, '_>) -> usize {
    doc.text_pos_at(node.range().start).row as usize
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|c| c.has_tag_name(name))
}

fn text_of<'a>(node: Node<'a, '_>) -> &'a str {
    node.text().unwrap_or("").trim()
}

fn parse_file(xml: &Path) -> Result<RawFile> {
    let text = yolo3_io::fsio::read_text(xml)
        .map_err(|e| DataError::io(xml, "cannot read annotation", e))?;
    let doc = Document::parse(&text)
        .map_err(|source| DataError::Xml { path: xml.to_path_buf(), source })?;
    let root = doc.root_element();
    if !root.has_tag_name("annotation") {
        return Err(DataError::syntax(
            Location::line(xml, line_of(&doc, root)),
            "annotation",
            "the root element is not <annotation>",
        ));
    }
    let filename = child(root, "filename").map(text_of).filter(|s| !s.is_empty()).map_or_else(
        || format!("{}.jpg", xml.file_stem().unwrap_or_default().to_string_lossy()),
        str::to_string,
    );
    let xml_dir = xml.parent().unwrap_or(Path::new(""));
    let jpeg_dir = xml_dir.parent().map(|p| p.join("JPEGImages"));
    let image = match jpeg_dir {
        Some(d) if d.is_dir() => d.join(&filename),
        _ => xml_dir.join(&filename),
    };
    let size = match child(root, "size") {
        Some(s) => {
            let mut dims = [0u32; 2];
            for (k, name) in ["width", "height"].iter().enumerate() {
                if let Some(n) = child(s, name) {
                    let at = Location::line(xml, line_of(&doc, n));
                    let v = parse_number(text_of(n), &at, &format!("size {name}"))?;
                    if v < 0.0 || v.fract() != 0.0 || v > f64::from(u32::MAX) {
                        return Err(DataError::syntax(
                            at,
                            format!("size {name}"),
                            format!("{v} is not a valid image size"),
                        ));
                    }
                    dims[k] = v as u32;
                }
            }
            // VOC files in the wild sometimes carry 0x0; treat that as "unknown".
            (dims[0] > 0 && dims[1] > 0).then_some(ImageSize { width: dims[0], height: dims[1] })
        }
        None => None,
    };
    let mut objects = Vec::new();
    for (i, obj) in root.children().filter(|c| c.has_tag_name("object")).enumerate() {
        let index = i + 1;
        let at = Location::line(xml, line_of(&doc, obj));
        let name_node = child(obj, "name").ok_or_else(|| {
            DataError::syntax(at.clone(), format!("object {index} name"), "missing <name>")
        })?;
        let name = text_of(name_node).to_string();
        if name.is_empty() {
            return Err(DataError::syntax(
                Location::line(xml, line_of(&doc, name_node)),
                format!("object {index} name"),
                "empty <name>",
            ));
        }
        let difficult = match child(obj, "difficult") {
            Some(d) => {
                let t = text_of(d);
                let dat = Location::line(xml, line_of(&doc, d));
                parse_number(t, &dat, &format!("object {index} difficult"))? != 0.0
            }
            None => false,
        };
        let bnd = child(obj, "bndbox").ok_or_else(|| {
            DataError::syntax(at.clone(), format!("object {index} bndbox"), "missing <bndbox>")
        })?;
        let mut v = [0f64; 4];
        for (k, name) in ["xmin", "ymin", "xmax", "ymax"].iter().enumerate() {
            let field = format!("object {index} bndbox {name}");
            let n = child(bnd, name).ok_or_else(|| {
                DataError::syntax(
                    Location::line(xml, line_of(&doc, bnd)),
                    field.clone(),
                    format!("missing <{name}>"),
                )
            })?;
            v[k] = parse_number(text_of(n), &Location::line(xml, line_of(&doc, n)), &field)?;
        }
        let bbox = BoxXyxy::new((v[0] - 1.0) as f32, (v[1] - 1.0) as f32, v[2] as f32, v[3] as f32);
        objects.push(RawObject {
            name,
            name_line: line_of(&doc, name_node),
            box_line: line_of(&doc, bnd),
            index,
            bbox,
            difficult,
        });
    }
    Ok(RawFile { xml: xml.to_path_buf(), image, size, objects })
}

/// Writes one VOC XML annotation for `sample` (used by tests and conversions). Ignored
/// difficult boxes are written with `<difficult>1</difficult>`; crowd boxes are not written.
pub fn write_voc_xml(
    sample: &Sample,
    class_names: &[String],
    size: ImageSize,
    path: &Path,
) -> Result<()> {
    let filename = sample.image_path.file_name().unwrap_or_default().to_string_lossy();
    let mut s = format!(
        "<annotation>\n  <filename>{}</filename>\n  <size>\n    <width>{}</width>\n    <height>{}</height>\n    <depth>3</depth>\n  </size>\n",
        escape(&filename),
        size.width,
        size.height
    );
    let mut objects: Vec<(LabeledBox, bool)> = sample
        .boxes
        .iter()
        .zip(sample.difficult.iter().chain(std::iter::repeat(&false)))
        .map(|(b, d)| (*b, *d))
        .collect();
    objects.extend(
        sample
            .ignored
            .iter()
            .filter(|i| i.reason == IgnoreReason::Difficult)
            .map(|i| (i.bbox, true)),
    );
    for (b, difficult) in objects {
        let name = class_names.get(b.class).map_or("?", String::as_str);
        let _ = write!(
        s,
            "  <object>\n    <name>{}</name>\n    <difficult>{}</difficult>\n    <bndbox>\n      <xmin>{}</xmin>\n      <ymin>{}</ymin>\n      <xmax>{}</xmax>\n      <ymax>{}</ymax>\n    </bndbox>\n  </object>\n",
            escape(name),
            u8::from(difficult),
            b.bbox.x_min + 1.0,
            b.bbox.y_min + 1.0,
            b.bbox.x_max,
            b.bbox.y_max
        );
    }
    s.push_str("</annotation>\n");
    std::fs::write(path, s).map_err(|e| DataError::io(path, "cannot write annotation", e))
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}
