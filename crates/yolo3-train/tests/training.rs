//! Training-loop tests on tiny inputs: a few optimizer steps on a fixed batch lower the loss, and a finished short run has every
//! file of its folder.

use tch::{Device, Kind, Tensor};
use yolo3_core::{BoxXyxy, LabeledBox, LossOptions};
use yolo3_model::{Config, Darknet, YoloLoss};
use yolo3_train::cfg_text::tiny_cfg;
use yolo3_train::{Optimizer, OptimizerKind, TrainConfig};

fn boxes() -> Vec<Vec<LabeledBox>> {
    let lb = |x0, y0, x1, y1, class| LabeledBox { bbox: BoxXyxy::new(x0, y0, x1, y1), class };
    vec![
        vec![lb(4.0, 6.0, 30.0, 40.0, 1), lb(33.0, 30.0, 60.0, 58.0, 2)],
        vec![lb(10.0, 10.0, 50.0, 44.0, 0)],
    ]
}

#[test]
fn a_few_steps_on_a_fixed_batch_lower_the_loss() {
    tch::manual_seed(0);
    let text =
        tiny_cfg(8, 64, 3, &yolo3_core::anchors::TINY_ANCHORS.map(|[w, h]| [w / 6.5, h / 6.5]));
    let net = Darknet::new(Config::parse(&text, "tiny/8").unwrap(), Device::Cpu).unwrap();
    let loss = YoloLoss::new(net.config().anchors().unwrap(), 3, LossOptions::default());
    let xs = Tensor::rand([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    let mut params: Vec<(String, Tensor)> = net.var_store().variables().into_iter().collect();
    let mut opt = Optimizer::new(OptimizerKind::adam());
    let mut first = None;
    let mut last = 0.0;
    for _ in 0..40 {
        Optimizer::zero_grad(&mut params);
        let outputs = net.forward_t(&xs, true).unwrap();
        let out = loss.compute(&outputs, &boxes(), (64, 64)).unwrap();
        out.loss.backward();
        opt.step(&params, 3e-3).unwrap();
        first.get_or_insert(out.parts.total);
        last = out.parts.total;
    }
    let first = first.unwrap();
    assert!(last < 0.5 * first, "loss went from {first} to {last}");
}

#[test]
fn a_short_run_writes_its_folder_and_resumes_to_more_epochs() {
    let tmp = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        data: yolo3_train::DataSource::Synthetic {
            train_images: 24,
            val_images: 8,
            size: 64,
            seed: 3,
        },
        model: yolo3_train::ModelSource::TinyPreset { width_divisor: 8 },
        input: 64,
        batch: 8,
        nominal_batch: 8,
        epochs: 1,
        project: tmp.path().join("runs"),
        ..TrainConfig::default()
    };
    let summary =
        yolo3_train::train(config, &yolo3_train::Replicas::single(), &mut yolo3_train::Silent)
            .unwrap();
    let dir = summary.run_dir.clone();
    for f in [
        "args.toml",
        "model.cfg",
        "results.csv",
        "results.png",
        "weights/last.safetensors",
        "weights/last.state-1.safetensors",
        "weights/best.safetensors",
        "weights/best.weights",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    // Extend the run and resume it: it continues after epoch 1.
    let args =
        std::fs::read_to_string(dir.join("args.toml")).unwrap().replace("epochs = 1", "epochs = 2");
    std::fs::write(dir.join("args.toml"), args).unwrap();
    let resumed =
        yolo3_train::resume(&dir, &yolo3_train::Replicas::single(), &mut yolo3_train::Silent)
            .unwrap();
    let epochs: Vec<usize> = resumed.rows.iter().map(|r| r.epoch).collect();
    assert_eq!(epochs, vec![1, 2]);
}
