//! Golden mAP cases: every case of `shared/eval/index.json` (or of the folders listed in
//! `YOLO3_EVAL_DIRS`, colon-separated, each laid out like `shared/eval`) is evaluated and
//! compared with the reference numbers as `shared/eval/README.md` prescribes: AP, AR, precision
//! and recall at 1e-9 absolute, `-1` and `null` exactly, counts, `order`, `flags` and
//! `det_status` exactly. All mismatches of all cases are reported together.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde_json::Value;
use yolo3_core::metrics::{
    evaluate_coco, evaluate_voc, CocoDataset, CocoDetection, CocoParams, CocoStats,
    VocBoxConvention, VocDataset, VocMean, VocOptions,
};

const TOLERANCE: f64 = 1e-9;

fn eval_dirs() -> Vec<PathBuf> {
    match std::env::var("YOLO3_EVAL_DIRS") {
        Ok(dirs) if !dirs.trim().is_empty() => {
            dirs.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect()
        }
        _ => vec![PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/eval"))],
    }
}

fn load(path: &Path) -> Value {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: bad JSON: {e}", path.display()))
}

/// Collects mismatches of one case.
struct Report {
    case: String,
    errors: Vec<String>,
}

impl Report {
    fn close(&mut self, field: &str, actual: f64, expected: &Value) {
        let Some(expected) = expected.as_f64() else {
            self.errors.push(format!("{field}: expected a number, reference has {expected}"));
            return;
        };
        // -1 ("no ground truth") must match exactly; everything else within the tolerance.
        let ok = if expected == -1.0 || actual == -1.0 {
            actual == expected
        } else {
            (actual - expected).abs() <= TOLERANCE
        };
        if !ok {
            self.errors.push(format!("{field}: got {actual:.17}, expected {expected:.17}"));
        }
    }

    fn close_opt(&mut self, field: &str, actual: Option<f64>, expected: &Value) {
        match (actual, expected.is_null()) {
            (None, true) => {}
            (Some(a), false) => self.close(field, a, expected),
            _ => self.errors.push(format!("{field}: got {actual:?}, expected {expected}")),
        }
    }

    fn close_list(&mut self, field: &str, actual: &[f64], expected: &Value) {
        let expected = expected.as_array().map(Vec::as_slice).unwrap_or_default();
        if actual.len() != expected.len() {
            self.errors.push(format!(
                "{field}: {} values, expected {}",
                actual.len(),
                expected.len()
            ));
            return;
        }
        for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
            self.close(&format!("{field}[{i}]"), *a, e);
        }
    }

    fn exact<T: PartialEq + std::fmt::Debug + Copy>(
        &mut self,
        field: &str,
        actual: T,
        expected: T,
    ) {
        if actual != expected {
            self.errors.push(format!("{field}: got {actual:?}, expected {expected:?}"));
        }
    }
}

fn count(value: &Value) -> usize {
    value.as_u64().map_or(usize::MAX, |v| v as usize)
}

fn check_coco(dir: &Path, report: &mut Report) {
    let gt = CocoDataset::read(&dir.join("gt.json")).expect("gt.json parses");
    let dets = CocoDetection::read_list(&dir.join("dets.json")).expect("dets.json parses");
    let expected = load(&dir.join("expected.json"));
    let e = evaluate_coco(&gt, &dets, &CocoParams::default()).expect("evaluation succeeds");

    let names =
        ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"];
    for (name, value) in names.iter().zip(e.stats.to_array()) {
        report.close(&format!("stats.{name}"), value, &expected["stats"][name]);
    }
    report.close_list("stats_list", &e.stats.to_array(), &expected["stats_list"]);

    let per_category = expected["per_category"].as_array().cloned().unwrap_or_default();
    report.exact("per_category.len", e.per_category.len(), per_category.len());
    for (c, x) in e.per_category.iter().zip(&per_category) {
        let at = format!("per_category[id={}]", c.category_id);
        report.exact(&format!("{at}.category_id"), Some(c.category_id), x["category_id"].as_i64());
        report.exact(&format!("{at}.n_gt"), c.n_gt, count(&x["n_gt"]));
        report.exact(&format!("{at}.n_gt_crowd"), c.n_gt_crowd, count(&x["n_gt_crowd"]));
        report.exact(&format!("{at}.n_det"), c.n_det, count(&x["n_det"]));
        for (name, value) in CocoStats::FIELDS.iter().zip(c.stats.to_array()) {
            report.close(&format!("{at}.{name}"), value, &x[name]);
        }
        report.close_list(&format!("{at}.ap_per_iou"), &c.ap_per_iou, &x["ap_per_iou"]);
        report.close_list(&format!("{at}.recall_per_iou"), &c.recall_per_iou, &x["recall_per_iou"]);
        report.close_list(
            &format!("{at}.precision_iou50"),
            &c.precision_iou50,
            &x["precision_iou50"],
        );
    }

    let status: Vec<String> = expected["det_status"]
        .as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap_or("?").to_owned()).collect())
        .unwrap_or_default();
    report.exact("det_status.len", e.det_status.len(), status.len());
    for (i, (a, x)) in e.det_status.iter().zip(&status).enumerate() {
        report.exact(&format!("det_status[{i}]"), a, x);
    }
}

fn check_voc_mean(report: &mut Report, field: &str, actual: VocMean, expected: &Value) {
    report.close_opt(&format!("{field}.ap_11pt"), actual.ap_11pt, &expected["ap_11pt"]);
    report.close_opt(&format!("{field}.ap_all"), actual.ap_all, &expected["ap_all"]);
}

fn check_voc(dir: &Path, report: &mut Report) {
    let input = VocDataset::read(&dir.join("input.json")).expect("input.json parses");
    let expected = load(&dir.join("expected.json"));
    let classes = expected["classes"].as_object().cloned().unwrap_or_default();
    report.exact("classes.len", input.classes.len(), classes.len());
    for (key, convention) in
        [("plus1", VocBoxConvention::PlusOne), ("noplus1", VocBoxConvention::Continuous)]
    {
        let threshold = expected["iou_threshold"].as_f64().unwrap_or(0.5);
        let options = VocOptions { iou_threshold: threshold, convention };
        let e = evaluate_voc(&input, &options).expect("evaluation succeeds");
        for c in &e.classes {
            let at = format!("{key}.classes.{}", c.name);
            let Some(x) = classes.get(&c.name) else {
                report.errors.push(format!("{at}: not in the reference"));
                continue;
            };
            report.exact(&format!("{at}.npos"), c.npos, count(&x["npos"]));
            report.exact(&format!("{at}.ndet"), c.ndet, count(&x["ndet"]));
            let x = &x[key];
            report.close_opt(&format!("{at}.ap_11pt"), c.ap_11pt, &x["ap_11pt"]);
            report.close_opt(&format!("{at}.ap_all"), c.ap_all, &x["ap_all"]);
            report.exact(&format!("{at}.tp"), c.tp, count(&x["tp"]));
            report.exact(&format!("{at}.fp"), c.fp, count(&x["fp"]));
            report.exact(&format!("{at}.ignored"), c.ignored, count(&x["ignored"]));
            let order: Vec<usize> =
                x["order"].as_array().map(|a| a.iter().map(count).collect()).unwrap_or_default();
            report.exact(&format!("{at}.order"), &c.order, &order);
            report.exact(
                &format!("{at}.flags"),
                c.flags.as_str(),
                x["flags"].as_str().unwrap_or("?"),
            );
        }
        check_voc_mean(report, &format!("{key}.map"), e.map, &expected["map"][key]);
        check_voc_mean(
            report,
            &format!("{key}.map_all_classes"),
            e.map_all_classes,
            &expected["map_all_classes"][key],
        );
    }
}

#[test]
fn every_reference_case_matches_pycocotools_and_voc_eval() {
    let mut reports = Vec::new();
    for dir in eval_dirs() {
        let index = load(&dir.join("index.json"));
        let cases = index["cases"].as_array().cloned().unwrap_or_default();
        for case in cases {
            let suite = case["suite"].as_str().unwrap_or_default().to_owned();
            let path = dir.join(case["path"].as_str().unwrap_or_default());
            let mut report = Report {
                case: format!("{}:{suite}/{}", dir.display(), case["name"].as_str().unwrap_or("?")),
                errors: Vec::new(),
            };
            match suite.as_str() {
                "coco" => check_coco(&path, &mut report),
                "voc" => check_voc(&path, &mut report),
                other => report.errors.push(format!("unknown suite {other:?}")),
            }
            reports.push(report);
        }
    }
    assert!(!reports.is_empty(), "no eval case found in {:?}", eval_dirs());
    let failed: Vec<&Report> = reports.iter().filter(|r| !r.errors.is_empty()).collect();
    for r in &reports {
        eprintln!("{} {}", if r.errors.is_empty() { "ok  " } else { "FAIL" }, r.case);
    }
    if !failed.is_empty() {
        let mut message = format!("{} of {} cases differ:\n", failed.len(), reports.len());
        for r in failed {
            let _ = writeln!(message, "{} ({} mismatches)", r.case, r.errors.len());
            for e in r.errors.iter().take(20) {
                let _ = writeln!(message, "    {e}");
            }
        }
        panic!("{message}");
    }
}
