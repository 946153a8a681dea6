//! Each reader parses a generated fixture and rejects broken ones with the right error, whose
//! message names the file, the line and the field.

use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use yolo3_core::{BoxXyxy, LabeledBox};
use yolo3_data::{
    detect_format, read_coco, read_dataset, read_train_txt, read_voc_dir, read_yolo,
    write_train_txt, write_yolo, DataError, DatasetFormat, DifficultPolicy, IgnoreReason,
    ImagePlacement, OpenOptions, ReadOptions,
};

fn write_png(path: &Path, w: u32, h: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    RgbImage::from_pixel(w, h, Rgb([90, 120, 30])).save(path).unwrap();
}

fn lb(x0: f32, y0: f32, x1: f32, y1: f32, class: usize) -> LabeledBox {
    LabeledBox { bbox: BoxXyxy::new(x0, y0, x1, y1), class }
}

fn assert_mentions(e: &DataError, parts: &[&str]) {
    let msg = e.to_string();
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} should mention {p:?}");
    }
}

// ---------------------------------------------------------------- keras train.txt

fn keras_fixture(dir: &Path, lines: &str) -> (PathBuf, PathBuf) {
    write_png(&dir.join("img/a.png"), 64, 48);
    write_png(&dir.join("img/b.png"), 50, 40);
    let classes = dir.join("classes.txt");
    std::fs::write(&classes, "cat\ndog\n\nbird\n").unwrap();
    let ann = dir.join("train.txt");
    std::fs::write(&ann, lines).unwrap();
    (ann, classes)
}

#[test]
fn keras_reads_integers_decimals_and_relative_paths() {
    let dir = tempfile::tempdir().unwrap();
    let (ann, classes) =
        keras_fixture(dir.path(), "img/a.png 1,2,30,40,0 10.5,4.25,64,48,2\n\nimg/b.png\n");
    let ds = read_train_txt(&ann, &classes, &ReadOptions::default()).unwrap();
    assert_eq!(ds.class_names, ["cat", "dog", "bird"]);
    assert_eq!(ds.samples.len(), 2);
    assert_eq!(ds.samples[0].image_path, dir.path().join("img/a.png"));
    assert_eq!(
        ds.samples[0].boxes,
        vec![lb(1.0, 2.0, 30.0, 40.0, 0), lb(10.5, 4.25, 64.0, 48.0, 2)]
    );
    assert_eq!(ds.samples[0].image_size.unwrap().width, 64);
    assert!(ds.samples[1].boxes.is_empty());
    let summary = ds.summary();
    assert_eq!(summary.boxes, 2);
    assert_eq!(summary.per_class[2], ("bird".to_string(), 1));
    let text = summary.to_string();
    assert!(text.contains("2 images (1 without boxes), 2 boxes, 3 classes"), "{text}");
    assert!(text.contains("unreadable images: none"), "{text}");
}

#[test]
fn keras_rejects_broken_lines() {
    let cases: [(&str, &str, &[&str]); 6] = [
        (
            "img/a.png 1,2,30,40,0\nimg/b.png 1,x,3,4,0\n",
            "number",
            &["train.txt:2", "box 1 y_min", "\"x\""],
        ),
        ("img/a.png 1,2,30,40,3\n", "class", &["train.txt:1", "box 1 class", "class 3"]),
        ("img/a.png 1,2,30,40\n", "syntax", &["train.txt:1", "box 1"]),
        ("img/a.png 1,2,30,40,0 20,10,20,30,1\n", "degenerate", &["train.txt:1", "box 2"]),
        ("img/a.png 1,2,90,40,0\n", "outside", &["train.txt:1", "box 1", "64x48"]),
        ("img/a.png 1,2,inf,40,0\n", "nonfinite", &["train.txt:1", "box 1 x_max"]),
    ];
    for (text, kind, parts) in cases {
        let dir = tempfile::tempdir().unwrap();
        let (ann, classes) = keras_fixture(dir.path(), text);
        let e = read_train_txt(&ann, &classes, &ReadOptions::default()).unwrap_err();
        let ok = match kind {
            "number" => matches!(e, DataError::Number { .. }),
            "class" => matches!(e, DataError::ClassOutOfRange { class: 3, num_classes: 3, .. }),
            "syntax" => matches!(e, DataError::Syntax { .. }),
            "degenerate" => matches!(e, DataError::DegenerateBox { .. }),
            "outside" => matches!(e, DataError::BoxOutsideImage { width: 64, height: 48, .. }),
            "nonfinite" => matches!(e, DataError::NonFinite { .. }),
            _ => unreachable!(),
        };
        assert!(ok, "{kind}: got {e:?}");
        assert_mentions(&e, parts);
        let _: &dyn std::error::Error = &e;
    }
}

#[test]
fn keras_clip_option_and_unreadable_images() {
    let dir = tempfile::tempdir().unwrap();
    let (ann, classes) =
        keras_fixture(dir.path(), "img/a.png 1,2,90,40,0\nimg/missing.png 1,1,5,5,0\n");
    std::fs::write(dir.path().join("img/bad.png"), b"garbage").unwrap();
    std::fs::write(
        &ann,
        "img/a.png 1,2,90,40,0\nimg/missing.png 1,1,5,5,0\nimg/bad.png 1,1,3,3,1\n",
    )
    .unwrap();
    let ds = read_train_txt(&ann, &classes, &ReadOptions { clip: true, ..ReadOptions::default() })
        .unwrap();
    assert_eq!(ds.samples.len(), 1);
    assert_eq!(ds.samples[0].boxes[0].bbox.x_max, 64.0);
    assert_eq!(ds.unreadable.len(), 2);
    let text = ds.summary().to_string();
    assert!(text.contains("missing.png") && text.contains("bad.png"), "{text}");
}

#[test]
fn keras_bad_class_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (ann, classes) = keras_fixture(dir.path(), "img/a.png\n");
    std::fs::write(&classes, "cat\ndog\ncat\n").unwrap();
    let e = read_train_txt(&ann, &classes, &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Classes { .. }), "{e:?}");
    assert_mentions(&e, &["classes.txt:3", "duplicate"]);
}

// ---------------------------------------------------------------- Pascal VOC

fn voc_object(name: &str, difficult: u8, b: [f32; 4]) -> String {
    format!(
        "  <object>\n    <name>{name}</name>\n    <difficult>{difficult}</difficult>\n    <bndbox>\n      <xmin>{}</xmin>\n      <ymin>{}</ymin>\n      <xmax>{}</xmax>\n      <ymax>{}</ymax>\n    </bndbox>\n  </object>\n",
        b[0], b[1], b[2], b[3]
    )
}

fn voc_fixture(root: &Path, objects_a: &str) {
    std::fs::create_dir_all(root.join("Annotations")).unwrap();
    write_png(&root.join("JPEGImages/a.png"), 64, 48);
    write_png(&root.join("JPEGImages/b.png"), 50, 40);
    let xml = |file: &str, w: u32, h: u32, objects: &str| {
        format!("<annotation>\n  <filename>{file}</filename>\n  <size>\n    <width>{w}</width>\n    <height>{h}</height>\n    <depth>3</depth>\n  </size>\n{objects}</annotation>\n")
    };
    std::fs::write(root.join("Annotations/a.xml"), xml("a.png", 64, 48, objects_a)).unwrap();
    std::fs::write(
        root.join("Annotations/b.xml"),
        xml("b.png", 50, 40, &voc_object("cat", 0, [1.0, 1.0, 10.0, 20.0])),
    )
    .unwrap();
}

#[test]
fn voc_reads_folders_with_difficult_policy_and_collected_classes() {
    let dir = tempfile::tempdir().unwrap();
    let objects = voc_object("dog", 0, [11.0, 21.0, 30.0, 40.0])
        + &voc_object("cat", 1, [1.0, 1.0, 64.0, 48.0]);
    voc_fixture(dir.path(), &objects);
    let ds = read_voc_dir(dir.path(), None, None, &ReadOptions::default()).unwrap();
    assert_eq!(ds.class_names, ["cat", "dog"]);
    let a = &ds.samples[0];
    assert_eq!(a.image_path, dir.path().join("JPEGImages/a.png"));
    // 1-based inclusive to continuous: (xmin - 1, ymin - 1, xmax, ymax).
    assert_eq!(a.boxes, vec![lb(10.0, 20.0, 30.0, 40.0, 1)]);
    assert_eq!(a.ignored.len(), 1);
    assert_eq!(a.ignored[0].reason, IgnoreReason::Difficult);
    assert_eq!(a.ignored[0].bbox, lb(0.0, 0.0, 64.0, 48.0, 0));

    let keep = ReadOptions { difficult: DifficultPolicy::Keep, ..ReadOptions::default() };
    let given = vec!["dog".to_string(), "cat".to_string()];
    let ds = read_voc_dir(dir.path(), None, Some(given), &keep).unwrap();
    assert_eq!(ds.samples[0].boxes.len(), 2);
    assert_eq!(ds.samples[0].difficult, [false, true]);
    assert_eq!(ds.samples[0].boxes[1].class, 1);
    assert_eq!(ds.summary().difficult_kept, 1);

    std::fs::create_dir_all(dir.path().join("ImageSets/Main")).unwrap();
    std::fs::write(dir.path().join("ImageSets/Main/val.txt"), "b\n").unwrap();
    let ds = read_voc_dir(dir.path(), Some("val"), None, &ReadOptions::default()).unwrap();
    assert_eq!(ds.samples.len(), 1);
    assert_eq!(ds.class_names, ["cat"]);
}

#[test]
fn voc_rejects_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    let bad_number = voc_object("dog", 0, [11.0, 21.0, 30.0, 40.0])
        .replace("<xmax>30</xmax>", "<xmax>3O</xmax>");
    voc_fixture(dir.path(), &bad_number);
    let e = read_voc_dir(dir.path(), None, None, &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Number { .. }), "{e:?}");
    // The <xmax> element is on line 14 of a.xml.
    assert_mentions(&e, &["a.xml:14", "object 1 bndbox xmax", "3O"]);

    let dir = tempfile::tempdir().unwrap();
    voc_fixture(dir.path(), &voc_object("horse", 0, [11.0, 21.0, 30.0, 40.0]));
    let e = read_voc_dir(
        dir.path(),
        None,
        Some(vec!["cat".into(), "dog".into()]),
        &ReadOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, DataError::UnknownClass { .. }), "{e:?}");
    assert_mentions(&e, &["a.xml:9", "object 1 name", "horse"]);
    let skip = ReadOptions { skip_unknown_classes: true, ..ReadOptions::default() };
    let ds = read_voc_dir(dir.path(), None, Some(vec!["cat".into()]), &skip).unwrap();
    assert!(ds.samples[0].boxes.is_empty());

    let dir = tempfile::tempdir().unwrap();
    voc_fixture(dir.path(), &voc_object("dog", 0, [11.0, 21.0, 80.0, 40.0]));
    let e = read_voc_dir(dir.path(), None, None, &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::BoxOutsideImage { .. }), "{e:?}");
    assert_mentions(&e, &["a.xml:11", "object 1 bndbox"]);

    let dir = tempfile::tempdir().unwrap();
    voc_fixture(dir.path(), "  <object><name>dog</name>\n");
    let e = read_voc_dir(dir.path(), None, None, &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Xml { .. }), "{e:?}");
    assert_mentions(&e, &["a.xml"]);

    let dir = tempfile::tempdir().unwrap();
    voc_fixture(dir.path(), "  <object>\n    <name>dog</name>\n  </object>\n");
    let e = read_voc_dir(dir.path(), None, None, &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Syntax { .. }), "{e:?}");
    assert_mentions(&e, &["a.xml:8", "object 1 bndbox", "missing"]);
}

// ---------------------------------------------------------------- COCO

fn coco_fixture(dir: &Path, annotations: &str) -> PathBuf {
    write_png(&dir.join("images/a.png"), 64, 48);
    write_png(&dir.join("images/b.png"), 50, 40);
    let json = format!(
        r#"{{"images": [{{"id": 10, "file_name": "a.png", "width": 64, "height": 48}},
                        {{"id": 20, "file_name": "b.png", "width": 50, "height": 40}}],
            "annotations": [{annotations}],
            "categories": [{{"id": 7, "name": "dog"}}, {{"id": 3, "name": "cat"}}]}}"#
    );
    let path = dir.join("instances.json");
    std::fs::write(&path, json).unwrap();
    path
}

#[test]
fn coco_remaps_categories_and_keeps_crowd_apart() {
    let dir = tempfile::tempdir().unwrap();
    let path = coco_fixture(
        dir.path(),
        r#"{"id": 1, "image_id": 10, "category_id": 7, "bbox": [1, 2, 10, 20], "iscrowd": 0},
           {"id": 2, "image_id": 10, "category_id": 3, "bbox": [5.5, 6, 20, 10], "iscrowd": 1},
           {"id": 3, "image_id": 20, "category_id": 3, "bbox": [0, 0, 50, 40]}"#,
    );
    let ds = read_coco(&path, None, &ReadOptions::default()).unwrap();
    assert_eq!(ds.class_names, ["cat", "dog"]); // ids 3, 7 in ascending order
    assert_eq!(ds.samples[0].image_path, dir.path().join("images/a.png"));
    assert_eq!(ds.samples[0].image_id, Some(10));
    assert_eq!(ds.samples[0].boxes, vec![lb(1.0, 2.0, 11.0, 22.0, 1)]);
    assert_eq!(ds.samples[0].ignored.len(), 1);
    assert_eq!(ds.samples[0].ignored[0].reason, IgnoreReason::Crowd);
    assert_eq!(ds.samples[0].ignored[0].bbox, lb(5.5, 6.0, 25.5, 16.0, 0));
    assert_eq!(ds.samples[1].boxes, vec![lb(0.0, 0.0, 50.0, 40.0, 0)]);
    assert_eq!(ds.summary().ignored_crowd, 1);
}

#[test]
fn coco_rejects_broken_files() {
    let cases: [(&str, &str, &[&str]); 4] = [
        (
            r#"{"id": 1, "image_id": 10, "category_id": 7, "bbox": [1, 2, 10]}"#,
            "syntax",
            &["instances.json", "annotations[0] (id 1) bbox", "3 values"],
        ),
        (
            r#"{"id": 1, "image_id": 10, "category_id": 7, "bbox": [1, 2, 10, 20]}, {"id": 5, "image_id": 10, "category_id": 9, "bbox": [1, 2, 10, 20]}"#,
            "syntax",
            &["instances.json", "annotations[1] (id 5) category_id", "9"],
        ),
        (
            r#"{"id": 1, "image_id": 10, "category_id": 7, "bbox": [1, 2, 0, 20]}"#,
            "degenerate",
            &["instances.json", "annotations[0] (id 1) bbox"],
        ),
        (
            r#"{"id": 1, "image_id": 10, "category_id": 7, "bbox": [60, 2, 10, 20]}"#,
            "outside",
            &["instances.json", "annotations[0] (id 1) bbox", "64x48"],
        ),
    ];
    for (anns, kind, parts) in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = coco_fixture(dir.path(), anns);
        let e = read_coco(&path, None, &ReadOptions::default()).unwrap_err();
        let ok = match kind {
            "syntax" => matches!(e, DataError::Syntax { .. }),
            "degenerate" => matches!(e, DataError::DegenerateBox { .. }),
            "outside" => matches!(e, DataError::BoxOutsideImage { .. }),
            _ => unreachable!(),
        };
        assert!(ok, "{kind}: {e:?}");
        assert_mentions(&e, parts);
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("broken.json");
    std::fs::write(&path, "{\"images\": [],\n \"categories\": [\n  {\"id\": 1, \"name\": }]}")
        .unwrap();
    let e = read_coco(&path, None, &ReadOptions::default()).unwrap_err();
    assert!(matches!(e, DataError::Json { line: 3, .. }), "{e:?}");
    assert_mentions(&e, &["broken.json:3:"]);
    assert!(std::error::Error::source(&e).is_some());
}

// ---------------------------------------------------------------- YOLO txt

fn yolo_fixture(root: &Path, labels_a: &str) {
    write_png(&root.join("images/train/a.png"), 64, 48);
    write_png(&root.join("images/train/b.png"), 50, 40);
    std::fs::create_dir_all(root.join("labels/train")).unwrap();
    std::fs::write(root.join("labels/train/a.txt"), labels_a).unwrap();
    std::fs::write(root.join("classes.txt"), "cat\ndog\n").unwrap();
}

#[test]
fn yolo_reads_normalised_labels_found_from_image_paths() {
    let dir = tempfile::tempdir().unwrap();
    yolo_fixture(dir.path(), "1 0.5 0.5 0.25 0.5\n\n0 0.125 0.25 0.25 0.5\n");
    let names = yolo3_data::read_class_names(&dir.path().join("classes.txt")).unwrap();
    let ds = read_yolo(&dir.path().join("images"), names, &ReadOptions::default()).unwrap();
    assert_eq!(ds.samples.len(), 2);
    assert_eq!(ds.samples[0].image_path, dir.path().join("images/train/a.png"));
    assert_eq!(
        ds.samples[0].boxes,
        vec![lb(24.0, 12.0, 40.0, 36.0, 1), lb(0.0, 0.0, 16.0, 24.0, 0)]
    );
    assert!(ds.samples[1].boxes.is_empty(), "no label file: background image");
}

#[test]
fn yolo_rejects_broken_labels() {
    let cases: [(&str, &[&str]); 3] = [
        ("1 0.5 0.5 0.25 0.5\n2 0.5 0.5 0.1 0.1\n", &["a.txt:2", "class", "class 2"]),
        ("1 0.5 0.5 0.25\n", &["a.txt:1", "line", "4 values"]),
        ("0 0.5 0.5 abc 0.5\n", &["a.txt:1", "\"w\"", "abc"]),
    ];
    for (labels, parts) in cases {
        let dir = tempfile::tempdir().unwrap();
        yolo_fixture(dir.path(), labels);
        let e = read_yolo(
            &dir.path().join("images"),
            vec!["cat".into(), "dog".into()],
            &ReadOptions::default(),
        )
        .unwrap_err();
        assert_mentions(&e, parts);
    }
    let dir = tempfile::tempdir().unwrap();
    yolo_fixture(dir.path(), "1 0.9 0.5 0.5 0.5\n");
    let e = read_yolo(
        &dir.path().join("images"),
        vec!["cat".into(), "dog".into()],
        &ReadOptions::default(),
    )
    .unwrap_err();
    assert!(matches!(e, DataError::BoxOutsideImage { .. }), "{e:?}");
}

// ---------------------------------------------------------------- detection and writers

#[test]
fn formats_are_detected_and_read_through_one_entry_point() {
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("keras");
    let (ann, _) = keras_fixture(&k, "img/a.png 1,2,30,40,0\n");
    let v = dir.path().join("voc");
    voc_fixture(&v, &voc_object("dog", 0, [11.0, 21.0, 30.0, 40.0]));
    let c = dir.path().join("coco");
    let coco =
        coco_fixture(&c, r#"{"id": 1, "image_id": 10, "category_id": 7, "bbox": [1, 2, 10, 20]}"#);
    let y = dir.path().join("yolo");
    yolo_fixture(&y, "1 0.5 0.5 0.25 0.5\n");
    std::fs::write(y.join("list.txt"), "images/train/a.png\nimages/train/b.png\n").unwrap();

    assert_eq!(detect_format(&ann).unwrap(), DatasetFormat::TrainTxt);
    assert_eq!(detect_format(&v).unwrap(), DatasetFormat::Voc);
    assert_eq!(detect_format(&coco).unwrap(), DatasetFormat::Coco);
    assert_eq!(detect_format(&y).unwrap(), DatasetFormat::Yolo);
    assert_eq!(detect_format(&y.join("list.txt")).unwrap(), DatasetFormat::Yolo);
    let e = detect_format(dir.path()).unwrap_err();
    assert!(matches!(e, DataError::UnknownFormat { .. }), "{e:?}");

    let o = OpenOptions::default();
    assert_eq!(read_dataset(&ann, &o).unwrap().samples[0].boxes.len(), 1);
    assert_eq!(read_dataset(&v, &o).unwrap().samples.len(), 2);
    assert_eq!(read_dataset(&coco, &o).unwrap().class_names, ["cat", "dog"]);
    assert_eq!(read_dataset(&y, &o).unwrap().samples[0].boxes.len(), 1);
    assert_eq!(read_dataset(&y.join("list.txt"), &o).unwrap().samples.len(), 2);
}

#[test]
fn writers_round_trip_through_the_readers() {
    let dir = tempfile::tempdir().unwrap();
    let (ann, classes) =
        keras_fixture(dir.path(), "img/a.png 1,2,30,40,0 10.5,4.25,64,48,2\nimg/b.png 3,3,9,9,1\n");
    let ds = read_train_txt(&ann, &classes, &ReadOptions::default()).unwrap();

    let out = dir.path().join("copy.txt");
    write_train_txt(&ds, &out, yolo3_io::fsio::Existing::Keep).unwrap();
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.starts_with("img/a.png 1,2,30,40,0 10.5,4.25,64,48,2\n"), "{text}");
    let back = read_train_txt(&out, &classes, &ReadOptions::default()).unwrap();
    assert_eq!(back.samples, ds.samples);

    let ydir = dir.path().join("as_yolo");
    write_yolo(&ds, &ydir, ImagePlacement::Copy).unwrap();
    let back = read_dataset(&ydir, &OpenOptions::default()).unwrap();
    assert_eq!(back.class_names, ds.class_names);
    for (a, b) in ds.samples.iter().zip(&back.samples) {
        assert_eq!(a.boxes.len(), b.boxes.len());
        for (x, y) in a.boxes.iter().zip(&b.boxes) {
            assert_eq!(x.class, y.class);
            assert!(
                (x.bbox.x_min - y.bbox.x_min).abs() < 1e-3
                    && (x.bbox.y_max - y.bbox.y_max).abs() < 1e-3
            );
        }
    }
}
