//! `yolo3 eval`: the metrics papers and tools report, from a model or from files.
//!
//! Three modes, chosen by the flags:
//! * `--weights W --data D`: the model runs over the dataset (any supported format) exactly as
//!   validation during training does (`yolo3_train::evaluate`: letterbox, inference forward,
//!   decode), then the same detections are scored three ways: COCO (pycocotools' 12 numbers
//!   and the per-class table), Pascal VOC (`voc_eval`'s 11-point and all-point AP per class)
//!   and a confusion matrix at `--confusion-threshold`. `runs/eval/exp{,2,...}` receives
//!   `pr_curve.png`, `confusion_matrix.png` and `metrics.json` (every number printed, plus the
//!   matrix counts).
//! * `--gt gt.json --dets dets.json`: pycocotools' `COCOeval(iouType='bbox')` on COCO files.
//! * `--voc input.json`: py-faster-rcnn's `voc_eval` on the `shared/eval/voc` input format,
//!   under both box conventions ("+1 pixel" and continuous).
//!
//! The file modes print text, or with `--json` one JSON document on stdout in the layout of
//! `shared/eval`'s `expected.json` (so the output can be compared with the references
//! directly). Decoding for mAP keeps low-scoring boxes (`--score-threshold 0.001`) and 100
//! boxes per class, as mAP needs the whole precision-recall curve.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use indicatif::ProgressBar;
use serde_json::{json, Value};
use yolo3_core::metrics::{
    confusion_pairs, evaluate_coco, evaluate_voc, CocoDataset, CocoDetection, CocoEvaluation,
    CocoParams, CocoStats, VocBoxConvention, VocDataset, VocDetection, VocEvaluation,
    VocGroundTruth, VocImage, VocOptions,
};
use yolo3_core::{DecodeOptions, LossOptions};
use yolo3_data::{OpenOptions, ReadOptions};
use yolo3_train::{Observer, YoloLoss};
use yolo3_viz::{
    pr_curve_chart, render_chart, render_confusion, ChartOptions, ConfusionMatrix,
    ConfusionOptions, Series,
};

use crate::args::{DeviceArg, Global};
use crate::model_load::{load_detector, ModelArgs};

/// Names of the 12 COCO numbers, in `COCOeval.stats` order.
const STAT_NAMES: [&str; 12] =
    ["AP", "AP50", "AP75", "APs", "APm", "APl", "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"];

/// pycocotools' summary lines, in `COCOeval.stats` order.
const STAT_LINES: [&str; 12] = [
    "Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
    "Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ]",
    "Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ]",
    "Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
    "Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
    "Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ]",
    "Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ]",
];

/// `yolo3 eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Dataset to evaluate the model on: keras train.txt, Pascal VOC folder, COCO JSON or YOLO
    /// folder (--classes names the class file where the format needs one).
    #[arg(long, short = 'd')]
    data: Option<PathBuf>,
    /// COCO ground truth ("instances" JSON), with --dets: score a results file.
    #[arg(long, requires = "dets", conflicts_with_all = ["data", "voc"])]
    gt: Option<PathBuf>,
    /// COCO results list (image_id, category_id, bbox, score), with --gt.
    #[arg(long, requires = "gt")]
    dets: Option<PathBuf>,
    /// Pascal VOC input (classes, images, gt, det; see shared/eval/README.md): score it with
    /// voc_eval under both box conventions.
    #[arg(long, conflicts_with = "data")]
    voc: Option<PathBuf>,
    /// Print the results as one JSON document on stdout (file modes: the layout of
    /// shared/eval's expected.json).
    #[arg(long)]
    json: bool,
    /// Network input side, a multiple of 32 up to 8192 (default: the checkpoint's training input, else
    /// the cfg's width).
    #[arg(long, value_parser = crate::ranges::input_side())]
    input: Option<u32>,
    /// Images per forward pass (1-1024).
    #[arg(long, default_value_t = 8, value_parser = crate::ranges::count(1, 1024))]
    batch: usize,
    /// Lowest score kept by the decode, in [0, 1] (low, so that the whole PR curve is measured).
    #[arg(long, visible_alias = "conf", default_value_t = 0.001, value_parser = crate::ranges::unit)]
    score_threshold: f64,
    /// NMS IoU threshold of the decode, in [0, 1].
    #[arg(long, visible_alias = "iou", default_value_t = 0.5, value_parser = crate::ranges::unit)]
    iou_threshold: f64,
    /// Boxes kept per class and image by the decode (1-100000).
    #[arg(long, default_value_t = 100, value_parser = crate::ranges::count(1, 100_000))]
    max_boxes: usize,
    /// Score a detection needs to enter the confusion matrix, in [0, 1].
    #[arg(long, default_value_t = 0.25, value_parser = crate::ranges::unit_f32)]
    confusion_threshold: f32,
    /// VOC AP with continuous box widths (x_max - x_min) instead of voc_eval's "+1 pixel".
    #[arg(long)]
    voc_continuous: bool,
    #[command(flatten)]
    device: DeviceArg,
    /// Parent folder of the run folders.
    #[arg(long, default_value = "runs/eval")]
    project: PathBuf,
    /// Run folder name (exp, exp2, ... when it exists).
    #[arg(long, default_value = "exp")]
    name: String,
}

// main.rs hands the parsed arguments over by value.
#[allow(clippy::needless_pass_by_value)]
pub fn run(args: EvalArgs, global: &Global) -> anyhow::Result<ExitCode> {
    if let (Some(gt), Some(dets)) = (&args.gt, &args.dets) {
        return coco_files(gt, dets, args.json);
    }
    if let Some(voc) = &args.voc {
        return voc_file(voc, args.json);
    }
    match &args.data {
        Some(data) => model_on_dataset(&args, data, global),
        None => bail!("give --data (with --weights), --gt and --dets, or --voc"),
    }
}

fn stdout_text(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes()).and_then(|()| out.flush()).context("writing to stdout")
}

fn stats_json(stats: &CocoStats) -> Value {
    let values = stats.to_array();
    let named: serde_json::Map<String, Value> =
        STAT_NAMES.iter().zip(values).map(|(n, v)| ((*n).to_owned(), json!(v))).collect();
    json!({ "stats": named, "stats_list": values.to_vec() })
}

fn stats_text(stats: &CocoStats) -> String {
    let mut text = String::new();
    for (line, v) in STAT_LINES.iter().zip(stats.to_array()) {
        let _ = writeln!(text, " {line} = {v:.3}");
    }
    text
}

/// COCO evaluation as JSON: stats, per-category results and detection statuses.
fn coco_json(eval: &CocoEvaluation) -> Value {
    let mut v = stats_json(&eval.stats);
    v["per_category"] = json!(eval.per_category);
    v["det_status"] = json!(eval.det_status);
    v
}

fn coco_files(gt: &Path, dets: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let ground_truth =
        CocoDataset::read(gt).with_context(|| format!("reading {}", gt.display()))?;
    let detections =
        CocoDetection::read_list(dets).with_context(|| format!("reading {}", dets.display()))?;
    let eval = evaluate_coco(&ground_truth, &detections, &CocoParams::default())
        .context("COCO evaluation")?;
    if as_json {
        stdout_text(&format!("{}\n", serde_json::to_string_pretty(&coco_json(&eval))?))?;
    } else {
        let mut text = stats_text(&eval.stats);
        let _ = writeln!(
            text,
            "\n{:>24} {:>6} {:>6} {:>8} {:>8}",
            "category", "GT", "dets", "AP", "AP50"
        );
        for c in &eval.per_category {
            let _ = writeln!(
                text,
                "{:>24} {:>6} {:>6} {:>8.3} {:>8.3}",
                format!("{} ({})", c.name, c.category_id),
                c.n_gt,
                c.n_det,
                c.stats.ap,
                c.stats.ap50
            );
        }
        stdout_text(&text)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// One convention's figures for a class, as `shared/eval/voc/*/expected.json` lays them out.
fn voc_class_json(r: &yolo3_core::metrics::VocClassResult) -> Value {
    json!({
        "ap_11pt": r.ap_11pt, "ap_all": r.ap_all, "tp": r.tp, "fp": r.fp,
        "ignored": r.ignored, "order": r.order, "flags": r.flags,
    })
}

/// Both conventions' results in the `expected.json` layout.
fn voc_json(plus1: &VocEvaluation, noplus1: &VocEvaluation) -> Value {
    let mut classes = serde_json::Map::new();
    for (a, b) in plus1.classes.iter().zip(&noplus1.classes) {
        classes.insert(
            a.name.clone(),
            json!({ "npos": a.npos, "ndet": a.ndet, "plus1": voc_class_json(a), "noplus1": voc_class_json(b) }),
        );
    }
    let mean =
        |m: &yolo3_core::metrics::VocMean| json!({ "ap_11pt": m.ap_11pt, "ap_all": m.ap_all });
    json!({
        "iou_threshold": plus1.options.iou_threshold,
        "classes": classes,
        "map": { "plus1": mean(&plus1.map), "noplus1": mean(&noplus1.map) },
        "map_all_classes": { "plus1": mean(&plus1.map_all_classes), "noplus1": mean(&noplus1.map_all_classes) },
    })
}

fn evaluate_voc_both(dataset: &VocDataset) -> anyhow::Result<(VocEvaluation, VocEvaluation)> {
    let plus1 = evaluate_voc(dataset, &VocOptions::default()).context("VOC evaluation (+1)")?;
    let noplus1 = evaluate_voc(
        dataset,
        &VocOptions { convention: VocBoxConvention::Continuous, ..VocOptions::default() },
    )
    .context("VOC evaluation (continuous)")?;
    Ok((plus1, noplus1))
}

fn fmt_ap(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.4}"))
}

fn voc_text(plus1: &VocEvaluation, noplus1: &VocEvaluation) -> String {
    let width = plus1.classes.iter().map(|c| c.name.len()).chain([5]).max().unwrap_or(5) + 2;
    let mut text = format!(
        "{:>width$} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10}\n",
        "class", "npos", "ndet", "AP07 (+1)", "AP (+1)", "AP07", "AP"
    );
    for (a, b) in plus1.classes.iter().zip(&noplus1.classes) {
        let _ = writeln!(
            text,
            "{:>width$} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10}",
            a.name,
            a.npos,
            a.ndet,
            fmt_ap(a.ap_11pt),
            fmt_ap(a.ap_all),
            fmt_ap(b.ap_11pt),
            fmt_ap(b.ap_all)
        );
    }
    let _ = writeln!(
        text,
        "{:>width$} {:>6} {:>6} {:>10} {:>10} {:>10} {:>10}",
        "mAP",
        "",
        "",
        fmt_ap(plus1.map.ap_11pt),
        fmt_ap(plus1.map.ap_all),
        fmt_ap(noplus1.map.ap_11pt),
        fmt_ap(noplus1.map.ap_all)
    );
    text
}

fn voc_file(path: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let dataset = VocDataset::read(path).with_context(|| format!("reading {}", path.display()))?;
    let (plus1, noplus1) = evaluate_voc_both(&dataset)?;
    if as_json {
        stdout_text(&format!("{}\n", serde_json::to_string_pretty(&voc_json(&plus1, &noplus1))?))?;
    } else {
        stdout_text(&voc_text(&plus1, &noplus1))?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Progress of the validation pass on a bar.
struct BarObserver {
    bar: ProgressBar,
}

impl Observer for BarObserver {
    fn validation_start(&mut self, batches: usize) {
        self.bar.set_length(batches as u64);
        self.bar.set_position(0);
    }

    fn validation_batch(&mut self) {
        self.bar.inc(1);
    }
}

fn model_on_dataset(args: &EvalArgs, data: &Path, global: &Global) -> anyhow::Result<ExitCode> {
    let device = args.device.device()?;
    let detector = load_detector(&args.model, device)?;
    let side = detector.input_side(args.input, args.batch)?;
    let open = OpenOptions {
        classes: args.model.classes.clone(),
        // VOC `difficult` objects stay as ignored ground truth: neither counted nor penalised.
        read: ReadOptions::default(),
        ..OpenOptions::default()
    };
    let mut dataset = yolo3_data::read_dataset(data, &open)
        .with_context(|| format!("reading dataset {}", data.display()))?;
    for u in &dataset.unreadable {
        eprintln!("warning: skipping {}: {}", u.path.display(), u.reason);
    }
    if dataset.class_names.len() != detector.class_names().len() {
        bail!(
            "the dataset has {} classes, the model {}",
            dataset.class_names.len(),
            detector.class_names().len()
        );
    }
    if detector.names_known() {
        if let Some(c) = (0..dataset.class_names.len())
            .find(|&c| dataset.class_names[c] != detector.class_names()[c])
        {
            bail!(
                "class {c} is {:?} in the dataset and {:?} in the model {}: the two do not \
                 name the same classes (give the model's class file with --classes, or \
                 evaluate on a dataset with its classes)",
                dataset.class_names[c],
                detector.class_names()[c],
                detector.name()
            );
        }
    }
    if dataset.samples.is_empty() {
        bail!("{} has no readable images", data.display());
    }
    let names = dataset.class_names.clone();
    let unreadable = std::mem::take(&mut dataset.unreadable).len();
    let dataset = Arc::new(dataset);
    let loss =
        YoloLoss::new(detector.decoder().anchors().clone(), names.len(), LossOptions::default());
    let decode = DecodeOptions {
        score_threshold: args.score_threshold,
        iou_threshold: args.iou_threshold,
        max_boxes: args.max_boxes,
    };
    let bar = crate::progress::bar(0, !global.chatty());
    bar.set_prefix("eval");
    let mut observer = BarObserver { bar };
    let evaluation = yolo3_train::evaluate(
        detector.net(),
        &loss,
        &dataset,
        side,
        args.batch,
        &decode,
        &yolo3_data::ImageCache::none(),
        &mut observer,
    )
    .context("running the model over the dataset")?;
    observer.bar.finish_and_clear();

    // VOC and the confusion matrix from the same detections.
    let ground_truth: Vec<_> =
        (0..dataset.samples.len()).map(|i| yolo3_train::ground_truth(&dataset, i)).collect();
    let voc_input = VocDataset {
        classes: names.clone(),
        images: (0..dataset.samples.len())
            .map(|i| VocImage { id: i.to_string(), width: None, height: None })
            .collect(),
        gt: ground_truth
            .iter()
            .enumerate()
            .flat_map(|(i, gts)| {
                let names = &names;
                gts.iter().filter(|g| !g.crowd).map(move |g| VocGroundTruth {
                    image_id: i.to_string(),
                    class: names[g.class].clone(),
                    bbox: corners(g.bbox),
                    difficult: g.difficult,
                })
            })
            .collect(),
        det: evaluation
            .detections
            .iter()
            .enumerate()
            .flat_map(|(i, dets)| {
                let names = &names;
                dets.iter().map(move |d| VocDetection {
                    image_id: i.to_string(),
                    class: names[d.class].clone(),
                    bbox: corners(d.bbox),
                    score: f64::from(d.score),
                })
            })
            .collect(),
    };
    let convention =
        if args.voc_continuous { VocBoxConvention::Continuous } else { VocBoxConvention::PlusOne };
    let voc = evaluate_voc(&voc_input, &VocOptions { convention, ..VocOptions::default() })
        .context("VOC evaluation")?;
    let mut matrix = ConfusionMatrix::new(names.clone());
    for (dets, gts) in evaluation.detections.iter().zip(&ground_truth) {
        for (predicted, truth) in
            confusion_pairs(dets, gts, names.len(), args.confusion_threshold, 0.5)
        {
            // Both classes are below `names.len()`, so `add` cannot fail.
            let _ = matrix.add(predicted, truth);
        }
    }

    let out_dir = yolo3_train::run_dir::next_run_dir(&args.project, &args.name)
        .context("creating the run folder")?;
    write_pictures(&out_dir, &evaluation.map, &names, &matrix)?;
    let coco = &evaluation.map.coco;
    let classes: Vec<Value> = evaluation
        .map
        .classes
        .iter()
        .map(|c| {
            let mut v = json!(c);
            v["name"] = json!(names[c.class]);
            v
        })
        .collect();
    let n = names.len() + 1;
    let rows: Vec<Vec<u64>> = (0..n)
        .map(|p| {
            (0..n)
                .map(|t| {
                    matrix.count((p < names.len()).then_some(p), (t < names.len()).then_some(t))
                })
                .collect()
        })
        .collect();
    let voc_classes: BTreeMap<&str, Value> = voc
        .classes
        .iter()
        .map(|c| {
            (
                c.name.as_str(),
                json!({ "npos": c.npos, "ndet": c.ndet, "ap_11pt": c.ap_11pt, "ap_all": c.ap_all }),
            )
        })
        .collect();
    let metrics = json!({
        "data": data.display().to_string(),
        "input": side,
        "images": dataset.samples.len(),
        "unreadable_images": unreadable,
        "loss": { "xy": evaluation.loss[0], "wh": evaluation.loss[1], "confidence": evaluation.loss[2], "class": evaluation.loss[3] },
        "decode": { "score_threshold": decode.score_threshold, "iou_threshold": decode.iou_threshold, "max_boxes": decode.max_boxes },
        "coco": coco_json(coco),
        "map50": evaluation.map.map50,
        "map50_95": evaluation.map.map50_95,
        "classes": classes,
        "voc": {
            "convention": if args.voc_continuous { "continuous" } else { "plus1" },
            "classes": voc_classes,
            "map": { "ap_11pt": voc.map.ap_11pt, "ap_all": voc.map.ap_all },
        },
        "confusion_matrix": { "names": names, "score_threshold": args.confusion_threshold, "iou_threshold": 0.5, "rows_predicted_columns_true": rows },
    });
    let text = serde_json::to_string_pretty(&metrics)?;
    let metrics_path = out_dir.join("metrics.json");
    yolo3_train::run_dir::write_atomic(&metrics_path, text.as_bytes())
        .with_context(|| format!("writing {}", metrics_path.display()))?;

    if args.json {
        stdout_text(&format!("{text}\n"))?;
    } else if global.chatty() {
        let mut out = stats_text(&coco.stats);
        out.push('\n');
        out.push_str(&crate::table::per_class(&evaluation.map, &names));
        out.push('\n');
        let width = names.iter().map(String::len).chain([5]).max().unwrap_or(5) + 2;
        let conv = if args.voc_continuous { "continuous" } else { "+1 pixel" };
        let _ = writeln!(out, "Pascal VOC AP at IoU > 0.5 ({conv} boxes)");
        let _ = writeln!(out, "{:>width$} {:>10} {:>10}", "Class", "AP07", "AP");
        for c in &voc.classes {
            let _ = writeln!(
                out,
                "{:>width$} {:>10} {:>10}",
                c.name,
                fmt_ap(c.ap_11pt),
                fmt_ap(c.ap_all)
            );
        }
        let _ = writeln!(
            out,
            "{:>width$} {:>10} {:>10}",
            "mAP",
            fmt_ap(voc.map.ap_11pt),
            fmt_ap(voc.map.ap_all)
        );
        let _ = writeln!(out, "\nresults in {}", out_dir.display());
        stdout_text(&out)?;
    }
    Ok(if unreadable > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

fn corners(b: yolo3_core::BoxXyxy) -> [f64; 4] {
    [f64::from(b.x_min), f64::from(b.y_min), f64::from(b.x_max), f64::from(b.y_max)]
}

/// `pr_curve.png` (per class at IoU 0.5, all areas, 100 detections) and
/// `confusion_matrix.png`.
fn write_pictures(
    out_dir: &Path,
    map: &yolo3_core::metrics::MapSummary,
    names: &[String],
    matrix: &ConfusionMatrix,
) -> anyhow::Result<()> {
    let coco = &map.coco;
    let max_dets = coco.params.max_dets.len().saturating_sub(1);
    let series: Vec<Series> = (0..coco.category_ids.len())
        .filter_map(|k| {
            let curve = coco.pr_curve(k, 0, 0, max_dets)?;
            let ap50 = map.classes.get(k).and_then(|c| c.ap50).unwrap_or(0.0);
            let name = names.get(k).map_or("?", String::as_str);
            let points =
                curve.recall.iter().copied().zip(curve.precision.iter().copied()).collect();
            Some(Series {
                color: Some(yolo3_viz::palette::color(k)),
                ..Series::new(format!("{name} {ap50:.3}"), points)
            })
        })
        .collect();
    let chart = pr_curve_chart("Precision-recall (IoU 0.5)", &series);
    let pr_path = out_dir.join("pr_curve.png");
    yolo3_viz::save_png(&render_chart(&chart, &ChartOptions::default()), &pr_path)
        .with_context(|| format!("writing {}", pr_path.display()))?;
    let cm_path = out_dir.join("confusion_matrix.png");
    yolo3_viz::save_png(&render_confusion(matrix, &ConfusionOptions::default()), &cm_path)
        .with_context(|| format!("writing {}", cm_path.display()))?;
    Ok(())
}
