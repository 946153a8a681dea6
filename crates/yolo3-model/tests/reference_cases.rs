//! Every shared model case: the network loaded with the case's cfg and weights reproduces
//! the float64 darknet reference heads within `1e-4 + 2e-5*|ref|`, as trained (batch norm
//! its own operation) and as prepared for inference (batch norm folded; oneDNN's fused
//! convolutions on channels-last activations, with Winograd where it is faster, nowhere and
//! wherever it applies in each of its three forms, and the plain folded convolutions; the default engine also on a batch
//! of 8 copies of the input, where the full-size cfgs' wide convolutions run as Winograd).

#![allow(clippy::print_stdout)]

mod common;

use tch::{Device, Kind};
use yolo3_model::{Config, ConvEngine, Darknet, DarknetWeights, InferenceNet, Winograd};

/// Checks one case file; returns the largest difference over its heads.
fn check_case(path: &std::path::Path) -> f64 {
    let case = common::Case::read(path);
    let cfg = Config::from_file(case.resolve("cfg")).unwrap();
    let weights = DarknetWeights::read(case.resolve("weights"), &cfg).unwrap();
    let mut net = Darknet::new(cfg, Device::Cpu).unwrap();
    assert_eq!(net.load_darknet_weights(&weights).unwrap(), weights.convs.len());
    let input = &case.tensors["input"];
    let onednn = InferenceNet::new(&net).unwrap();
    // The wheel's libtorch has oneDNN on x86-64: there a plain engine in its place would mean
    // the oneDNN paths below silently test the plain one.
    let must_have_onednn = cfg!(target_arch = "x86_64");
    if must_have_onednn {
        assert_eq!(
            onednn.engine(),
            ConvEngine::OneDnn(Winograd::WhereFaster),
            "libtorch without oneDNN on x86-64"
        );
    } else if onednn.engine() == ConvEngine::Plain {
        println!(
            "SKIPPED: this libtorch has no oneDNN: only the plain inference engine is checked"
        );
    }
    let infer = |engine| {
        let prepared = InferenceNet::with_engine(&net, engine).unwrap();
        if must_have_onednn {
            assert_eq!(prepared.engine(), engine, "the engine asked for is the one tested");
        }
        prepared.infer(input).unwrap()
    };
    let paths = [
        ("forward_t", tch::no_grad(|| net.forward_t(input, false)).unwrap()),
        ("inference (default engine)", onednn.infer(input).unwrap()),
        ("inference (oneDNN, direct)", infer(ConvEngine::OneDnn(Winograd::Never))),
        (
            "inference (oneDNN, Winograd everywhere, grouped products)",
            infer(ConvEngine::OneDnn(Winograd::Grouped)),
        ),
        (
            "inference (oneDNN, Winograd everywhere, 16 products)",
            infer(ConvEngine::OneDnn(Winograd::Separate)),
        ),
        (
            "inference (oneDNN, Winograd everywhere, in one pass)",
            infer(ConvEngine::OneDnn(Winograd::Fused)),
        ),
        ("inference (plain engine)", infer(ConvEngine::Plain)),
    ];
    let mut worst_case = 0f64;
    for (name, outputs) in &paths {
        assert_eq!(outputs.len(), net.heads().len());
        worst_case = worst_case.max(check_heads(path, name, outputs, &case));
    }
    // The default engine on 8 copies of the input, where the batch makes the wide
    // convolutions of the full-size cfgs run as Winograd: each copy's heads as the reference.
    let n = input.size()[0];
    let copies = onednn.infer(&input.repeat([8, 1, 1, 1])).unwrap();
    for copy in 0..8 {
        let outputs: Vec<tch::Tensor> = copies.iter().map(|o| o.narrow(0, copy * n, n)).collect();
        let name = format!("inference (default engine, copy {copy} of a batch of 8)");
        worst_case = worst_case.max(check_heads(path, &name, &outputs, &case));
    }
    worst_case
}

/// Checks one path's heads against the reference; returns the largest difference.
fn check_heads(
    path: &std::path::Path,
    name: &str,
    outputs: &[tch::Tensor],
    case: &common::Case,
) -> f64 {
    let mut worst_case = 0f64;
    for (k, out) in outputs.iter().enumerate() {
        let reference = &case.tensors[&format!("ref64_out_{k}")];
        assert_eq!(out.size(), reference.size(), "{} head {k}", path.display());
        let diff = (out - reference).abs().to_kind(Kind::Double);
        let budget = reference.abs().to_kind(Kind::Double) * 2e-5 + 1e-4;
        let ratio = (&diff / &budget).max().double_value(&[]);
        let worst = diff.max().double_value(&[]);
        println!(
            "{} {name} head {k}: max |d| = {worst:.3e}, {:.0}% of the budget",
            path.display(),
            100.0 * ratio
        );
        assert!(
            ratio <= 1.0,
            "{} {name} head {k}: max |d| = {worst:e} exceeds the tolerance ({ratio:.2}x)",
            path.display()
        );
        worst_case = worst_case.max(worst);
    }
    worst_case
}

/// Every case runs, even after one fails; the failures are listed by file at the end (each
/// one's own message, printed when it failed, says which check).
#[test]
fn heads_match_the_float64_darknet_reference() {
    let files = common::case_files();
    assert!(!files.is_empty(), "no case files found in {:?}", common::case_dirs());
    let mut worst_overall = 0f64;
    let mut failed = Vec::new();
    for path in &files {
        match std::panic::catch_unwind(|| check_case(path)) {
            Ok(worst) => worst_overall = worst_overall.max(worst),
            Err(_) => failed.push(path.display().to_string()),
        }
    }
    assert!(failed.is_empty(), "{} of {} cases failed: {failed:?}", failed.len(), files.len());
    println!("{} cases, max |d| over all heads = {worst_overall:.3e}", files.len());
}
