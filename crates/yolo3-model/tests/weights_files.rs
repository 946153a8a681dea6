//! `.weights` files: the shared files read and write back byte for byte (both header
//! versions), partial files load their convs, and truncated or oversized files are errors
//! that give expected and actual sizes.

mod common;

use std::path::Path;
use yolo3_io::fsio::Existing;

use tch::Device;
use yolo3_model::{Config, ConvLayout, Darknet, DarknetWeights, ModelError, WeightsHeader};

fn cfg(name: &str) -> Config {
    Config::from_file(common::models_dir().join("cfg").join(name)).unwrap()
}

fn weights_path(name: &str) -> std::path::PathBuf {
    common::models_dir().join("weights").join(name)
}

#[test]
fn shared_files_round_trip_byte_for_byte() {
    for (cfg_name, file, minor, convs) in [
        ("yolov3-tiny.cfg", "yolov3-tiny.weights", 2, 13),
        ("yolov3-mini.cfg", "yolov3-mini.weights", 2, 75),
        ("yolov3-tiny-mini.cfg", "yolov3-tiny-mini.weights", 2, 13),
        ("yolov3-tiny-mini.cfg", "yolov3-tiny-mini.v01.weights", 1, 13),
    ] {
        let cfg = cfg(cfg_name);
        let path = weights_path(file);
        let original = std::fs::read(&path).unwrap();
        let w = DarknetWeights::read(&path, &cfg).unwrap();
        assert_eq!(w.header.minor, minor);
        assert_eq!(w.header.seen, if minor == 2 { 4_328_719_365 } else { 123_456_789 }, "{file}");
        assert_eq!(w.convs.len(), convs);
        assert!(w.to_bytes().unwrap() == original, "{file}: in-memory bytes differ");

        // Through a live network and a file on disk.
        let mut net = Darknet::new(cfg, Device::Cpu).unwrap();
        net.load_darknet_weights(&w).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join(file);
        net.export_darknet_weights(w.header).unwrap().write(&out, Existing::Replace).unwrap();
        assert!(std::fs::read(&out).unwrap() == original, "{file}: exported bytes differ");
    }
}

#[test]
fn the_two_header_versions_hold_the_same_floats() {
    let cfg = cfg("yolov3-tiny-mini.cfg");
    let a = DarknetWeights::read(weights_path("yolov3-tiny-mini.weights"), &cfg).unwrap();
    let b = DarknetWeights::read(weights_path("yolov3-tiny-mini.v01.weights"), &cfg).unwrap();
    assert_eq!(a.convs, b.convs);
    assert_eq!((a.header.byte_len(), b.header.byte_len()), (20, 16));
}

#[test]
fn full_yolov3_needs_the_documented_size() {
    let layouts = ConvLayout::of_config(&cfg("yolov3.cfg"));
    let floats: usize = layouts.iter().map(ConvLayout::float_count).sum();
    assert_eq!(floats, 62_001_757);
    assert_eq!(20 + 4 * floats, 248_007_048);
}

#[test]
fn partial_files_load_the_convs_they_hold() {
    let cfg = cfg("yolov3-mini.cfg");
    let layouts = ConvLayout::of_config(&cfg);
    let original = std::fs::read(weights_path("yolov3-mini.weights")).unwrap();
    // The first 52 convs are darknet53's, i.e. layers 0..=74 (darknet53.conv.74).
    let body: usize = layouts[..52].iter().map(ConvLayout::float_count).sum();
    assert_eq!(layouts[51].layer, 73);
    let partial = &original[..20 + 4 * body];
    let w = DarknetWeights::from_bytes(partial, &layouts, Path::new("darknet53.conv.74")).unwrap();
    assert_eq!(w.convs.len(), 52);
    assert!(w.to_bytes().unwrap() == partial);
    let mut net = Darknet::new(cfg, Device::Cpu).unwrap();
    assert_eq!(net.load_darknet_weights(&w).unwrap(), 52);
}

#[test]
fn truncated_and_oversized_files_are_errors() {
    let cfg = cfg("yolov3-tiny-mini.cfg");
    let layouts = ConvLayout::of_config(&cfg);
    let original = std::fs::read(weights_path("yolov3-tiny-mini.weights")).unwrap();
    let dir = tempfile::tempdir().unwrap();

    let cut = dir.path().join("cut.weights");
    std::fs::write(&cut, &original[..original.len() - 4]).unwrap();
    match DarknetWeights::read(&cut, &cfg).unwrap_err() {
        ModelError::WeightsTruncated { conv, layer, expected_bytes, actual_bytes, .. } => {
            assert_eq!((conv, layer), (12, 22));
            assert_eq!(expected_bytes, original.len() as u64);
            assert_eq!(actual_bytes, original.len() as u64 - 4);
        }
        other => panic!("{other}"),
    }

    let first_conv = layouts[0].float_count();
    let mid = &original[..20 + 4 * first_conv + 8];
    let err = DarknetWeights::from_bytes(mid, &layouts, Path::new("mid")).unwrap_err();
    assert!(matches!(err, ModelError::WeightsTruncated { conv: 1, .. }), "{err}");
    assert!(err.to_string().contains(&format!("{}", mid.len())), "{err}");

    let long = dir.path().join("long.weights");
    let mut bytes = original.clone();
    bytes.extend_from_slice(&[0; 12]);
    std::fs::write(&long, &bytes).unwrap();
    match DarknetWeights::read(&long, &cfg).unwrap_err() {
        ModelError::WeightsTrailing { expected_bytes, actual_bytes, extra_bytes, .. } => {
            assert_eq!(
                (expected_bytes, actual_bytes, extra_bytes),
                (original.len() as u64, bytes.len() as u64, 12)
            );
        }
        other => panic!("{other}"),
    }

    // The v0.1 file read with a v0.2 header would be shifted: here a v0.2 header on v0.1 data.
    let mut shifted = std::fs::read(weights_path("yolov3-tiny-mini.v01.weights")).unwrap();
    shifted[4] = 2;
    assert!(matches!(
        DarknetWeights::from_bytes(&shifted, &layouts, Path::new("s")).unwrap_err(),
        ModelError::WeightsTruncated { conv: 12, .. }
    ));

    assert!(matches!(
        DarknetWeights::from_bytes(&original[..10], &layouts, Path::new("h")).unwrap_err(),
        ModelError::WeightsHeader { actual_bytes: 10, .. }
    ));
    assert!(matches!(
        DarknetWeights::read(dir.path().join("nope"), &cfg).unwrap_err(),
        ModelError::Io { .. }
    ));
}

#[test]
fn weights_for_another_cfg_are_rejected() {
    let tiny = DarknetWeights::read(
        weights_path("yolov3-tiny-mini.weights"),
        &cfg("yolov3-tiny-mini.cfg"),
    )
    .unwrap();
    let mut net = Darknet::new(cfg("yolov3-mini.cfg"), Device::Cpu).unwrap();
    assert!(matches!(
        net.load_darknet_weights(&tiny).unwrap_err(),
        ModelError::WeightsMismatch { .. }
    ));
}

#[test]
fn old_headers_cannot_hold_a_large_seen() {
    let w = DarknetWeights {
        header: WeightsHeader { major: 0, minor: 1, revision: 0, seen: 1 << 40 },
        convs: Vec::new(),
    };
    assert!(w.to_bytes().is_err());
    let w = DarknetWeights {
        header: WeightsHeader { seen: 1 << 40, ..WeightsHeader::default() },
        convs: Vec::new(),
    };
    assert_eq!(w.to_bytes().unwrap().len(), 20);
}
