//! `yolo3 train` through the real binary: a run killed mid-way resumes from its last
//! checkpoint and ends with every epoch in `results.csv` exactly once.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn yolo3() -> Command {
    Command::new(env!("CARGO_BIN_EXE_yolo3"))
}

fn result_epochs(run: &Path) -> Vec<usize> {
    std::fs::read_to_string(run.join("results.csv"))
        .unwrap_or_default()
        .lines()
        .skip(1)
        .filter_map(|l| l.split(',').next()?.parse().ok())
        .collect()
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
        assert!(started.elapsed() < Duration::from_secs(120), "no epoch finished in 2 minutes");
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
