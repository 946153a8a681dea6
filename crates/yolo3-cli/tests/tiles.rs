//! `detect --tile` and `eval --tile` through the binary on a whole 2299 x 2472 airborne photo
//! (`../shared/real/trees`): every box inside the photo, the report without a loss (tiles have
//! none) and with COCO counting as many detections as asked for. That one object cut by tile
//! edges comes out once is `yolo3_core::tiles`' unit tests' (with boxes placed by hand); here a
//! network with random weights (`yolov3-tiny-mini`) exercises the path end to end.

use std::path::{Path, PathBuf};

mod common;
use common::{assert_ok, assert_refused, model, s, text, yolo3};

fn trees() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/real/trees")
}

const PHOTO: &str = "JPEGImages/2019_YELL_2_528000_4978000_image_crop2.png";

fn model_args() -> Vec<String> {
    [
        "--cfg",
        s(&model("cfg/yolov3-tiny-mini.cfg")),
        "--weights",
        s(&model("weights/yolov3-tiny-mini.weights")),
    ]
    .map(str::to_owned)
    .to_vec()
}

fn json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn detect_in_tiles_keeps_every_box_inside_the_whole_photo() {
    let tmp = tempfile::tempdir().unwrap();
    let photo = trees().join(PHOTO);
    let mut args: Vec<String> =
        ["detect", s(&photo), "--tile", "416", "--input", "416", "--conf", "0.05"]
            .map(str::to_owned)
            .to_vec();
    args.extend(model_args());
    args.extend(["--no-images", "--project", "runs"].map(str::to_owned));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = yolo3(tmp.path(), &args);
    assert_ok(&out);
    let run = tmp.path().join("runs/exp");
    let images = json(&run.join("images.json"));
    assert_eq!(images[0]["width"], 2299);
    assert_eq!(images[0]["height"], 2472);
    let predictions = json(&run.join("predictions.json"));
    let boxes = predictions.as_array().unwrap();
    assert!(!boxes.is_empty(), "no boxes at score 0.05: {}", text(&out.stderr));
    for b in boxes {
        let v: Vec<f64> =
            b["bbox"].as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
        assert!(v[0] >= 0.0 && v[1] >= 0.0 && v[2] > 0.0 && v[3] > 0.0, "{b}");
        assert!(v[0] + v[2] <= 2299.001 && v[1] + v[3] <= 2472.001, "{b}");
    }
}

#[test]
fn eval_in_tiles_reports_without_a_loss_and_counts_the_boxes_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    // The photos' one class, named first, among the network's three.
    let names = tmp.path().join("names.txt");
    std::fs::write(&names, "Tree\nshrub\nrock\n").unwrap();
    let mut args: Vec<String> =
        ["eval", "-d", s(&trees()), "--classes", s(&names), "--tile", "416"]
            .map(str::to_owned)
            .to_vec();
    args.extend(model_args());
    args.extend(
        ["--input", "416", "--max-boxes", "1000", "--json", "--project", "runs"].map(str::to_owned),
    );
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = yolo3(tmp.path(), &args);
    assert_ok(&out);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["images"], 2);
    assert!(report["loss"].is_null(), "{}", report["loss"]);
    assert_eq!(report["decode"]["max_boxes"], 1000);
    assert!(tmp.path().join("runs/exp/metrics.json").is_file());

    let data = trees();
    let bad: Vec<&str> = ["eval", "-d", s(&data), "--tile-overlap", "0.5"].to_vec();
    assert_refused(&yolo3(tmp.path(), &bad), "--tile");
    let bad: Vec<&str> =
        ["eval", "-d", s(&data), "--tile", "416", "--tile-overlap", "0.99"].to_vec();
    assert_refused(&yolo3(tmp.path(), &bad), "0.95");
}
