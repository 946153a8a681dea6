//! Fine-tuning from weights of another class count through the binary: the 3-class shared
//! tiny-mini weights (darknet and checkpoint) start a run on the 4-class synthetic set, and the
//! run says what it transferred; weights of another network are refused with the conv named.

mod common;
use std::path::{Path, PathBuf};
use yolo3_io::fsio::Existing;

use common::{assert_ok, model, small_dataset, text, tiny_mini_checkpoint, yolo3};
use yolo3_data::{synthetic, SyntheticOptions};
use yolo3_model::{Config, Darknet, DarknetWeights, WeightsHeader};

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

/// Runs `yolo3 train` on `data` with the built-in model at 128 pixels and returns its folder.
fn train_run(
    dir: &Path,
    name: &str,
    data: &synthetic::SyntheticDataset,
    extra: &[&str],
) -> PathBuf {
    let mut args = vec!["train", "--data", data.train.to_str().unwrap()];
    args.extend(["--val", data.val.to_str().unwrap(), "--input", "128", "--name", name]);
    args.extend(extra);
    let out = yolo3(dir, &args);
    assert_ok(&out);
    dir.join("runs/train").join(name)
}

fn dataset(dir: &Path, name: &str, train: usize, seed: u64) -> synthetic::SyntheticDataset {
    let options = SyntheticOptions {
        images_train: train,
        images_val: 40,
        size: 128,
        seed,
        ..SyntheticOptions::default()
    };
    synthetic::generate(&dir.join(name), &options).expect("synthetic dataset")
}

/// The last epoch's mAP50 of a run.
fn map50(run: &Path) -> f64 {
    let rows = yolo3_train::results::read_results(&run.join("results.csv")).unwrap();
    rows.last().unwrap().map50
}

fn values(t: &tch::Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(t.flatten(0, -1)).unwrap()
}

/// The convs of `file` (read against `cfg`) against the same layers of a run's last checkpoint:
/// for each conv, whether kernel, beta/bias, gamma and both running statistics are all equal.
fn unchanged_convs(file: &DarknetWeights, cfg: &Config, run: &Path) -> Vec<(usize, bool)> {
    let (net, _) =
        Darknet::from_checkpoint(run.join("weights/last.safetensors"), tch::Device::Cpu).unwrap();
    let vars = net.var_store().variables();
    let get = |l: usize, name: &str| values(&vars[&format!("layers.{l}.{name}")]);
    cfg.conv_layers()
        .into_iter()
        .zip(&file.convs)
        .map(|(l, conv)| {
            let same = get(l, "conv.weight") == conv.kernel
                && match &conv.batch_norm {
                    Some(bn) => {
                        get(l, "bn.bias") == conv.biases
                            && get(l, "bn.weight") == bn.scales
                            && get(l, "bn.running_mean") == bn.rolling_mean
                            && get(l, "bn.running_var") == bn.rolling_variance
                    }
                    None => get(l, "conv.bias") == conv.biases,
                };
            (l, same)
        })
        .collect()
}

/// The flow the issue describes, on generated data: a tiny-YOLOv3 (the built-in quarter-width
/// preset) trained on one synthetic set is widened to 80 classes as a darknet `.weights` file
/// (COCO's shape), then fine-tunes on another 4-class set. Every non-head layer arrives bit for
/// bit (checked with the body frozen, so nothing moves them), `--freeze N` keeps layers below
/// N exactly, and after 3 epochs the transferred run is ahead of the same run from scratch.
#[test]
fn pretrained_80_class_weights_transfer_freeze_and_beat_scratch() {
    let tmp = tempfile::tempdir().unwrap();
    let pre_data = dataset(tmp.path(), "pre", 600, 11);
    let pre = train_run(tmp.path(), "pre", &pre_data, &["--epochs", "10"]);
    eprintln!("pretraining mAP50: {:.3}", map50(&pre));

    // The 80-class file: the pretrained body, fresh 80-class heads.
    let cfg_text = std::fs::read_to_string(pre.join("model.cfg")).unwrap();
    let cfg80_path = tmp.path().join("tiny-80.cfg");
    let cfg80 = Config::parse(&cfg_text, "model.cfg").unwrap().adapted(80, None).unwrap();
    std::fs::write(&cfg80_path, cfg80.text()).unwrap();
    let cfg80 = Config::from_file(&cfg80_path).unwrap();
    let mut net80 = Darknet::new(cfg80.clone(), tch::Device::Cpu).unwrap();
    let (transfer, _) = net80.transfer_checkpoint(pre.join("weights/best.safetensors")).unwrap();
    assert_eq!(transfer.loaded, 11);
    let file80 = tmp.path().join("tiny-80.weights");
    net80
        .export_darknet_weights(WeightsHeader::default())
        .unwrap()
        .write(&file80, Existing::Replace)
        .unwrap();
    let weights80 = DarknetWeights::read(&file80, &cfg80).unwrap();
    let heads = cfg80.head_conv_layers();

    let data = dataset(tmp.path(), "own", 300, 12);
    let file = file80.to_str().unwrap();
    let frozen = train_run(
        tmp.path(),
        "frozen-body",
        &data,
        &["--weights", file, "--schedule", "keras", "--frozen-epochs", "1", "--epochs", "1"],
    );
    for (layer, same) in unchanged_convs(&weights80, &cfg80, &frozen) {
        assert_eq!(same, !heads.contains(&layer), "layer {layer}: transferred and frozen");
    }

    // --freeze 10: layers 0-9 (the first five convs) exactly as in the file, the rest trained.
    let below = train_run(
        tmp.path(),
        "freeze10",
        &data,
        &["--weights", file, "--freeze", "10", "--epochs", "1"],
    );
    for (layer, same) in unchanged_convs(&weights80, &cfg80, &below) {
        assert_eq!(same, layer < 10, "layer {layer} with --freeze 10");
    }
    let out =
        yolo3(tmp.path(), &["train", "--freeze", "16", "--cfg", cfg80_path.to_str().unwrap()]);
    assert!(
        !out.status.success() && text(&out.stderr).contains("would freeze head conv layer 15"),
        "{}",
        text(&out.stderr)
    );

    // 3 epochs from the 80-class file against 3 from scratch, same data, seed and schedule.
    let tuned =
        map50(&train_run(tmp.path(), "tuned", &data, &["--weights", file, "--epochs", "3"]));
    let scratch = map50(&train_run(tmp.path(), "scratch", &data, &["--epochs", "3"]));
    assert!(tuned > scratch, "mAP50 after 3 epochs: {tuned} transferred, {scratch} from scratch");
    eprintln!("mAP50 after 3 epochs: {tuned:.3} from the 80-class file, {scratch:.3} from scratch");
}
