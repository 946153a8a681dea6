//! Every shared cfg parses, with the structure, heads and shapes darknet gives it.

mod common;

use yolo3_model::cfg::LrPolicy;
use yolo3_model::{Config, Layer, ModelError, Shape};

fn all_cfgs() -> Vec<std::path::PathBuf> {
    let root = common::models_dir().join("cfg");
    let mut out = Vec::new();
    let mut dirs = vec![root];
    while let Some(dir) = dirs.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "cfg") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn all_shared_cfgs_parse() {
    let files = all_cfgs();
    assert!(files.len() >= 7, "{files:?}");
    for path in files {
        let cfg = Config::from_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let net = cfg.net();
        cfg.output_shapes(net.height, net.width)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert!(!cfg.heads().is_empty());
    }
}

#[test]
fn yolov3_structure() {
    let cfg = Config::from_file(common::models_dir().join("cfg/yolov3.cfg")).unwrap();
    assert_eq!(cfg.layers().len(), 107);
    assert_eq!((cfg.net().width, cfg.net().batch, cfg.net().subdivisions), (608, 64, 16));
    assert_eq!(
        cfg.net().policy,
        LrPolicy::Steps { steps: vec![400_000, 450_000], scales: vec![0.1, 0.1] }
    );
    assert_eq!(cfg.net().saturation, 1.5);
    assert_eq!(cfg.conv_layers().len(), 75);
    let heads = cfg.heads();
    assert_eq!(
        heads.iter().map(|h| (h.source_layer, h.yolo_layer, h.stride)).collect::<Vec<_>>(),
        vec![(81, 82, 32), (93, 94, 16), (105, 106, 8)]
    );
    assert_eq!(heads[0].anchors, vec![[116.0, 90.0], [156.0, 198.0], [373.0, 326.0]]);
    assert_eq!(heads[2].mask, vec![0, 1, 2]);
    assert_eq!(heads[0].ignore_thresh, 0.7);
    let Layer::Route(r) = &cfg.layers()[86] else { panic!() };
    assert_eq!(r.layers, vec![85, 61]);
    let Layer::Route(r) = &cfg.layers()[83] else { panic!() };
    assert_eq!(r.layers, vec![79]);
    let Layer::Shortcut(s) = &cfg.layers()[4] else { panic!() };
    assert_eq!(s.from, 1);
    let shapes = cfg.output_shapes(416, 416).unwrap();
    assert_eq!(shapes[81], Shape { c: 255, h: 13, w: 13 });
    assert_eq!(shapes[93], Shape { c: 255, h: 26, w: 26 });
    assert_eq!(shapes[105], Shape { c: 255, h: 52, w: 52 });
    assert_eq!(shapes[86].c, 768);
}

#[test]
fn tiny_and_spp_structure() {
    let tiny = Config::from_file(common::models_dir().join("cfg/yolov3-tiny.cfg")).unwrap();
    let shapes = tiny.output_shapes(416, 416).unwrap();
    assert_eq!(
        shapes[11],
        Shape { c: 512, h: 13, w: 13 },
        "size-2 stride-1 maxpool keeps the size"
    );
    assert_eq!(shapes[20].c, 384);
    assert_eq!(tiny.heads().iter().map(|h| h.stride).collect::<Vec<_>>(), vec![32, 16]);
    assert_eq!(tiny.heads()[1].anchors, vec![[10.0, 14.0], [23.0, 27.0], [37.0, 58.0]]);

    let spp = Config::from_file(common::models_dir().join("cfg/yolov3-spp.cfg")).unwrap();
    assert_eq!(spp.layers().len(), 114);
    let Layer::Maxpool(m) = &spp.layers()[82] else { panic!("{:?}", spp.layers()[82]) };
    assert_eq!((m.size, m.stride, m.padding), (13, 1, 12));
    let Layer::Route(r) = &spp.layers()[83] else { panic!() };
    assert_eq!(r.layers, vec![82, 80, 78, 77]);
    let shapes = spp.output_shapes(608, 608).unwrap();
    assert_eq!(shapes[83], Shape { c: 2048, h: 19, w: 19 });
    assert_eq!(spp.heads().iter().map(|h| h.source_layer).collect::<Vec<_>>(), vec![88, 100, 112]);
    assert_eq!(spp.heads().len(), 3);

    let old = Config::from_file(
        common::models_dir().join("cfg/historical/yolov3-tiny.pjreddie-481d9d98-mask123.cfg"),
    )
    .unwrap();
    assert_eq!(old.heads()[1].mask, vec![1, 2, 3]);
    assert_eq!(old.heads()[1].anchors[0], [23.0, 27.0]);
}

#[test]
fn bad_cfgs_name_the_file_and_line() {
    let path = common::models_dir().join("cfg/yolov3-tiny.cfg");
    let text = std::fs::read_to_string(&path).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let p = write("a.cfg", &text.replacen("activation=leaky", "activation=mish", 1));
    let err = Config::from_file(&p).unwrap_err();
    assert!(matches!(&err, ModelError::CfgValue { line: 31, .. }), "{err}");
    assert!(err.to_string().contains("a.cfg:31:"), "{err}");

    let p = write("b.cfg", &text.replacen("[upsample]", "[reorg]", 1));
    let err = Config::from_file(&p).unwrap_err();
    assert!(matches!(&err, ModelError::CfgUnsupportedSection { .. }), "{err}");
    assert!(err.to_string().contains("b.cfg:") && err.to_string().contains("[reorg]"), "{err}");

    let p = write("c.cfg", &text.replacen("layers = -1, 8", "layers = -1, 30", 1));
    assert!(matches!(Config::from_file(&p).unwrap_err(), ModelError::CfgValue { .. }));

    let p = write("d.cfg", &text.replacen("filters=255", "filters=254", 1));
    assert!(matches!(
        Config::from_file(&p).unwrap_err(),
        ModelError::CfgStructure { layer: 16, .. }
    ));

    assert!(matches!(
        Config::from_file(dir.path().join("missing.cfg")).unwrap_err(),
        ModelError::Io { .. }
    ));
}
