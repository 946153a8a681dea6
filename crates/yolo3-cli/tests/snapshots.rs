//! Snapshots (insta) of what users read: each command's `--help` and the metric tables `yolo3
//! eval` prints, so a change to either shows up in review as a diff of `tests/snapshots/`.
//!
//! Inputs are the shared evaluation cases and the shared random tiny model on a generated
//! dataset; temporary paths are replaced by `[TMP]` before the comparison. To accept a change:
//! `INSTA_UPDATE=always cargo test -p yolo3-cli --test snapshots`, then review the files.

mod common;

use common::{assert_ok, model, small_dataset, text, yolo3};

const SHARED_EVAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/eval");

fn stdout_of(dir: &std::path::Path, args: &[&str]) -> String {
    let out = yolo3(dir, args);
    assert_ok(&out);
    text(&out.stdout).replace(&dir.display().to_string(), "[TMP]")
}

#[test]
fn help_of_every_command() {
    let tmp = tempfile::tempdir().unwrap();
    for command in [
        &["--help"][..],
        &["train", "--help"],
        &["detect", "--help"],
        &["eval", "--help"],
        &["anchors", "--help"],
        &["convert", "--help"],
        &["convert", "weights", "--help"],
        &["convert", "partial", "--help"],
        &["convert", "keras", "--help"],
        &["convert", "annotations", "--help"],
        &["export", "--help"],
    ] {
        let name = command.iter().map(|a| a.trim_start_matches('-')).collect::<Vec<_>>().join("_");
        insta::assert_snapshot!(name, stdout_of(tmp.path(), command));
    }
}

#[test]
fn coco_and_voc_tables_of_files() {
    let tmp = tempfile::tempdir().unwrap();
    let coco = format!("{SHARED_EVAL}/coco/random_50img_5cat");
    insta::assert_snapshot!(
        "eval_coco_files",
        stdout_of(
            tmp.path(),
            &["eval", "--gt", &format!("{coco}/gt.json"), "--dets", &format!("{coco}/dets.json")]
        )
    );
    let voc = format!("{SHARED_EVAL}/voc/difficult/input.json");
    insta::assert_snapshot!("eval_voc_file", stdout_of(tmp.path(), &["eval", "--voc", &voc]));
}

/// The tables of `eval` with a model on a dataset where it finds something: the shared random
/// tiny model is run with `detect` on generated images, and the ground truth is made from its
/// three most confident boxes per image: the first as it is (a match at every IoU), the second
/// moved by 15% of its width or height, whichever way stays inside the image (IoU 0.74: a
/// match up to 0.70, a miss from 0.75; far from a threshold, so float noise cannot flip it),
/// the third left out (a false positive), plus a box nothing detects (a miss). So every
/// column measures something between 0 and 1.
#[test]
fn tables_of_a_model_on_a_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dataset(tmp.path(), 4, 64);
    let weights = model("weights/yolov3-tiny-mini.weights");
    let cfg = model("cfg/yolov3-tiny-mini.cfg");
    let (w, c) = (weights.to_str().unwrap(), cfg.to_str().unwrap());
    let images = data.root.join("images/train");
    let out = yolo3(
        tmp.path(),
        &["detect", "-w", w, "--cfg", c, "--input", "64", "--conf", "0.05", "--no-images"]
            .iter()
            .copied()
            .chain([images.to_str().unwrap(), "--project", "found", "--name", "run"])
            .collect::<Vec<_>>(),
    );
    assert_ok(&out);
    let run = tmp.path().join("found/run");
    let read = |name: &str| -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(run.join(name)).unwrap()).unwrap()
    };
    let (predictions, listed) = (read("predictions.json"), read("images.json"));
    let mut lines = Vec::new();
    for image in listed.as_array().unwrap() {
        let id = &image["id"];
        let mut boxes: Vec<&serde_json::Value> =
            predictions.as_array().unwrap().iter().filter(|p| &p["image_id"] == id).collect();
        boxes.sort_by(|a, b| b["score"].as_f64().unwrap().total_cmp(&a["score"].as_f64().unwrap()));
        assert!(boxes.len() >= 3, "the model finds too little in {image}");
        let corners = |p: &serde_json::Value, shift: f64| {
            let v: Vec<f64> =
                p["bbox"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            let (w, h) = (v[2], v[3]);
            let inside = |x: f64, y: f64| x >= 0.0 && y >= 0.0 && x + w <= 64.0 && y + h <= 64.0;
            let (x, y) = [(shift * w, 0.0), (-shift * w, 0.0), (0.0, shift * h), (0.0, -shift * h)]
                .into_iter()
                .map(|(dx, dy)| (v[0] + dx, v[1] + dy))
                .find(|&(x, y)| inside(x, y))
                .expect("a box that fits one way");
            format!("{x:.3},{y:.3},{:.3},{:.3},{}", x + w, y + h, p["category_id"])
        };
        let path = images.join(image["file_name"].as_str().unwrap());
        lines.push(format!(
            "{} {} {} 1,1,4,4,0",
            path.display(),
            corners(boxes[0], 0.0),
            corners(boxes[1], 0.15)
        ));
    }
    let train = tmp.path().join("gt.txt");
    std::fs::write(&train, lines.join("\n")).unwrap();
    let names = std::fs::read_to_string(&data.classes).unwrap();
    let classes = tmp.path().join("three.names");
    std::fs::write(&classes, names.lines().take(3).collect::<Vec<_>>().join("\n")).unwrap();
    let report = stdout_of(
        tmp.path(),
        &[
            "eval",
            "-w",
            w,
            "--cfg",
            c,
            "--classes",
            classes.to_str().unwrap(),
            "--data",
            train.to_str().unwrap(),
            "--input",
            "64",
        ],
    );
    insta::assert_snapshot!("eval_model_on_dataset", report);
}
