//! Data-parallel training through the real binary on 127.0.0.1 with Gloo: two ranks of half
//! the batch step as one process of the whole batch, a killed rank is named by the survivor,
//! and the run resumes with another number of ranks.

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{assert_ok, result_epochs, text, yolo3};
use yolo3_model::Darknet;

/// A small run: 32 synthetic images of 64 pixels, the narrowest built-in tiny model.
const RUN: [&str; 14] = [
    "--synthetic-images",
    "32",
    "--synthetic-val-images",
    "8",
    "--synthetic-size",
    "64",
    "--input",
    "64",
    "--width-divisor",
    "8",
    "--batch",
    "8",
    "--project",
    "runs",
];

/// Element-wise agreement of two float32 results computed in another order:
/// `|a - b| <= TOL * (|a| + scale)`, `scale` the tensor's largest magnitude. One float32
/// rounding is 6e-8 of
/// the value; a gradient summed over 4 images instead of 8, then averaged over the ranks, and
/// carried through 8 optimizer steps and the batch-norm statistics, differs by a few hundred
/// roundings (measured with SGD: 2e-6), far below any real difference (a step of another
/// batch moves weights by 1e-3 and more).
const TOL: f64 = 1e-4;

/// What Adam adds to [`TOL`], absolute: its step is `lr * m / (sqrt(v) + eps)`, about `lr` in
/// size whatever the gradient's scale, so a weight whose gradient is at float32's noise level
/// may step differently in the two runs by up to `lr`. 1% of `lr` (the default 3e-3) times the
/// 8 steps covers nearly every weight (measured 5e-5 at most on one machine).
const ADAM_ATOL: f64 = 0.01 * 3e-3 * 8.0;

/// The weights allowed beyond [`ADAM_ATOL`] with Adam: those whose gradient is float32 noise
/// in both runs and whose normalised step took another sign (one weight of 20k was seen 9e-4
/// apart on another machine, with the same binary before and after a refactor). A wrong slice
/// of the batch or a stale weight moves most weights by about `lr` per step, far above this.
const ADAM_OUTLIERS: f64 = 1e-3;

/// The largest difference any weight may have after 8 Adam steps: each step moves a weight by
/// at most about `lr` (bias-corrected, at most 3.2 `lr` in the first steps).
const ADAM_BOUND: f64 = 3.2 * 3e-3 * 8.0;

/// How two checkpoints compare, element by element (weights and batch-norm statistics).
struct Agreement {
    /// The worst `(|a - b| - atol) / (|a| + scale)`.
    worst: f64,
    /// Elements beyond [`TOL`] (with `atol` more, absolute).
    outliers: usize,
    /// The largest `|a - b|`.
    largest: f64,
    /// Elements compared.
    total: usize,
}

/// Compares every element of every variable of the two checkpoints (see [`TOL`]; `atol`
/// more, absolute).
fn compare_checkpoints(a: &Path, b: &Path, atol: f64) -> Agreement {
    let (a, _) = Darknet::from_checkpoint(a, tch::Device::Cpu).unwrap();
    let (b, _) = Darknet::from_checkpoint(b, tch::Device::Cpu).unwrap();
    let (va, vb) = (a.var_store().variables(), b.var_store().variables());
    assert_eq!(va.len(), vb.len());
    let mut agreement = Agreement { worst: 0.0, outliers: 0, largest: 0.0, total: 0 };
    for (name, ta) in &va {
        let (xa, xb): (Vec<f32>, Vec<f32>) = (
            Vec::try_from(ta.flatten(0, -1)).unwrap(),
            Vec::try_from(vb[name].flatten(0, -1)).unwrap(),
        );
        let scale = xa.iter().fold(0f64, |m, v| m.max(f64::from(v.abs())));
        for (i, (x, y)) in xa.iter().zip(&xb).enumerate() {
            let (x, y) = (f64::from(*x), f64::from(*y));
            let ratio = ((x - y).abs() - atol).max(0.0) / (x.abs() + scale).max(1e-12);
            agreement.worst = agreement.worst.max(ratio);
            agreement.largest = agreement.largest.max((x - y).abs());
            agreement.total += 1;
            if ratio > TOL {
                agreement.outliers += 1;
                eprintln!("{name}[{i}]: {x:e} vs {y:e} (tensor up to {scale:e})");
            }
        }
    }
    agreement
}

/// The loss columns of two `results.csv` agree within [`TOL`] of each value.
fn assert_losses_agree(a: &Path, b: &Path) {
    let rows = |p: &Path| -> Vec<Vec<f64>> {
        std::fs::read_to_string(p.join("results.csv"))
            .unwrap()
            .lines()
            .skip(1)
            .map(|l| l.split(',').map(|v| v.parse().unwrap()).collect())
            .collect()
    };
    let (ra, rb) = (rows(a), rows(b));
    assert_eq!(ra.len(), rb.len());
    // epoch, the training terms and total, the validation terms and total (columns 0-10).
    for (x, y) in ra.iter().zip(&rb) {
        for c in 0..=10 {
            let tol = TOL * x[c].abs().max(1e-6);
            assert!((x[c] - y[c]).abs() <= tol, "results.csv column {c}: {} vs {}", x[c], y[c]);
        }
    }
}

/// Two ranks of batch 4 step as one process of batch 8, with `optimizer`.
fn ranks_step_as_one_process(optimizer: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let extra = ["--epochs", "2", "--threads", "1", "--optimizer", optimizer];
    let single: Vec<&str> = ["-q", "train"].iter().chain(&RUN).chain(&extra).copied().collect();
    assert_ok(&yolo3(tmp.path(), &[&single[..], &["--name", "single"]].concat()));
    let ranks = [&single[..], &["--name", "ranks", "--nproc-per-node", "2"]].concat();
    let out = yolo3(tmp.path(), &ranks);
    assert_ok(&out);
    let runs = tmp.path().join("runs");
    // 2 epochs of 4 steps each; the checkpoint holds the weights after the last step.
    assert_eq!(result_epochs(&runs.join("single")), [1, 2]);
    assert_eq!(result_epochs(&runs.join("ranks")), [1, 2]);
    let adam = optimizer == "adam";
    let agreement = compare_checkpoints(
        &runs.join("single/weights/last.safetensors"),
        &runs.join("ranks/weights/last.safetensors"),
        if adam { ADAM_ATOL } else { 0.0 },
    );
    let Agreement { worst, outliers, largest, total } = agreement;
    eprintln!(
        "{optimizer}: worst element-wise difference after 8 steps: {worst:e}; {outliers} of \
         {total} elements beyond it, largest difference {largest:e}"
    );
    if adam {
        assert!(outliers as f64 <= ADAM_OUTLIERS * total as f64, "{outliers} of {total} differ");
        assert!(largest <= ADAM_BOUND, "a weight moved {largest:e} apart");
    } else {
        assert_eq!(outliers, 0, "elements beyond the tolerance (listed above)");
    }
    assert_losses_agree(&runs.join("single"), &runs.join("ranks"));
    // Only rank 0 wrote a run folder; the others kept to their private data copy.
    let mut names: Vec<String> = std::fs::read_dir(&runs)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["ranks", "single"]);
    assert!(text(&out.stderr).contains("launched ranks 0..2 of 2"), "{}", text(&out.stderr));
}

#[test]
fn two_ranks_of_batch_4_step_as_one_process_of_batch_8_sgd() {
    ranks_step_as_one_process("sgd");
}

#[test]
fn two_ranks_of_batch_4_step_as_one_process_of_batch_8_adam() {
    ranks_step_as_one_process("adam");
}

fn worker(dir: &Path, rank: usize, port: u16, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_yolo3"))
        .current_dir(dir)
        .args(args)
        .envs([
            ("RANK", rank.to_string()),
            ("WORLD_SIZE", "2".to_owned()),
            ("LOCAL_RANK", rank.to_string()),
            ("LOCAL_WORLD_SIZE", "2".to_owned()),
            ("MASTER_ADDR", "127.0.0.1".to_owned()),
            ("MASTER_PORT", port.to_string()),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn a_killed_rank_is_named_and_the_run_resumes_on_three_ranks() {
    let tmp = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    // The loss of a killed rank is found through its closed connections and heartbeat, not
    // the timeout: a long timeout, and the bound half of it, hold on a loaded machine too.
    let timeout = 120;
    let args: Vec<&str> = ["train"]
        .iter()
        .chain(&RUN)
        .chain(&["--epochs", "6", "--threads", "1", "--dist-timeout", "120"])
        .copied()
        .collect();
    // Started as torchrun starts workers: the variables only.
    let mut rank0 = worker(tmp.path(), 0, port, &args);
    let mut rank1 = worker(tmp.path(), 1, port, &args);
    let run = tmp.path().join("runs/exp");
    let started = Instant::now();
    while result_epochs(&run).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(600), "no epoch finished in 10 minutes");
        assert!(rank0.try_wait().unwrap().is_none(), "rank 0 exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300)); // into epoch 2
    rank1.kill().unwrap();
    rank1.wait().unwrap();
    let killed = Instant::now();
    let out = rank0.wait_with_output().unwrap();
    let took = killed.elapsed();
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "rank 0 went on without rank 1: {stderr}");
    assert!(stderr.contains("lost rank 1"), "{stderr}");
    assert!(took < Duration::from_secs(timeout / 2), "rank 0 took {took:?} to stop");
    let done = result_epochs(&run);
    assert!(!done.is_empty() && done.len() < 6, "{done:?}");

    // Another world size: the same global batches, sharded over three ranks.
    let out = yolo3(
        tmp.path(),
        &["train", "--resume", "runs/exp", "--nproc-per-node", "3", "--threads", "1"],
    );
    assert_ok(&out);
    assert_eq!(result_epochs(&run), [1, 2, 3, 4, 5, 6]);
    assert!(text(&out.stderr).contains(&format!("resuming runs/exp after epoch {}", done.len())));
    assert!(text(&out.stdout).contains("mAP50-95"), "{}", text(&out.stdout));
}

#[test]
fn a_non_finite_loss_stops_every_rank() {
    let tmp = tempfile::tempdir().unwrap();
    let args: Vec<&str> = ["train"]
        .iter()
        .chain(&RUN)
        .chain(&["--epochs", "3", "--optimizer", "sgd", "--lr", "1e30"])
        .chain(&["--nproc-per-node", "2", "--threads", "1"])
        .copied()
        .collect();
    let out = yolo3(tmp.path(), &args);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    for rank in 0..2 {
        let line = stderr
            .lines()
            .find(|l| l.starts_with(&format!("[rank {rank}] error:")))
            .unwrap_or_else(|| panic!("rank {rank} printed no error:\n{stderr}"));
        assert!(line.contains("not finite"), "{line}");
    }
    // Nothing was recorded, so rank 0 removed the run folder it made.
    assert!(!tmp.path().join("runs/exp").exists(), "{stderr}");
}

#[test]
fn bad_distributed_settings_are_clear_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let train = |extra: &[&str]| {
        let args: Vec<&str> = ["train"].iter().chain(&RUN).chain(extra).copied().collect();
        let out = yolo3(tmp.path(), &args);
        assert!(!out.status.success(), "{extra:?} was accepted");
        text(&out.stderr)
    };
    assert!(train(&["--nproc-per-node", "0"]).contains("--nproc-per-node"));
    assert!(train(&["--dist-timeout", "0"]).contains("--dist-timeout"));
    assert!(train(&["--nnodes", "2", "--node-rank", "0"]).contains("--master-addr"));
    assert!(train(&["--nnodes", "2", "--node-rank", "2", "--master-addr", "h"])
        .contains("--node-rank 2 is not below --nnodes 2"));
    // More ranks than images per batch: every rank must get images of every batch.
    let e = train(&["--nproc-per-node", "9", "--threads", "1"]);
    assert!(e.contains("9 ranks need at least 9 images per batch"), "{e}");
    assert!(!tmp.path().join("runs/exp").exists(), "{e}");
    // A worker whose launch variables do not fit.
    let out = Command::new(env!("CARGO_BIN_EXE_yolo3"))
        .current_dir(tmp.path())
        .args(["train", "--epochs", "1"])
        .envs([("RANK", "2"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "127.0.0.1")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let e = text(&out.stderr);
    assert!(e.contains("RANK=\"2\"") && e.contains("world size 2"), "{e}");
    // A world of no process is an error, not a run of one.
    let out = Command::new(env!("CARGO_BIN_EXE_yolo3"))
        .current_dir(tmp.path())
        .args(["train", "--epochs", "1"])
        .envs([("RANK", "0"), ("WORLD_SIZE", "0"), ("MASTER_ADDR", "127.0.0.1")])
        .output()
        .unwrap();
    let e = text(&out.stderr);
    assert!(!out.status.success() && e.contains("WORLD_SIZE") && e.contains("at least one"), "{e}");
}

/// A worker whose rendezvous fails gets one short error in the time it was given: nothing
/// listens on the port (refused), or a program holds it that never accepts (c10d's client
/// would wait for its answer forever). No C++ stack frames.
#[test]
fn a_failed_rendezvous_is_one_short_error_within_the_timeout() {
    let tmp = tempfile::tempdir().unwrap();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let held = silent.local_addr().unwrap().port();
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    for port in [held, free] {
        let started = Instant::now();
        let out = Command::new(env!("CARGO_BIN_EXE_yolo3"))
            .current_dir(tmp.path())
            .args(["train", "--epochs", "1", "--dist-timeout", "3"])
            .envs([("RANK", "1"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "127.0.0.1")])
            .env("MASTER_PORT", port.to_string())
            .output()
            .unwrap();
        let took = started.elapsed();
        let e = text(&out.stderr);
        assert!(!out.status.success(), "{e}");
        assert!(e.contains(&format!("rank 1 of 2 joining through 127.0.0.1:{port}")), "{e}");
        assert!(!e.contains("frame #"), "{e}");
        assert!(e.lines().count() <= 2, "{e}");
        // 3 s asked; the bound only tells "gave up on its own" from "waits forever".
        assert!(took < Duration::from_secs(60), "{took:?}");
    }
    drop(silent);
}

/// Ctrl-C to the launcher reaches every rank once (they run in a process group of their own):
/// all stop at the same batch, after the last complete epoch, which the run resumes from.
#[test]
fn ctrl_c_stops_every_rank_at_the_same_batch() {
    let tmp = tempfile::tempdir().unwrap();
    let args: Vec<&str> = ["train"]
        .iter()
        .chain(&RUN)
        .chain(&["--epochs", "12", "--nproc-per-node", "2", "--threads", "1"])
        .copied()
        .collect();
    let mut launcher = Command::new(env!("CARGO_BIN_EXE_yolo3"))
        .current_dir(tmp.path())
        .args(&args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let run = tmp.path().join("runs/exp");
    let started = Instant::now();
    while result_epochs(&run).is_empty() {
        assert!(started.elapsed() < Duration::from_secs(600), "no epoch finished in 10 minutes");
        assert!(launcher.try_wait().unwrap().is_none(), "the launcher exited early");
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: kill has no memory effects; the pid is our child's, not yet waited for.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(launcher.id() as libc::pid_t, libc::SIGINT) };
    assert_eq!(rc, 0);
    let out = launcher.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    let done = result_epochs(&run);
    assert!(!done.is_empty() && done.len() < 12, "{done:?}");
    for rank in 0..2 {
        let said = format!(
            "[rank {rank}] stopped by SIGINT (Ctrl-C): interrupted: the run stopped after epoch {}",
            done.len()
        );
        assert!(stderr.contains(&said), "{said:?} not in:\n{stderr}");
    }
    assert!(!run.join(".lock").exists(), "{stderr}");
    let out = yolo3(
        tmp.path(),
        &["train", "--resume", "runs/exp", "--nproc-per-node", "2", "--threads", "1"],
    );
    assert_ok(&out);
    assert_eq!(result_epochs(&run), (1..=12).collect::<Vec<_>>());
}
