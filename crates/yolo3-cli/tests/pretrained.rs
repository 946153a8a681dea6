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

#[test]
fn convert_partial_writes_the_first_layers_as_a_darknet_partial_file() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = model("cfg/yolov3-tiny-mini.cfg");
    let weights = model("weights/yolov3-tiny-mini.weights");
    let ckpt = tiny_mini_checkpoint(tmp.path());
    let parsed = yolo3_model::Config::from_file(&cfg).unwrap();
    let full = yolo3_model::DarknetWeights::read(&weights, &parsed).unwrap();
    // Layers 0-14 of tiny-YOLOv3 hold its first 9 convs (the body, up to the first head).
    let layers = 15;
    let keep = parsed.conv_layers().iter().filter(|&&l| l < layers).count();
    for (source, name) in [(&weights, "from-weights.conv.15"), (&ckpt, "from-ckpt.conv.15")] {
        let mut args = vec!["convert", "partial", "-w", source.to_str().unwrap()];
        args.extend(["--cfg", cfg.to_str().unwrap(), "--layers", "15", "-o", name]);
        let out = yolo3(tmp.path(), &args);
        assert_ok(&out);
        let part = yolo3_model::DarknetWeights::read(tmp.path().join(name), &parsed).unwrap();
        assert_eq!(part.convs.len(), keep);
        assert_eq!(part.convs, full.convs[..keep], "{name}: the first convs, unchanged");
        assert_eq!(part.header.seen, 0);
        assert_eq!((part.header.major, part.header.minor), (full.header.major, full.header.minor));
    }
    let a = std::fs::read(tmp.path().join("from-weights.conv.15")).unwrap();
    assert_eq!(a, std::fs::read(tmp.path().join("from-ckpt.conv.15")).unwrap());
    let out = yolo3(
        tmp.path(),
        &[
            "convert",
            "partial",
            "-w",
            weights.to_str().unwrap(),
            "--cfg",
            cfg.to_str().unwrap(),
            "--layers",
            "15",
            "-o",
            "from-weights.conv.15",
        ],
    );
    assert!(
        !out.status.success() && text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
}
