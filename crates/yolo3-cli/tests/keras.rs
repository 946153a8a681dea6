//! keras-yolo3 `.h5` weights through the binary: `convert keras` writes the checkpoint that
//! the same darknet weights convert to, `detect` reads `.h5` directly with the same
//! predictions, training starts from `.h5` by shape, and a truncated file is an error that
//! names it. The `.h5` files come from `scripts/gen-keras-h5.py` and the shared tiny-mini
//! model (3 classes, random weights).

mod common;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{
    assert_ok, model, small_dataset, text, tiny_mini_checkpoint, train_one_epoch_from, yolo3,
};
use yolo3_model::{Config, Darknet};

/// The shared tiny-mini as a Keras 2 `save_weights` file, with its anchors.txt and a
/// classes.txt, in `dir`.
fn keras_files(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let h5 = dir.join("tiny-mini.h5");
    let out = Command::new(common::venv_python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/gen-keras-h5.py"))
        .args(["--cfg", model("cfg/yolov3-tiny-mini.cfg").to_str().unwrap()])
        .args(["--weights", model("weights/yolov3-tiny-mini.weights").to_str().unwrap()])
        .args(["--out", h5.to_str().unwrap()])
        .output()
        .expect("python runs");
    assert_ok(&out);
    let cfg = Config::from_file(model("cfg/yolov3-tiny-mini.cfg")).unwrap();
    let mut anchors = vec![String::new(); 6];
    for head in cfg.heads() {
        for (&m, [w, h]) in head.mask.iter().zip(&head.anchors) {
            anchors[m] = format!("{w},{h}");
        }
    }
    let (anchors_txt, classes_txt) = (dir.join("anchors.txt"), dir.join("classes.txt"));
    std::fs::write(&anchors_txt, anchors.join(", ") + "\n").unwrap();
    std::fs::write(&classes_txt, "circle\nsquare\ntriangle\n").unwrap();
    (h5, anchors_txt, classes_txt)
}

fn assert_same_checkpoint(a: &Path, b: &Path) {
    let (a, _) = Darknet::from_checkpoint(a, tch::Device::Cpu).unwrap();
    let (b, _) = Darknet::from_checkpoint(b, tch::Device::Cpu).unwrap();
    let vb = b.var_store().variables();
    for (name, t) in a.var_store().variables() {
        assert!(t.equal(&vb[&name]), "`{name}` differs");
    }
}

#[test]
fn convert_keras_writes_the_checkpoint_of_the_darknet_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let (h5, anchors, classes) = keras_files(tmp.path());
    let darknet = tiny_mini_checkpoint(tmp.path());
    let (h5, anchors, classes) =
        (h5.to_str().unwrap(), anchors.to_str().unwrap(), classes.to_str().unwrap());
    let convert = |extra: &[&str], out: &str| {
        let mut args = vec!["convert", "keras", "-w", h5, "--classes", classes, "-o", out];
        args.extend(extra);
        yolo3(tmp.path(), &args)
    };
    let out = convert(&["--anchors", anchors], "keras.safetensors");
    assert_ok(&out);
    assert!(text(&out.stderr).contains("13 convolutions of"), "{}", text(&out.stderr));
    let cfg = model("cfg/yolov3-tiny-mini.cfg");
    assert_ok(&convert(&["--cfg", cfg.to_str().unwrap()], "keras-cfg.safetensors"));
    for converted in ["keras.safetensors", "keras-cfg.safetensors"] {
        assert_same_checkpoint(&tmp.path().join(converted), &darknet);
        let (_, info) =
            Darknet::from_checkpoint(tmp.path().join(converted), tch::Device::Cpu).unwrap();
        assert_eq!(info.class_names, ["circle", "square", "triangle"]);
    }

    let out = convert(&["--anchors", anchors], "keras.safetensors");
    assert!(
        !out.status.success() && text(&out.stderr).contains("--force"),
        "{}",
        text(&out.stderr)
    );
    assert_ok(&convert(&["--anchors", anchors, "--force"], "keras.safetensors"));
    let out = convert(&[], "x.safetensors");
    assert!(
        !out.status.success() && text(&out.stderr).contains("--anchors"),
        "{}",
        text(&out.stderr)
    );

    let bytes = std::fs::read(h5).unwrap();
    std::fs::write(tmp.path().join("cut.h5"), &bytes[..bytes.len() - 2000]).unwrap();
    let out = yolo3(
        tmp.path(),
        &["convert", "keras", "-w", "cut.h5", "--anchors", anchors, "-o", "cut.safetensors"],
    );
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("cut.h5: layer `conv2d_") && stderr.contains("truncated"), "{stderr}");
    assert!(!tmp.path().join("cut.safetensors").exists());
}

/// `detect` on one image with `model` (the flags that load it), YOLO labels written to
/// `out/<name>/labels`.
fn detect_labels(dir: &Path, model: &[&str], name: &str, image: &Path) -> String {
    let mut args = vec!["detect", "--input", "96", "--conf", "0.01", "--save-txt"];
    args.extend(["--project", "out", "--name", name]);
    args.extend(model);
    args.push(image.to_str().unwrap());
    assert_ok(&yolo3(dir, &args));
    let stem = image.file_stem().unwrap().to_str().unwrap();
    std::fs::read_to_string(dir.join(format!("out/{name}/labels/{stem}.txt"))).unwrap()
}

#[test]
fn detect_reads_keras_weights_as_their_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dataset(tmp.path(), 1, 64);
    let image = data.root.join("images/train/000000.png");
    let (h5, anchors, classes) = keras_files(tmp.path());
    let darknet = tiny_mini_checkpoint(tmp.path());
    let (h5, anchors, classes) =
        (h5.to_str().unwrap(), anchors.to_str().unwrap(), classes.to_str().unwrap());
    let cfg = model("cfg/yolov3-tiny-mini.cfg");
    // With the darknet cfg: darknet's network and masks.
    let keras = detect_labels(tmp.path(), &["-w", h5, "--cfg", cfg.to_str().unwrap()], "k", &image);
    let expected = detect_labels(tmp.path(), &["-w", darknet.to_str().unwrap()], "d", &image);
    assert!(!expected.is_empty());
    assert_eq!(keras, expected);
    // With anchors.txt: keras-yolo3's network, as `convert keras` writes it.
    let ckpt = tmp.path().join("keras.safetensors");
    let args = ["convert", "keras", "-w", h5, "--anchors", anchors, "-o", ckpt.to_str().unwrap()];
    assert_ok(&yolo3(tmp.path(), &args));
    let keras = detect_labels(
        tmp.path(),
        &["-w", h5, "--anchors", anchors, "--classes", classes],
        "ka",
        &image,
    );
    let expected = detect_labels(tmp.path(), &["-w", ckpt.to_str().unwrap()], "c", &image);
    assert_eq!(keras, expected);
    let out = yolo3(tmp.path(), &["detect", "-w", h5, image.to_str().unwrap()]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("--anchors"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn training_starts_from_keras_weights_by_shape() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dataset(tmp.path(), 8, 64);
    let (h5, _, _) = keras_files(tmp.path());
    let cfg = model("cfg/yolov3-tiny-mini.cfg");
    let out = train_one_epoch_from(tmp.path(), &data, &cfg, &h5);
    assert_ok(&out);
    let stderr = text(&out.stderr);
    let expected = format!(
        "weights: 11/13 conv layers from {}; 2 heads re-initialised (3 -> 4 classes)",
        h5.display()
    );
    assert!(stderr.contains(&expected), "{expected:?} not in:\n{stderr}");
}
