//! Network behaviour beyond the reference cases: output shapes of the three nets, training
//! mode, freezing the body, and errors instead of panics on bad input.

mod common;

use tch::{Device, Kind, Tensor};
use yolo3_model::{Config, Darknet, ModelError};

fn net(cfg: &str) -> Darknet {
    Darknet::new(
        Config::from_file(common::models_dir().join("cfg").join(cfg)).unwrap(),
        Device::Cpu,
    )
    .unwrap()
}

#[test]
fn head_shapes_of_the_three_architectures() {
    for (cfg, size, grids) in [
        ("yolov3-tiny-mini.cfg", 160, vec![5, 10]),
        ("yolov3-mini.cfg", 96, vec![3, 6, 12]),
        ("yolov3-spp.cfg", 64, vec![2, 4, 8]),
    ] {
        let net = net(cfg);
        let x = Tensor::rand([2, 3, size, size], (Kind::Float, Device::Cpu));
        let out = tch::no_grad(|| net.forward_t(&x, false)).unwrap();
        let got: Vec<Vec<i64>> = out.iter().map(Tensor::size).collect();
        let want: Vec<Vec<i64>> =
            net.heads().iter().zip(&grids).map(|(h, &g)| vec![2, h.channels(), g, g]).collect();
        assert_eq!(got, want, "{cfg}");
    }
}

#[test]
fn training_mode_uses_batch_statistics_and_trains_only_unfrozen_layers() {
    let mut net = net("yolov3-tiny-mini.cfg");
    let x = Tensor::rand([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    let stats = |net: &Darknet, layer: usize| {
        let v = net.var_store().variables();
        [
            v[&format!("layers.{layer}.bn.running_mean")].copy(),
            v[&format!("layers.{layer}.bn.running_var")].copy(),
        ]
    };
    let train_pass = |net: &Darknet| {
        let out = net.forward_t(&x, true).unwrap();
        let loss = out
            .iter()
            .map(|o| o.square().mean(Kind::Float))
            .fold(Tensor::zeros([], (Kind::Float, Device::Cpu)), |a, b| a + b);
        loss.backward();
        out
    };

    // The body frozen (keras' first stage): only the heads get gradients, and no batch norm
    // moves its running statistics.
    let heads = net.config().head_conv_layers();
    net.freeze(|i| !heads.contains(&i));
    let before = stats(&net, 0);
    let groups = net.param_groups();
    assert_eq!(groups.heads.len(), 4, "two head convs with kernel and bias");
    assert!(groups.body.iter().all(|t| !t.requires_grad()));
    assert!(groups.heads.iter().all(Tensor::requires_grad));
    let frozen_out = train_pass(&net);
    assert!(groups.heads.iter().all(|t| t.grad().defined()));
    assert!(groups.body.iter().all(|t| !t.grad().defined()));
    assert!(before.iter().zip(&stats(&net, 0)).all(|(a, b)| a.equal(b)), "frozen BN kept");
    // With every BN frozen, a training pass is an inference pass.
    let eval = tch::no_grad(|| net.forward_t(&x, false)).unwrap();
    assert!(eval[0].equal(&frozen_out[0]));

    // The first 10 layers frozen: their statistics stay, the later ones' move, and the
    // gradient stops at layer 10.
    net.freeze(|i| i < 10);
    assert!(!net.var_store().variables()["layers.0.conv.weight"].requires_grad());
    assert!(net.var_store().variables()["layers.21.conv.weight"].requires_grad());
    assert!(net.is_frozen(8) && !net.is_frozen(10));
    let (early, late) = (stats(&net, 8), stats(&net, 12));
    let out = train_pass(&net);
    assert!(early.iter().zip(&stats(&net, 8)).all(|(a, b)| a.equal(b)), "layer 8 kept");
    assert!(!late[0].equal(&stats(&net, 12)[0]), "train mode updates layer 12's statistics");
    assert!(!net.var_store().variables()["layers.8.conv.weight"].grad().defined());
    assert!(net.var_store().variables()["layers.12.conv.weight"].grad().defined());

    // Inference differs from training on a fresh net (batch vs running statistics).
    let eval = tch::no_grad(|| net.forward_t(&x, false)).unwrap();
    assert!(!eval[0].allclose(&out[0], 1e-4, 1e-4, false));

    net.freeze(|_| false);
    assert!(net.param_groups().body.iter().all(Tensor::requires_grad));
}

#[test]
fn the_backbone_is_darknet53_or_the_tiny_trunk() {
    let backbone = |cfg: &str| net(cfg).config().backbone_layers();
    assert_eq!(backbone("yolov3-mini.cfg"), Some(75));
    assert_eq!(backbone("yolov3-spp.cfg"), Some(75));
    assert_eq!(backbone("yolov3-tiny-mini.cfg"), Some(13));
}

#[test]
fn bad_inputs_are_errors() {
    let net = net("yolov3-tiny-mini.cfg");
    let wrong_channels = Tensor::zeros([1, 4, 64, 64], (Kind::Float, Device::Cpu));
    assert!(matches!(
        net.forward_t(&wrong_channels, false).unwrap_err(),
        ModelError::InputTensor { .. }
    ));
    let wrong_kind = Tensor::zeros([1, 3, 64, 64], (Kind::Double, Device::Cpu));
    assert!(matches!(
        net.forward_t(&wrong_kind, false).unwrap_err(),
        ModelError::InputTensor { .. }
    ));
    let three_d = Tensor::zeros([3, 64, 64], (Kind::Float, Device::Cpu));
    assert!(matches!(net.forward_t(&three_d, false).unwrap_err(), ModelError::InputTensor { .. }));
    // 40 is not a multiple of 32: the upsampled 2x2 grid cannot be concatenated with 3x3.
    let odd = Tensor::zeros([1, 3, 40, 40], (Kind::Float, Device::Cpu));
    assert!(matches!(
        net.forward_t(&odd, false).unwrap_err(),
        ModelError::InputSize { layer: 20, .. }
    ));
}

#[test]
fn the_network_can_move_to_another_thread() {
    fn assert_send<T: Send>() {}
    assert_send::<Darknet>();
    let net = net("yolov3-tiny-mini.cfg");
    let heads = std::thread::spawn(move || net.heads().len()).join().unwrap();
    assert_eq!(heads, 2);
}

/// `set_bn_momentum` sets how far one training pass moves the running statistics:
/// `running = (1 - m) * running + m * batch`, here checked on the first conv's mean, whose
/// batch statistics are those of its convolution of the input.
#[test]
fn batch_norm_momentum_sets_how_fast_the_running_statistics_follow() {
    let x = Tensor::rand([2, 3, 64, 64], (Kind::Float, Device::Cpu));
    for m in [0.01, 0.3, 1.0] {
        let mut net = net("yolov3-tiny-mini.cfg");
        net.set_bn_momentum(m);
        let v = net.var_store().variables();
        let before = v["layers.0.bn.running_mean"].copy();
        let weight = v["layers.0.conv.weight"].copy();
        let conv = x.conv2d(&weight, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
        let batch_mean = conv.mean_dim([0i64, 2, 3].as_slice(), false, Kind::Float);
        tch::no_grad(|| net.forward_t(&x, true)).unwrap();
        let after = net.var_store().variables()["layers.0.bn.running_mean"].copy();
        let expected = &before * (1.0 - m) + &batch_mean * m;
        let worst = (&after - &expected).abs().max().double_value(&[]);
        assert!(worst < 1e-5, "momentum {m}: running mean off by {worst}");
    }
}
