//! Text tables for the terminal: the per-class results table of training and evaluation.

use std::fmt::Write as _;

use yolo3_core::metrics::MapSummary;

/// `Class Images Instances P R mAP50 mAP50-95`, one row per class and an `all` row first.
pub fn per_class(summary: &MapSummary, class_names: &[String]) -> String {
    let width = class_names.iter().map(String::len).chain([5]).max().unwrap_or(5) + 2;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:>width$} {:>8} {:>10} {:>8} {:>8} {:>8} {:>9}",
        "Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95"
    );
    let with_gt: Vec<_> = summary.classes.iter().filter(|c| c.instances > 0).collect();
    let n = with_gt.len().max(1) as f64;
    let fmt = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
    let images: usize = summary.coco.image_ids.len();
    let _ = writeln!(
        out,
        "{:>width$} {:>8} {:>10} {:>8.3} {:>8.3} {:>8} {:>9}",
        "all",
        images,
        summary.classes.iter().map(|c| c.instances).sum::<usize>(),
        with_gt.iter().map(|c| c.precision).sum::<f64>() / n,
        with_gt.iter().map(|c| c.recall).sum::<f64>() / n,
        fmt(summary.map50),
        fmt(summary.map50_95)
    );
    for c in &summary.classes {
        let name = class_names.get(c.class).map_or("?", String::as_str);
        let _ = writeln!(
            out,
            "{:>width$} {:>8} {:>10} {:>8.3} {:>8.3} {:>8} {:>9}",
            name,
            c.images,
            c.instances,
            c.precision,
            c.recall,
            fmt(c.ap50),
            fmt(c.ap50_95)
        );
    }
    out
}
