//! `--cache ram` and `--cache disk` through the binary: the same run with and without a cache
//! gives the same results table and the same weights, bit for bit, with augmentation (the
//! decoded images are kept) and without (the letterboxed ones), and a second run reads the
//! disk cache it finds.

mod common;
use std::path::Path;

use common::{assert_ok, small_dataset, text, yolo3};

/// Trains 2 epochs and returns results.csv without its time column, the last weights (name
/// and values of every tensor) and the log.
fn run(
    dir: &Path,
    name: &str,
    data: &yolo3_data::SyntheticDataset,
    extra: &[&str],
) -> (String, Vec<(String, Vec<f32>)>, String) {
    let mut args = vec!["--threads", "2", "train", "--data", data.train.to_str().unwrap()];
    args.extend(["--val", data.val.to_str().unwrap(), "--input", "64", "--epochs", "2"]);
    args.extend(["--batch", "4", "--name", name]);
    args.extend(extra);
    let out = yolo3(dir, &args);
    assert_ok(&out);
    let run = dir.join("runs/train").join(name);
    let csv = std::fs::read_to_string(run.join("results.csv")).unwrap();
    let without_time: Vec<String> =
        csv.lines().map(|l| l.rsplit_once(',').map_or(l, |(rest, _)| rest).to_owned()).collect();
    assert!(csv.starts_with("epoch,") && csv.lines().next().unwrap().ends_with(",seconds"));
    let (net, _) = yolo3_model::Darknet::from_checkpoint(
        run.join("weights/last.safetensors"),
        tch::Device::Cpu,
    )
    .unwrap();
    let mut weights: Vec<(String, Vec<f32>)> = net
        .var_store()
        .variables()
        .into_iter()
        .map(|(k, t)| (k, Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()))
        .collect();
    weights.sort_by(|a, b| a.0.cmp(&b.0));
    (without_time.join("\n"), weights, text(&out.stderr))
}

#[test]
fn cached_runs_equal_uncached_ones() {
    let tmp = tempfile::tempdir().unwrap();
    let data = small_dataset(tmp.path(), 12, 80);
    let cache_dir = tmp.path().join("image-cache");
    let disk = ["--cache", "disk", "--cache-dir", cache_dir.to_str().unwrap()];
    for (label, extra) in [("augmented", &[][..]), ("letterboxed", &["--no-augment"][..])] {
        let plain = run(tmp.path(), &format!("{label}-plain"), &data, extra);
        let ram =
            run(tmp.path(), &format!("{label}-ram"), &data, &[extra, &["--cache", "ram"]].concat());
        let disk_first = run(tmp.path(), &format!("{label}-disk"), &data, &[extra, &disk].concat());
        let files = std::fs::read_dir(&cache_dir).unwrap().count();
        let disk_again =
            run(tmp.path(), &format!("{label}-disk2"), &data, &[extra, &disk].concat());
        assert_eq!(std::fs::read_dir(&cache_dir).unwrap().count(), files, "{label}: reused");
        for (what, other) in [("ram", &ram), ("disk", &disk_first), ("disk again", &disk_again)] {
            assert_eq!(plain.0, other.0, "{label}, {what}: results.csv");
            assert!(plain.1 == other.1, "{label}, {what}: last.safetensors differs");
        }
        let stage = if extra.is_empty() { "decoded" } else { "letterboxed to 64x64" };
        assert!(ram.2.contains("cache: ") && ram.2.contains(stage), "{label}: {}", ram.2);
    }
    // Training images decoded (augmented) and letterboxed (not), validation letterboxed: 3
    // stages over 12 + 2 images, minus the validation images' letterbox shared by both runs.
    assert_eq!(std::fs::read_dir(&cache_dir).unwrap().count(), 12 + 12 + 2);
}
