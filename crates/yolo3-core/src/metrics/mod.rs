//! Detection metrics that reproduce the two reference evaluators bit for bit (to 1e-9).
//!
//! Published detector numbers are only comparable when they come from the same evaluator, so
//! this module does not invent its own mAP. It fixes two:
//!
//! * [`coco`]: pycocotools' `COCOeval` for `iouType='bbox'` with default parameters. `IoU`
//!   thresholds `0.5:0.05:0.95` and recall thresholds `0:0.01:1` exactly as `np.linspace`
//!   produces them, `>=` for `IoU` and recall, the GT `area` field for area ranges, the top-100
//!   cut per (image, category), stable score ties (file order inside an image, ascending image id
//!   across images), crowd GTs matched by intersection over the detection area, and `-1` for
//!   "no ground truth".
//! * [`voc`]: py-faster-rcnn's `voc_eval`, with the VOC2007 11-point and the all-point AP, with
//!   and without the "+1 pixel" box convention, `ovmax > 0.5`, difficult GTs ignored, stable
//!   score ties, and `None` where the original is undefined (no positives).
//!
//! [`report`] holds the typed reports (`metrics.json`, the printed tables) and [`table`] the one
//! text-table formatter they use.
//!
//! [`confusion`] matches one image's detections to its ground truth for a confusion matrix.
//!
//! [`summary`] is the in-memory entry point for training and validation loops: per-image boxes
//! in, COCO-style mAP50 / mAP50-95 and per-class rows out, computed by the same [`coco`]
//! evaluator so there is exactly one matching implementation.
//!
//! Every computation is in `f64`. Work is spread over categories (COCO) and classes (VOC) with
//! rayon; each unit is computed independently and collected in order, so results do not depend
//! on the thread count.

pub mod coco;
pub mod confusion;
mod json;
pub mod report;
pub mod summary;
pub mod table;
pub mod voc;

pub use coco::{
    evaluate_coco, AreaRange, CocoAnnotation, CocoCategory, CocoCategoryResult, CocoDataset,
    CocoDetection, CocoEvaluation, CocoImage, CocoParams, CocoStats, PrCurve,
};
pub use confusion::{confusion_pairs, ConfusionPair};
pub use report::{
    ByConvention, ClassRow, CocoSummary, ConfusionCounts, EvalReport, NamedStats, ReportInput,
    ReportOptions, VocClassAp, VocClassPair, VocComparison, VocMatching, VocReport, STAT_NAMES,
};
pub use summary::{
    evaluate_map, ClassSummary, DetectedBox, GroundTruthBox, ImageBoxes, MapSummary, COCO_MAX_DETS,
};
pub use table::{figure, Table};
pub use voc::{
    evaluate_voc, VocBoxConvention, VocClassResult, VocDataset, VocDetection, VocEvaluation,
    VocGroundTruth, VocImage, VocMean, VocOptions,
};

use std::path::PathBuf;

/// Everything that can go wrong while reading or evaluating detection metrics input.
///
/// `file` names the input (a path, or a description such as `"detections"` for in-memory
/// data) and `field` is a JSON-path-like location such as `annotations[3].bbox[2]`.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The file could not be read.
    #[error("cannot read {}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O failure.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid JSON.
    #[error("{file}: not valid JSON")]
    Json {
        /// The input.
        file: String,
        /// The parser's error, with line and column.
        #[source]
        source: serde_json::Error,
    },
    /// A required field is absent.
    #[error("{file}: missing field `{field}`")]
    MissingField {
        /// The input.
        file: String,
        /// Where the field should be.
        field: String,
    },
    /// A field has the wrong type or an unusable value.
    #[error("{file}: field `{field}`: {reason}")]
    InvalidField {
        /// The input.
        file: String,
        /// The offending field.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A record refers to an image that the ground truth does not list.
    #[error("{file}: field `{field}`: image id {image_id} is not in the ground truth's images")]
    UnknownImage {
        /// The input.
        file: String,
        /// The offending field.
        field: String,
        /// The unknown id, as written.
        image_id: String,
    },
    /// A class index is not below the number of classes.
    #[error("{file}: field `{field}`: class {class} is not below the class count {num_classes}")]
    ClassOutOfRange {
        /// The input.
        file: String,
        /// The offending field.
        field: String,
        /// The class index.
        class: usize,
        /// The number of classes.
        num_classes: usize,
    },
    /// An evaluation parameter is unusable.
    #[error("invalid evaluation parameter `{name}`: {reason}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// Mean of the entries that are `> -1`, or `-1` when there are none: `COCOeval.summarize`'s rule.
pub(crate) fn mean_valid(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, count) = values
        .into_iter()
        .filter(|&v| v > -1.0)
        .fold((0.0_f64, 0_usize), |(s, c), v| (s + v, c + 1));
    if count == 0 {
        -1.0
    } else {
        sum / count as f64
    }
}

/// `np.linspace(start, stop, num)`: `i * ((stop - start) / (num - 1)) + start`, the last value
/// set to `stop` exactly.
pub(crate) fn linspace(start: f64, stop: f64, num: usize) -> Vec<f64> {
    if num == 0 {
        return Vec::new();
    }
    if num == 1 {
        return vec![start];
    }
    let step = (stop - start) / (num - 1) as f64;
    let mut values: Vec<f64> = (0..num).map(|i| i as f64 * step + start).collect();
    values[num - 1] = stop;
    values
}
