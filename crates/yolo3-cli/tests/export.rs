//! `yolo3 export --format onnx` through the binary: the written file runs in ONNX Runtime and
//! reproduces the float64 darknet reference heads of the shared 416 tiny-YOLOv3 case
//! (`scripts/onnx_case_check.py`, with the venv `scripts/setup.sh` makes); refusals keep
//! existing files.

#![allow(clippy::print_stdout)]

mod common;

use std::process::Command;

use common::{assert_ok, model, text, venv_python, yolo3};

#[test]
fn exported_onnx_runs_in_onnx_runtime_with_the_reference_heads() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("tiny.onnx");
    let weights = model("weights/yolov3-tiny.weights");
    let cfg = model("cfg/yolov3-tiny.cfg");
    let args = ["export", "--weights", weights.to_str().unwrap(), "--cfg", cfg.to_str().unwrap()];
    let run = yolo3(
        tmp.path(),
        &[&args[..], &["--input", "416", "--out", out.to_str().unwrap()]].concat(),
    );
    assert_ok(&run);
    assert!(
        text(&run.stderr).contains("input 416x416, dynamic batch, opset 17"),
        "{}",
        text(&run.stderr)
    );
    let check = Command::new(venv_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/onnx_case_check.py"))
        .arg(&out)
        .arg(model("cases/tiny_416x416_a.safetensors"))
        .output()
        .expect("the venv's python runs (scripts/setup.sh makes it)");
    println!("{}{}", text(&check.stdout), text(&check.stderr));
    assert!(check.status.success(), "ONNX Runtime disagrees with the reference (see above)");

    // Refusals: an existing output without --force, a foreign extension, the input itself.
    let again = yolo3(tmp.path(), &[&args[..], &["--out", out.to_str().unwrap()]].concat());
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("--force"), "{}", text(&again.stderr));
    let wrong = tmp.path().join("tiny.weights");
    let foreign = yolo3(tmp.path(), &[&args[..], &["--out", wrong.to_str().unwrap()]].concat());
    assert!(!foreign.status.success() && !wrong.exists());
    let over_input =
        yolo3(tmp.path(), &[&args[..], &["--out", weights.to_str().unwrap(), "--force"]].concat());
    assert!(!over_input.status.success());
}
