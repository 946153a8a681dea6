//! End-to-end tests of the `yolo3` binary (ripgrep style): each test runs the real executable in
//! a temporary folder and checks what it wrote. Models come from `shared/models` (random
//! tiny-YOLOv3 weights at 1/8 width), images from the synthetic generator; every test takes
//! seconds.

use std::path::{Path, PathBuf};

use serde_json::Value;
use yolo3_data::synthetic;

mod common;
use common::{assert_ok, model, small_dataset, text, tiny_mini_checkpoint, yolo3};

const EVAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/eval");

#[test]
fn help_of_each_subcommand_mentions_its_key_flags() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 5] = [
        (
            "detect",
            &[
                "--weights",
                "--cfg",
                "--classes",
                "--input",
                "--batch",
                "--score-threshold",
                "--iou-threshold",
                "--max-boxes",
                "--device",
                "--project",
                "--name",
                "--save-txt",
            ],
        ),
        (
            "eval",
            &[
                "--weights",
                "--data",
                "--gt",
                "--dets",
                "--voc",
                "--json",
                "--device",
                "--confusion-threshold",
            ],
        ),
        ("anchors", &["--dataset", "--num", "--input", "--seed", "--out"]),
        ("convert", &["weights", "annotations"]),
        ("train", &["--data", "--cfg", "--weights"]),
    ];
    for (command, flags) in cases {
        let out = yolo3(tmp.path(), &[command, "--help"]);
        assert_ok(&out);
        let help = text(&out.stdout);
        for flag in flags {
            assert!(
                help.contains(flag),
                "`yolo3 {command} --help` does not mention {flag}:\n{help}"
            );
        }
    }
    for (sub, flags) in [
        ("weights", ["--cfg", "--weights", "--classes", "--out"]),
        ("annotations", ["--data", "--to", "--out", "--classes"]),
    ] {
        let out = yolo3(tmp.path(), &["convert", sub, "--help"]);
        assert_ok(&out);
        let help = text(&out.stdout);
        for flag in flags {
            assert!(help.contains(flag), "`yolo3 convert {sub} --help` does not mention {flag}");
        }
    }
}

/// Every number of `expected` is in `actual` at `path`: numbers within 1e-9 (so `-1` and
/// integers are exact in practice), strings, booleans and nulls equal, arrays of equal length.
/// Keys of `actual` that `expected` lacks are allowed.
fn assert_matches(expected: &Value, actual: &Value, path: &str) {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (e.as_f64().unwrap(), a.as_f64().unwrap());
            assert!((e - a).abs() <= 1e-9, "{path}: expected {e}, got {a}");
        }
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                let child = format!("{path}.{k}");
                let got = a.get(k).unwrap_or_else(|| panic!("{child}: missing"));
                assert_matches(v, got, &child);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "{path}: lengths differ");
            for (i, (e, a)) in e.iter().zip(a).enumerate() {
                assert_matches(e, a, &format!("{path}[{i}]"));
            }
        }
        (e, a) => assert_eq!(e, a, "{path}"),
    }
}

/// Case folders under `root`: those holding `expected.json` with COCO or VOC inputs.
fn find_cases(root: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(root) else { return };
    let mut dirs: Vec<PathBuf> =
        entries.filter_map(Result::ok).map(|e| e.path()).filter(|p| p.is_dir()).collect();
    dirs.sort();
    if root.join("expected.json").is_file() {
        out.push(root.to_path_buf());
    }
    for d in dirs {
        find_cases(&d, out);
    }
}

#[test]
fn eval_matches_every_shared_reference_case() {
    let roots: Vec<PathBuf> = match std::env::var("YOLO3_EVAL_DIRS") {
        Ok(dirs) => dirs.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect(),
        Err(_) => vec![PathBuf::from(EVAL)],
    };
    let mut cases = Vec::new();
    for root in &roots {
        find_cases(root, &mut cases);
    }
    let tmp = tempfile::tempdir().unwrap();
    let (mut coco, mut voc) = (0, 0);
    for case in &cases {
        let out = if case.join("gt.json").is_file() {
            coco += 1;
            yolo3(
                tmp.path(),
                &[
                    "eval",
                    "--json",
                    "--gt",
                    case.join("gt.json").to_str().unwrap(),
                    "--dets",
                    case.join("dets.json").to_str().unwrap(),
                ],
            )
        } else if case.join("input.json").is_file() {
            voc += 1;
            yolo3(
                tmp.path(),
                &["eval", "--json", "--voc", case.join("input.json").to_str().unwrap()],
            )
        } else {
            continue;
        };
        assert_ok(&out);
        let actual: Value = serde_json::from_slice(&out.stdout).expect("eval --json prints JSON");
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(case.join("expected.json")).unwrap())
                .unwrap();
        assert_matches(&expected, &actual, &case.display().to_string());
    }
    assert!(coco + voc > 0, "no evaluation cases found under {roots:?}");
    if std::env::var("YOLO3_EVAL_DIRS").is_err() {
        assert!(coco >= 9 && voc >= 5, "found {coco} COCO and {voc} VOC cases");
    }
}

#[test]
fn detect_writes_annotated_images_predictions_and_labels_and_reports_unreadable_images() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tiny_mini_checkpoint(tmp.path());
    let data = small_dataset(tmp.path(), 3, 96);
    let images = data.root.join("images/train");
    std::fs::write(images.join("broken.png"), b"not a png").unwrap();
    let out = yolo3(
        tmp.path(),
        &[
            "detect",
            "--weights",
            ckpt.to_str().unwrap(),
            "--conf",
            "0.01",
            "--input",
            "96",
            "--batch",
            "2",
            "--save-txt",
            "--save-conf",
            images.to_str().unwrap(),
        ],
    );
    assert!(!out.status.success(), "an unreadable image must fail the run");
    let stderr = text(&out.stderr);
    assert!(stderr.contains("broken.png"), "the unreadable image is named:\n{stderr}");

    let run = tmp.path().join("runs/detect/exp");
    for i in 0..3 {
        let name = format!("{i:06}.png");
        let drawn = image::open(run.join(&name)).expect("annotated image");
        assert_eq!((drawn.width(), drawn.height()), (96, 96), "{name}");
        let labels = std::fs::read_to_string(run.join(format!("labels/{i:06}.txt"))).unwrap();
        for line in labels.lines() {
            let fields: Vec<f64> = line.split(' ').map(|f| f.parse().unwrap()).collect();
            assert_eq!(fields.len(), 6, "{line}");
            assert!(
                fields[0] < 3.0 && fields[1..5].iter().all(|v| (0.0..=1.0).contains(v)),
                "{line}"
            );
        }
    }
    assert!(!run.join("broken.png").exists());
    let predictions: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("predictions.json")).unwrap())
            .unwrap();
    let predictions = predictions.as_array().expect("a COCO results list");
    assert!(!predictions.is_empty(), "a low threshold on random weights finds boxes");
    for p in predictions {
        let id = p["image_id"].as_i64().unwrap();
        assert!((0..3).contains(&id), "numeric file stems are the ids: {p}");
        assert!(p["category_id"].as_u64().unwrap() < 3);
        let bbox: Vec<f64> =
            p["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        assert!(
            bbox[0] >= 0.0
                && bbox[1] >= 0.0
                && bbox[0] + bbox[2] <= 96.001
                && bbox[1] + bbox[3] <= 96.001,
            "{p}"
        );
        assert!(p["score"].as_f64().unwrap() >= 0.01);
    }
    let listed: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("images.json")).unwrap()).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 3);

    // A clean run succeeds and gets the next run folder.
    let one = images.join("000001.png");
    let out = yolo3(
        tmp.path(),
        &["detect", "-w", ckpt.to_str().unwrap(), "--input", "96", one.to_str().unwrap()],
    );
    assert_ok(&out);
    assert!(tmp.path().join("runs/detect/exp2/000001.png").is_file());
}

#[test]
fn detect_reads_darknet_weights_with_cfg_and_class_names() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dataset(tmp.path(), 1, 64);
    std::fs::write(tmp.path().join("names.txt"), "a\nb\nc\n").unwrap();
    let out = yolo3(
        tmp.path(),
        &[
            "detect",
            "--weights",
            model("weights/yolov3-tiny-mini.weights").to_str().unwrap(),
            "--cfg",
            model("cfg/yolov3-tiny-mini.cfg").to_str().unwrap(),
            "--classes",
            "names.txt",
            "--project",
            "out",
            "--name",
            "run",
            "--conf",
            "0.01",
            data.root.join("images/train/000000.png").to_str().unwrap(),
        ],
    );
    assert_ok(&out);
    assert!(tmp.path().join("out/run/000000.png").is_file());
    // Without --cfg a .weights file cannot be read.
    let out = yolo3(
        tmp.path(),
        &[
            "detect",
            "--weights",
            model("weights/yolov3-tiny-mini.weights").to_str().unwrap(),
            "x.png",
        ],
    );
    assert!(!out.status.success());
}

/// The synthetic dataset restricted to the first three classes (the mini models have three).
fn three_class_copy(data: &synthetic::SyntheticDataset, split: &Path) -> PathBuf {
    let mut kept = String::new();
    for line in std::fs::read_to_string(split).unwrap().lines() {
        let mut fields = line.split(' ');
        kept.push_str(fields.next().unwrap());
        for b in fields.filter(|b| !b.ends_with(",3")) {
            kept.push(' ');
            kept.push_str(b);
        }
        kept.push('\n');
    }
    let path = data.root.join("three.txt");
    std::fs::write(&path, kept).unwrap();
    std::fs::write(data.root.join("three_classes.txt"), "circle\nsquare\ntriangle\n").unwrap();
    path
}

#[test]
fn eval_of_a_model_on_a_dataset_writes_metrics_and_pictures() {
    let tmp = tempfile::tempdir().unwrap();
    let ckpt = tiny_mini_checkpoint(tmp.path());
    let data = small_dataset(tmp.path(), 4, 96);
    let annotations = three_class_copy(&data, &data.train);
    let classes = data.root.join("three_classes.txt");
    let out = yolo3(
        tmp.path(),
        &[
            "eval",
            "--weights",
            ckpt.to_str().unwrap(),
            "--data",
            annotations.to_str().unwrap(),
            "--classes",
            classes.to_str().unwrap(),
            "--input",
            "96",
            "--batch",
            "3",
        ],
    );
    assert_ok(&out);
    let stdout = text(&out.stdout);
    for needle in ["Average Precision", "mAP50-95", "Instances", "AP07", "triangle"] {
        assert!(stdout.contains(needle), "missing {needle}:\n{stdout}");
    }
    let run = tmp.path().join("runs/eval/exp");
    for picture in ["pr_curve.png", "confusion_matrix.png"] {
        image::open(run.join(picture)).unwrap_or_else(|e| panic!("{picture}: {e}"));
    }
    let metrics: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap();
    assert_eq!(metrics["coco"]["stats_list"].as_array().unwrap().len(), 12);
    assert_eq!(metrics["images"], 4);
    assert_eq!(metrics["classes"].as_array().unwrap().len(), 3);
    let rows = metrics["confusion_matrix"]["rows_predicted_columns_true"].as_array().unwrap();
    assert_eq!(rows.len(), 4);
    // Every regular ground-truth box lands in exactly one column cell.
    let column_total: u64 = rows
        .iter()
        .flat_map(|r| r.as_array().unwrap()[..3].to_vec())
        .map(|v| v.as_u64().unwrap())
        .sum();
    let gt_boxes: usize = metrics["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["instances"].as_u64().unwrap() as usize)
        .sum();
    assert_eq!(column_total as usize, gt_boxes);
}

#[test]
fn anchors_writes_n_integer_pairs_deterministically() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dataset(tmp.path(), 12, 64);
    let run = |out: &str| {
        let o = yolo3(
            tmp.path(),
            &[
                "anchors",
                "--dataset",
                data.train.to_str().unwrap(),
                "-n",
                "6",
                "--input",
                "416",
                "--seed",
                "3",
                "--out",
                out,
            ],
        );
        assert_ok(&o);
        (std::fs::read_to_string(tmp.path().join(out)).unwrap(), text(&o.stdout))
    };
    let (first, stdout) = run("a.txt");
    let (second, _) = run("b.txt");
    assert_eq!(first, second, "same seed, same anchors");
    assert!(stdout.contains("average IoU"), "{stdout}");
    let anchors =
        yolo3_core::Anchors::parse(&first, "a.txt", yolo3_core::TinyMask::Darknet).unwrap();
    assert_eq!(anchors.sizes().len(), 6);
    for [w, h] in anchors.sizes() {
        assert!(w.fract() == 0.0 && h.fract() == 0.0 && *w >= 1.0 && *h >= 1.0, "{first}");
        // Boxes are 12% to 45% of a 64-pixel image letterboxed to 416.
        assert!(*w <= 416.0 * 0.5 && *h <= 416.0 * 0.5, "{first}");
    }
    assert!(first.contains(",  "), "keras separator: {first}");
}

#[test]
fn darknet_weights_round_trip_through_a_checkpoint_byte_for_byte() {
    let tmp = tempfile::tempdir().unwrap();
    for file in ["yolov3-tiny-mini.weights", "yolov3-tiny-mini.v01.weights"] {
        let original = model(&format!("weights/{file}"));
        let ckpt = tmp.path().join(format!("{file}.safetensors"));
        let back = tmp.path().join(format!("back-{file}"));
        assert_ok(&yolo3(
            tmp.path(),
            &[
                "convert",
                "weights",
                "--cfg",
                model("cfg/yolov3-tiny-mini.cfg").to_str().unwrap(),
                "--weights",
                original.to_str().unwrap(),
                "--out",
                ckpt.to_str().unwrap(),
            ],
        ));
        assert_ok(&yolo3(
            tmp.path(),
            &[
                "convert",
                "weights",
                "--weights",
                ckpt.to_str().unwrap(),
                "--out",
                back.to_str().unwrap(),
            ],
        ));
        assert!(
            std::fs::read(&original).unwrap() == std::fs::read(&back).unwrap(),
            "{file} differs after the round trip"
        );
    }
}

fn boxes_by_file(dataset: &yolo3_data::Dataset) -> Vec<(String, Vec<yolo3_core::LabeledBox>)> {
    let mut v: Vec<_> = dataset
        .samples
        .iter()
        .map(|s| {
            (s.image_path.file_name().unwrap().to_string_lossy().into_owned(), s.boxes.clone())
        })
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

#[test]
fn annotations_convert_keras_to_yolo_to_keras_keeping_the_boxes() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dataset(tmp.path(), 5, 64);
    let read = |p: &Path| yolo3_data::read_dataset(p, &yolo3_data::OpenOptions::default()).unwrap();
    let original = read(&data.train);

    assert_ok(&yolo3(
        tmp.path(),
        &[
            "convert",
            "annotations",
            "--data",
            data.train.to_str().unwrap(),
            "--to",
            "yolo",
            "--out",
            "yolo",
        ],
    ));
    let as_yolo = read(&tmp.path().join("yolo"));
    assert_eq!(as_yolo.class_names, original.class_names);

    assert_ok(&yolo3(
        tmp.path(),
        &["convert", "annotations", "--data", "yolo", "--to", "keras", "--out", "keras/train.txt"],
    ));
    let as_keras = read(&tmp.path().join("keras/train.txt"));
    assert_eq!(as_keras.class_names, original.class_names);

    let expected = boxes_by_file(&original);
    for converted in [boxes_by_file(&as_yolo), boxes_by_file(&as_keras)] {
        assert_eq!(converted.len(), expected.len());
        for ((name_e, e), (name_c, c)) in expected.iter().zip(&converted) {
            assert_eq!(name_e, name_c);
            assert_eq!(e.len(), c.len(), "{name_e}");
            for (a, b) in e.iter().zip(c) {
                assert_eq!(a.class, b.class);
                // YOLO txt keeps 6 decimals of the normalised coordinates.
                for (x, y) in [
                    (a.bbox.x_min, b.bbox.x_min),
                    (a.bbox.y_min, b.bbox.y_min),
                    (a.bbox.x_max, b.bbox.x_max),
                    (a.bbox.y_max, b.bbox.y_max),
                ] {
                    assert!((x - y).abs() < 1e-3, "{name_e}: {a:?} vs {b:?}");
                }
            }
        }
    }
}
