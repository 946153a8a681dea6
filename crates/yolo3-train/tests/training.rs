//! Training-loop tests on tiny inputs: the loss op hands the core's exact gradient to autograd,
//! a few optimizer steps on a fixed batch lower the loss, and a finished short run has every
//! file of its folder.

use tch::{Device, Kind, Tensor};
use yolo3_core::{
    assign_targets, yolo_loss, Anchors, BoxXyxy, HeadInput, LabeledBox, Layout, LossOptions,
    TinyMask,
};
use yolo3_model::{Config, Darknet};
use yolo3_train::cfg_text::tiny_cfg;
use yolo3_train::{Optimizer, OptimizerKind, TrainConfig, YoloLoss};

fn boxes() -> Vec<Vec<LabeledBox>> {
    let lb = |x0, y0, x1, y1, class| LabeledBox { bbox: BoxXyxy::new(x0, y0, x1, y1), class };
    vec![
        vec![lb(4.0, 6.0, 30.0, 40.0, 1), lb(33.0, 30.0, 60.0, 58.0, 2)],
        vec![lb(10.0, 10.0, 50.0, 44.0, 0)],
    ]
}

#[test]
fn loss_op_backward_gives_the_core_gradient() {
    let anchors = Anchors::tiny(TinyMask::Darknet);
    let loss = YoloLoss::new(anchors.clone(), 3, LossOptions::default());
    tch::manual_seed(1);
    let outputs: Vec<Tensor> = [(2, 2), (4, 4)]
        .iter()
        .map(|&(h, w)| {
            (Tensor::randn([2, 24, h, w], (Kind::Float, Device::Cpu)) * 1.5).set_requires_grad(true)
        })
        .collect();
    let out = loss.compute(&outputs, &boxes(), (64, 64)).unwrap();
    assert!((out.loss.double_value(&[]) - out.parts.total).abs() < 1e-3 * out.parts.total);
    out.loss.backward();

    let config = loss.head_config(64, 64).unwrap();
    let host: Vec<Vec<f32>> =
        outputs.iter().map(|t| Vec::<f32>::try_from(t.detach().view([-1])).unwrap()).collect();
    let inputs: Vec<HeadInput<'_, f32>> = host
        .iter()
        .zip([(2, 2), (4, 4)])
        .map(|(d, (h, w))| HeadInput { data: d, height: h, width: w, channels: 24 })
        .collect();
    let mut grads: Vec<Vec<f32>> = host.iter().map(|h| vec![0.0; h.len()]).collect();
    let mut refs: Vec<&mut [f32]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
    let b = boxes();
    let box_refs: Vec<&[LabeledBox]> = b.iter().map(Vec::as_slice).collect();
    let targets = assign_targets(&config, &box_refs).unwrap();
    let parts =
        yolo_loss(&config, Layout::Nchw, 2, &inputs, &targets, &LossOptions::default(), &mut refs)
            .unwrap();
    assert_eq!(parts.total, out.parts.total);
    for (t, g) in outputs.iter().zip(&grads) {
        let autograd = Vec::<f32>::try_from(t.grad().view([-1])).unwrap();
        let worst = autograd.iter().zip(g).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst < 1e-6, "autograd differs from the core gradient by {worst}");
    }
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
