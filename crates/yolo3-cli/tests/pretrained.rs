//! Fine-tuning from weights of another class count through the binary: the 3-class shared
//! tiny-mini weights (darknet and checkpoint) start a run on the 4-class synthetic set, and the
//! run says what it transferred; weights of another network are refused with the conv named.

mod common;
use common::{assert_ok, model, small_dataset, text, tiny_mini_checkpoint, yolo3};

#[test]
fn weights_of_another_class_count_start_a_run_by_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dataset(tmp.path(), 8, 64);
    let cfg = model("cfg/yolov3-tiny-mini.cfg");
    let ckpt = tiny_mini_checkpoint(tmp.path());
    let darknet = model("weights/yolov3-tiny-mini.weights");
    for weights in [darknet.as_path(), ckpt.as_path()] {
        let out = yolo3(
            tmp.path(),
            &[
                "train",
                "--data",
                data.train.to_str().unwrap(),
                "--val",
                data.val.to_str().unwrap(),
                "--cfg",
                cfg.to_str().unwrap(),
                "--weights",
                weights.to_str().unwrap(),
                "--epochs",
                "1",
                "--input",
                "64",
            ],
        );
        assert_ok(&out);
        let stderr = text(&out.stderr);
        let expected = format!(
            "weights: 11/13 conv layers from {}; 2 heads re-initialised (3 -> 4 classes)",
            weights.display()
        );
        assert!(stderr.contains(&expected), "{expected:?} not in:\n{stderr}");
    }
    let out = yolo3(
        tmp.path(),
        &[
            "train",
            "--data",
            data.train.to_str().unwrap(),
            "--cfg",
            model("cfg/yolov3-mini.cfg").to_str().unwrap(),
            "--weights",
            darknet.to_str().unwrap(),
            "--input",
            "64",
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("conv #"), "{}", text(&out.stderr));
}
