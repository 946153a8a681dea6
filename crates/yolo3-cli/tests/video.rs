//! `yolo3 detect` on a video: a short lossless video made from synthetic images (PNG-coded
//! RGB in Matroska, written by the `ffmpeg` program that `scripts/setup.sh` installs with the
//! libraries) gives an annotated video with one frame per processed frame at the source's
//! frame rate over `--vid-stride`, and per-frame boxes equal to `detect` on the same images.

mod common;

use std::process::Command;

use common::{assert_ok, model, small_dataset, text, yolo3};
use serde_json::Value;
use yolo3_video::{Source, VideoReader};

#[test]
fn video_frames_get_the_boxes_of_the_same_images() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dataset(tmp.path(), 6, 96);
    let frames = data.root.join("images/train/%06d.png");
    let clip = tmp.path().join("clip.mkv");
    let made = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-framerate", "4", "-i"])
        .arg(&frames)
        .args(["-c:v", "png", "-pix_fmt", "rgb24"])
        .arg(&clip)
        .output()
        .expect("ffmpeg runs (scripts/setup.sh installs it)");
    assert!(made.status.success(), "{}", text(&made.stderr));

    let weights = model("weights/yolov3-tiny-mini.weights");
    let cfg = model("cfg/yolov3-tiny-mini.cfg");
    let common =
        ["-w", weights.to_str().unwrap(), "--cfg", cfg.to_str().unwrap(), "--conf", "0.05"];
    let run = |name: &str, input: &str, extra: &[&str]| {
        let mut args = vec!["detect"];
        args.extend(common);
        args.extend(["--project", "out", "--name", name]);
        args.extend(extra);
        args.push(input);
        let out = yolo3(tmp.path(), &args);
        assert_ok(&out);
        out
    };
    let images = data.root.join("images/train");
    run("images", images.to_str().unwrap(), &[]);
    let out = run("video", clip.to_str().unwrap(), &["--vid-stride", "2"]);
    assert!(text(&out.stderr).contains("3 frames (every 2)"), "{}", text(&out.stderr));

    let predictions: Vec<Value> = serde_json::from_str(
        &std::fs::read_to_string(tmp.path().join("out/images/predictions.json")).unwrap(),
    )
    .unwrap();
    let lines = std::fs::read_to_string(tmp.path().join("out/video/clip.jsonl")).unwrap();
    let lines: Vec<Value> = lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 3);
    let mut compared = 0;
    for (k, line) in lines.iter().enumerate() {
        let frame = line["frame"].as_u64().unwrap();
        assert_eq!(frame, 2 * k as u64);
        assert!((line["time"].as_f64().unwrap() - frame as f64 / 4.0).abs() < 1e-6);
        let of_image: Vec<(u64, &Value, &Value)> = predictions
            .iter()
            .filter(|p| p["image_id"].as_u64() == Some(frame))
            .map(|p| (p["category_id"].as_u64().unwrap(), &p["bbox"], &p["score"]))
            .collect();
        let of_frame: Vec<(u64, &Value, &Value)> = line["boxes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| (b["class"].as_u64().unwrap(), &b["bbox"], &b["score"]))
            .collect();
        assert_eq!(of_frame, of_image, "frame {frame}");
        compared += of_frame.len();
    }
    assert!(compared > 0, "no boxes were compared");

    // The annotated video: one frame per processed frame, at 4 / 2 frames per second.
    let mut reader =
        VideoReader::open(&Source::File(tmp.path().join("out/video/clip.mp4"))).unwrap();
    assert!((reader.frame_rate().unwrap() - 2.0).abs() < 1e-6);
    let mut written = 0;
    while let Some(f) = reader.next_frame().unwrap() {
        assert_eq!(f.image.dimensions(), (96, 96));
        written += 1;
    }
    assert_eq!(written, 3);

    // A missing video is reported, not a panic, and the exit code says so.
    let missing = yolo3(
        tmp.path(),
        &["detect", "-w", weights.to_str().unwrap(), "--cfg", cfg.to_str().unwrap(), "nothing.mp4"],
    );
    assert!(!missing.status.success());
    let stderr = text(&missing.stderr);
    assert!(stderr.contains("nothing.mp4: no such file"), "{stderr}");
    // Nothing was written, so no empty run folder is left behind.
    assert!(!tmp.path().join("runs/detect").read_dir().is_ok_and(|mut d| d.next().is_some()));
}
