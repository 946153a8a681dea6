//! `yolo3 train` through the real binary: a run killed mid-way resumes from its last
//! checkpoint and ends with every epoch in `results.csv` exactly once.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::result_epochs;

fn yolo3() -> Command {
    Command::new(env!("CARGO_BIN_EXE_yolo3"))
}

#[test]
fn killed_run_resumes_from_its_last_checkpoint() {
    let tmp = tempfile::tempdir().unwrap();
    let epochs = 12;
    let mut child = yolo3()
        .current_dir(tmp.path())
        .args([
            "-q",
            "train",
            "--synthetic-images",
            "32",
            "--synthetic-val-images",
            "8",
            "--synthetic-size",
            "64",
        ])
        .args([
            "--input",
            "64",
            "--width-divisor",
            "8",
            "--batch",
            "8",
            "--epochs",
            &epochs.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = tmp.path().join("runs/train/exp");
    let started = Instant::now();
    while !run.join("weights/last.safetensors").is_file() {
        assert!(started.elapsed() < Duration::from_secs(600), "no epoch finished in 10 minutes");
        assert!(child.try_wait().unwrap().is_none(), "training exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let done = result_epochs(&run);
    assert!(done.len() < epochs, "the run finished before it could be killed");

    let out =
        yolo3().current_dir(tmp.path()).args(["train", "--resume"]).arg(&run).output().unwrap();
    assert!(out.status.success(), "resume failed: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(result_epochs(&run), (1..=epochs).collect::<Vec<_>>());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("mAP50-95") && stdout.contains("circle"), "{stdout}");
    for f in [
        "results.png",
        "weights/best.safetensors",
        "weights/best.weights",
        "args.toml",
        "model.cfg",
    ] {
        assert!(run.join(f).is_file(), "{f} missing");
    }
    // The synthetic flags shaped the generated data: 32 + 8 images of 64 pixels.
    let lines =
        |f: &str| std::fs::read_to_string(run.join("data").join(f)).unwrap().lines().count();
    assert_eq!((lines("train.txt"), lines("val.txt")), (32, 8));
    let first = image::open(run.join("data/images/train/000000.png")).unwrap();
    assert_eq!((first.width(), first.height()), (64, 64));
}

#[test]
fn train_rejects_a_cfg_it_cannot_read() {
    let tmp = tempfile::tempdir().unwrap();
    let out = yolo3()
        .current_dir(tmp.path())
        .args([
            "train",
            "--synthetic-images",
            "8",
            "--synthetic-val-images",
            "4",
            "--synthetic-size",
            "64",
            "--input",
            "64",
        ])
        .args(["--cfg", "missing.cfg", "--epochs", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("missing.cfg"), "{err}");
}

/// Writes the keras-format synthetic set `data/train.txt` again as COCO JSON, a Pascal VOC
/// folder and YOLO txt labels, and trains one epoch from each.
#[test]
fn trains_from_every_dataset_format() {
    use std::fmt::Write as _;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let options = yolo3_data::SyntheticOptions {
        images_train: 12,
        images_val: 2,
        size: 64,
        seed: 5,
        ..yolo3_data::SyntheticOptions::default()
    };
    let data = yolo3_data::generate(&root.join("data"), &options).unwrap();
    let dataset =
        yolo3_data::read_dataset(&data.train, &yolo3_data::OpenOptions::default()).unwrap();

    // COCO: images beside the JSON in `images/`, category ids 1.. in class order.
    std::fs::create_dir_all(root.join("coco/images")).unwrap();
    let (mut images, mut annotations) = (Vec::new(), Vec::new());
    for (i, s) in dataset.samples.iter().enumerate() {
        let name = s.image_path.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(&s.image_path, root.join("coco/images").join(&name)).unwrap();
        images.push(serde_json::json!({"id": i + 1, "file_name": name, "width": 64, "height": 64}));
        for b in &s.boxes {
            let (w, h) = (b.bbox.width(), b.bbox.height());
            annotations.push(serde_json::json!({
                "id": annotations.len() + 1, "image_id": i + 1, "category_id": b.class + 1,
                "bbox": [b.bbox.x_min, b.bbox.y_min, w, h], "area": w * h, "iscrowd": 0
            }));
        }
    }
    let categories: Vec<_> = dataset
        .class_names
        .iter()
        .enumerate()
        .map(|(c, n)| serde_json::json!({"id": c + 1, "name": n}))
        .collect();
    let coco =
        serde_json::json!({"images": images, "annotations": annotations, "categories": categories});
    std::fs::write(root.join("coco/instances.json"), coco.to_string()).unwrap();

    // VOC: 1-based inclusive corners.
    for dir in ["voc/Annotations", "voc/JPEGImages"] {
        std::fs::create_dir_all(root.join(dir)).unwrap();
    }
    for s in &dataset.samples {
        let name = s.image_path.file_name().unwrap().to_string_lossy().into_owned();
        std::fs::copy(&s.image_path, root.join("voc/JPEGImages").join(&name)).unwrap();
        let mut xml = format!("<annotation><filename>{name}</filename><size><width>64</width><height>64</height><depth>3</depth></size>");
        for b in &s.boxes {
            let _ = write!(
                xml,
                "<object><name>{}</name><difficult>0</difficult><bndbox><xmin>{}</xmin><ymin>{}</ymin><xmax>{}</xmax><ymax>{}</ymax></bndbox></object>",
                dataset.class_names[b.class],
                b.bbox.x_min + 1.0,
                b.bbox.y_min + 1.0,
                b.bbox.x_max,
                b.bbox.y_max
            );
        }
        xml.push_str("</annotation>");
        let stem = Path::new(&name).file_stem().unwrap().to_string_lossy().into_owned();
        std::fs::write(root.join("voc/Annotations").join(format!("{stem}.xml")), xml).unwrap();
    }

    // YOLO txt through the converter.
    let out = yolo3()
        .current_dir(root)
        .args(["convert", "annotations", "--data"])
        .arg(&data.train)
        .args(["--to", "yolo", "--out", "yolo"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    for (name, path) in [
        ("keras", data.train.clone()),
        ("coco", root.join("coco/instances.json")),
        ("voc", root.join("voc")),
        ("yolo", root.join("yolo")),
    ] {
        let out = yolo3()
            .current_dir(root)
            .args(["-q", "train", "--data"])
            .arg(&path)
            .args([
                "--val-fraction",
                "0.25",
                "--input",
                "64",
                "--width-divisor",
                "8",
                "--batch",
                "4",
            ])
            .args(["--epochs", "1", "--name", name])
            .output()
            .unwrap();
        assert!(out.status.success(), "{name}: {}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(result_epochs(&root.join("runs/train").join(name)), vec![1], "{name}");
    }
}
