//! What the binary's integration tests share: running `yolo3` in a folder, the shared random
//! models, small synthetic datasets.
// Each test crate uses its own part of this module.
#![allow(dead_code)]

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
