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

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use indicatif::ProgressBar;
use yolo3_core::metrics::{
    evaluate_coco, CocoDataset, CocoDetection, CocoParams, CocoSummary, ConfusionCounts,
    EvalReport, ReportInput, ReportOptions, VocBoxConvention, VocComparison, VocDataset,
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

fn stdout_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    stdout_text(&format!("{}\n", serde_json::to_string_pretty(value)?))
}

fn coco_files(gt: &Path, dets: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let ground_truth =
        CocoDataset::read(gt).with_context(|| format!("reading {}", gt.display()))?;
    let detections =
        CocoDetection::read_list(dets).with_context(|| format!("reading {}", dets.display()))?;
    let eval = evaluate_coco(&ground_truth, &detections, &CocoParams::default())
        .context("COCO evaluation")?;
    let summary = CocoSummary::of(&eval);
    if as_json {
        stdout_json(&summary)?;
    } else {
        stdout_text(&format!("{}\n{}", summary.stats_text(), summary.category_table()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn voc_file(path: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let dataset = VocDataset::read(path).with_context(|| format!("reading {}", path.display()))?;
    let comparison = VocComparison::evaluate(&dataset).context("VOC evaluation")?;
    if as_json {
        stdout_json(&comparison)?;
    } else {
        stdout_text(&comparison.text())?;
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
    let mut dataset = yolo3_data::read_dataset(data, &open)?;
    for u in &dataset.unreadable {
        eprintln!("warning: skipping {}: {}", u.path.display(), u.reason);
    }
    detector.check_classes(&dataset.class_names)?;
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

    let convention =
        if args.voc_continuous { VocBoxConvention::Continuous } else { VocBoxConvention::PlusOne };
    let data_name = data.display().to_string();
    let input = ReportInput {
        data: &data_name,
        input: side,
        unreadable_images: unreadable,
        loss: evaluation.loss,
        decode,
        class_names: &names,
        images: &evaluation.images,
        map: &evaluation.map,
    };
    let options = ReportOptions {
        voc_convention: convention,
        confusion_score_threshold: args.confusion_threshold,
        ..ReportOptions::default()
    };
    let report = EvalReport::new(&input, &options).context("VOC evaluation")?;

    let out_dir = yolo3_train::run_dir::next_run_dir(&args.project, &args.name)
        .context("creating the run folder")?;
    write_pictures(&out_dir, &evaluation.map, &report.confusion_matrix)?;
    let text = serde_json::to_string_pretty(&report)?;
    let metrics_path = out_dir.join("metrics.json");
    yolo3_train::run_dir::write_atomic(&metrics_path, text.as_bytes())?;
    if args.json {
        stdout_text(&format!("{text}\n"))?;
    } else if global.chatty() {
        stdout_text(&format!("{}\nresults in {}\n", report.text(), out_dir.display()))?;
    }
    Ok(if unreadable > 0 { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `pr_curve.png` (per class at IoU 0.5, all areas, 100 detections) and
/// `confusion_matrix.png`.
fn write_pictures(
    out_dir: &Path,
    map: &yolo3_core::metrics::MapSummary,
    counts: &ConfusionCounts,
) -> anyhow::Result<()> {
    let names = &counts.names;
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
    yolo3_viz::save_png(&render_chart(&chart, &ChartOptions::default()), &pr_path)?;
    let matrix = ConfusionMatrix::from_rows(names.clone(), &counts.rows_predicted_columns_true)
        .context("drawing the confusion matrix")?;
    let cm_path = out_dir.join("confusion_matrix.png");
    yolo3_viz::save_png(&render_confusion(&matrix, &ConfusionOptions::default()), &cm_path)?;
    Ok(())
}
