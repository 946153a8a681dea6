//! Ctrl-C (SIGINT) and SIGTERM through the real binary, at several moments: training stops
//! after its last complete epoch and says how to resume, `detect` on a video closes the video
//! and its JSON lines, `convert` and `export` leave a whole output or none; a second signal
//! stops at once; and in no case is a temporary file left behind.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{assert_ok, model, result_epochs, text, yolo3};

fn spawn(dir: &Path, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_yolo3"))
        .current_dir(dir)
        .args(args)
        .env("RUST_LOG", "error")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the yolo3 binary runs")
}

fn signal(child: &Child, signal: i32) {
    // SAFETY: kill has no memory effects; the pid is our child's, not yet waited for.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill failed");
}

/// Waits until the process handles SIGINT (its `SigCgt` mask in `/proc` says so): from then
/// on a signal reaches yolo3's handler, not the default action of a process still loading
/// libtorch. `false` when the process ended first.
fn wait_for_handler(child: &mut Child) -> bool {
    let status = format!("/proc/{}/status", child.id());
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return false;
        }
        let caught = std::fs::read_to_string(&status)
            .ok()
            .and_then(|s| {
                let line = s.lines().find(|l| l.starts_with("SigCgt:"))?.to_owned();
                u64::from_str_radix(line.trim_start_matches("SigCgt:").trim(), 16).ok()
            })
            .is_some_and(|mask| mask & (1 << (SIGINT - 1)) != 0);
        if caught {
            return true;
        }
        assert!(started.elapsed() < Duration::from_secs(120), "no handler after 2 minutes");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until `ready` holds (checked every 10 ms), the child exiting first is a failure.
fn wait_for(child: &mut Child, what: &str, ready: impl Fn() -> bool) {
    let started = Instant::now();
    while !ready() {
        assert!(child.try_wait().unwrap().is_none(), "exited before {what}");
        assert!(started.elapsed() < Duration::from_secs(600), "no {what} in 10 minutes");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Every file under `dir`, recursively.
fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// No temporary file of ours (`.NAME.tmp-...`) and no lock file under `dir`.
#[track_caller]
fn assert_no_leftovers(dir: &Path) {
    let left: Vec<PathBuf> = files(dir)
        .into_iter()
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy();
            name.contains(".tmp-") || name == ".lock"
        })
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

const SIGINT: i32 = libc::SIGINT;
const SIGTERM: i32 = libc::SIGTERM;

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// A small training run of 64-pixel synthetic images.
const TRAIN: [&str; 13] = [
    "train",
    "--synthetic-images",
    "64",
    "--synthetic-val-images",
    "8",
    "--synthetic-size",
    "64",
    "--input",
    "64",
    "--width-divisor",
    "8",
    "--threads",
    "1",
];

/// Epochs of the runs that are interrupted after their first.
const EPOCHS: usize = 8;

#[test]
fn training_stops_after_its_last_complete_epoch() {
    for (signal_number, expected) in [(SIGINT, 130), (SIGTERM, 143)] {
        let tmp = tempfile::tempdir().unwrap();
        let run = tmp.path().join("runs/train/exp");
        let mut child =
            spawn(tmp.path(), &[&TRAIN[..], &["--epochs", &EPOCHS.to_string()]].concat());
        // Partway into an epoch after the first.
        wait_for(&mut child, "a first epoch", || !result_epochs(&run).is_empty());
        std::thread::sleep(Duration::from_millis(150));
        signal(&child, signal_number);
        let out = child.wait_with_output().unwrap();
        let stderr = text(&out.stderr);
        assert_eq!(code(&out), Some(expected), "{stderr}");
        let done = result_epochs(&run);
        assert!(!done.is_empty() && done.len() < EPOCHS, "{done:?}");
        assert!(stderr.contains(&format!("stopped after epoch {}", done.len())), "{stderr}");
        assert!(stderr.contains("yolo3 train --resume runs/train/exp"), "{stderr}");
        assert_no_leftovers(tmp.path());
        // The resume point is that epoch: the run goes on from it.
        let out = yolo3(tmp.path(), &["train", "--resume", "runs/train/exp", "--threads", "1"]);
        assert_ok(&out);
        assert!(
            text(&out.stderr)
                .contains(&format!("resuming runs/train/exp after epoch {}", done.len())),
            "{}",
            text(&out.stderr)
        );
        assert_eq!(result_epochs(&run), (1..=EPOCHS).collect::<Vec<_>>());
        assert_no_leftovers(tmp.path());
    }
}

#[test]
fn training_stopped_in_its_first_epoch_removes_its_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let mut child = spawn(tmp.path(), &[&TRAIN[..], &["--epochs", "3"]].concat());
    let stderr_seen = tmp.path().join("runs/train/exp/args.toml");
    wait_for(&mut child, "the run folder", || stderr_seen.exists());
    signal(&child, SIGTERM);
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert_eq!(code(&out), Some(143), "{stderr}");
    assert!(stderr.contains("before the first epoch ended"), "{stderr}");
    assert!(!tmp.path().join("runs/train/exp").exists(), "{stderr}");
}

/// The second signal while the run generates its data (no safe point there, so the first
/// signal is still pending): the process ends at once, its lock file removed.
#[test]
fn a_second_signal_stops_at_once_without_temporary_files() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("runs/train/exp");
    let args = ["train", "--synthetic-images", "20000", "--synthetic-size", "96", "--threads", "1"];
    let mut child = spawn(tmp.path(), &args);
    wait_for(&mut child, "the run folder", || run.join("args.toml").exists());
    // The second signal once the first was taken (two sent at once may arrive as one).
    let stderr = child.stderr.take().unwrap();
    let (seen, first_taken) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        for line in std::io::BufRead::lines(std::io::BufReader::new(stderr)).map_while(Result::ok) {
            if line.contains("stopping at the next safe point") {
                let _ = seen.send(());
            }
            text.push_str(&line);
            text.push('\n');
        }
        text
    });
    signal(&child, SIGINT);
    first_taken.recv_timeout(Duration::from_secs(60)).expect("the first signal was taken");
    signal(&child, SIGINT);
    let mut out = child.wait_with_output().unwrap();
    out.stderr = reader.join().unwrap().into_bytes();
    assert_eq!(code(&out), Some(130), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("stopped at once"), "{}", text(&out.stderr));
    assert_no_leftovers(tmp.path());
}

/// A video of `frames` frames of the ffmpeg test pattern, 96x96 at 10 frames/s.
fn test_video(dir: &Path, frames: u32) -> PathBuf {
    let clip = dir.join("clip.mkv");
    let made = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-f", "lavfi", "-i"])
        .arg(format!("testsrc=size=96x96:rate=10,trim=end_frame={frames}"))
        .args(["-c:v", "ffv1"])
        .arg(&clip)
        .output()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(made.status.success(), "{}", text(&made.stderr));
    clip
}

/// Frames of a video file as FFmpeg's own tool counts them (it decodes every frame).
fn frames_of(video: &Path) -> usize {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args(["-show_entries", "stream=nb_read_frames", "-of", "csv=p=0"])
        .arg(video)
        .output()
        .unwrap();
    assert!(out.status.success(), "ffprobe: {}", text(&out.stderr));
    text(&out.stdout).trim().parse().unwrap()
}

/// `yolo3 detect` with the shared random tiny model at 96 pixels, and `args`.
fn spawn_detect(dir: &Path, args: &[&str]) -> Child {
    let weights = model("weights/yolov3-tiny-mini.weights");
    let cfg = model("cfg/yolov3-tiny-mini.cfg");
    let (w, c) = (weights.to_str().unwrap(), cfg.to_str().unwrap());
    spawn(dir, &[&["detect", "-w", w, "--cfg", c, "--input", "96"][..], args].concat())
}

#[test]
fn detect_on_a_video_closes_the_video_and_its_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let clip = test_video(tmp.path(), 3000);
    for (k, (signal_number, expected)) in [(SIGINT, 130), (SIGTERM, 143)].into_iter().enumerate() {
        let name = format!("v{k}");
        let out_dir = tmp.path().join("out").join(&name);
        let lines_path = out_dir.join("clip.jsonl");
        let mut child = spawn_detect(
            tmp.path(),
            &["--project", "out", "--name", &name, clip.to_str().unwrap()],
        );
        // Hundreds of frames in (the first run), or a few (the second).
        let wanted = if k == 0 { 200 } else { 20 };
        wait_for(&mut child, "processed frames", || {
            std::fs::read_to_string(&lines_path).is_ok_and(|t| t.lines().count() >= wanted)
        });
        signal(&child, signal_number);
        let out = child.wait_with_output().unwrap();
        assert_eq!(code(&out), Some(expected), "{}", text(&out.stderr));
        let lines = std::fs::read_to_string(&lines_path).unwrap();
        assert!(lines.ends_with('\n'), "the last line is cut");
        let frames: Vec<u64> = lines
            .lines()
            .map(|l| {
                serde_json::from_str::<serde_json::Value>(l).unwrap()["frame"].as_u64().unwrap()
            })
            .collect();
        assert!(frames.len() >= wanted && frames.len() < 3000, "{} lines", frames.len());
        assert_eq!(frames, (0..frames.len() as u64).collect::<Vec<_>>());
        // The video has its trailer: a player reads every frame the lines describe.
        assert_eq!(frames_of(&out_dir.join("clip.mp4")), frames.len());
        assert_no_leftovers(tmp.path());
    }
}

#[test]
fn detect_on_images_writes_the_predictions_of_what_it_did() {
    let tmp = tempfile::tempdir().unwrap();
    let data = common::small_dataset(tmp.path(), 400, 96);
    let images = data.root.join("images/train");
    let out_dir = tmp.path().join("runs/detect/exp");
    let mut child = spawn_detect(tmp.path(), &["--batch", "4", images.to_str().unwrap()]);
    let pictures = || std::fs::read_dir(&out_dir).map_or(0, Iterator::count);
    wait_for(&mut child, "annotated images", || pictures() >= 20);
    signal(&child, SIGINT);
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), Some(130), "{}", text(&out.stderr));
    let listed: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("images.json")).unwrap())
            .unwrap();
    let listed = listed.as_array().unwrap().len();
    assert!((20..400).contains(&listed), "{listed}");
    // Every image listed was written, and nothing else: the JSON files and the pictures agree.
    assert_eq!(pictures(), listed + 2);
    assert_no_leftovers(tmp.path());
}

/// Whether the output at `path` is the same as `reference`: the same bytes for ONNX; for a
/// checkpoint, whose metadata map is written in no fixed order, the same tensors, cfg and
/// class names.
fn same_output(path: &Path, reference: &Path) -> bool {
    if path.extension().is_some_and(|e| e == "onnx") {
        return std::fs::read(path).ok() == std::fs::read(reference).ok();
    }
    let load = |p: &Path| yolo3_model::Darknet::from_checkpoint(p, tch::Device::Cpu).ok();
    let (Some((a, info_a)), Some((b, info_b))) = (load(path), load(reference)) else {
        return false;
    };
    let (va, vb) = (a.var_store().variables(), b.var_store().variables());
    info_a == info_b
        && a.config().text() == b.config().text()
        && va.len() == vb.len()
        && va.iter().all(|(name, t)| vb.get(name).is_some_and(|u| t.equal(u)))
}

/// `convert weights` and `export`, interrupted at several moments once the handler is in
/// place: each either finished (a whole output) or stopped before writing (none); never a
/// temporary file. The official tiny-YOLOv3 shape (35 MB of weights), so that the work takes
/// long enough to be interrupted.
#[test]
fn convert_and_export_leave_a_whole_output_or_none() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = model("weights/yolov3-tiny.weights");
    let cfg = model("cfg/yolov3-tiny.cfg");
    let (w, c) = (weights.to_str().unwrap(), cfg.to_str().unwrap());
    let commands: [(&str, Vec<&str>); 2] = [
        ("mini.safetensors", vec!["convert", "weights", "--cfg", c, "--weights", w, "--out"]),
        ("mini.onnx", vec!["export", "--cfg", c, "-w", w, "--out"]),
    ];
    let reference: Vec<PathBuf> = commands
        .iter()
        .map(|(out, args)| {
            let name = format!("reference-{out}");
            assert_ok(&yolo3(tmp.path(), &[&args[..], &[&name]].concat()));
            tmp.path().join(&name)
        })
        .collect();
    let mut stopped = 0;
    for delay_ms in [0u64, 50, 150, 400] {
        for (signal_number, expected) in [(SIGINT, 130), (SIGTERM, 143)] {
            for ((out, args), reference) in commands.iter().zip(&reference) {
                let name = format!("{delay_ms}-{signal_number}-{out}");
                let mut child = spawn(tmp.path(), &[&args[..], &[&name]].concat());
                if wait_for_handler(&mut child) {
                    std::thread::sleep(Duration::from_millis(delay_ms));
                    if child.try_wait().unwrap().is_none() {
                        signal(&child, signal_number);
                    }
                }
                let result = child.wait_with_output().unwrap();
                let path = tmp.path().join(&name);
                match code(&result) {
                    Some(0) => assert!(same_output(&path, reference), "{name}: not the output"),
                    Some(c) if c == expected => {
                        stopped += 1;
                        // Finished before it could stop (a whole output), or stopped first.
                        if path.exists() {
                            assert!(same_output(&path, reference), "{name}: a partial output");
                        }
                    }
                    other => panic!("{name}: exit {other:?}: {}", text(&result.stderr)),
                }
                assert_no_leftovers(tmp.path());
            }
        }
    }
    assert!(stopped > 0, "no run was interrupted");
}

#[test]
fn a_run_folder_is_trained_by_one_process_at_a_time() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("runs/train/exp");
    let mut child = spawn(tmp.path(), &[&TRAIN[..], &["--epochs", "30"]].concat());
    wait_for(&mut child, "a first epoch", || !result_epochs(&run).is_empty());
    // While it trains: a resume of the same run is refused, and names the holder.
    let out = yolo3(tmp.path(), &["train", "--resume", "runs/train/exp", "--threads", "1"]);
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("is in use by another yolo3 process"), "{stderr}");
    assert!(stderr.contains(&format!("pid {}", child.id())), "{stderr}");
    // Killed outright (no handler runs): its lock file stays, and is stale.
    assert!(child.try_wait().unwrap().is_none(), "the run ended before it was killed");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(run.join(".lock").exists());
    // What a kill during a checkpoint's write leaves: a temporary file of a process that is
    // gone. The next write into that folder removes it.
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap()
        .trim()
        .replace(['-', '/', '.'], "_");
    let stale = run.join(format!("weights/.last.safetensors.tmp-{host}-{}-0", child.id()));
    std::fs::write(&stale, b"half a checkpoint").unwrap();
    let out = yolo3(tmp.path(), &["train", "--resume", "runs/train/exp", "--threads", "1"]);
    assert_ok(&out);
    assert!(text(&out.stderr).contains("has ended; taking it over"), "{}", text(&out.stderr));
    assert_eq!(result_epochs(&run), (1..=30).collect::<Vec<_>>());
    assert!(!stale.exists(), "the stale temporary file is still there");
    assert_no_leftovers(tmp.path());
}

#[test]
fn a_run_killed_before_its_first_checkpoint_resumes_from_the_start() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("runs/train/exp");
    let mut child = spawn(tmp.path(), &[&TRAIN[..], &["--epochs", "2"]].concat());
    wait_for(&mut child, "the run folder", || run.join("model.cfg").exists());
    child.kill().unwrap();
    child.wait().unwrap();
    // Killed during epoch 1, or as if between epoch 1's table and its checkpoint.
    let _ = std::fs::remove_file(run.join("weights/last.safetensors"));
    let out = yolo3(tmp.path(), &["train", "--resume", "runs/train/exp", "--threads", "1"]);
    assert_ok(&out);
    assert!(text(&out.stderr).contains("has no checkpoint yet"), "{}", text(&out.stderr));
    assert_eq!(result_epochs(&run), [1, 2]);
}

/// Without `--force`, a file that appears at the output's name while the output is being
/// written is kept, and the command fails; found by watching for the temporary file.
#[test]
fn an_output_that_appears_meanwhile_is_not_replaced() {
    let tmp = tempfile::tempdir().unwrap();
    let weights = model("weights/yolov3-mini.weights");
    let cfg = model("cfg/yolov3-mini.cfg");
    let (w, c) = (weights.to_str().unwrap(), cfg.to_str().unwrap());
    let mut caught = 0;
    for attempt in 0..20 {
        let name = format!("out{attempt}.onnx");
        let out = tmp.path().join(&name);
        let mut child = spawn(tmp.path(), &["export", "--cfg", c, "-w", w, "--out", &name]);
        // Spin until the temporary file exists, then put a file at the output's name.
        let prefix = format!(".{name}.tmp-");
        let started = Instant::now();
        let mut planted = false;
        while child.try_wait().unwrap().is_none() && started.elapsed() < Duration::from_secs(60) {
            let temporary = std::fs::read_dir(tmp.path())
                .unwrap()
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&prefix));
            if temporary {
                // Created only where nothing is yet: if the output was renamed into place
                // meanwhile, nothing is planted and the attempt does not count.
                planted = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(&out)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, b"the user's own file"))
                    .is_ok();
                break;
            }
        }
        let result = child.wait_with_output().unwrap();
        if planted {
            caught += 1;
            assert!(!result.status.success(), "exit 0 over a file that appeared meanwhile");
            assert_eq!(std::fs::read(&out).unwrap(), b"the user's own file", "replaced");
            assert!(text(&result.stderr).contains("File exists"), "{}", text(&result.stderr));
        }
        assert_no_leftovers(tmp.path());
        if caught >= 2 {
            break;
        }
    }
    assert!(caught >= 1, "never wrote the file while the temporary one existed");
}
