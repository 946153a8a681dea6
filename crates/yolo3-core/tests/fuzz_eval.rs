//! Robustness of the evaluation readers: COCO ground truth ([`CocoDataset::read`]) and results
//! lists ([`CocoDetection::read_list`]), and VOC input files ([`VocDataset::read`]). Mutations
//! of the shared evaluation cases and arbitrary bytes must give a dataset or a typed
//! [`MetricsError`], never a panic or a hang; an accepted file must then evaluate (to numbers
//! in [0, 1], or -1 / none where nothing is there to measure) or be refused with a typed error.
//!
//! `cargo test -p yolo3-core --test fuzz_eval` runs a bounded number of cases; `-- --ignored`
//! runs each for `YOLO3_FUZZ_SECONDS` (default 600).

mod fuzz_support;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use yolo3_core::metrics::{
    evaluate_coco, evaluate_voc, CocoDataset, CocoDetection, CocoParams, MetricsError, VocDataset,
    VocOptions,
};

use fuzz_support::{fuzz, fuzz_long, mutated, next_id, Bytes, Check};

const SHARED_EVAL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/eval");

/// The smaller shared cases (the large ones make every mutation slow to evaluate).
const COCO_CASES: &[&str] = &["crowd", "ties", "no_detections", "missing_categories", "perfect"];
const VOC_CASES: &[&str] = &["empty_class", "difficult", "perfect", "ties"];

fn read_seeds(files: impl Iterator<Item = PathBuf>) -> Vec<Vec<u8>> {
    files.map(|p| std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).collect()
}

fn coco_seeds() -> Vec<Vec<u8>> {
    read_seeds(
        COCO_CASES.iter().map(|c| Path::new(SHARED_EVAL).join("coco").join(c).join("gt.json")),
    )
}

fn voc_seeds() -> Vec<Vec<u8>> {
    read_seeds(
        VOC_CASES.iter().map(|c| Path::new(SHARED_EVAL).join("voc").join(c).join("input.json")),
    )
}

/// A number the metrics may give: in [0, 1] (up to the rounding of the reference's own
/// arithmetic: VOC's 11-point mean of ones is 1.0000000000000002), or -1 for "nothing to
/// measure".
fn check_metric(name: &str, v: f64) -> Result<(), String> {
    if v == -1.0 || (0.0..=1.0 + 1e-12).contains(&v) {
        Ok(())
    } else {
        Err(format!("{name} = {v}"))
    }
}

fn expected_error(e: &MetricsError) -> Result<(), String> {
    match e {
        MetricsError::Io { .. }
        | MetricsError::Json { .. }
        | MetricsError::MissingField { .. }
        | MetricsError::InvalidField { .. }
        | MetricsError::UnknownImage { .. }
        | MetricsError::ClassOutOfRange { .. }
        | MetricsError::InvalidParameter { .. } => Ok(()),
        #[allow(unreachable_patterns)]
        other => Err(format!("unexpected error kind: {other:?}")),
    }
}

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    fn write(&self, bytes: &[u8]) -> Result<PathBuf, String> {
        let path = self.dir.path().join(format!("case-{}.json", next_id()));
        std::fs::write(&path, bytes).map_err(|e| format!("cannot write the case: {e}"))?;
        Ok(path)
    }
}

/// A COCO ground truth (mutated) evaluated against its case's detections, and the same bytes
/// read as a results list.
fn coco_check() -> Check<Bytes> {
    let fixture = Arc::new(Fixture { dir: tempfile::tempdir().unwrap() });
    let dets = CocoDetection::read_list(&Path::new(SHARED_EVAL).join("coco/crowd/dets.json"))
        .expect("the shared detections read");
    Arc::new(move |input: Bytes| {
        let path = fixture.write(&input.0)?;
        let gt = CocoDataset::read(&path);
        let as_list = CocoDetection::read_list(&path);
        let _ = std::fs::remove_file(&path);
        if let Err(e) = &as_list {
            expected_error(e)?;
        }
        let gt = match gt {
            Ok(gt) => gt,
            Err(e) => return expected_error(&e).map(|()| false),
        };
        let mut ids: Vec<i64> = gt.annotations.iter().map(|a| a.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err("two annotations with one id accepted".into());
        }
        match evaluate_coco(&gt, &dets, &CocoParams::default()) {
            Ok(eval) => {
                for (i, v) in eval.stats.to_array().iter().enumerate() {
                    check_metric(&format!("stats[{i}]"), *v)?;
                }
            }
            Err(e) => expected_error(&e)?,
        }
        Ok(true)
    })
}

/// A VOC input file (mutated), evaluated when it reads.
fn voc_check() -> Check<Bytes> {
    let fixture = Arc::new(Fixture { dir: tempfile::tempdir().unwrap() });
    Arc::new(move |input: Bytes| {
        let path = fixture.write(&input.0)?;
        let dataset = VocDataset::read(&path);
        let _ = std::fs::remove_file(&path);
        let dataset = match dataset {
            Ok(d) => d,
            Err(e) => return expected_error(&e).map(|()| false),
        };
        match evaluate_voc(&dataset, &VocOptions::default()) {
            Ok(eval) => {
                for c in &eval.classes {
                    for v in [c.ap_11pt, c.ap_all].into_iter().flatten() {
                        check_metric(&format!("AP of {}", c.name), v)?;
                    }
                }
            }
            Err(e) => expected_error(&e)?,
        }
        Ok(true)
    })
}

#[test]
fn seeds_read_and_evaluate() {
    for (seed, case) in coco_seeds().into_iter().zip(COCO_CASES) {
        assert_eq!(coco_check()(Bytes(seed)), Ok(true), "coco/{case}");
    }
    for (seed, case) in voc_seeds().into_iter().zip(VOC_CASES) {
        assert_eq!(voc_check()(Bytes(seed)), Ok(true), "voc/{case}");
    }
}

#[test]
fn a_duplicate_annotation_id_is_refused() {
    let text = r#"{"images": [{"id": 1, "width": 10, "height": 10}],
        "categories": [{"id": 1, "name": "a"}],
        "annotations": [
            {"id": 7, "image_id": 1, "category_id": 1, "bbox": [0, 0, 2, 2], "area": 4},
            {"id": 7, "image_id": 1, "category_id": 1, "bbox": [5, 5, 2, 2], "area": 4}]}"#;
    let e = CocoDataset::parse(text, "gt.json").unwrap_err().to_string();
    assert!(e.contains("gt.json") && e.contains("annotations[1].id"), "{e}");
    assert!(e.contains("id 7 is already used by annotations[0]"), "{e}");
}

#[test]
fn fuzz_coco_ground_truth() {
    fuzz("coco ground truth", 128, &mutated(coco_seeds(), 3), &coco_check());
}

#[test]
fn fuzz_voc_input() {
    fuzz("voc input", 128, &mutated(voc_seeds(), 3), &voc_check());
}

#[test]
#[ignore = "long fuzzing run (YOLO3_FUZZ_SECONDS, default 600)"]
fn fuzz_eval_long() {
    fuzz_long("coco ground truth", 128, &mutated(coco_seeds(), 3), &coco_check());
    fuzz_long("voc input", 128, &mutated(voc_seeds(), 3), &voc_check());
}
