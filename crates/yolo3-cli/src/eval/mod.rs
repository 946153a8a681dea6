//! `yolo3 eval`: the metrics papers and tools report, from a model or from files.
//!
//! Three modes, chosen by the flags:
//! * `--weights W --data D`: the model runs over the dataset (any supported format) exactly as
//!   validation during training does (`yolo3_model::evaluate`: letterbox, inference forward,
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

mod model;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use yolo3_core::metrics::{
    evaluate_coco, CocoDataset, CocoDetection, CocoParams, CocoSummary, VocComparison, VocDataset,
};

use crate::args::{DeviceArg, Global};
use crate::model_load::ModelArgs;

/// `yolo3 eval`.
#[derive(Debug, clap::Args)]
pub(crate) struct EvalArgs {
    #[command(flatten)]
    pub model: ModelArgs,
    /// Dataset to evaluate the model on: keras train.txt, Pascal VOC folder, COCO JSON or YOLO
    /// folder (--classes names the class file where the format needs one).
    #[arg(long, short = 'd')]
    pub data: Option<PathBuf>,
    /// COCO ground truth ("instances" JSON), with --dets: score a results file.
    #[arg(long, requires = "dets", conflicts_with_all = ["data", "voc"])]
    pub gt: Option<PathBuf>,
    /// COCO results list (image_id, category_id, bbox, score), with --gt.
    #[arg(long, requires = "gt")]
    pub dets: Option<PathBuf>,
    /// Pascal VOC input (classes, images, gt, det; see shared/eval/README.md): score it with
    /// voc_eval under both box conventions.
    #[arg(long, conflicts_with = "data")]
    pub voc: Option<PathBuf>,
    /// Print the results as one JSON document on stdout (file modes: the layout of
    /// shared/eval's expected.json).
    #[arg(long)]
    pub json: bool,
    /// Network input side, a multiple of 32 up to 8192 (default: the checkpoint's training input, else
    /// the cfg's width).
    #[arg(long, value_parser = crate::ranges::input_side())]
    pub input: Option<u32>,
    /// Images per forward pass (1-1024).
    #[arg(long, default_value_t = 8, value_parser = crate::ranges::count(1, 1024))]
    pub batch: usize,
    /// Lowest score kept by the decode, in [0, 1] (low, so that the whole PR curve is measured).
    #[arg(long, visible_alias = "conf", default_value_t = 0.001, value_parser = crate::ranges::unit)]
    pub score_threshold: f64,
    /// NMS IoU threshold of the decode, in [0, 1].
    #[arg(long, visible_alias = "iou", default_value_t = 0.5, value_parser = crate::ranges::unit)]
    pub iou_threshold: f64,
    /// Boxes kept per class and image by the decode (1-100000); also the detections per image
    /// and class COCO's mAP counts when above pycocotools' 100 (raise it for large photos that
    /// hold hundreds of objects).
    #[arg(long, default_value_t = 100, value_parser = crate::ranges::count(1, 100_000))]
    pub max_boxes: usize,
    /// Score a detection needs to enter the confusion matrix, in [0, 1].
    #[arg(long, default_value_t = 0.25, value_parser = crate::ranges::unit_f32)]
    pub confusion_threshold: f32,
    /// VOC AP with continuous box widths (x_max - x_min) instead of voc_eval's "+1 pixel".
    #[arg(long)]
    pub voc_continuous: bool,
    #[command(flatten)]
    pub tile: crate::args::TileArgs,
    #[command(flatten)]
    pub device: DeviceArg,
    /// Parent folder of the run folders.
    #[arg(long, default_value = "runs/eval")]
    pub project: PathBuf,
    /// Run folder name (exp, exp2, ... when it exists).
    #[arg(long, default_value = "exp")]
    pub name: String,
}

// main.rs hands the parsed arguments over by value.
#[allow(clippy::needless_pass_by_value)]
pub(crate) fn run(args: EvalArgs, global: &Global) -> anyhow::Result<ExitCode> {
    if let (Some(gt), Some(dets)) = (&args.gt, &args.dets) {
        return coco_files(gt, dets, args.json);
    }
    if let Some(voc) = &args.voc {
        return voc_file(voc, args.json);
    }
    match &args.data {
        Some(data) => model::model_on_dataset(&args, data, global),
        None => bail!("give --data (with --weights), --gt and --dets, or --voc"),
    }
}

pub(crate) fn stdout_text(text: &str) -> anyhow::Result<()> {
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
