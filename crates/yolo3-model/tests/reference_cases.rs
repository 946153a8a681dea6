//! Every shared model case: the network loaded with the case's cfg and weights reproduces
//! the float64 darknet reference heads within `1e-4 + 2e-5*|ref|`.

#![allow(clippy::print_stdout)]

mod common;

use tch::{Device, Kind};
use yolo3_model::{Config, Darknet, DarknetWeights};

/// Checks one case file; returns the largest difference over its heads.
fn check_case(path: &std::path::Path) -> f64 {
    let case = common::Case::read(path);
    let cfg = Config::from_file(case.resolve("cfg")).unwrap();
    let weights = DarknetWeights::read(case.resolve("weights"), &cfg).unwrap();
    let mut net = Darknet::new(cfg, Device::Cpu).unwrap();
    assert_eq!(net.load_darknet_weights(&weights).unwrap(), weights.convs.len());
    let input = &case.tensors["input"];
    let outputs = tch::no_grad(|| net.forward_t(input, false)).unwrap();
    assert_eq!(outputs.len(), net.heads().len());
    let mut worst_case = 0f64;
    for (k, out) in outputs.iter().enumerate() {
        let reference = &case.tensors[&format!("ref64_out_{k}")];
        assert_eq!(out.size(), reference.size(), "{} head {k}", path.display());
        let diff = (out - reference).abs().to_kind(Kind::Double);
        let budget = reference.abs().to_kind(Kind::Double) * 2e-5 + 1e-4;
        let ratio = (&diff / &budget).max().double_value(&[]);
        let worst = diff.max().double_value(&[]);
        println!(
            "{} head {k}: max |d| = {worst:.3e}, {:.0}% of the budget",
            path.display(),
            100.0 * ratio
        );
        assert!(
            ratio <= 1.0,
            "{} head {k}: max |d| = {worst:e} exceeds the tolerance ({ratio:.2}x)",
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
