//! Checkpoints: a save/load round trip restores every variable and buffer (so the outputs
//! are identical), the cfg and class names travel inside, and bad files give typed errors.

mod common;

use std::collections::BTreeMap;
use yolo3_io::fsio::Existing;

use tch::{Device, Kind, Tensor};
use yolo3_model::{CheckpointInfo, Config, Darknet, DarknetWeights, ModelError};

fn loaded_tiny_mini() -> Darknet {
    let models = common::models_dir();
    let cfg = Config::from_file(models.join("cfg/yolov3-tiny-mini.cfg")).unwrap();
    let w = DarknetWeights::read(models.join("weights/yolov3-tiny-mini.weights"), &cfg).unwrap();
    let mut net = Darknet::new(cfg, Device::Cpu).unwrap();
    net.load_darknet_weights(&w).unwrap();
    net
}

fn info() -> CheckpointInfo {
    CheckpointInfo {
        class_names: vec!["cat".into(), "dog, large".into(), "ß\"x".into()],
        extra: BTreeMap::from([("epoch".to_owned(), "7".to_owned())]),
    }
}

#[test]
fn round_trip_restores_outputs_cfg_and_names() {
    let net = loaded_tiny_mini();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    net.save_checkpoint(&path, &info(), Existing::Replace).unwrap();
    let leftovers: Vec<_> =
        std::fs::read_dir(dir.path()).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(leftovers.len(), 1, "no temporary file left: {leftovers:?}");

    let (restored, got) = Darknet::from_checkpoint(&path, Device::Cpu).unwrap();
    assert_eq!(got, info());
    assert_eq!(restored.config().text(), net.config().text());
    assert_eq!(restored.var_store().variables().len(), net.var_store().variables().len());

    let x = Tensor::rand([1, 3, 64, 96], (Kind::Float, Device::Cpu));
    let a = tch::no_grad(|| net.forward_t(&x, false)).unwrap();
    let b = tch::no_grad(|| restored.forward_t(&x, false)).unwrap();
    for (a, b) in a.iter().zip(&b) {
        assert!(a.equal(b));
    }

    // Loading into an existing network of the same cfg works too; overwriting keeps one file.
    let mut fresh = Darknet::new(net.config().clone(), Device::Cpu).unwrap();
    assert_eq!(fresh.load_checkpoint(&path).unwrap(), info());
    let c = tch::no_grad(|| fresh.forward_t(&x, false)).unwrap();
    assert!(c[0].equal(&a[0]));
    net.save_checkpoint(&path, &CheckpointInfo::default(), Existing::Replace).unwrap();
    assert_eq!(fresh.load_checkpoint(&path).unwrap(), CheckpointInfo::default());
}

#[test]
fn bad_checkpoints_are_typed_errors() {
    let net = loaded_tiny_mini();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ckpt.safetensors");
    net.save_checkpoint(&path, &info(), Existing::Replace).unwrap();

    // A different architecture: names or shapes differ.
    let mini = Config::from_file(common::models_dir().join("cfg/yolov3-mini.cfg")).unwrap();
    let mut other = Darknet::new(mini, Device::Cpu).unwrap();
    let err = other.load_checkpoint(&path).unwrap_err();
    assert!(matches!(err, ModelError::CheckpointTensor { .. }), "{err}");

    let garbage = dir.path().join("garbage.safetensors");
    std::fs::write(&garbage, b"not a checkpoint").unwrap();
    assert!(matches!(
        Darknet::from_checkpoint(&garbage, Device::Cpu).unwrap_err(),
        ModelError::CheckpointFormat { .. }
    ));

    // A plain safetensors file without our metadata.
    let plain = dir.path().join("plain.safetensors");
    Tensor::write_safetensors(&[("x", Tensor::zeros([2], (Kind::Float, Device::Cpu)))], &plain)
        .unwrap();
    let err = Darknet::from_checkpoint(&plain, Device::Cpu).unwrap_err();
    assert!(matches!(&err, ModelError::CheckpointMetadata { key, .. } if key == "format"), "{err}");

    // A truncated checkpoint.
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.safetensors");
    std::fs::write(&cut, &bytes[..bytes.len() - 100]).unwrap();
    assert!(matches!(
        Darknet::from_checkpoint(&cut, Device::Cpu).unwrap_err(),
        ModelError::CheckpointFormat { .. }
    ));

    assert!(matches!(
        Darknet::from_checkpoint(dir.path().join("none"), Device::Cpu).unwrap_err(),
        ModelError::Io { .. }
    ));
}
