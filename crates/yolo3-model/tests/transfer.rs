//! Initial weights by shape: a darknet file or checkpoint of the same network with another
//! class count loads into every conv but the heads, bit for bit, and the heads keep what they
//! had; a file of another network is still an error that names the conv.

use std::collections::HashMap;
use std::path::Path;
use yolo3_io::fsio::Existing;

use tch::{Device, Tensor};
use yolo3_model::{CheckpointInfo, Config, Darknet, DarknetWeights, WeightsHeader};

mod common;

fn cfg_text() -> String {
    std::fs::read_to_string(common::models_dir().join("cfg/yolov3-tiny-mini.cfg")).unwrap()
}

/// The shared tiny-mini (3 classes) with its random weights, and the same cfg for 4 classes.
fn three_and_four() -> (Darknet, Config) {
    let three = Config::parse(&cfg_text(), "three.cfg").unwrap();
    let mut net = Darknet::new(three, Device::Cpu).unwrap();
    let w = DarknetWeights::read(
        common::models_dir().join("weights/yolov3-tiny-mini.weights"),
        net.config(),
    )
    .unwrap();
    net.load_darknet_weights(&w).unwrap();
    // 3 anchors per head: 3 * (5 + 4) = 27 filters instead of 24.
    let four = cfg_text().replace("filters=24", "filters=27").replace("classes=3", "classes=4");
    (net, Config::parse(&four, "four.cfg").unwrap())
}

fn snapshot(net: &Darknet) -> HashMap<String, Tensor> {
    net.var_store().variables().into_iter().map(|(k, v)| (k, v.detach().copy())).collect()
}

fn head_prefixes(net: &Darknet) -> Vec<String> {
    net.heads().iter().map(|h| format!("layers.{}.", h.source_layer)).collect()
}

/// Every variable of `net` equals `source`'s bit for bit, except the heads', which equal
/// `before`'s (their initialisation).
fn assert_transferred(net: &Darknet, source: &Darknet, before: &HashMap<String, Tensor>) {
    let from = snapshot(source);
    let heads = head_prefixes(net);
    for (name, value) in snapshot(net) {
        let expected =
            if heads.iter().any(|h| name.starts_with(h)) { &before[&name] } else { &from[&name] };
        assert!(value.equal(expected), "{name}");
    }
}

#[test]
fn darknet_weights_of_another_class_count_fill_every_conv_but_the_heads() {
    let (source, four) = three_and_four();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("three.weights");
    source
        .export_darknet_weights(WeightsHeader::default())
        .unwrap()
        .write(&file, Existing::Replace)
        .unwrap();

    let mut net = Darknet::new(four.clone(), Device::Cpu).unwrap();
    let before = snapshot(&net);
    assert!(DarknetWeights::read(&file, &four).is_err(), "a plain read refuses the file");
    let (weights, layouts) = DarknetWeights::read_transfer(&file, &four).unwrap();
    let transfer = net.transfer_darknet_weights(&weights, &layouts).unwrap();
    assert_eq!((transfer.loaded, transfer.total, transfer.reinitialised.len()), (11, 13, 2));
    assert_eq!(
        transfer.describe("x"),
        "11/13 conv layers from x; 2 heads re-initialised (3 -> 4 classes)"
    );
    assert_transferred(&net, &source, &before);

    // The file of the network's own shape loads whole, as before.
    let (weights, layouts) = DarknetWeights::read_transfer(&file, source.config()).unwrap();
    let mut same = Darknet::new(source.config().clone(), Device::Cpu).unwrap();
    let transfer = same.transfer_darknet_weights(&weights, &layouts).unwrap();
    assert_eq!(transfer.describe("x"), "13/13 conv layers from x");
}

#[test]
fn checkpoints_of_another_class_count_fill_every_conv_but_the_heads() {
    let (source, four) = three_and_four();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("three.safetensors");
    let info = CheckpointInfo {
        class_names: vec!["a".into(), "b".into(), "c".into()],
        extra: std::collections::BTreeMap::default(),
    };
    source.save_checkpoint(&file, &info, Existing::Replace).unwrap();
    let mut net = Darknet::new(four, Device::Cpu).unwrap();
    let before = snapshot(&net);
    assert!(net.load_checkpoint(&file).is_err(), "an exact load refuses it");
    let (transfer, read) = net.transfer_checkpoint(&file).unwrap();
    assert_eq!(read.class_names, info.class_names);
    assert_eq!(
        transfer.describe("x"),
        "11/13 conv layers from x; 2 heads re-initialised (3 -> 4 classes)"
    );
    assert_transferred(&net, &source, &before);
}

#[test]
fn weights_of_another_network_are_still_refused_with_the_conv() {
    let (source, _) = three_and_four();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("three.weights");
    source
        .export_darknet_weights(WeightsHeader::default())
        .unwrap()
        .write(&file, Existing::Replace)
        .unwrap();
    // A body conv with other widths: no head width makes the sizes add up.
    let wider = cfg_text().replacen("filters=2\n", "filters=3\n", 1);
    let wider = Config::parse(&wider, "wider.cfg").unwrap();
    let e = DarknetWeights::read_transfer(Path::new(&file), &wider).unwrap_err();
    assert!(e.to_string().contains("conv #"), "{e}");
}
