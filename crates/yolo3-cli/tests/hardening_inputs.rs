//! Bad input through the real binary, continued from `hardening.rs`: evaluation inputs that
//! disagree, shared input folders no command may change, what a format conversion leaves out,
//! a deleted working folder, and the second round of hostile inputs (link loops, repeated COCO
//! annotation ids, unread image formats, absent cameras, a `--project` that is a file).

use std::process::Command;

mod common;
use common::{assert_ok, assert_refused, checksums, model, s, small_dataset, text, yolo3};

#[test]
fn evaluation_inputs_that_disagree_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let gt = tmp.path().join("gt.json");
    let image = |id: u32| format!(r#"{{"id": {id}, "width": 10, "height": 10}}"#);
    std::fs::write(
        &gt,
        format!(
            r#"{{"images": [{}, {}], "categories": [{{"id": 1, "name": "a"}}], "annotations": []}}"#,
            image(1),
            image(1)
        ),
    )
    .unwrap();
    std::fs::write(tmp.path().join("d.json"), "[]").unwrap();
    let out = yolo3(tmp.path(), &["eval", "--gt", "gt.json", "--dets", "d.json"]);
    assert_refused(&out, "images[1].id");
    let voc = tmp.path().join("voc.json");
    std::fs::write(
        &voc,
        r#"{"classes": ["a"], "images": [{"id": "x"}],
            "gt": [{"image_id": "x", "class": "a", "bbox": [5, 5, 1, 1]}], "det": []}"#,
    )
    .unwrap();
    let out = yolo3(tmp.path(), &["eval", "--voc", "voc.json"]);
    assert_refused(&out, "inverted");

    // A checkpoint whose class names are not the dataset's.
    let data = small_dataset(tmp.path(), 2, 64);
    let names = tmp.path().join("names.txt");
    std::fs::write(&names, "cat\ndog\nbird\n").unwrap();
    let ckpt = tmp.path().join("named.safetensors");
    assert_ok(&yolo3(
        tmp.path(),
        &[
            "convert",
            "weights",
            "--cfg",
            s(&model("cfg/yolov3-tiny-mini.cfg")),
            "-w",
            s(&model("weights/yolov3-tiny-mini.weights")),
            "--classes",
            s(&names),
            "-o",
            s(&ckpt),
        ],
    ));
    let three = data.root.join("three.txt");
    let lines: String = std::fs::read_to_string(&data.train)
        .unwrap()
        .lines()
        .map(|l| l.split(' ').filter(|b| !b.ends_with(",3")).collect::<Vec<_>>().join(" ") + "\n")
        .collect();
    std::fs::write(&three, lines).unwrap();
    std::fs::write(data.root.join("classes.txt"), "circle\nsquare\ntriangle\n").unwrap();
    let out = yolo3(tmp.path(), &["eval", "-w", s(&ckpt), "--data", s(&three), "--input", "64"]);
    assert_refused(&out, "do not name the same classes");

    // Nine anchors for a network with six anchor slots.
    let data = small_dataset(&tmp.path().join("four"), 2, 64);
    let anchors = tmp.path().join("anchors.txt");
    std::fs::write(
        &anchors,
        "10,13, 16,30, 33,23, 30,61, 62,45, 59,119, 116,90, 156,198, 373,326\n",
    )
    .unwrap();
    let out = yolo3(
        tmp.path(),
        &[
            "train",
            "--data",
            s(&data.train),
            "--val",
            s(&data.val),
            "--anchors-file",
            s(&anchors),
            "--input",
            "64",
        ],
    );
    assert_refused(&out, "holds 9 anchors");
}

#[test]
fn no_command_changes_a_shared_input_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let shared = tmp.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    let data = small_dataset(&shared, 8, 64);
    let cfg = shared.join("tiny.cfg");
    std::fs::copy(model("cfg/yolov3-tiny-mini.cfg"), &cfg).unwrap();
    let weights = shared.join("tiny.weights");
    std::fs::copy(model("weights/yolov3-tiny-mini.weights"), &weights).unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let ckpt = work.join("tiny.safetensors");
    assert_ok(&yolo3(
        &work,
        &["convert", "weights", "-w", s(&weights), "--cfg", s(&cfg), "-o", s(&ckpt)],
    ));
    std::fs::copy(&ckpt, shared.join("tiny.safetensors")).unwrap();
    let before = checksums(&shared);

    let sc = shared.join("tiny.safetensors");
    let images = data.root.join("images/train");
    // (arguments, whether the command succeeds): refusals must not touch the folder either.
    let runs: Vec<(Vec<&str>, bool)> = vec![
        (vec!["convert", "weights", "-w", s(&sc), "-o", "back.weights"], true),
        (vec!["convert", "weights", "-w", s(&sc), "-o", s(&sc), "--force"], false),
        (
            vec!["convert", "weights", "-w", s(&weights), "--cfg", s(&cfg), "-o", "c.safetensors"],
            true,
        ),
        (vec!["convert", "annotations", "-d", s(&data.train), "--to", "yolo", "-o", "y"], true),
        (
            vec!["convert", "annotations", "-d", s(&data.train), "--to", "keras", "-o", "k/t.txt"],
            true,
        ),
        (
            vec![
                "convert",
                "annotations",
                "-d",
                s(&data.train),
                "--to",
                "keras",
                "-o",
                s(&data.train),
                "--force",
            ],
            false,
        ),
        (
            vec![
                "convert",
                "annotations",
                "-d",
                s(&data.train),
                "--to",
                "yolo",
                "-o",
                s(&data.root),
            ],
            false,
        ),
        (vec!["detect", "-w", s(&sc), "--input", "64", "--save-txt", s(&images)], true),
        (vec!["anchors", "--dataset", s(&data.train), "-n", "6", "--out", "a.txt"], true),
        (vec!["anchors", "--dataset", s(&data.train), "--out", s(&data.classes), "--force"], false),
        (vec!["detect", "-w", s(&sc), "--input", "64", "--project", s(&images), s(&images)], true),
        (
            vec![
                "-q",
                "train",
                "--data",
                s(&data.train),
                "--val",
                s(&data.val),
                "--epochs",
                "1",
                "--input",
                "64",
                "--width-divisor",
                "16",
            ],
            true,
        ),
    ];
    for (args, succeeds) in runs {
        let out = yolo3(&work, &args);
        assert_eq!(out.status.success(), succeeds, "yolo3 {args:?}: {}", text(&out.stderr));
        let mut after = checksums(&shared);
        // --project inside the shared folder adds a run folder of new files only.
        after.retain(|p, _| !p.starts_with("data/images/train/exp"));
        assert_eq!(after, before, "yolo3 {args:?} changed the shared folder");
    }
}

#[test]
fn voc_to_keras_says_what_it_leaves_out() {
    let tmp = tempfile::tempdir().unwrap();
    let voc = tmp.path().join("voc");
    std::fs::create_dir_all(voc.join("Annotations")).unwrap();
    std::fs::create_dir_all(voc.join("JPEGImages")).unwrap();
    image::RgbImage::new(64, 48).save(voc.join("JPEGImages/a.png")).unwrap();
    let object = |name: &str, difficult: u8, x: u32| {
        format!(
            "<object><name>{name}</name><difficult>{difficult}</difficult><bndbox><xmin>{x}</xmin>\
             <ymin>5</ymin><xmax>{}</xmax><ymax>30</ymax></bndbox></object>",
            x + 20
        )
    };
    std::fs::write(
        voc.join("Annotations/a.xml"),
        format!(
            "<annotation><filename>a.png</filename><size><width>64</width><height>48</height>\
             <depth>3</depth></size>{}{}</annotation>",
            object("cat", 0, 2),
            object("dog", 1, 30)
        ),
    )
    .unwrap();
    let out = yolo3(
        tmp.path(),
        &["convert", "annotations", "-d", s(&voc), "--to", "keras", "-o", "k/train.txt"],
    );
    assert_ok(&out);
    assert!(
        text(&out.stderr).contains("1 boxes marked difficult are left out"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("k/train.txt")).unwrap().matches(',').count(),
        4
    );
    let out = yolo3(
        tmp.path(),
        &[
            "convert",
            "annotations",
            "-d",
            s(&voc),
            "--to",
            "keras",
            "-o",
            "all/train.txt",
            "--keep-difficult",
        ],
    );
    assert_ok(&out);
    assert_eq!(
        std::fs::read_to_string(tmp.path().join("all/train.txt")).unwrap().matches(',').count(),
        8
    );
}

/// In a working folder that was deleted, libtorch's oneMKL would abort while loading, before
/// any code of ours; the executable's pre-initialiser says what is wrong instead.
#[test]
fn a_deleted_working_folder_is_a_clear_error() {
    let tmp = tempfile::tempdir().unwrap();
    let gone = tmp.path().join("gone");
    std::fs::create_dir(&gone).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "cd '{}' && rmdir '{}' && exec '{}' --version",
            s(&gone),
            s(&gone),
            env!("CARGO_BIN_EXE_yolo3")
        ))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("the working folder no longer exists"), "{stderr}");
    assert!(!stderr.contains("oneMKL"), "{stderr}");
}

/// Round two of the hostile inputs, each a clear answer: a link loop inside a YOLO dataset
/// folder lists each image once (it listed them some 40 times, into both splits); a COCO
/// ground truth whose annotation ids repeat; images in formats that are not read; a camera
/// that is not there; `--project` naming a file.
#[test]
fn round_two_inputs_get_clear_answers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dataset(tmp.path(), 4, 64);
    assert_ok(&yolo3(
        tmp.path(),
        &["convert", "annotations", "--data", s(&data.train), "--to", "yolo", "--out", "yolo"],
    ));
    let images = tmp.path().join("yolo/images");
    std::os::unix::fs::symlink(&images, images.join("loop")).unwrap();
    std::os::unix::fs::symlink(&images, tmp.path().join("yolo/images-again")).unwrap();
    let out = yolo3(
        tmp.path(),
        &["convert", "annotations", "--data", "yolo", "--to", "keras", "--out", "k.txt"],
    );
    assert_ok(&out);
    let listed = std::fs::read_to_string(tmp.path().join("k.txt")).unwrap();
    assert_eq!(listed.lines().count(), 4, "{listed}");

    let gt = tmp.path().join("gt.json");
    std::fs::write(
        &gt,
        r#"{"images": [{"id": 1, "width": 64, "height": 64}],
            "categories": [{"id": 1, "name": "a"}],
            "annotations": [
              {"id": 5, "image_id": 1, "category_id": 1, "bbox": [1, 1, 9, 9], "area": 81},
              {"id": 5, "image_id": 1, "category_id": 1, "bbox": [20, 20, 9, 9], "area": 81}]}"#,
    )
    .unwrap();
    std::fs::write(tmp.path().join("dets.json"), "[]").unwrap();
    let out = yolo3(tmp.path(), &["eval", "--gt", s(&gt), "--dets", "dets.json"]);
    assert_refused(&out, "annotations[1].id");
    assert_refused(&out, "id 5 is already used by annotations[0]");

    let weights = model("weights/yolov3-tiny-mini.weights");
    let cfg = model("cfg/yolov3-tiny-mini.cfg");
    let detect = |extra: &[&str]| {
        yolo3(tmp.path(), &[&["detect", "-w", s(&weights), "--cfg", s(&cfg)][..], extra].concat())
    };
    for (name, bytes, format) in [
        ("a.webp", &b"RIFF\x24\0\0\0WEBPVP8 \0\0\0\0"[..], "WebP"),
        ("b.tiff", &b"II*\0\x08\0\0\0\0\0\0\0"[..], "TIFF"),
        ("c.jpg", &b"BM\x36\0\0\0\0\0\0\0\x36\0\0\0"[..], "BMP"),
    ] {
        std::fs::write(tmp.path().join(name), bytes).unwrap();
        let out = detect(&[name]);
        let stderr = text(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(stderr.contains(&format!("{name}: {format} images are not supported")), "{stderr}");
    }
    let runs = || tmp.path().join("runs/detect").read_dir().map_or(0, Iterator::count);
    let before = runs();
    let out = detect(&["/dev/video97"]);
    assert_refused(&out, "/dev/video97: no such camera (video device)");
    assert_eq!(runs(), before, "an empty run folder is left");

    std::fs::write(tmp.path().join("a-file"), "x").unwrap();
    let first = data.root.join("images/train").read_dir().unwrap().next().unwrap().unwrap().path();
    let out = detect(&["--project", "a-file", s(&first)]);
    assert_refused(&out, "--project a-file: is a file, not a folder");
}
