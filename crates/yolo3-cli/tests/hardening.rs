//! Bad input through the real binary: every command refuses to write over its own inputs and
//! deletes nothing it did not create; out-of-range numbers stop at parse time; files that are
//! not regular, carry a byte-order mark, lie about their extension or hold NaN weights get a
//! clear answer. Each test reproduces one defect class of the hardening issue.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{
    assert_ok, assert_refused, checksums, model, s, small_dataset, text, tiny_mini_checkpoint,
    yolo3,
};

#[test]
fn convert_weights_never_writes_over_its_input_or_to_a_foreign_format() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tiny_mini_checkpoint(tmp.path());
    let before = std::fs::read(&ckpt).unwrap();
    let out = yolo3(tmp.path(), &["convert", "weights", "-w", s(&ckpt), "-o", s(&ckpt)]);
    assert_refused(&out, ".weights file");
    let out = yolo3(tmp.path(), &["convert", "weights", "-w", s(&ckpt), "-o", "x.png"]);
    assert_refused(&out, ".weights file");
    assert!(!tmp.path().join("x.png").exists());

    // A name that is the input under another spelling or through a link, even with --force.
    let link = tmp.path().join("link.weights");
    std::fs::hard_link(&ckpt, &link).unwrap();
    let out =
        yolo3(tmp.path(), &["convert", "weights", "-w", "link.weights", "-o", "./link.weights"]);
    assert_refused(&out, ".safetensors");
    let w = tmp.path().join("tiny.weights");
    let cfg = model("cfg/yolov3-tiny-mini.cfg");
    assert_ok(&yolo3(tmp.path(), &["convert", "weights", "-w", s(&ckpt), "-o", s(&w)]));
    let out = yolo3(tmp.path(), &["convert", "weights", "-w", s(&ckpt), "-o", s(&w)]);
    assert_refused(&out, "pass --force");
    assert_ok(&yolo3(tmp.path(), &["convert", "weights", "-w", s(&ckpt), "-o", s(&w), "--force"]));
    // The output is a hard link to the input .weights file under a checkpoint's name.
    let alias = tmp.path().join("alias.safetensors");
    std::fs::hard_link(&w, &alias).unwrap();
    let weights_before = std::fs::read(&w).unwrap();
    let out = yolo3(
        tmp.path(),
        &[
            "convert",
            "weights",
            "-w",
            s(&w),
            "--cfg",
            s(&cfg),
            "-o",
            "./alias.safetensors",
            "--force",
        ],
    );
    assert_refused(&out, "is an input");
    assert_eq!(std::fs::read(&w).unwrap(), weights_before);
    assert_eq!(std::fs::read(&ckpt).unwrap(), before, "the checkpoint is untouched");
}

#[test]
fn convert_annotations_into_its_own_source_deletes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dataset(tmp.path(), 3, 64);
    let yolo = tmp.path().join("yolo");
    assert_ok(&yolo3(
        tmp.path(),
        &["convert", "annotations", "--data", s(&data.train), "--to", "yolo", "--out", s(&yolo)],
    ));
    let before = checksums(tmp.path());
    let out = yolo3(
        tmp.path(),
        &["convert", "annotations", "--data", s(&yolo), "--to", "yolo", "--out", s(&yolo)],
    );
    assert_refused(&out, "not empty");
    let out = yolo3(
        tmp.path(),
        &["convert", "annotations", "-d", s(&data.train), "--to", "keras", "-o", s(&data.train)],
    );
    assert_refused(&out, "is an input");
    let out = yolo3(
        tmp.path(),
        &[
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
    );
    assert_refused(&out, "is an input");
    assert_eq!(checksums(tmp.path()), before);
}

#[test]
fn keras_output_keeps_another_datasets_class_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dataset(tmp.path(), 2, 64);
    let out_dir = tmp.path().join("other");
    std::fs::create_dir(&out_dir).unwrap();
    std::fs::write(out_dir.join("classes.txt"), "cat\ndog\n").unwrap();
    let target = out_dir.join("train.txt");
    let out = yolo3(
        tmp.path(),
        &["convert", "annotations", "-d", s(&data.train), "--to", "keras", "-o", s(&target)],
    );
    assert_refused(&out, "does not list this dataset's classes");
    assert_eq!(std::fs::read_to_string(out_dir.join("classes.txt")).unwrap(), "cat\ndog\n");
    assert!(!target.exists(), "nothing is written when the class file is refused");
    // Beside the dataset's own classes.txt (the same names), it is left as it is.
    let beside = data.root.join("copy.txt");
    assert_ok(&yolo3(
        tmp.path(),
        &["convert", "annotations", "-d", s(&data.train), "--to", "keras", "-o", s(&beside)],
    ));
}

/// Two images with one stem, and two with one file name in different folders.
fn colliding_dataset(dir: &Path) -> (PathBuf, Vec<PathBuf>) {
    let data = small_dataset(dir, 3, 64);
    let images = data.root.join("images/train");
    let b = dir.join("b");
    std::fs::create_dir(&b).unwrap();
    let jpg = images.join("000000.jpg");
    image::open(images.join("000001.png")).unwrap().save(&jpg).unwrap();
    std::fs::copy(images.join("000002.png"), b.join("000000.png")).unwrap();
    let text = std::fs::read_to_string(&data.train).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let boxes_of = |line: &str| line.split_once(' ').map_or(String::new(), |(_, b)| b.to_owned());
    let train = data.root.join("collide.txt");
    std::fs::write(
        &train,
        format!(
            "{}\n{} {}\n{} {}\n",
            lines[0],
            jpg.display(),
            boxes_of(lines[1]),
            b.join("000000.png").display(),
            boxes_of(lines[2])
        ),
    )
    .unwrap();
    let sources = vec![images.join("000000.png"), jpg, b.join("000000.png")];
    (train, sources)
}

#[test]
fn images_that_share_a_stem_keep_their_own_boxes() {
    let tmp = tempfile::tempdir().unwrap();
    let (train, sources) = colliding_dataset(tmp.path());
    let yolo = tmp.path().join("yolo");
    let out = yolo3(
        tmp.path(),
        &["convert", "annotations", "-d", s(&train), "--to", "yolo", "-o", s(&yolo)],
    );
    assert_ok(&out);
    assert!(text(&out.stderr).contains("is written as images/000000_2"), "{}", text(&out.stderr));
    let open = yolo3_data::OpenOptions::default();
    let original = yolo3_data::read_dataset(&train, &open).unwrap();
    let back = yolo3_data::read_dataset(&yolo, &open).unwrap();
    assert_eq!(back.samples.len(), 3);
    let mut want: Vec<usize> = original.samples.iter().map(|s| s.boxes.len()).collect();
    let mut got: Vec<usize> = back.samples.iter().map(|s| s.boxes.len()).collect();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want, "every image keeps its own label file");

    // detect: one annotated image and one label file per input, distinct names listed.
    let ckpt = tiny_mini_checkpoint(tmp.path());
    let mut args = vec!["detect", "-w", s(&ckpt), "--input", "64", "--conf", "0.01", "--save-txt"];
    args.extend(sources.iter().map(|p| s(p)));
    let out = yolo3(tmp.path(), &args);
    assert_ok(&out);
    let run = tmp.path().join("runs/detect/exp");
    let listed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("images.json")).unwrap()).unwrap();
    let mut names: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["file_name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["000000.png", "000000_2.jpg", "000000_3.png"]);
    for n in &names {
        assert!(run.join(n).is_file(), "{n}");
        let stem = Path::new(n).file_stem().unwrap().to_str().unwrap();
        assert!(run.join("labels").join(format!("{stem}.txt")).is_file(), "{stem}");
    }
}

#[test]
fn out_of_range_numbers_stop_at_parse_time() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: &[&[&str]] = &[
        &["--threads", "0", "anchors", "--dataset", "x"],
        &["train", "--width-divisor", "0"],
        &["train", "--input", "100000"],
        &["train", "--input", "161"],
        &["train", "--lr=-1"],
        &["train", "--lr", "nan"],
        &["train", "--val-fraction", "5"],
        &["train", "--ignore-thresh", "2"],
        &["train", "--ignore-thresh=-1"],
        &["train", "--epochs", "0"],
        &["train", "--batch", "0"],
        &["train", "--bn-momentum", "0"],
        &["train", "--tile", "16"],
        &["detect", "--tile", "16", "x.png"],
        &["eval", "--tile", "416", "--tile-overlap", "1", "--gt", "a", "--dets", "b"],
        &["detect", "--batch", "0", "x.png"],
        &["detect", "--conf", "1.5", "x.png"],
        &["eval", "--iou", "inf", "--gt", "a", "--dets", "b"],
        &["anchors", "--dataset", "x", "-n", "0"],
    ];
    for args in cases {
        let out = yolo3(tmp.path(), args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", text(&out.stderr));
        assert!(text(&out.stderr).contains("invalid value"), "{args:?}: {}", text(&out.stderr));
    }
    for name in ["", "../x", "a/b", "."] {
        let out = yolo3(tmp.path(), &["train", "--name", name]);
        assert_refused(&out, "must be one folder name");
    }
    assert!(!tmp.path().join("runs").exists(), "nothing was created");
}

#[test]
fn a_failed_run_leaves_no_run_folder_and_too_much_memory_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = yolo3(
        tmp.path(),
        &[
            "train",
            "--synthetic-images",
            "8",
            "--synthetic-val-images",
            "2",
            "--synthetic-size",
            "64",
            "--input",
            "8192",
            "--batch",
            "64",
        ],
    );
    assert_refused(&out, "MB are available");
    let runs = tmp.path().join("runs/train");
    assert_eq!(std::fs::read_dir(&runs).unwrap().count(), 0, "the failed run's folder is gone");
}

/// `yolo3 anchors` on `train.txt`, with a deadline: a reader that blocks fails the test.
fn anchors_within(dir: &Path, train: &Path, seconds: u64) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_yolo3"))
        .current_dir(dir)
        .args(["anchors", "--dataset", s(train), "-n", "2", "--out", "anchors.txt", "--force"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("yolo3 anchors did not finish within {seconds} s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn readers_refuse_fifos_strip_boms_and_sniff_image_content() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dataset(tmp.path(), 3, 64);
    let images = data.root.join("images/train");
    let lines: Vec<String> =
        std::fs::read_to_string(&data.train).unwrap().lines().map(str::to_owned).collect();

    // A FIFO listed as an image: reported, never waited on.
    let fifo = images.join("fifo.png");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let train = data.root.join("fifo.txt");
    let fifo_line = format!("images/train/fifo.png {}", lines[0].split_once(' ').unwrap().1);
    std::fs::write(&train, format!("{}\n{fifo_line}\n{}\n", lines[1], lines[2])).unwrap();
    let out = anchors_within(tmp.path(), &train, 60);
    assert!(text(&out.stderr).contains("FIFO"), "{}", text(&out.stderr));
    std::fs::remove_file(&fifo).unwrap();

    // A BOM before the first path keeps the first image; a PNG named .jpg is read as a PNG.
    std::fs::rename(images.join("000000.png"), images.join("000000.jpg")).unwrap();
    let train = data.root.join("bom.txt");
    let first = lines[0].replace("000000.png", "000000.jpg");
    std::fs::write(&train, format!("\u{feff}{first}\n{}\n{}\n", lines[1], lines[2])).unwrap();
    let out = anchors_within(tmp.path(), &train, 60);
    assert_ok(&out);
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("unreadable") && !stderr.contains("warning"), "{stderr}");
    let dataset = yolo3_data::read_dataset(&train, &yolo3_data::OpenOptions::default()).unwrap();
    assert_eq!(dataset.samples.len(), 3);
    assert!(dataset.samples[0].image_path.ends_with("000000.jpg"));
}

#[test]
fn truncated_jpegs_warn_and_bad_weights_are_refused_with_their_layer() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dataset(tmp.path(), 1, 64);
    let jpg = tmp.path().join("photo.jpg");
    image::open(data.root.join("images/train/000000.png")).unwrap().save(&jpg).unwrap();
    let bytes = std::fs::read(&jpg).unwrap();
    std::fs::write(&jpg, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let ckpt = tiny_mini_checkpoint(tmp.path());
    let out = Command::new(env!("CARGO_BIN_EXE_yolo3"))
        .current_dir(tmp.path())
        .args(["detect", "-w", s(&ckpt), "--input", "64", "photo.jpg"])
        .output()
        .unwrap();
    assert!(text(&out.stderr).contains("truncated"), "{}", text(&out.stderr));

    let cfg = model("cfg/yolov3-tiny-mini.cfg");
    let mut weights = std::fs::read(model("weights/yolov3-tiny-mini.weights")).unwrap();
    // The header is 20 bytes (version 0.2); the first conv's first value is its bias.
    let w = tmp.path().join("nan.weights");
    let mut nan = weights.clone();
    nan[20..24].copy_from_slice(&f32::NAN.to_le_bytes());
    std::fs::write(&w, &nan).unwrap();
    let out = yolo3(tmp.path(), &["detect", "-w", s(&w), "--cfg", s(&cfg), "photo.jpg"]);
    assert_refused(&out, "conv #0 (layer 0): biases[0] = NaN is not finite");
    let header_only = tmp.path().join("header.weights");
    weights.truncate(20);
    std::fs::write(&header_only, &weights).unwrap();
    let out = yolo3(tmp.path(), &["detect", "-w", s(&header_only), "--cfg", s(&cfg), "photo.jpg"]);
    assert_refused(&out, "holds 0 of the");
    let out = yolo3(
        tmp.path(),
        &["convert", "weights", "-w", s(&header_only), "--cfg", s(&cfg), "-o", "h.safetensors"],
    );
    assert_refused(&out, "holds no convolution weights");
}

#[test]
fn messages_name_the_problem_and_print_each_cause_once() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = std::fs::read_to_string(model("cfg/yolov3-tiny-mini.cfg")).unwrap();
    let no_height = cfg.replace("height=160\n", "");
    std::fs::write(tmp.path().join("noh.cfg"), no_height).unwrap();
    let data = small_dataset(tmp.path(), 1, 64);
    let image = data.root.join("images/train/000000.png");
    let out = yolo3(tmp.path(), &["detect", "--cfg", "noh.cfg", s(&image)]);
    assert_refused(&out, "[net] needs `height`");
    let odd = cfg.replace("width=160", "width=161").replace("height=160", "height=161");
    std::fs::write(tmp.path().join("odd.cfg"), odd).unwrap();
    let out = yolo3(tmp.path(), &["detect", "--cfg", "odd.cfg", s(&image)]);
    assert_refused(&out, "input side 161");
    assert!(!text(&out.stderr).contains("--input 161"), "{}", text(&out.stderr));
    let out = yolo3(
        tmp.path(),
        &["convert", "weights", "-w", "m.weights", "--cfg", "m.cfg", "-o", "m.safetensors"],
    );
    let stderr = text(&out.stderr);
    assert_eq!(stderr.matches("No such file or directory").count(), 1, "{stderr}");
    // One missing file per crate that reads: yolo3-model (above), yolo3-core's metrics,
    // yolo3-data and yolo3-train.
    let cfg = model("cfg/yolov3-tiny-mini.cfg");
    std::fs::create_dir(tmp.path().join("lost")).unwrap();
    std::fs::write(tmp.path().join("lost/train.txt"), "gone.jpg 1,1,5,5,0\n").unwrap();
    std::fs::write(tmp.path().join("lost/classes.txt"), "a\nb\nc\n").unwrap();
    for args in [
        &["eval", "--gt", "gt.json", "--dets", "d.json"][..],
        &["eval", "--cfg", s(&cfg), "--data", "lost/train.txt", "--input", "64"],
        &["train", "--resume", "runs/train/missing"],
    ] {
        let out = yolo3(tmp.path(), args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.matches("No such file or directory").count(), 1, "{args:?}: {stderr}");
    }
}
