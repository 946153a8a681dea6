//! `yolo3 eval --weights W --data D`: the model over a dataset exactly as validation during
//! training runs it, scored three ways, with the report, the PR curves and the confusion
//! matrix in a run folder.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context as _};
use indicatif::ProgressBar;
use yolo3_core::metrics::{
    evaluate_map, ConfusionCounts, EvalReport, ReportInput, ReportOptions, VocBoxConvention,
};
use yolo3_core::{DecodeOptions, LossOptions};
use yolo3_data::{OpenOptions, ReadOptions};
use yolo3_model::{EvalProgress, YoloLoss};
use yolo3_viz::{
    pr_curve_chart, render_chart, render_confusion, ChartOptions, ConfusionMatrix,
    ConfusionOptions, Series,
};

use super::{stdout_text, EvalArgs};
use crate::args::Global;
use crate::model_load::load_detector;

/// Progress of the validation pass on a bar.
struct BarProgress {
    bar: ProgressBar,
}

impl EvalProgress for BarProgress {
    fn start(&mut self, batches: usize) {
        self.bar.set_length(batches as u64);
        self.bar.set_position(0);
    }

    fn batch(&mut self) {
        self.bar.inc(1);
    }
}

pub(super) fn model_on_dataset(
    args: &EvalArgs,
    data: &Path,
    global: &Global,
) -> anyhow::Result<ExitCode> {
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
        ..DecodeOptions::default()
    };
    let bar = crate::progress::bar(0, !global.chatty());
    bar.set_prefix("eval");
    let mut progress = BarProgress { bar };
    let (images, map, loss) = match args.tile.tiling() {
        None => {
            let evaluation = yolo3_model::evaluate(
                detector.net(),
                &loss,
                &dataset,
                side,
                args.batch,
                &decode,
                None,
                &yolo3_data::ImageCache::none(),
                &mut progress,
            )
            .context("running the model over the dataset")?;
            (evaluation.images, evaluation.map, Some(evaluation.loss))
        }
        Some(tiling) => {
            let images = yolo3_predict::detect_dataset(
                &detector,
                &dataset,
                &tiling,
                side,
                args.batch,
                &decode,
                &mut progress,
            )
            .context("running the model over the dataset in tiles")?;
            let map = evaluate_map(&images, names.len(), args.max_boxes)?;
            (images, map, None)
        }
    };
    progress.bar.finish_and_clear();

    let convention =
        if args.voc_continuous { VocBoxConvention::Continuous } else { VocBoxConvention::PlusOne };
    let data_name = data.display().to_string();
    let input = ReportInput {
        data: &data_name,
        input: side,
        unreadable_images: unreadable,
        loss,
        decode,
        class_names: &names,
        images: &images,
        map: &map,
    };
    let options = ReportOptions {
        voc_convention: convention,
        confusion_score_threshold: args.confusion_threshold,
        ..ReportOptions::default()
    };
    let report = EvalReport::new(&input, &options).context("VOC evaluation")?;

    let out_dir = yolo3_io::run_folder::create(&args.project, &args.name)
        .context("creating the run folder")?;
    write_pictures(&out_dir, &map, &report.confusion_matrix)?;
    let text = serde_json::to_string_pretty(&report)?;
    let metrics_path = out_dir.join("metrics.json");
    yolo3_io::fsio::write_atomic(&metrics_path, text.as_bytes(), yolo3_io::fsio::Existing::Replace)
        .with_context(|| format!("writing {}", metrics_path.display()))?;
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
