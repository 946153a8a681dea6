//! What the binary's integration tests share: running `yolo3` in a folder, the shared random
//! models, small synthetic datasets.
// Each test crate uses its own part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use yolo3_data::{synthetic, SyntheticOptions};

pub(crate) const MODELS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/models");

pub(crate) fn yolo3(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_yolo3"))
        .current_dir(dir)
        .args(args)
        .env("RUST_LOG", "error")
        .output()
        .expect("the yolo3 binary runs")
}

/// The epochs `results.csv` of a run folder lists, in file order (none without the file).
pub(crate) fn result_epochs(run: &Path) -> Vec<usize> {
    std::fs::read_to_string(run.join("results.csv"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect()
}

pub(crate) fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[track_caller]
pub(crate) fn assert_ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The project's venv python (`scripts/setup.sh` makes it: torch, h5py, onnxruntime).
pub(crate) fn venv_python() -> PathBuf {
    let venv = std::env::var_os("YOLO3_VENV").map_or_else(
        || PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/yolo3/venv"),
        PathBuf::from,
    );
    venv.join("bin/python")
}

pub(crate) fn model(name: &str) -> PathBuf {
    Path::new(MODELS).join(name)
}

/// Converts yolov3-tiny-mini (3 classes, random weights) to a checkpoint in `dir`.
pub(crate) fn tiny_mini_checkpoint(dir: &Path) -> PathBuf {
    let out = dir.join("tiny-mini.safetensors");
    assert_ok(&yolo3(
        dir,
        &[
            "convert",
            "weights",
            "--cfg",
            model("cfg/yolov3-tiny-mini.cfg").to_str().unwrap(),
            "--weights",
            model("weights/yolov3-tiny-mini.weights").to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ],
    ));
    out
}

pub(crate) fn small_dataset(dir: &Path, images: usize, size: u32) -> synthetic::SyntheticDataset {
    let options = SyntheticOptions {
        images_train: images,
        images_val: 2,
        size,
        seed: 7,
        ..SyntheticOptions::default()
    };
    synthetic::generate(&dir.join("data"), &options).expect("synthetic dataset")
}

/// One epoch at input 64 on `data` (train and val) with `cfg`, starting from `weights`.
pub(crate) fn train_one_epoch_from(
    dir: &Path,
    data: &synthetic::SyntheticDataset,
    cfg: &Path,
    weights: &Path,
) -> Output {
    let (train, val) = (data.train.to_str().unwrap(), data.val.to_str().unwrap());
    let (cfg, weights) = (cfg.to_str().unwrap(), weights.to_str().unwrap());
    let args = ["--data", train, "--val", val, "--cfg", cfg, "--weights", weights];
    yolo3(dir, &[&["train", "--epochs", "1", "--input", "64"][..], &args].concat())
}

/// Runs `yolo3` and asserts that it failed cleanly: exit code 1 or 2, no panic or abort, and
/// an error line containing `expected`.
#[track_caller]
pub(crate) fn assert_refused(out: &Output, expected: &str) {
    let stderr = text(&out.stderr);
    assert!(matches!(out.status.code(), Some(1 | 2)), "exit {:?}\n{stderr}", out.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains(expected), "expected {expected:?} in:\n{stderr}");
}

/// Every file under `root` with a hash of its bytes (FNV-1a; collisions do not matter here,
/// a change of content or a missing file does).
pub(crate) fn checksums(root: &Path) -> BTreeMap<PathBuf, u64> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<PathBuf, u64>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                let bytes = std::fs::read(&path).unwrap();
                let hash = bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
                });
                out.insert(path.strip_prefix(root).unwrap().to_path_buf(), hash);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// A path as the `&str` an argument list takes.
pub(crate) fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
