//! `detect`'s ultralytics-style options through the binary, on the shared random tiny-mini
//! model (3 classes, many overlapping boxes at a low threshold): `--class-filter` by name and
//! index, `--agnostic-nms`, `--save-crop`, `--line-width`, and the refusal of unknown classes.

mod common;

use std::path::Path;

use common::{assert_ok, model, small_dataset, text, yolo3};
use serde_json::Value;

/// `detect` over the image with `extra` flags into `out/<name>`; its predictions.
fn detect(dir: &Path, image: &Path, name: &str, extra: &[&str]) -> Vec<Value> {
    let weights = model("weights/yolov3-tiny-mini.weights");
    let cfg = model("cfg/yolov3-tiny-mini.cfg");
    std::fs::write(dir.join("names.txt"), "circle\nsquare\ntriangle\n").unwrap();
    let mut args = vec!["detect", "-w", weights.to_str().unwrap(), "--cfg", cfg.to_str().unwrap()];
    args.extend(["--classes", "names.txt", "--conf", "0.05", "--iou", "0.3"]);
    args.extend(["--project", "out", "--name", name]);
    args.extend(extra);
    args.push(image.to_str().unwrap());
    assert_ok(&yolo3(dir, &args));
    let json =
        std::fs::read_to_string(dir.join("out").join(name).join("predictions.json")).unwrap();
    serde_json::from_str::<Vec<Value>>(&json).unwrap()
}

fn xyxy(p: &Value) -> [f64; 4] {
    let b: Vec<f64> = p["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    [b[0], b[1], b[0] + b[2], b[1] + b[3]]
}

fn iou(a: [f64; 4], b: [f64; 4]) -> f64 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)
}

#[test]
fn class_filter_agnostic_nms_crops_and_line_width() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dataset(tmp.path(), 1, 128);
    let image = data.root.join("images/train/000000.png");
    let all = detect(tmp.path(), &image, "all", &[]);
    let class = |p: &Value| p["category_id"].as_u64().unwrap();
    assert!((0..3).all(|c| all.iter().any(|p| class(p) == c)), "every class is found: {all:?}");

    // Per-class NMS: filtering before it keeps exactly the listed classes' boxes.
    let some = detect(tmp.path(), &image, "filtered", &["--class-filter", "triangle,0"]);
    let expected: Vec<&Value> = all.iter().filter(|p| class(p) != 1).collect();
    assert_eq!(some.iter().collect::<Vec<_>>(), expected);

    // Agnostic: no two kept boxes overlap beyond --iou, whatever their classes (NMS sees the
    // boxes before they are clipped to the image, so pairs with a clipped box are left out);
    // at most --max-boxes per image in all.
    let clipped = |b: [f64; 4]| b[0] <= 0.0 || b[1] <= 0.0 || b[2] >= 127.99 || b[3] >= 127.99;
    let agnostic = detect(tmp.path(), &image, "agnostic", &["--agnostic-nms", "--max-boxes", "30"]);
    assert!(!agnostic.is_empty() && agnostic.len() <= 30 && agnostic.len() < all.len());
    let mut pairs = 0;
    for (i, a) in agnostic.iter().enumerate() {
        for b in agnostic[i + 1..].iter().filter(|b| !clipped(xyxy(a)) && !clipped(xyxy(b))) {
            pairs += 1;
            assert!(iou(xyxy(a), xyxy(b)) <= 0.3 + 1e-3, "{a} and {b} overlap");
        }
    }

    assert!(pairs > 10, "only {pairs} pairs of unclipped boxes were checked");

    // Crops: one file per box under crops/<class>/, of the box's size.
    let crops = detect(tmp.path(), &image, "crops", &["--save-crop", "--line-width", "5"]);
    let dir = tmp.path().join("out/crops/crops");
    for (k, p) in crops.iter().enumerate() {
        let name = ["circle", "square", "triangle"][class(p) as usize];
        let crop = image::open(dir.join(name).join(format!("000000_{k}.png"))).unwrap();
        let [x0, y0, x1, y1] = xyxy(p);
        assert!((f64::from(crop.width()) - (x1.ceil() - x0.floor())).abs() <= 1.0);
        assert!((f64::from(crop.height()) - (y1.ceil() - y0.floor())).abs() <= 1.0);
    }

    // An unknown class is refused and names the model's classes.
    let weights = model("weights/yolov3-tiny-mini.weights");
    let cfg = model("cfg/yolov3-tiny-mini.cfg");
    let bad = yolo3(
        tmp.path(),
        &[
            "detect",
            "-w",
            weights.to_str().unwrap(),
            "--cfg",
            cfg.to_str().unwrap(),
            "--classes",
            "names.txt",
            "--class-filter",
            "dog",
            image.to_str().unwrap(),
        ],
    );
    assert!(!bad.status.success());
    assert!(text(&bad.stderr).contains("circle, square, triangle"), "{}", text(&bad.stderr));
}
