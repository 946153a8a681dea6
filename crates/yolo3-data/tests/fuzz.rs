//! Robustness of every annotation and image reader of yolo3-data: keras `train.txt`
//! ([`read_train_txt`]), Pascal VOC XML ([`read_voc_dir`] / [`read_voc_files`]), COCO JSON
//! ([`read_coco`]), YOLO label files ([`read_yolo`] / [`read_yolo_images`]), class-name files
//! ([`read_class_names`]), images ([`load_rgb`], [`image_size`]) and the files of the disk
//! image cache ([`ImageCache::get`]: a damaged cache file is a miss, recomputed, never a
//! wrong size, a panic or an allocation of the size a damaged header claims).
//!
//! Each reader is fed arbitrary bytes, format-shaped token soup and valid files changed by a
//! few edits (numbers replaced by huge, negative, NaN or empty ones, fields and lines dropped
//! or duplicated, lines cut, bytes spliced in, a BOM, CRLF, very long lines; for images also
//! header fields rewritten with valid PNG checksums). It must return a value or a typed
//! [`DataError`] naming the file, never panic and never hang: every case runs on its own
//! thread under a time bound (see `fuzz_support`). Accepted datasets must satisfy what the
//! crate promises: finite boxes with positive width and height, class ids below the number of
//! classes, boxes inside the image when its size is known, one sample or unreadable entry per
//! listed image.
//!
//! `cargo test -p yolo3-data --test fuzz` runs a bounded number of cases per reader;
//! `cargo test -p yolo3-data --test fuzz -- --ignored fuzz_<reader>_long` runs one reader for
//! `YOLO3_FUZZ_SECONDS` (default 600) and prints how many cases ran.

#[path = "../../yolo3-core/tests/fuzz_support/mod.rs"]
mod fuzz_support;

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use image::{DynamicImage, ImageBuffer, Luma, Rgb, RgbImage, Rgba};
use proptest::prelude::*;
use proptest::sample::Index;
use yolo3_core::LabeledBox;
use yolo3_data::{
    image_size, load_rgb, read_class_names, read_coco, read_train_txt, read_voc_dir,
    read_voc_files, read_yolo, DataError, Dataset, DifficultPolicy, IgnoreReason, ImageCache,
    ImageSize, InputSize, ReadOptions, Stage,
};

use fuzz_support::{arbitrary, edit, fuzz, fuzz_long, next_id, text_input, Bytes, Check, Edit};

// ------------------------------------------------------------------ shared fixture

/// Images and class names every case refers to, written once per test binary.
struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn classes(&self) -> PathBuf {
        self.root().join("classes.txt")
    }

    fn images(&self) -> PathBuf {
        self.root().join("images")
    }
}

const CLASSES: [&str; 3] = ["cat", "dog", "bird"];

fn fixture() -> Arc<Fixture> {
    static FIXTURE: OnceLock<Arc<Fixture>> = OnceLock::new();
    Arc::clone(FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let images = dir.path().join("images");
        std::fs::create_dir_all(&images).unwrap();
        RgbImage::from_pixel(64, 48, Rgb([90, 120, 30])).save(images.join("a.png")).unwrap();
        RgbImage::from_pixel(50, 40, Rgb([10, 20, 200])).save(images.join("b.png")).unwrap();
        std::fs::write(images.join("c.jpg"), jpeg(&RgbImage::from_pixel(32, 32, Rgb([1, 2, 3]))))
            .unwrap();
        std::fs::write(dir.path().join("classes.txt"), "cat\ndog\n\nbird\n").unwrap();
        Arc::new(Fixture { dir })
    }))
}

fn jpeg(img: &RgbImage) -> Vec<u8> {
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 80).encode_image(img).unwrap();
    out
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    std::fs::write(path, bytes).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// Hard-links the shared images into `dir` (cheap, and portable unlike a folder symlink).
fn link_images(fx: &Fixture, dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    for name in ["a.png", "b.png", "c.jpg"] {
        std::fs::hard_link(fx.images().join(name), dir.join(name))
            .map_err(|e| format!("cannot link {name}: {e}"))?;
    }
    Ok(())
}

/// Reader options: every combination of clipping, tolerance, header reading, VOC
/// `difficult` policy and unknown-class skipping.
fn read_options() -> impl Strategy<Value = ReadOptions> + Clone {
    (
        any::<bool>(),
        proptest::sample::select(vec![0.0f32, 1.0, 4.5]),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(clip, bounds_tolerance, read_image_headers, keep, skip_unknown_classes)| {
                ReadOptions {
                    clip,
                    bounds_tolerance,
                    read_image_headers,
                    difficult: if keep { DifficultPolicy::Keep } else { DifficultPolicy::Skip },
                    skip_unknown_classes,
                }
            },
        )
}

// ------------------------------------------------------------------ shared invariants

fn check_box(b: &LabeledBox, classes: usize, size: Option<ImageSize>) -> Result<(), String> {
    let bb = &b.bbox;
    let finite = [bb.x_min, bb.y_min, bb.x_max, bb.y_max].iter().all(|v| v.is_finite());
    if !finite || bb.width() <= 0.0 || bb.height() <= 0.0 {
        return Err(format!("box {bb:?} is not finite with positive width and height"));
    }
    if b.class >= classes {
        return Err(format!("class {} with {classes} classes", b.class));
    }
    if let Some(s) = size {
        let inside = bb.x_min >= 0.0
            && bb.y_min >= 0.0
            && bb.x_max <= s.width as f32
            && bb.y_max <= s.height as f32;
        if !inside {
            return Err(format!("box {bb:?} is outside the {}x{} image", s.width, s.height));
        }
    }
    Ok(())
}

/// What every accepted dataset must satisfy; `listed` is the number of images the input
/// names (each is a sample or unreadable).
fn check_dataset(ds: &Dataset, listed: Option<usize>) -> Result<(), String> {
    let n = ds.class_names.len();
    for (i, s) in ds.samples.iter().enumerate() {
        if s.boxes.len() != s.difficult.len() {
            return Err(format!(
                "sample {i}: {} boxes, {} flags",
                s.boxes.len(),
                s.difficult.len()
            ));
        }
        for b in s.boxes.iter().chain(s.ignored.iter().map(|g| &g.bbox)) {
            check_box(b, n, s.image_size).map_err(|m| format!("sample {i}: {m}"))?;
        }
    }
    if let Some(listed) = listed {
        let found = ds.samples.len() + ds.unreadable.len();
        if found != listed {
            return Err(format!("{listed} images listed, {found} samples and unreadable images"));
        }
    }
    Ok(())
}

/// A rejection must name one of `files` (the crate's promise: every error names its file).
fn check_error(e: &DataError, files: &[&Path]) -> Result<(), String> {
    let msg = e.to_string();
    let named = files
        .iter()
        .any(|f| f.file_name().is_some_and(|name| msg.contains(name.to_string_lossy().as_ref())));
    if named {
        Ok(())
    } else {
        Err(format!("error {msg:?} names none of {files:?}"))
    }
}

/// The text a text reader sees (UTF-8 without a leading BOM), or `None` when it is not UTF-8.
fn as_text(bytes: &[u8]) -> Option<&str> {
    let text = std::str::from_utf8(bytes).ok()?;
    Some(text.strip_prefix('\u{feff}').unwrap_or(text))
}

// ------------------------------------------------------------------ keras train.txt

const KERAS_SEEDS: &[&str] = &[
    "images/a.png 1,2,30,40,0 10.5,4.25,64,48,2\n\nimages/b.png\n",
    "images/b.png 0,0,50,40,1\nimages/c.jpg 3,3,20,20,0 1,1,2,2,2\n",
    "images/a.png 5,5,10,10,1 20,20,30,30,1 0.5,0.5,63.5,47.5,0\nimages/missing.png 1,1,5,5,0\n",
    "images/c.jpg\t2,2,8,8,1\n  images/a.png   1.0,1.0,2.0,2.0,2.0  \r\n",
];

const KERAS_TOKENS: &[&str] = &[
    "images/a.png",
    "images/b.png",
    "images/c.jpg",
    "images/",
    " ",
    "\n",
    "\r\n",
    "\t",
    ",",
    "0",
    "1",
    "2",
    "3",
    "10",
    "30.5",
    "64",
    "-1",
    "1e39",
    "nan",
    "inf",
    "x",
];

fn keras_input() -> impl Strategy<Value = (Bytes, ReadOptions)> {
    (text_input(KERAS_SEEDS, KERAS_TOKENS), read_options())
}

fn keras_check() -> Check<(Bytes, ReadOptions)> {
    let fx = fixture();
    Arc::new(move |(input, options): (Bytes, ReadOptions)| {
        let ann = fx.root().join(format!("train-{}.txt", next_id()));
        write(&ann, &input.0)?;
        let result = read_train_txt(&ann, &fx.classes(), &options);
        let _ = std::fs::remove_file(&ann);
        match result {
            Ok(ds) => {
                let text = as_text(&input.0).ok_or("accepted a file that is not UTF-8")?;
                let listed = text.lines().filter(|l| l.split_whitespace().next().is_some()).count();
                if ds.class_names != CLASSES {
                    return Err(format!("class names {:?}", ds.class_names));
                }
                check_dataset(&ds, Some(listed))?;
                if options.read_image_headers && ds.samples.iter().any(|s| s.image_size.is_none()) {
                    return Err("a sample without an image size although headers were read".into());
                }
                Ok(true)
            }
            Err(e) => check_error(&e, &[&ann]).map(|()| false),
        }
    })
}

// ------------------------------------------------------------------ class names

const NAMES_SEEDS: &[&str] = &[
    "cat\ndog\n\nbird\n",
    "person\r\nbicycle\r\ncar\r\n",
    "  traffic light \n\tstop sign\nfire hydrant",
    "\u{fc}n\u{ef}c\u{f6}d\u{e9}\n\u{540d}\u{524d}\n",
];

const NAMES_TOKENS: &[&str] = &["cat", "dog", " ", "\n", "\r\n", "\t", "\u{feff}", "#", "\u{a0}"];

fn names_check() -> Check<Bytes> {
    let fx = fixture();
    Arc::new(move |input: Bytes| {
        let path = fx.root().join(format!("names-{}.txt", next_id()));
        write(&path, &input.0)?;
        let result = read_class_names(&path);
        let _ = std::fs::remove_file(&path);
        match result {
            Ok(names) => {
                if names.is_empty() {
                    return Err("no names accepted".into());
                }
                for (i, n) in names.iter().enumerate() {
                    if n.is_empty() || n.trim() != n || n.contains('\n') {
                        return Err(format!("name {n:?} is empty, untrimmed or multi-line"));
                    }
                    if names[..i].contains(n) {
                        return Err(format!("duplicate name {n:?} accepted"));
                    }
                }
                Ok(true)
            }
            Err(e) => check_error(&e, &[&path]).map(|()| false),
        }
    })
}

// ------------------------------------------------------------------ Pascal VOC

const VOC_SEEDS: &[&str] = &[
    "<annotation>
  <folder>VOC2007</folder>
  <filename>a.png</filename>
  <size>
    <width>64</width>
    <height>48</height>
    <depth>3</depth>
  </size>
  <object>
    <name>cat</name>
    <pose>Left</pose>
    <truncated>0</truncated>
    <difficult>0</difficult>
    <bndbox>
      <xmin>1</xmin>
      <ymin>2</ymin>
      <xmax>30</xmax>
      <ymax>40</ymax>
    </bndbox>
  </object>
  <object>
    <name>dog</name>
    <difficult>1</difficult>
    <bndbox>
      <xmin>10</xmin>
      <ymin>10.5</ymin>
      <xmax>64</xmax>
      <ymax>48</ymax>
    </bndbox>
  </object>
</annotation>
",
    "<?xml version=\"1.0\" encoding=\"utf-8\"?>
<!-- no size: the header gives it -->
<annotation verified=\"yes\">
  <filename>b.png</filename>
  <object><name>bird</name><bndbox><xmin>5</xmin><ymin>5</ymin><xmax>50</xmax><ymax>40</ymax></bndbox></object>
  <object><name> cat </name><difficult>0</difficult><bndbox><ymin>1</ymin><xmin>1</xmin><ymax>3</ymax><xmax>3</xmax></bndbox></object>
</annotation>
",
    "<annotation>
  <folder>a &amp; b</folder>
  <filename>c.jpg</filename>
  <size><width>0</width><height>0</height></size>
  <object>
    <name>dog</name>
    <bndbox><xmin>2</xmin><ymin>2</ymin><xmax>31</xmax><ymax>32</ymax></bndbox>
  </object>
</annotation>
",
];

const VOC_TOKENS: &[&str] = &[
    "<annotation>",
    "</annotation>",
    "<object>",
    "</object>",
    "<name>",
    "</name>",
    "cat",
    "dog",
    "<bndbox>",
    "</bndbox>",
    "<xmin>",
    "</xmin>",
    "<ymin>",
    "</ymin>",
    "<xmax>",
    "</xmax>",
    "<ymax>",
    "</ymax>",
    "<size>",
    "</size>",
    "<width>",
    "</width>",
    "<height>",
    "</height>",
    "<difficult>",
    "</difficult>",
    "<filename>",
    "</filename>",
    "a.png",
    "1",
    "30",
    "-1",
    "1e39",
    "nan",
    "&amp;",
    "&#0;",
    "<!DOCTYPE a [<!ENTITY x \"y\">]>",
    "<![CDATA[1]]>",
    "\n",
    " ",
];

/// `(annotation, class list given, split list used, options)`.
type VocCase = (Bytes, bool, bool, ReadOptions);

fn voc_input() -> impl Strategy<Value = VocCase> {
    (text_input(VOC_SEEDS, VOC_TOKENS), any::<bool>(), any::<bool>(), read_options())
}

const VOC_B: &str = "<annotation><filename>b.png</filename><size><width>50</width><height>40</height></size>\
    <object><name>cat</name><bndbox><xmin>1</xmin><ymin>1</ymin><xmax>10</xmax><ymax>20</ymax></bndbox></object></annotation>\n";

fn voc_check() -> Check<VocCase> {
    let fx = fixture();
    Arc::new(move |(input, given, split, options): VocCase| {
        // A VOC folder of its own: the fuzzed a.xml, a valid b.xml, the shared images.
        let root = fx.root().join(format!("voc-{}", next_id()));
        let a = root.join("Annotations/a.xml");
        let b = root.join("Annotations/b.xml");
        write(&a, &input.0)?;
        write(&b, VOC_B.as_bytes())?;
        write(&root.join("ImageSets/Main/train.txt"), b"a\nb\n")?;
        link_images(&fx, &root.join("JPEGImages"))?;
        let classes = given.then(|| CLASSES.map(String::from).to_vec());
        let result = if split {
            read_voc_dir(&root, Some("train"), classes, &options)
        } else {
            read_voc_files(&[a.clone(), b.clone()], classes, &options)
        };
        let _ = std::fs::remove_dir_all(&root);
        match result {
            Ok(ds) => {
                if given && ds.class_names != CLASSES {
                    return Err(format!("class names {:?}", ds.class_names));
                }
                check_dataset(&ds, Some(2))?;
                for s in &ds.samples {
                    if s.ignored.iter().any(|g| g.reason != IgnoreReason::Difficult) {
                        return Err("a VOC box ignored for another reason than difficult".into());
                    }
                    if options.difficult == DifficultPolicy::Keep && !s.ignored.is_empty() {
                        return Err("difficult boxes ignored although kept".into());
                    }
                }
                Ok(true)
            }
            Err(e) => check_error(&e, &[&a, &b]).map(|()| false),
        }
    })
}

// ------------------------------------------------------------------ COCO

const COCO_SEEDS: &[&str] = &[
    r#"{"images":[{"id":1,"file_name":"a.png","width":64,"height":48},{"id":2,"file_name":"b.png","width":50,"height":40},{"id":5,"file_name":"c.jpg"}],"annotations":[{"id":1,"image_id":1,"category_id":3,"bbox":[1,2,20,30],"iscrowd":0,"area":600},{"id":2,"image_id":1,"category_id":1,"bbox":[0,0,64,48],"iscrowd":1},{"id":9,"image_id":5,"category_id":7,"bbox":[1.5,2.5,10.25,3]}],"categories":[{"id":1,"name":"cat"},{"id":3,"name":"dog","supercategory":"animal"},{"id":7,"name":"bird"}]}"#,
    r#"{
  "info": {"year": 2017},
  "images": [
    {"id": 10, "file_name": "b.png", "width": 50, "height": 40},
    {"id": 11, "file_name": "missing.png", "width": 8, "height": 8}
  ],
  "annotations": [
    {"id": 1, "image_id": 10, "category_id": 2, "bbox": [10, 10, 40, 30]},
    {"id": 2, "image_id": 11, "category_id": 2, "bbox": [0, 0, 8, 8], "iscrowd": 0}
  ],
  "categories": [
    {"id": 2, "name": "person"}
  ]
}
"#,
    r#"{"images":[{"id":3,"file_name":"c.jpg","width":32,"height":32}],"categories":[{"id":1,"name":"x"}]}"#,
];

const COCO_TOKENS: &[&str] = &[
    "{",
    "}",
    "[",
    "]",
    ",",
    ":",
    "\"images\"",
    "\"annotations\"",
    "\"categories\"",
    "\"id\"",
    "\"file_name\"",
    "\"a.png\"",
    "\"bbox\"",
    "\"image_id\"",
    "\"category_id\"",
    "\"iscrowd\"",
    "\"name\"",
    "\"width\"",
    "\"height\"",
    "1",
    "0",
    "-1",
    "64",
    "1e39",
    "1.5",
    "null",
    "true",
    "\"\"",
    " ",
    "\n",
];

/// `(annotations, image folder given, options)`.
type CocoCase = (Bytes, bool, ReadOptions);

/// Just the number of images of a COCO file (the other fields are skipped unparsed, as the
/// reader skips unknown ones).
#[derive(serde::Deserialize)]
struct ImageList {
    images: Vec<serde::de::IgnoredAny>,
}

fn coco_input() -> impl Strategy<Value = CocoCase> {
    (text_input(COCO_SEEDS, COCO_TOKENS), any::<bool>(), read_options())
}

fn coco_check() -> Check<CocoCase> {
    let fx = fixture();
    Arc::new(move |(input, explicit_dir, options): CocoCase| {
        let json = fx.root().join(format!("coco-{}.json", next_id()));
        write(&json, &input.0)?;
        let images = fx.images();
        let result = read_coco(&json, explicit_dir.then_some(images.as_path()), &options);
        let _ = std::fs::remove_file(&json);
        match result {
            Ok(ds) => {
                let text = as_text(&input.0).ok_or("accepted a file that is not UTF-8")?;
                let listed = serde_json::from_str::<ImageList>(text)
                    .map_err(|e| format!("accepted JSON without an image list: {e}"))?
                    .images
                    .len();
                check_dataset(&ds, Some(listed))?;
                for s in &ds.samples {
                    if s.image_id.is_none() {
                        return Err("a COCO sample without an image id".into());
                    }
                    if s.ignored.iter().any(|g| g.reason != IgnoreReason::Crowd) {
                        return Err("a COCO box ignored for another reason than crowd".into());
                    }
                }
                Ok(true)
            }
            Err(e) => check_error(&e, &[&json]).map(|()| false),
        }
    })
}

// ------------------------------------------------------------------ YOLO txt

const YOLO_SEEDS: &[&str] = &[
    "0 0.5 0.5 0.25 0.5\n2 0.1 0.1 0.1 0.1\n",
    "1 0.1 0.1 0.5 0.1 0.5 0.5 0.1 0.5\n0 0.5 0.5 1 1\n",
    "",
    "\n1 0.25 0.75 0.5 0.5\r\n2.0 0.5 0.5 0.125 0.125",
];

const YOLO_TOKENS: &[&str] =
    &["0", "1", "2", "3", "0.5", "0.25", "1.0", "-0.5", "1e39", "nan", " ", "\t", "\n", "\r\n"];

/// How the images are given: 0 a folder, 1 a list file, 2 a list of paths.
type YoloCase = (Bytes, u8, ReadOptions);

fn yolo_input() -> impl Strategy<Value = YoloCase> {
    (text_input(YOLO_SEEDS, YOLO_TOKENS), 0u8..3, read_options())
}

fn yolo_check() -> Check<YoloCase> {
    let fx = fixture();
    Arc::new(move |(input, mode, options): YoloCase| {
        let root = fx.root().join(format!("yolo-{}", next_id()));
        let images = root.join("images");
        std::fs::create_dir_all(&images).map_err(|e| format!("cannot create images: {e}"))?;
        for name in ["a.png", "b.png"] {
            std::fs::hard_link(fx.images().join(name), images.join(name))
                .map_err(|e| format!("cannot link {name}: {e}"))?;
        }
        let label = root.join("labels/a.txt");
        write(&label, &input.0)?;
        write(&root.join("labels/b.txt"), b"1 0.5 0.5 0.5 0.5\n")?;
        let list = root.join("list.txt");
        write(&list, b"images/a.png\nimages/b.png\n")?;
        let names = CLASSES.map(String::from).to_vec();
        let result = match mode {
            0 => read_yolo(&images, names, &options),
            1 => read_yolo(&list, names, &options),
            _ => yolo3_data::yolo_txt::read_yolo_images(
                &[images.join("a.png"), images.join("b.png")],
                names,
                &options,
            ),
        };
        let _ = std::fs::remove_dir_all(&root);
        match result {
            Ok(ds) => {
                check_dataset(&ds, Some(2))?;
                if ds.samples.iter().any(|s| s.image_size.is_none()) {
                    return Err("a YOLO sample without an image size".into());
                }
                Ok(true)
            }
            Err(e) => check_error(&e, &[&label]).map(|()| false),
        }
    })
}

// ------------------------------------------------------------------ images

fn png(img: &DynamicImage) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

/// Small valid PNGs (RGB, RGBA, 16-bit grey) and JPEGs (colour, grey with an odd size).
fn image_seeds() -> Vec<Vec<u8>> {
    let rgb = RgbImage::from_fn(16, 12, |x, y| Rgb([(x * 15) as u8, (y * 20) as u8, 128]));
    let rgba = ImageBuffer::from_fn(8, 8, |x, y| Rgba([x as u8 * 30, y as u8 * 30, 7, 200]));
    let grey16 = ImageBuffer::from_fn(7, 5, |x, y| Luma([(x * 9000 + y * 300) as u16]));
    let grey8 = DynamicImage::ImageLuma8(ImageBuffer::from_fn(9, 7, |x, y| Luma([(x * y) as u8])));
    vec![
        png(&DynamicImage::ImageRgb8(rgb.clone())),
        png(&DynamicImage::ImageRgba8(rgba)),
        png(&DynamicImage::ImageLuma16(grey16)),
        jpeg(&rgb),
        jpeg(&grey8.to_rgb8()),
        {
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 50)
                .encode_image(&grey8)
                .unwrap();
            out
        },
    ]
}

/// CRC-32 (IEEE), as PNG chunks use it.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 { (crc >> 1) ^ 0xEDB8_8320 } else { crc >> 1 };
        }
    }
    !crc
}

/// Rewrites the CRC of every complete PNG chunk, so edits reach the decoder behind the
/// checksum test.
fn fix_png_crcs(data: &mut [u8]) {
    let mut pos = 8;
    while pos + 12 <= data.len() {
        let len = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
        let Some(end) = (pos + 12).checked_add(len).filter(|&e| e <= data.len()) else { break };
        let crc = crc32(&data[pos + 4..pos + 8 + len]);
        data[pos + 8 + len..end].copy_from_slice(&crc.to_be_bytes());
        pos = end;
    }
}

/// One change to an image file: a byte-level [`Edit`] or a header field.
#[derive(Clone, Debug)]
enum ImageEdit {
    Bytes(Edit),
    /// PNG IHDR field (0 width, 1 height, 2 bit depth, 3 colour type, 4 compression,
    /// 5 filter, 6 interlace), checksums fixed.
    PngHeader(u8, u32),
    /// The length field of a PNG chunk.
    PngChunkLength(Index, u32),
    /// Recompute every PNG chunk checksum.
    FixPngCrcs,
    /// JPEG SOF field (0 height, 1 width, 2 components, 3 precision).
    JpegFrame(u8, u16),
}

impl ImageEdit {
    fn apply(&self, data: &mut Vec<u8>) {
        let is_png = data.starts_with(b"\x89PNG\r\n\x1a\n");
        match self {
            Self::Bytes(e) => e.apply(data),
            Self::PngHeader(field, value) if is_png && data.len() >= 33 => {
                match field {
                    0 => data[16..20].copy_from_slice(&value.to_be_bytes()),
                    1 => data[20..24].copy_from_slice(&value.to_be_bytes()),
                    f => data[22 + usize::from(*f)] = *value as u8,
                }
                fix_png_crcs(data);
            }
            Self::PngChunkLength(at, len) if is_png => {
                let mut starts = Vec::new();
                let mut pos = 8;
                while pos + 12 <= data.len() {
                    starts.push(pos);
                    let l = u32::from_be_bytes(data[pos..pos + 4].try_into().unwrap()) as usize;
                    pos = pos.saturating_add(12).saturating_add(l);
                }
                if !starts.is_empty() {
                    let p = starts[at.index(starts.len())];
                    data[p..p + 4].copy_from_slice(&len.to_be_bytes());
                }
            }
            Self::FixPngCrcs if is_png => fix_png_crcs(data),
            Self::JpegFrame(field, value) => {
                let sof = data
                    .windows(2)
                    .position(|w| w[0] == 0xFF && (0xC0..=0xC2).contains(&w[1]))
                    .filter(|&i| i + 10 <= data.len());
                if let Some(i) = sof {
                    match field {
                        0 => data[i + 5..i + 7].copy_from_slice(&value.to_be_bytes()),
                        1 => data[i + 7..i + 9].copy_from_slice(&value.to_be_bytes()),
                        2 => data[i + 9] = *value as u8,
                        _ => data[i + 4] = *value as u8,
                    }
                }
            }
            _ => {}
        }
    }
}

fn image_edit() -> BoxedStrategy<ImageEdit> {
    let dims = prop_oneof![
        proptest::sample::select(vec![
            0u32,
            1,
            2,
            255,
            256,
            4096,
            10_000,
            65_535,
            1 << 31,
            u32::MAX
        ]),
        any::<u32>(),
    ];
    prop_oneof![
        6 => edit().prop_map(ImageEdit::Bytes),
        2 => (0u8..7, dims).prop_map(|(f, v)| ImageEdit::PngHeader(f, v)),
        1 => (any::<Index>(), any::<u32>()).prop_map(|(a, l)| ImageEdit::PngChunkLength(a, l)),
        3 => Just(ImageEdit::FixPngCrcs),
        2 => (0u8..4, prop_oneof![proptest::sample::select(vec![0u16, 1, 8, 9, 4096, 20_000, 65_535]), any::<u16>()])
            .prop_map(|(f, v)| ImageEdit::JpegFrame(f, v)),
    ]
    .boxed()
}

/// `(bytes, file extension)`.
type ImageCase = (Bytes, &'static str);

fn image_input() -> impl Strategy<Value = ImageCase> {
    let mutated =
        (proptest::sample::select(image_seeds()), proptest::collection::vec(image_edit(), 1..5))
            .prop_map(|(mut data, edits)| {
                for e in &edits {
                    e.apply(&mut data);
                    data.truncate(fuzz_support::MAX_INPUT);
                }
                Bytes(data)
            });
    let headed = (
        proptest::sample::select(vec![
            &b"\x89PNG\r\n\x1a\n"[..],
            b"\xff\xd8\xff",
            b"\xff\xd8\xff\xe0\0\x10JFIF\0",
        ]),
        proptest::collection::vec(any::<u8>(), 0..256),
    )
        .prop_map(|(head, tail)| Bytes([head, tail.as_slice()].concat()));
    let bytes = prop_oneof![1 => arbitrary(512), 1 => headed, 8 => mutated];
    (bytes, proptest::sample::select(vec!["png", "jpg", "bin"]))
}

fn image_check() -> Check<ImageCase> {
    let fx = fixture();
    Arc::new(move |(input, ext): ImageCase| {
        let path = fx.root().join(format!("image-{}.{ext}", next_id()));
        write(&path, &input.0)?;
        let decoded = load_rgb(&path);
        let size = image_size(&path);
        let _ = std::fs::remove_file(&path);
        if let Ok(img) = &decoded {
            let (w, h) = img.dimensions();
            if w == 0 || h == 0 || img.as_raw().len() != w as usize * h as usize * 3 {
                return Err(format!("decoded a {w}x{h} image with {} bytes", img.as_raw().len()));
            }
            if let Ok(s) = &size {
                if (s.width, s.height) != (w, h) {
                    return Err(format!(
                        "header says {}x{}, pixels are {w}x{h}",
                        s.width, s.height
                    ));
                }
            }
        }
        let accepted = decoded.is_ok();
        for e in [decoded.err(), size.err()].iter().flatten() {
            check_error(e, &[&path])?;
        }
        Ok(accepted)
    })
}

// ------------------------------------------------------------------ tests

#[test]
fn seeds_are_valid() {
    let fx = fixture();
    let strict = ReadOptions { bounds_tolerance: 0.0, ..ReadOptions::default() };
    for seed in KERAS_SEEDS {
        let ann = fx.root().join("seed-train.txt");
        std::fs::write(&ann, seed).unwrap();
        let ds = read_train_txt(&ann, &fx.classes(), &strict).unwrap();
        assert!(ds.samples.iter().map(|s| s.boxes.len()).sum::<usize>() > 0);
        check_dataset(&ds, None).unwrap();
    }
    for seed in NAMES_SEEDS {
        let p = fx.root().join("seed-names.txt");
        std::fs::write(&p, seed).unwrap();
        read_class_names(&p).unwrap();
    }
    for seed in VOC_SEEDS {
        let root = fx.root().join("seed-voc");
        write(&root.join("Annotations/a.xml"), seed.as_bytes()).unwrap();
        let _ = std::fs::remove_dir_all(root.join("JPEGImages"));
        link_images(&fx, &root.join("JPEGImages")).unwrap();
        let ds = read_voc_dir(&root, None, None, &strict).unwrap();
        assert_eq!(ds.samples.len(), 1);
        assert!(!ds.samples[0].boxes.is_empty(), "{seed}");
    }
    for seed in COCO_SEEDS {
        let json = fx.root().join("seed-coco.json");
        std::fs::write(&json, seed).unwrap();
        let ds = read_coco(&json, None, &strict).unwrap();
        assert!(!ds.samples.is_empty());
        check_dataset(&ds, None).unwrap();
    }
    for seed in YOLO_SEEDS {
        let root = fx.root().join("seed-yolo");
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("images")).unwrap();
        std::fs::copy(fx.images().join("a.png"), root.join("images/a.png")).unwrap();
        write(&root.join("labels/a.txt"), seed.as_bytes()).unwrap();
        let ds =
            read_yolo(&root.join("images"), CLASSES.map(String::from).to_vec(), &strict).unwrap();
        check_dataset(&ds, Some(1)).unwrap();
    }
    for (k, seed) in image_seeds().iter().enumerate() {
        let p = fx.root().join(format!("seed-{k}.img"));
        std::fs::write(&p, seed).unwrap();
        let img = load_rgb(&p).unwrap();
        assert_eq!(image_size(&p).unwrap(), ImageSize { width: img.width(), height: img.height() });
    }
}

#[test]
fn fuzz_keras() {
    fuzz("keras", 256, &keras_input(), &keras_check());
}

#[test]
#[ignore = "long fuzzing run (YOLO3_FUZZ_SECONDS, default 600)"]
fn fuzz_keras_long() {
    fuzz_long("keras", 256, &keras_input(), &keras_check());
}

#[test]
fn fuzz_names() {
    fuzz("names", 256, &text_input(NAMES_SEEDS, NAMES_TOKENS), &names_check());
}

#[test]
#[ignore = "long fuzzing run (YOLO3_FUZZ_SECONDS, default 600)"]
fn fuzz_names_long() {
    fuzz_long("names", 256, &text_input(NAMES_SEEDS, NAMES_TOKENS), &names_check());
}

#[test]
fn fuzz_voc() {
    fuzz("voc", 256, &voc_input(), &voc_check());
}

#[test]
#[ignore = "long fuzzing run (YOLO3_FUZZ_SECONDS, default 600)"]
fn fuzz_voc_long() {
    fuzz_long("voc", 256, &voc_input(), &voc_check());
}

#[test]
fn fuzz_coco() {
    fuzz("coco", 256, &coco_input(), &coco_check());
}

#[test]
#[ignore = "long fuzzing run (YOLO3_FUZZ_SECONDS, default 600)"]
fn fuzz_coco_long() {
    fuzz_long("coco", 256, &coco_input(), &coco_check());
}

#[test]
fn fuzz_yolo() {
    fuzz("yolo", 256, &yolo_input(), &yolo_check());
}

#[test]
#[ignore = "long fuzzing run (YOLO3_FUZZ_SECONDS, default 600)"]
fn fuzz_yolo_long() {
    fuzz_long("yolo", 256, &yolo_input(), &yolo_check());
}

#[test]
fn fuzz_images() {
    fuzz("images", 256, &image_input(), &image_check());
}

#[test]
#[ignore = "long fuzzing run (YOLO3_FUZZ_SECONDS, default 600)"]
fn fuzz_images_long() {
    fuzz_long("images", 256, &image_input(), &image_check());
}

// ------------------------------------------------------------------ the disk image cache

/// One stage's cache file: the stage, the image size, the file name and its bytes.
type CacheFile = (Stage, (u32, u32), String, Vec<u8>);

/// A case: which stage, bytes written at indices, and where the file is cut (if it is).
type CacheCase = (usize, Vec<(Index, u8)>, Option<Index>);

/// A source image, and for each stage the file the disk cache wrote for it.
struct CacheFixture {
    dir: tempfile::TempDir,
    source: PathBuf,
    stages: Vec<CacheFile>,
}

fn cache_fixture() -> Arc<CacheFixture> {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.png");
    let img = RgbImage::from_fn(40, 30, |x, y| Rgb([(x * 6) as u8, (y * 8) as u8, 99]));
    std::fs::write(&source, png(&DynamicImage::ImageRgb8(img))).unwrap();
    let mut stages = Vec::new();
    for (k, (stage, size)) in [
        (Stage::Decoded, (40, 30)),
        (Stage::Letterboxed(InputSize { width: 32, height: 32 }), (32, 24)),
    ]
    .into_iter()
    .enumerate()
    {
        let cache_dir = dir.path().join(format!("seed{k}"));
        let cache = ImageCache::disk(&cache_dir).unwrap();
        assert_eq!(cache.get(&source, stage).unwrap().image.dimensions(), size);
        let file = std::fs::read_dir(&cache_dir).unwrap().next().unwrap().unwrap();
        let name = file.file_name().to_string_lossy().into_owned();
        stages.push((stage, size, name, std::fs::read(file.path()).unwrap()));
    }
    Arc::new(CacheFixture { dir, source, stages })
}

/// The cache file of one stage with bytes overwritten (header fields mostly) and maybe cut.
fn cache_input() -> impl Strategy<Value = CacheCase> {
    (
        0..2usize,
        proptest::collection::vec((any::<Index>(), any::<u8>()), 1..6),
        proptest::option::of(any::<Index>()),
    )
}

fn cache_check() -> Check<CacheCase> {
    let fx = cache_fixture();
    Arc::new(move |(k, writes, cut): CacheCase| {
        let (stage, size, name, seed) = &fx.stages[k];
        let mut bytes = seed.clone();
        for (at, value) in &writes {
            // Half of the writes land in the 56-byte header, where the sizes are.
            let i = if at.index(2) == 0 { at.index(56) } else { at.index(bytes.len()) };
            bytes[i] = *value;
        }
        if let Some(c) = cut {
            bytes.truncate(c.index(bytes.len() + 1));
        }
        let cache_dir = fx.dir.path().join(format!("case{}", next_id()));
        std::fs::create_dir(&cache_dir).map_err(|e| e.to_string())?;
        std::fs::write(cache_dir.join(name), &bytes).map_err(|e| e.to_string())?;
        let cache = ImageCache::disk(&cache_dir).map_err(|e| e.to_string())?;
        let got = cache.get(&fx.source, *stage).map_err(|e| format!("error: {e}"))?;
        let _ = std::fs::remove_dir_all(&cache_dir);
        if got.image.dimensions() != *size {
            return Err(format!("{:?} instead of {size:?}", got.image.dimensions()));
        }
        if got.source != (ImageSize { width: 40, height: 30 }) {
            return Err(format!("source size {:?}", got.source));
        }
        Ok(true)
    })
}

#[test]
fn fuzz_image_cache() {
    fuzz("image cache", 256, &cache_input(), &cache_check());
}

#[test]
#[ignore = "long fuzzing run (YOLO3_FUZZ_SECONDS, default 600)"]
fn fuzz_image_cache_long() {
    fuzz_long("image cache", 256, &cache_input(), &cache_check());
}
