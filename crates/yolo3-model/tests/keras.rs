//! keras-yolo3 `.h5` weights: files written by `scripts/gen-keras-h5.py` from the shared
//! darknet models (Keras 2 and tf.keras names, `save_weights` and `save` layouts) import into
//! the network that the darknet files load into, bit for bit (every variable and every head
//! output on the shared cases' inputs), with the user's cfg or with the cfg chosen from the
//! file; bad files are errors that name the file and the layer.

#![allow(clippy::print_stdout)]

mod common;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use tch::{Device, Kind};
use yolo3_model::{Config, Darknet, DarknetWeights, KerasWeights, ModelError};

fn run_python(args: &[&str]) {
    let out = Command::new(common::venv_python()).args(args).output().expect("python runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Writes `cfg` + `weights` as a keras-yolo3 `.h5` with the generator (every test runs it
/// before its h5py snippets, so h5py is there for them); `layout` is `weights` or `model`,
/// possibly followed by more generator flags.
fn generate(cfg: &Path, weights: &Path, out: &Path, names: &str, layout: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../scripts/gen-keras-h5.py");
    let (cfg, weights, out) =
        (cfg.to_str().unwrap(), weights.to_str().unwrap(), out.to_str().unwrap());
    let mut args = vec![script, "--cfg", cfg, "--weights", weights, "--out", out];
    args.extend(["--names", names, "--layout"]);
    args.extend(layout.split(' '));
    run_python(&args);
}

/// Every anchor of the cfg, rebuilt from the heads' masks.
fn all_anchors(cfg: &Config) -> Vec<[f32; 2]> {
    let mut anchors = vec![[0f32; 2]; cfg.heads().iter().map(|h| h.mask.len()).sum()];
    for h in cfg.heads() {
        for (&m, &a) in h.mask.iter().zip(&h.anchors) {
            anchors[m] = a;
        }
    }
    anchors
}

fn darknet_net(cfg: &Path, weights: &Path) -> Darknet {
    let cfg = Config::from_file(cfg).unwrap();
    let w = DarknetWeights::read(weights, &cfg).unwrap();
    let mut net = Darknet::new(cfg, Device::Cpu).unwrap();
    net.load_darknet_weights(&w).unwrap();
    net
}

fn assert_same_variables(a: &Darknet, b: &Darknet, what: &str) {
    let (va, vb) = (a.var_store().variables(), b.var_store().variables());
    assert_eq!(va.len(), vb.len(), "{what}");
    for (name, t) in &va {
        assert!(t.equal(&vb[name]), "{what}: `{name}` differs");
    }
}

#[test]
fn keras_files_import_bit_for_bit_on_every_shared_case() {
    let files = common::case_files();
    assert!(!files.is_empty(), "no case files found in {:?}", common::case_dirs());
    let dir = tempfile::tempdir().unwrap();
    let mut generated: Vec<(PathBuf, Vec<(String, PathBuf)>)> = Vec::new();
    for path in &files {
        let case = common::Case::read(path);
        let (cfg_path, weights_path) = (case.resolve("cfg"), case.resolve("weights"));
        let darknet = darknet_net(&cfg_path, &weights_path);
        if !generated.iter().any(|(w, _)| *w == weights_path) {
            let mut variants = Vec::new();
            for (names, layout) in
                [("keras2", "weights"), ("tf", "weights"), ("keras2", "model"), ("tf", "model")]
            {
                let stem = weights_path.file_stem().unwrap().to_string_lossy();
                let out = dir.path().join(format!("{stem}-{names}-{layout}.h5"));
                let start = std::time::Instant::now();
                generate(&cfg_path, &weights_path, &out, names, layout);
                println!("{}: generated in {:.2?}", out.display(), start.elapsed());
                variants.push((format!("{names}/{layout}"), out));
            }
            generated.push((weights_path.clone(), variants));
        }
        let variants = &generated.iter().find(|(w, _)| *w == weights_path).unwrap().1;
        let input = &case.tensors["input"];
        let expected = tch::no_grad(|| darknet.forward_t(input, false)).unwrap();
        for (variant, h5) in variants {
            let start = std::time::Instant::now();
            let keras = KerasWeights::read(h5).unwrap();
            let read = start.elapsed();
            // With the user's cfg, and with the cfg chosen from the file and the anchors.
            let user_cfg = Config::from_file(&cfg_path).unwrap();
            let chosen = keras.config(&all_anchors(&user_cfg)).unwrap();
            for cfg in [user_cfg, chosen] {
                let what = format!("{} {variant} ({})", path.display(), cfg.name());
                let mut net = Darknet::new(cfg, Device::Cpu).unwrap();
                net.load_keras(&keras).unwrap();
                assert_same_variables(&net, &darknet, &what);
                let heads = tch::no_grad(|| net.forward_t(input, false)).unwrap();
                for (k, (out, exp)) in heads.iter().zip(&expected).enumerate() {
                    assert!(out.equal(exp), "{what}: head {k} is not bit for bit");
                    let reference = &case.tensors[&format!("ref64_out_{k}")];
                    let diff = (out - reference).abs().to_kind(Kind::Double);
                    let budget = reference.abs().to_kind(Kind::Double) * 2e-5 + 1e-4;
                    assert!((&diff / &budget).max().double_value(&[]) <= 1.0, "{what}: head {k}");
                }
            }
            println!("{} {variant}: read in {read:.2?}, heads bit for bit", path.display());
        }
    }
}

#[test]
fn chosen_cfg_is_keras_yolo3s_network_layer_for_layer() {
    let dir = tempfile::tempdir().unwrap();
    for (cfg, weights) in [
        ("cfg/yolov3-mini.cfg", "weights/yolov3-mini.weights"),
        ("cfg/yolov3-tiny-mini.cfg", "weights/yolov3-tiny-mini.weights"),
    ] {
        let (cfg_path, weights_path) =
            (common::models_dir().join(cfg), common::models_dir().join(weights));
        let h5 = dir.path().join("m.h5");
        generate(&cfg_path, &weights_path, &h5, "keras2", "weights");
        let official = Config::from_file(&cfg_path).unwrap();
        let chosen = KerasWeights::read(&h5).unwrap().config(&all_anchors(&official)).unwrap();
        assert_eq!(chosen.layers().len(), official.layers().len(), "{cfg}");
        assert_eq!(chosen.channels(), official.channels(), "{cfg}");
        assert_eq!(
            yolo3_model::ConvLayout::of_config(&chosen),
            yolo3_model::ConvLayout::of_config(&official),
            "{cfg}"
        );
        for (a, b) in chosen.heads().iter().zip(official.heads()) {
            assert_eq!(
                (a.source_layer, a.stride, a.classes),
                (b.source_layer, b.stride, b.classes)
            );
        }
        // keras-yolo3's tiny mask differs from darknet's for the second head.
        let masks: Vec<&[usize]> = chosen.heads().iter().map(|h| h.mask.as_slice()).collect();
        if chosen.heads().len() == 2 {
            assert_eq!(masks, [&[3, 4, 5][..], &[1, 2, 3]]);
        } else {
            assert_eq!(masks, [&[6, 7, 8][..], &[3, 4, 5], &[0, 1, 2]]);
        }
    }
}

fn tiny_mini_h5(dir: &Path) -> PathBuf {
    let h5 = dir.join("tiny-mini.h5");
    generate(
        &common::models_dir().join("cfg/yolov3-tiny-mini.cfg"),
        &common::models_dir().join("weights/yolov3-tiny-mini.weights"),
        &h5,
        "keras2",
        "weights",
    );
    h5
}

fn error_text(err: &ModelError) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(s) = source {
        let _ = write!(text, ": {s}");
        source = s.source();
    }
    text
}

#[test]
fn truncated_and_foreign_files_are_errors_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let h5 = tiny_mini_h5(dir.path());
    let bytes = std::fs::read(&h5).unwrap();
    for keep in [100, 4096, bytes.len() / 2, bytes.len() - 1000] {
        let cut = dir.path().join(format!("cut{keep}.h5"));
        std::fs::write(&cut, &bytes[..keep]).unwrap();
        let err = KerasWeights::read(&cut).expect_err("a truncated file");
        let text = error_text(&err);
        println!("{keep} bytes: {text}");
        let size = format!(
            "truncated: its HDF5 superblock gives {} bytes, the file has {keep}",
            bytes.len()
        );
        assert!(text.starts_with(&cut.display().to_string()) && text.contains(&size), "{text}");
        if keep > bytes.len() / 2 {
            assert!(matches!(err, ModelError::KerasLayer { .. }), "names the layer: {text}");
        }
    }
    let darknet = common::models_dir().join("weights/yolov3-tiny-mini.weights");
    let err = error_text(&KerasWeights::read(&darknet).unwrap_err());
    assert!(err.contains("not an HDF5 file") && err.contains("yolov3-tiny-mini.weights"), "{err}");

    let other = dir.path().join("other.h5");
    run_python(&[
        "-c",
        "import h5py, sys; f = h5py.File(sys.argv[1], 'w'); f.create_dataset('x', data=[1.0])",
        other.to_str().unwrap(),
    ]);
    let err = error_text(&KerasWeights::read(&other).unwrap_err());
    assert!(err.contains("no `layer_names`") && err.contains("other.h5"), "{err}");
}

/// Edits the generated file with h5py: `code` runs with `f` open for writing.
fn edited(dir: &Path, name: &str, code: &str) -> PathBuf {
    let h5 = tiny_mini_h5(dir);
    let out = dir.join(name);
    std::fs::copy(&h5, &out).unwrap();
    let script = format!(
        "import h5py, numpy as np, sys\nf = h5py.File(sys.argv[1], 'r+')\n{code}\nf.close()"
    );
    run_python(&["-c", &script, out.to_str().unwrap()]);
    out
}

#[test]
fn bad_layers_are_errors_naming_the_layer() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "no-gamma.h5",
            "g = f['batch_normalization_3']\ng.attrs['weight_names'] = \
             [n for n in g.attrs['weight_names'] if b'gamma' not in n]",
            "layer `batch_normalization_3`: no `gamma` weight",
        ),
        (
            "missing-dataset.h5",
            "del f['conv2d_4/conv2d_4/kernel:0']",
            "layer `conv2d_4`: weight `conv2d_4/kernel:0`",
        ),
        (
            "nan.h5",
            "d = f['conv2d_2/conv2d_2/kernel:0']\nv = d[...]\nv[0, 0, 0, 1] = np.nan\nd[...] = v",
            "layer `conv2d_2`: kernel[1] = NaN is not finite",
        ),
        (
            "missing-group.h5",
            "del f['conv2d_5']",
            "layer `conv2d_5`: listed in `layer_names`, but not readable: group not found",
        ),
        (
            "renamed.h5",
            "f.attrs['layer_names'] = np.asarray([b'head' if n == b'conv2d_13' else n for n in \
             f.attrs['layer_names']])\nf.move('conv2d_13', 'head')\n\
             f.move('head/conv2d_13', 'head/head')\n\
             f['head'].attrs['weight_names'] = np.asarray([b'head/kernel:0', b'head/bias:0'])",
            "layer `head`: its name does not follow Keras' numbering `conv2d_N`",
        ),
    ];
    for (name, code, expected) in cases {
        let file = edited(dir.path(), name, code);
        let Err(err) = KerasWeights::read(&file) else { panic!("{name}: read without an error") };
        let err = error_text(&err);
        println!("{name}: {err}");
        assert!(err.contains(expected) && err.contains(name), "{name}: {err}");
    }
}

#[test]
fn a_file_of_another_network_names_the_layer_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let keras = KerasWeights::read(tiny_mini_h5(dir.path())).unwrap();
    let tiny = Config::from_file(common::models_dir().join("cfg/yolov3-tiny.cfg")).unwrap();
    let err = error_text(&keras.darknet_weights(&tiny).unwrap_err());
    assert!(
        err.contains("layer `conv2d_1`: kernel 3x3x3x2 (HWIO) with batch norm, but")
            && err.contains("needs 3x3x3x16 with batch norm at darknet layer 0"),
        "{err}"
    );
    let mini = Config::from_file(common::models_dir().join("cfg/yolov3-mini.cfg")).unwrap();
    let err = error_text(&keras.darknet_weights(&mini).unwrap_err());
    assert!(err.contains("13 convolutions") && err.contains("has 75"), "{err}");
    let err = error_text(&keras.config(&[[10.0, 14.0]; 9]).unwrap_err());
    assert!(err.contains("needs 6 anchors; 9 were given"), "{err}");

    // Another class count: training transfers all but the heads, detection refuses it.
    let four = std::fs::read_to_string(common::models_dir().join("cfg/yolov3-tiny-mini.cfg"))
        .unwrap()
        .replace("filters=24", "filters=27")
        .replace("classes=3", "classes=4");
    let mut net = Darknet::new(Config::parse(&four, "four.cfg").unwrap(), Device::Cpu).unwrap();
    let transfer = net.transfer_keras(&keras).unwrap();
    assert_eq!((transfer.loaded, transfer.reinitialised.len()), (11, 2));
    let err = error_text(&net.load_keras(&keras).unwrap_err());
    assert!(
        err.contains("layer `conv2d_10`: a head of 24 filters") && err.contains("has 27"),
        "{err}"
    );
}

#[test]
fn a_nested_model_reads_as_the_flat_one() {
    let dir = tempfile::tempdir().unwrap();
    let flat = KerasWeights::read(tiny_mini_h5(dir.path())).unwrap();
    // Every layer with weights moved into one group, as when a model is saved with the model
    // keras-yolo3 built inside it as a layer.
    let nested = edited(
        dir.path(),
        "nested.h5",
        "names = [n for n in f.attrs['layer_names'] if len(f[n].attrs['weight_names'])]\n\
         g = f.create_group('model_1')\n\
         weights = [w for n in names for w in f[n].attrs['weight_names']]\n\
         for n in names:\n    for w in f[n].attrs['weight_names']:\n        \
         g.create_dataset(w.decode(), data=f[n][w.decode()][...])\n    del f[n]\n\
         g.attrs['weight_names'] = np.asarray(weights)\n\
         f.attrs['layer_names'] = np.asarray([b'input_1', b'model_1'])",
    );
    let nested = KerasWeights::read(nested).unwrap();
    assert_eq!(nested.convs(), flat.convs());
}

#[test]
fn convert_py_variances_keep_keras_epsilon() {
    // keras-yolo3's convert.py copies darknet's variance, which Keras then divides by
    // sqrt(var + 1e-3): the import keeps that divisor.
    let dir = tempfile::tempdir().unwrap();
    let (cfg, weights) = (
        common::models_dir().join("cfg/yolov3-tiny-mini.cfg"),
        common::models_dir().join("weights/yolov3-tiny-mini.weights"),
    );
    let h5 = dir.path().join("copy.h5");
    generate(&cfg, &weights, &h5, "keras2", "weights --variance copy");
    let keras = KerasWeights::read(&h5).unwrap();
    let darknet = DarknetWeights::read(&weights, &Config::from_file(&cfg).unwrap()).unwrap();
    let mut checked = 0;
    for (conv, file) in keras.convs().iter().zip(&darknet.convs) {
        let (Some(imported), Some(original)) = (&conv.params.batch_norm, &file.batch_norm) else {
            continue;
        };
        for (&v, &var) in imported.rolling_variance.iter().zip(&original.rolling_variance) {
            let std = (f64::from(var) + 1e-3).sqrt() - 1e-6;
            assert_eq!(v, (std * std) as f32, "{}", conv.name);
            checked += 1;
        }
    }
    assert!(checked > 0);
}
