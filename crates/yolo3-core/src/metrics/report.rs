//! Evaluation results as typed reports, from which both the JSON files and the text tables are
//! produced, so that what is printed and what is written can never disagree.
//!
//! * [`CocoSummary`]: pycocotools' 12 numbers under their usual names (`AP`, `AP50`, ...), the
//!   per-category rows and each detection's matching status; its text is the lines
//!   `COCOeval.summarize()` prints.
//! * [`VocComparison`]: `voc_eval` under both box conventions, laid out as
//!   `shared/eval/voc/*/expected.json` (so the output compares with the references directly).
//! * [`EvalReport`]: a model on a labelled dataset, as `yolo3 eval` writes it to
//!   `metrics.json`: the validation loss, the decode thresholds, COCO, the per-class rows,
//!   VOC AP under one convention and the confusion counts, all from the same detections.

use std::fmt::Write as _;

use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};

use super::coco::{CocoCategoryResult, CocoEvaluation, CocoStats};
use super::confusion::confusion_pairs;
use super::summary::{class_table, ClassSummary, ImageBoxes, MapSummary};
use super::table::{figure, Table};
use super::voc::{
    evaluate_voc, VocBoxConvention, VocClassResult, VocDataset, VocDetection, VocEvaluation,
    VocGroundTruth, VocImage, VocMean, VocOptions,
};
use super::MetricsError;
use crate::decode::DecodeOptions;
use crate::geometry::BoxXyxy;
use crate::loss::LossTerms;

/// The names of the 12 COCO numbers, in `COCOeval.stats` order.
pub const STAT_NAMES: [&str; 12] =
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

/// Serializes `(key, value)` entries as one JSON object, in their order.
fn ordered_map<S: Serializer, V: Serialize>(
    entries: &[(String, V)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(entries.len()))?;
    for (k, v) in entries {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

/// [`CocoStats`] as an object keyed by [`STAT_NAMES`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NamedStats(pub CocoStats);

impl Serialize for NamedStats {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(STAT_NAMES.len()))?;
        for (name, value) in STAT_NAMES.iter().zip(self.0.to_array()) {
            map.serialize_entry(name, &value)?;
        }
        map.end()
    }
}

/// A COCO evaluation without its precision and recall arrays.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CocoSummary {
    /// The 12 numbers by name.
    pub stats: NamedStats,
    /// The same 12 numbers as a list, in `COCOeval.stats` order.
    pub stats_list: [f64; 12],
    /// One row per category, ascending id.
    pub per_category: Vec<CocoCategoryResult>,
    /// Each detection's matching status (see [`CocoEvaluation::det_status`]).
    pub det_status: Vec<String>,
}

impl CocoSummary {
    /// The summary of `eval`.
    #[must_use]
    pub fn of(eval: &CocoEvaluation) -> Self {
        Self {
            stats: NamedStats(eval.stats),
            stats_list: eval.stats.to_array(),
            per_category: eval.per_category.clone(),
            det_status: eval.det_status.clone(),
        }
    }

    /// `COCOeval.summarize()`'s twelve lines.
    #[must_use]
    pub fn stats_text(&self) -> String {
        let mut out = String::new();
        for (line, v) in STAT_LINES.iter().zip(self.stats_list) {
            let _ = writeln!(out, " {line} = {v:.3}");
        }
        out
    }

    /// `category (id)  GT  dets  AP  AP50`, one row per category.
    #[must_use]
    pub fn category_table(&self) -> String {
        let mut table = Table::new(&["category", "GT", "dets", "AP", "AP50"]);
        for c in &self.per_category {
            table.row(vec![
                format!("{} ({})", c.name, c.category_id),
                c.n_gt.to_string(),
                c.n_det.to_string(),
                format!("{:.3}", c.stats.ap),
                format!("{:.3}", c.stats.ap50),
            ]);
        }
        table.render()
    }
}

/// A value under each box convention.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ByConvention<T> {
    /// `voc_eval`'s "+1 pixel" widths.
    pub plus1: T,
    /// Continuous widths.
    pub noplus1: T,
}

/// How the detections of one class matched under one convention.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VocMatching {
    /// VOC2007 11-point AP.
    pub ap_11pt: Option<f64>,
    /// All-point AP.
    pub ap_all: Option<f64>,
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// Detections on difficult boxes.
    pub ignored: usize,
    /// Detection indices in processing order.
    pub order: Vec<usize>,
    /// `T`, `F` or `D` per processed detection.
    pub flags: String,
}

impl From<&VocClassResult> for VocMatching {
    fn from(r: &VocClassResult) -> Self {
        Self {
            ap_11pt: r.ap_11pt,
            ap_all: r.ap_all,
            tp: r.tp,
            fp: r.fp,
            ignored: r.ignored,
            order: r.order.clone(),
            flags: r.flags.clone(),
        }
    }
}

/// One class under both conventions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VocClassPair {
    /// Non-difficult ground-truth boxes.
    pub npos: usize,
    /// Detections of the class.
    pub ndet: usize,
    /// "+1 pixel" matching.
    pub plus1: VocMatching,
    /// Continuous matching.
    pub noplus1: VocMatching,
}

/// `voc_eval` under both box conventions.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VocComparison {
    /// A detection matches above this overlap.
    pub iou_threshold: f64,
    /// Per class name, in the input's class order.
    #[serde(serialize_with = "ordered_map")]
    pub classes: Vec<(String, VocClassPair)>,
    /// Mean over the classes with positives.
    pub map: ByConvention<VocMean>,
    /// Mean over every class.
    pub map_all_classes: ByConvention<VocMean>,
}

impl VocComparison {
    /// Evaluates `dataset` under both conventions.
    pub fn evaluate(dataset: &VocDataset) -> Result<Self, MetricsError> {
        let plus1 = evaluate_voc(dataset, &VocOptions::default())?;
        let noplus1 = evaluate_voc(
            dataset,
            &VocOptions { convention: VocBoxConvention::Continuous, ..VocOptions::default() },
        )?;
        Ok(Self::of(&plus1, &noplus1))
    }

    fn of(plus1: &VocEvaluation, noplus1: &VocEvaluation) -> Self {
        Self {
            iou_threshold: plus1.options.iou_threshold,
            classes: plus1
                .classes
                .iter()
                .zip(&noplus1.classes)
                .map(|(a, b)| {
                    let pair = VocClassPair {
                        npos: a.npos,
                        ndet: a.ndet,
                        plus1: a.into(),
                        noplus1: b.into(),
                    };
                    (a.name.clone(), pair)
                })
                .collect(),
            map: ByConvention { plus1: plus1.map, noplus1: noplus1.map },
            map_all_classes: ByConvention {
                plus1: plus1.map_all_classes,
                noplus1: noplus1.map_all_classes,
            },
        }
    }

    /// `class npos ndet AP07 (+1) AP (+1) AP07 AP`, one row per class and a `mAP` row.
    #[must_use]
    pub fn text(&self) -> String {
        let mut table =
            Table::new(&["class", "npos", "ndet", "AP07 (+1)", "AP (+1)", "AP07", "AP"]);
        for (name, c) in &self.classes {
            table.row(vec![
                name.clone(),
                c.npos.to_string(),
                c.ndet.to_string(),
                figure(c.plus1.ap_11pt, 4),
                figure(c.plus1.ap_all, 4),
                figure(c.noplus1.ap_11pt, 4),
                figure(c.noplus1.ap_all, 4),
            ]);
        }
        let (a, b) = (&self.map.plus1, &self.map.noplus1);
        table.row(vec![
            "mAP".into(),
            String::new(),
            String::new(),
            figure(a.ap_11pt, 4),
            figure(a.ap_all, 4),
            figure(b.ap_11pt, 4),
            figure(b.ap_all, 4),
        ]);
        table.render()
    }
}

/// One class's AP under the report's convention.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VocClassAp {
    /// Non-difficult ground-truth boxes.
    pub npos: usize,
    /// Detections of the class.
    pub ndet: usize,
    /// VOC2007 11-point AP.
    pub ap_11pt: Option<f64>,
    /// All-point AP.
    pub ap_all: Option<f64>,
}

// serde's `serialize_with` passes the field by reference.
#[allow(clippy::trivially_copy_pass_by_ref)]
fn convention_name<S: Serializer>(c: &VocBoxConvention, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(match c {
        VocBoxConvention::PlusOne => "plus1",
        VocBoxConvention::Continuous => "continuous",
    })
}

/// Pascal VOC AP at `IoU > 0.5` under one convention.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct VocReport {
    /// `plus1` or `continuous`.
    #[serde(serialize_with = "convention_name")]
    pub convention: VocBoxConvention,
    /// Per class name, in class order.
    #[serde(serialize_with = "ordered_map")]
    pub classes: Vec<(String, VocClassAp)>,
    /// Mean over the classes with positives.
    pub map: VocMean,
}

/// Counts of `(predicted, true)` pairs, background last, under the rules of
/// [`confusion_pairs`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConfusionCounts {
    /// Class names (background is the extra last row and column).
    pub names: Vec<String>,
    /// Score a detection needs to take part.
    pub score_threshold: f32,
    /// `IoU` a detection needs to match a box.
    pub iou_threshold: f32,
    /// `(C + 1) x (C + 1)` counts: row = predicted, column = true.
    pub rows_predicted_columns_true: Vec<Vec<u64>>,
}

impl ConfusionCounts {
    /// The counts over `images`.
    #[must_use]
    pub fn count(
        names: Vec<String>,
        images: &[ImageBoxes],
        score_threshold: f32,
        iou_threshold: f32,
    ) -> Self {
        let n = names.len();
        let mut rows = vec![vec![0u64; n + 1]; n + 1];
        for image in images {
            for (p, t) in confusion_pairs(
                &image.detections,
                &image.ground_truth,
                n,
                score_threshold,
                iou_threshold,
            ) {
                rows[p.unwrap_or(n)][t.unwrap_or(n)] += 1;
            }
        }
        Self { names, score_threshold, iou_threshold, rows_predicted_columns_true: rows }
    }
}

/// A class's row of the report: its name and its [`ClassSummary`].
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ClassRow {
    /// Class name.
    pub name: String,
    /// The class's figures (flattened into the same JSON object).
    #[serde(flatten)]
    pub summary: ClassSummary,
}

/// Options of [`EvalReport::new`]; [`Default`] is `yolo3 eval`'s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ReportOptions {
    /// Box convention of the VOC AP.
    pub voc_convention: VocBoxConvention,
    /// Score a detection needs to enter the confusion matrix.
    pub confusion_score_threshold: f32,
    /// `IoU` a detection needs to match in the confusion matrix.
    pub confusion_iou_threshold: f32,
}

impl Default for ReportOptions {
    fn default() -> Self {
        Self {
            voc_convention: VocBoxConvention::PlusOne,
            confusion_score_threshold: 0.25,
            confusion_iou_threshold: 0.5,
        }
    }
}

/// What a report is made from: one model's pass over one dataset.
#[derive(Clone, Debug)]
pub struct ReportInput<'a> {
    /// The dataset's name or path, as the user gave it.
    pub data: &'a str,
    /// Network input side.
    pub input: u32,
    /// Images of the dataset that could not be read (not evaluated).
    pub unreadable_images: usize,
    /// Mean validation loss per batch (`None` when the detections are not those of one
    /// letterboxed pass, as with tiles).
    pub loss: Option<LossTerms>,
    /// Decode thresholds the detections were made with.
    pub decode: DecodeOptions,
    /// Class names, in class index order.
    pub class_names: &'a [String],
    /// Per image, its ground truth and detections.
    pub images: &'a [ImageBoxes],
    /// COCO-style mAP of `images` ([`super::evaluate_map`]).
    pub map: &'a MapSummary,
}

/// Everything `yolo3 eval` reports about a model on a dataset; `metrics.json` is this value.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct EvalReport {
    /// The dataset.
    pub data: String,
    /// Network input side.
    pub input: u32,
    /// Images evaluated.
    pub images: usize,
    /// Images that could not be read.
    pub unreadable_images: usize,
    /// Mean validation loss per batch (`null` with tiles).
    pub loss: Option<LossTerms>,
    /// Decode thresholds.
    pub decode: DecodeOptions,
    /// COCO's figures.
    pub coco: CocoSummary,
    /// COCO AP50 over the classes with instances.
    pub map50: Option<f64>,
    /// COCO AP over the classes with instances.
    pub map50_95: Option<f64>,
    /// One row per class.
    pub classes: Vec<ClassRow>,
    /// Pascal VOC AP.
    pub voc: VocReport,
    /// Confusion counts.
    pub confusion_matrix: ConfusionCounts,
}

fn corners(b: BoxXyxy) -> [f64; 4] {
    [f64::from(b.x_min), f64::from(b.y_min), f64::from(b.x_max), f64::from(b.y_max)]
}

/// The VOC input of per-image boxes: images named by their index, crowd regions left out
/// (VOC has none; difficult boxes stay, flagged).
fn voc_dataset(class_names: &[String], images: &[ImageBoxes]) -> VocDataset {
    let per_image = || images.iter().enumerate();
    VocDataset {
        classes: class_names.to_vec(),
        images: (0..images.len())
            .map(|i| VocImage { id: i.to_string(), width: None, height: None })
            .collect(),
        gt: per_image()
            .flat_map(|(i, image)| {
                image.ground_truth.iter().filter(|g| !g.crowd).map(move |g| VocGroundTruth {
                    image_id: i.to_string(),
                    class: class_names[g.class].clone(),
                    bbox: corners(g.bbox),
                    difficult: g.difficult,
                })
            })
            .collect(),
        det: per_image()
            .flat_map(|(i, image)| {
                image.detections.iter().map(move |d| VocDetection {
                    image_id: i.to_string(),
                    class: class_names[d.class].clone(),
                    bbox: corners(d.bbox),
                    score: f64::from(d.score),
                })
            })
            .collect(),
    }
}

impl EvalReport {
    /// The report of `input`: VOC AP and confusion counts are computed here from the same boxes
    /// the mAP was.
    pub fn new(input: &ReportInput<'_>, options: &ReportOptions) -> Result<Self, MetricsError> {
        let names = input.class_names;
        let voc = evaluate_voc(
            &voc_dataset(names, input.images),
            &VocOptions { convention: options.voc_convention, ..VocOptions::default() },
        )?;
        let map = input.map;
        Ok(Self {
            data: input.data.to_owned(),
            input: input.input,
            images: input.images.len(),
            unreadable_images: input.unreadable_images,
            loss: input.loss,
            decode: input.decode.clone(),
            coco: CocoSummary::of(&map.coco),
            map50: map.map50,
            map50_95: map.map50_95,
            classes: map
                .classes
                .iter()
                .map(|c| ClassRow { name: names[c.class].clone(), summary: c.clone() })
                .collect(),
            voc: VocReport {
                convention: options.voc_convention,
                classes: voc
                    .classes
                    .iter()
                    .map(|c| {
                        let ap = VocClassAp {
                            npos: c.npos,
                            ndet: c.ndet,
                            ap_11pt: c.ap_11pt,
                            ap_all: c.ap_all,
                        };
                        (c.name.clone(), ap)
                    })
                    .collect(),
                map: voc.map,
            },
            confusion_matrix: ConfusionCounts::count(
                names.to_vec(),
                input.images,
                options.confusion_score_threshold,
                options.confusion_iou_threshold,
            ),
        })
    }

    /// The printed report: COCO's summary lines, the per-class table and the VOC table.
    #[must_use]
    pub fn text(&self) -> String {
        let rows: Vec<(&str, &ClassSummary)> =
            self.classes.iter().map(|c| (c.name.as_str(), &c.summary)).collect();
        let mut out = self.coco.stats_text();
        out.push('\n');
        out.push_str(&class_table(&rows, self.images, self.map50, self.map50_95));
        let convention = match self.voc.convention {
            VocBoxConvention::PlusOne => "+1 pixel",
            VocBoxConvention::Continuous => "continuous",
        };
        let _ = writeln!(out, "\nPascal VOC AP at IoU > 0.5 ({convention} boxes)");
        let mut voc = Table::new(&["Class", "AP07", "AP"]);
        for (name, c) in &self.voc.classes {
            voc.row(vec![name.clone(), figure(c.ap_11pt, 4), figure(c.ap_all, 4)]);
        }
        let map = &self.voc.map;
        voc.row(vec!["mAP".into(), figure(map.ap_11pt, 4), figure(map.ap_all, 4)]);
        out.push_str(&voc.render());
        out
    }
}
