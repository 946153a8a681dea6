//! The ONNX export, run in ONNX Runtime (an independent engine, installed into the venv by
//! `scripts/setup.sh`): on every shared model case the exported graph's heads match the
//! float64 darknet reference within the model tests' tolerance (`scripts/onnx_case_check.py`),
//! batch 2 included (the batch dimension is dynamic), and the file's structure is what the
//! module docs promise.

#![allow(clippy::print_stdout)]

mod common;

use std::process::Command;

use onnx_protobuf::{Message as _, ModelProto};
use yolo3_model::{onnx_bytes, Config, Darknet, DarknetWeights, OnnxOptions, ONNX_OPSET};

/// The network of a case with its weights, and its input's height and width.
fn case_net(path: &std::path::Path) -> (Darknet, i64, i64) {
    let case = common::Case::read(path);
    let cfg = Config::from_file(case.resolve("cfg")).unwrap();
    let weights = DarknetWeights::read(case.resolve("weights"), &cfg).unwrap();
    let mut net = Darknet::new(cfg, tch::Device::Cpu).unwrap();
    net.load_darknet_weights(&weights).unwrap();
    let size = case.tensors["input"].size();
    (net, size[2], size[3])
}

#[test]
fn onnx_runtime_reproduces_the_reference_heads_of_every_case() {
    let files = common::case_files();
    assert!(!files.is_empty(), "no case files found in {:?}", common::case_dirs());
    let dir = tempfile::tempdir().unwrap();
    let mut failed = Vec::new();
    for path in &files {
        let (net, height, width) = case_net(path);
        let options = OnnxOptions { height, width, class_names: Vec::new() };
        let file = dir.path().join("model.onnx");
        std::fs::write(&file, onnx_bytes(&net, &options).unwrap()).unwrap();
        let out = Command::new(common::venv_python())
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/onnx_case_check.py"))
            .arg(&file)
            .arg(path)
            .output()
            .expect("the venv's python runs (scripts/setup.sh makes it)");
        let text = String::from_utf8_lossy(&out.stdout);
        println!("{}:\n{text}{}", path.display(), String::from_utf8_lossy(&out.stderr));
        if !out.status.success() {
            failed.push(path.display().to_string());
        }
    }
    assert!(failed.is_empty(), "ONNX Runtime disagrees on {failed:?} (see above)");
}

#[test]
fn the_file_declares_opset_a_dynamic_batch_and_the_metadata() {
    let path = &common::case_files()[0];
    let (net, height, width) = case_net(path);
    let names: Vec<String> = (0..net.config().classes()).map(|c| format!("class {c}")).collect();
    let options = OnnxOptions { height, width, class_names: names.clone() };
    let model = ModelProto::parse_from_bytes(&onnx_bytes(&net, &options).unwrap()).unwrap();
    assert_eq!(model.opset_import[0].version, ONNX_OPSET);
    const { assert!(ONNX_OPSET >= 17) };
    let graph = model.graph.as_ref().unwrap();
    assert_eq!(graph.output.len(), net.heads().len());
    let convs = net.config().conv_layers().len();
    let conv_nodes = graph.node.iter().filter(|n| n.op_type == "Conv").count();
    assert_eq!(conv_nodes, convs, "one Conv per conv layer: batch norm is folded");
    assert!(graph.node.iter().all(|n| n.op_type != "BatchNormalization"));
    let meta =
        |key: &str| model.metadata_props.iter().find(|p| p.key == key).map(|p| p.value.clone());
    assert_eq!(meta("yolo3.class_names"), Some(serde_json::to_string(&names).unwrap()));
    let anchors: Vec<Vec<[f32; 2]>> =
        serde_json::from_str(&meta("yolo3.anchors").unwrap()).unwrap();
    assert_eq!(anchors.len(), net.heads().len());
    assert_eq!(anchors[0], net.heads()[0].anchors);
}
