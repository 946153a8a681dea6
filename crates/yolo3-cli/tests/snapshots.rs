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

#[test]
fn tables_of_a_model_on_a_dataset() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dataset(tmp.path(), 4, 64);
    // The shared tiny model has 3 classes and the synthetic set 4: keep the first three.
    let three_classes = |line: &str| {
        let mut fields = line.split(' ');
        let path = fields.next().unwrap_or_default().to_string();
        let boxes = fields.filter(|b| !b.ends_with(",3"));
        std::iter::once(path).chain(boxes.map(str::to_string)).collect::<Vec<_>>().join(" ")
    };
    let list = std::fs::read_to_string(&data.train).unwrap();
    let train = data.train.with_file_name("three.txt");
    std::fs::write(&train, list.lines().map(three_classes).collect::<Vec<_>>().join("\n")).unwrap();
    let names = std::fs::read_to_string(&data.classes).unwrap();
    let classes = data.classes.with_file_name("three.names");
    std::fs::write(&classes, names.lines().take(3).collect::<Vec<_>>().join("\n")).unwrap();
    let weights = model("weights/yolov3-tiny-mini.weights");
    let cfg = model("cfg/yolov3-tiny-mini.cfg");
    let report = stdout_of(
        tmp.path(),
        &[
            "eval",
            "-w",
            weights.to_str().unwrap(),
            "--cfg",
            cfg.to_str().unwrap(),
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
