//! Pascal VOC evaluation, equal to py-faster-rcnn's `voc_eval` (`lib/datasets/voc_eval.py`).
//!
//! The conventions fixed here:
//!
//! * Boxes are `[x_min, y_min, x_max, y_max]`. With [`VocBoxConvention::PlusOne`] (the VOC
//!   devkit and py-faster-rcnn) a box spans `x_max - x_min + 1` pixels; with
//!   [`VocBoxConvention::Continuous`] it spans `x_max - x_min`.
//! * Detections of a class are processed by descending score with a **stable** sort (file order
//!   on ties; the original's unstable argsort is undefined there).
//! * Each detection looks at every GT of its image and class, difficult and already matched
//!   ones included; the **first** GT with the maximum overlap is its candidate. A match needs
//!   `ovmax > 0.5` (strict). A difficult candidate makes the detection ignored (neither TP nor
//!   FP); a candidate already taken makes it a FP, with no fallback to another GT.
//! * `prec = tp / max(tp + fp, 2^-52)`; the 11-point AP uses the thresholds `i * 0.1` (so
//!   `0.30000000000000004`); the all-point AP is the area under the right-envelope.
//! * A class without non-difficult GT has AP `None` (the original divides by zero); a class
//!   with GT but no detections has AP 0. [`VocEvaluation::map`] averages the classes with
//!   positives; [`VocEvaluation::map_all_classes`] counts the others as 0.
//!
//! GTs and detections of classes not in [`VocDataset::classes`] are not evaluated. A GT or
//! detection on an image that is not listed is an error.

use std::collections::HashMap;
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::json::{self, Ctx};
use super::MetricsError;

/// One image of the evaluation set.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VocImage {
    /// Image id (the VOC file stem, e.g. `000001`).
    pub id: String,
    /// Width in pixels, if given.
    pub width: Option<u32>,
    /// Height in pixels, if given.
    pub height: Option<u32>,
}

/// One ground-truth box.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VocGroundTruth {
    /// The image it belongs to.
    pub image_id: String,
    /// Class name.
    pub class: String,
    /// `[x_min, y_min, x_max, y_max]`, VOC pixel coordinates.
    pub bbox: [f64; 4],
    /// Difficult: matching detections are ignored, and it is not counted in `npos`.
    pub difficult: bool,
}

/// One detection.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VocDetection {
    /// The image it belongs to.
    pub image_id: String,
    /// Class name.
    pub class: String,
    /// `[x_min, y_min, x_max, y_max]`, in the GT's coordinate system.
    pub bbox: [f64; 4],
    /// Confidence; higher is better.
    pub score: f64,
}

/// Everything one VOC evaluation needs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VocDataset {
    /// Classes in evaluation order (may include classes with nothing).
    pub classes: Vec<String>,
    /// The images.
    pub images: Vec<VocImage>,
    /// Ground truth, in file order.
    pub gt: Vec<VocGroundTruth>,
    /// Detections, in file order; detection `i` is `det[i]`.
    pub det: Vec<VocDetection>,
}

/// How box widths are measured.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum VocBoxConvention {
    /// `x_max - x_min + 1`: inclusive pixel boxes, as the VOC devkit and py-faster-rcnn.
    #[default]
    PlusOne,
    /// `x_max - x_min`: continuous coordinates, as modern tools.
    Continuous,
}

impl VocBoxConvention {
    fn extra(self) -> f64 {
        match self {
            Self::PlusOne => 1.0,
            Self::Continuous => 0.0,
        }
    }
}

/// Options of [`evaluate_voc`]. [`Default`] is py-faster-rcnn's `voc_eval`.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct VocOptions {
    /// A detection matches when its best overlap is strictly greater than this.
    pub iou_threshold: f64,
    /// Box width convention.
    pub convention: VocBoxConvention,
}

impl Default for VocOptions {
    fn default() -> Self {
        Self { iou_threshold: 0.5, convention: VocBoxConvention::PlusOne }
    }
}

/// The result for one class.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VocClassResult {
    /// Class name.
    pub name: String,
    /// Non-difficult GTs.
    pub npos: usize,
    /// Detections of the class.
    pub ndet: usize,
    /// VOC2007 11-point AP; `None` when `npos == 0`.
    pub ap_11pt: Option<f64>,
    /// All-point AP; `None` when `npos == 0`.
    pub ap_all: Option<f64>,
    /// True positives.
    pub tp: usize,
    /// False positives.
    pub fp: usize,
    /// Detections ignored because their best GT is difficult.
    pub ignored: usize,
    /// Indices into [`VocDataset::det`] in processing order.
    pub order: Vec<usize>,
    /// One character per processed detection: `T` TP, `F` FP, `D` ignored (difficult).
    pub flags: String,
    /// Recall after each processed detection (`tp / npos`); empty when `npos == 0`.
    pub recall: Vec<f64>,
    /// Precision after each processed detection, `tp / max(tp + fp, 2^-52)`.
    pub precision: Vec<f64>,
}

/// A mean over classes of both AP variants; `None` when there is nothing to average.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct VocMean {
    /// Mean 11-point AP.
    pub ap_11pt: Option<f64>,
    /// Mean all-point AP.
    pub ap_all: Option<f64>,
}

/// The result of [`evaluate_voc`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VocEvaluation {
    /// The options used.
    pub options: VocOptions,
    /// One entry per class, in [`VocDataset::classes`] order.
    pub classes: Vec<VocClassResult>,
    /// Mean over the classes with `npos > 0` (the recommended mAP).
    pub map: VocMean,
    /// Mean over every class, a class with `npos == 0` counting as 0.
    pub map_all_classes: VocMean,
}

impl VocDataset {
    /// Reads an `input.json` (`classes`, `images`, `gt`, `det`).
    pub fn read(path: &Path) -> Result<Self, MetricsError> {
        let text = json::read(path)?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses an `input.json` text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, MetricsError> {
        let ctx = Ctx { file };
        let root = ctx.parse(text)?;
        let root = ctx.object(&root, "<root>")?;
        let classes = ctx.member_items(root, "", "classes", |v, path| ctx.string(v, path))?;
        let images = ctx.member_items(root, "", "images", |v, path| {
            let object = ctx.object(v, path)?;
            let (id, f) = ctx.member(object, path, "id")?;
            Ok(VocImage {
                id: ctx.string(id, &f)?,
                width: ctx.image_size(object, path, "width")?,
                height: ctx.image_size(object, path, "height")?,
            })
        })?;
        let gt = ctx.member_items(root, "", "gt", |v, path| {
            let object = ctx.object(v, path)?;
            let (image_id, class, bbox) = labelled_box(ctx, object, path)?;
            let difficult = match object.get("difficult") {
                None | Some(Value::Null) => false,
                Some(x) => ctx.flag(x, &json::join(path, "difficult"))?,
            };
            Ok(VocGroundTruth { image_id, class, bbox, difficult })
        })?;
        let det = ctx.member_items(root, "", "det", |v, path| {
            let object = ctx.object(v, path)?;
            let (image_id, class, bbox) = labelled_box(ctx, object, path)?;
            let (x, f) = ctx.member(object, path, "score")?;
            Ok(VocDetection { image_id, class, bbox, score: ctx.f64(x, &f)? })
        })?;
        Ok(Self { classes, images, gt, det })
    }
}

/// The `image_id`, `class` and `bbox` members that ground truth and detections share.
fn labelled_box(
    ctx: Ctx<'_>,
    object: &Map<String, Value>,
    path: &str,
) -> Result<(String, String, [f64; 4]), MetricsError> {
    let (x, f) = ctx.member(object, path, "image_id")?;
    let image_id = ctx.string(x, &f)?;
    let (x, f) = ctx.member(object, path, "class")?;
    let class = ctx.string(x, &f)?;
    let (x, f) = ctx.member(object, path, "bbox")?;
    let bbox = ctx.bbox(x, &f)?;
    if bbox[2] < bbox[0] || bbox[3] < bbox[1] {
        return Err(
            ctx.invalid(&f, format!("box {bbox:?} is inverted (x_max < x_min or y_max < y_min)"))
        );
    }
    Ok((image_id, class, bbox))
}

/// Evaluates `dataset` as py-faster-rcnn's `voc_eval` does, class by class.
pub fn evaluate_voc(
    dataset: &VocDataset,
    options: &VocOptions,
) -> Result<VocEvaluation, MetricsError> {
    if !options.iou_threshold.is_finite() {
        return Err(MetricsError::InvalidParameter {
            name: "iou_threshold",
            reason: format!("must be finite, found {}", options.iou_threshold),
        });
    }
    let ctx = Ctx { file: "VOC input" };
    let image_index: HashMap<&str, usize> =
        dataset.images.iter().enumerate().map(|(i, im)| (im.id.as_str(), i)).collect();
    let class_index: HashMap<&str, usize> =
        dataset.classes.iter().enumerate().rev().map(|(c, name)| (name.as_str(), c)).collect();
    let n_classes = dataset.classes.len();
    let n_images = dataset.images.len();

    // gts[class][image] = GT indices in file order.
    let mut gts: Vec<Vec<Vec<usize>>> = vec![vec![Vec::new(); n_images]; n_classes];
    for (j, g) in dataset.gt.iter().enumerate() {
        let Some(&i) = image_index.get(g.image_id.as_str()) else {
            return Err(MetricsError::UnknownImage {
                file: ctx.file.to_owned(),
                field: format!("gt[{j}].image_id"),
                image_id: g.image_id.clone(),
            });
        };
        if g.bbox.iter().any(|x| !x.is_finite()) {
            return Err(ctx.invalid(&format!("gt[{j}].bbox"), "coordinates must be finite"));
        }
        if let Some(&c) = class_index.get(g.class.as_str()) {
            gts[c][i].push(j);
        }
    }
    let mut dets: Vec<Vec<usize>> = vec![Vec::new(); n_classes];
    for (j, d) in dataset.det.iter().enumerate() {
        if !image_index.contains_key(d.image_id.as_str()) {
            return Err(MetricsError::UnknownImage {
                file: ctx.file.to_owned(),
                field: format!("det[{j}].image_id"),
                image_id: d.image_id.clone(),
            });
        }
        if d.bbox.iter().any(|x| !x.is_finite()) {
            return Err(ctx.invalid(&format!("det[{j}].bbox"), "coordinates must be finite"));
        }
        if !d.score.is_finite() {
            return Err(ctx.invalid(&format!("det[{j}].score"), "must be finite"));
        }
        if let Some(&c) = class_index.get(d.class.as_str()) {
            dets[c].push(j);
        }
    }

    let classes: Vec<VocClassResult> = (0..n_classes)
        .into_par_iter()
        .map(|c| evaluate_class(dataset, &image_index, &gts[c], &dets[c], c, options))
        .collect();

    let with_positives: Vec<&VocClassResult> = classes.iter().filter(|c| c.npos > 0).collect();
    let mean = |values: Vec<f64>| -> Option<f64> {
        (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
    };
    let map = VocMean {
        ap_11pt: mean(with_positives.iter().filter_map(|c| c.ap_11pt).collect()),
        ap_all: mean(with_positives.iter().filter_map(|c| c.ap_all).collect()),
    };
    let map_all_classes = VocMean {
        ap_11pt: mean(classes.iter().map(|c| c.ap_11pt.unwrap_or(0.0)).collect()),
        ap_all: mean(classes.iter().map(|c| c.ap_all.unwrap_or(0.0)).collect()),
    };
    Ok(VocEvaluation { options: *options, classes, map, map_all_classes })
}

/// `voc_eval`'s overlap of a detection with a GT, in its operation order.
fn overlap(d: [f64; 4], g: [f64; 4], e: f64) -> f64 {
    let ixmin = g[0].max(d[0]);
    let iymin = g[1].max(d[1]);
    let ixmax = g[2].min(d[2]);
    let iymax = g[3].min(d[3]);
    let iw = (ixmax - ixmin + e).max(0.0);
    let ih = (iymax - iymin + e).max(0.0);
    let inter = iw * ih;
    let union =
        (d[2] - d[0] + e) * (d[3] - d[1] + e) + (g[2] - g[0] + e) * (g[3] - g[1] + e) - inter;
    inter / union
}

fn evaluate_class(
    dataset: &VocDataset,
    image_index: &HashMap<&str, usize>,
    gts: &[Vec<usize>],
    dets: &[usize],
    class: usize,
    options: &VocOptions,
) -> VocClassResult {
    let e = options.convention.extra();
    let npos = gts.iter().flatten().filter(|&&j| !dataset.gt[j].difficult).count();
    let mut order = dets.to_vec();
    order.sort_by(|&a, &b| dataset.det[b].score.total_cmp(&dataset.det[a].score));

    let mut taken: Vec<Vec<bool>> = gts.iter().map(|g| vec![false; g.len()]).collect();
    let mut flags = String::with_capacity(order.len());
    let (mut tp, mut fp, mut ignored) = (0_usize, 0_usize, 0_usize);
    let mut recall = Vec::with_capacity(order.len());
    let mut precision = Vec::with_capacity(order.len());
    for &j in &order {
        let d = &dataset.det[j];
        let image = image_index.get(d.image_id.as_str()).copied().unwrap_or(0);
        let candidates = &gts[image];
        // np.max / np.argmax: the first maximum; a NaN overlap makes the maximum NaN (no match).
        let mut ovmax = f64::NEG_INFINITY;
        let mut jmax = 0;
        let mut any_nan = false;
        for (k, &g) in candidates.iter().enumerate() {
            let ov = overlap(d.bbox, dataset.gt[g].bbox, e);
            if ov.is_nan() {
                any_nan = true;
            } else if ov > ovmax {
                ovmax = ov;
                jmax = k;
            }
        }
        let flag = if !any_nan && ovmax > options.iou_threshold {
            if dataset.gt[candidates[jmax]].difficult {
                'D'
            } else if taken[image][jmax] {
                'F'
            } else {
                taken[image][jmax] = true;
                'T'
            }
        } else {
            'F'
        };
        match flag {
            'T' => tp += 1,
            'F' => fp += 1,
            _ => ignored += 1,
        }
        flags.push(flag);
        if npos > 0 {
            recall.push(tp as f64 / npos as f64);
        }
        precision.push(tp as f64 / ((tp + fp) as f64).max(f64::EPSILON));
    }

    let (ap_11pt, ap_all) = if npos == 0 {
        (None, None)
    } else {
        (Some(ap_11_point(&recall, &precision)), Some(ap_all_point(&recall, &precision)))
    };
    VocClassResult {
        name: dataset.classes[class].clone(),
        npos,
        ndet: dets.len(),
        ap_11pt,
        ap_all,
        tp,
        fp,
        ignored,
        order,
        flags,
        recall,
        precision,
    }
}

/// VOC2007 11-point AP: the mean over `t = i * 0.1` of the best precision at recall `>= t`.
#[must_use]
pub fn ap_11_point(recall: &[f64], precision: &[f64]) -> f64 {
    let mut ap = 0.0;
    for i in 0..11 {
        let t = f64::from(i) * 0.1;
        let p = recall
            .iter()
            .zip(precision)
            .filter(|(&r, _)| r >= t)
            .map(|(_, &p)| p)
            .fold(None, |best: Option<f64>, p| Some(best.map_or(p, |b| b.max(p))))
            .unwrap_or(0.0);
        ap += p / 11.0;
    }
    ap
}

/// All-point AP: the area under the precision envelope, with recall padded by 0 and 1.
#[must_use]
pub fn ap_all_point(recall: &[f64], precision: &[f64]) -> f64 {
    let n = recall.len().min(precision.len());
    let mut mrec = Vec::with_capacity(n + 2);
    mrec.push(0.0);
    mrec.extend_from_slice(&recall[..n]);
    mrec.push(1.0);
    let mut mpre = Vec::with_capacity(n + 2);
    mpre.push(0.0);
    mpre.extend_from_slice(&precision[..n]);
    mpre.push(0.0);
    for i in (1..mpre.len()).rev() {
        mpre[i - 1] = mpre[i - 1].max(mpre[i]);
    }
    (0..mrec.len() - 1)
        .filter(|&i| mrec[i + 1] != mrec[i])
        .map(|i| (mrec[i + 1] - mrec[i]) * mpre[i + 1])
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn gt(image: &str, bbox: [f64; 4], difficult: bool) -> VocGroundTruth {
        VocGroundTruth { image_id: image.into(), class: "a".into(), bbox, difficult }
    }

    fn det(image: &str, bbox: [f64; 4], score: f64) -> VocDetection {
        VocDetection { image_id: image.into(), class: "a".into(), bbox, score }
    }

    fn dataset(gt: Vec<VocGroundTruth>, det: Vec<VocDetection>) -> VocDataset {
        VocDataset {
            classes: vec!["a".into()],
            images: ["1", "2", "3"]
                .iter()
                .map(|id| VocImage { id: (*id).into(), width: None, height: None })
                .collect(),
            gt,
            det,
        }
    }

    #[test]
    fn overlap_of_exactly_half_is_not_a_match() {
        // Continuous: [0,0,10,10] vs [0,0,10,20] overlaps 100 / 200.
        let data = dataset(
            vec![gt("1", [0.0, 0.0, 10.0, 20.0], false)],
            vec![det("1", [0.0, 0.0, 10.0, 10.0], 1.0)],
        );
        let options =
            VocOptions { convention: VocBoxConvention::Continuous, ..VocOptions::default() };
        let result = evaluate_voc(&data, &options).unwrap();
        assert_eq!(result.classes[0].flags, "F");
    }

    #[test]
    fn duplicate_is_false_positive_without_fallback_to_a_free_gt() {
        let data = dataset(
            vec![gt("1", [0.0, 0.0, 10.0, 10.0], false), gt("1", [0.0, 0.0, 10.0, 11.0], false)],
            vec![det("1", [0.0, 0.0, 10.0, 10.0], 0.9), det("1", [0.0, 0.0, 10.0, 10.0], 0.8)],
        );
        let result = evaluate_voc(&data, &VocOptions::default()).unwrap();
        assert_eq!(result.classes[0].flags, "TF");
    }

    #[test]
    fn class_with_only_difficult_gt_has_undefined_ap() {
        let data = dataset(
            vec![gt("1", [0.0, 0.0, 10.0, 10.0], true)],
            vec![det("1", [0.0, 0.0, 10.0, 10.0], 0.9)],
        );
        let result = evaluate_voc(&data, &VocOptions::default()).unwrap();
        assert_eq!(result.classes[0].flags, "D");
        assert_eq!(result.classes[0].ap_all, None);
        assert_eq!(result.map.ap_all, None);
        assert_eq!(result.map_all_classes.ap_all, Some(0.0));
    }

    #[test]
    fn eleven_point_recall_of_three_tenths_misses_threshold_three() {
        // Recall exactly 0.3 with precision 1: thresholds 0, 0.1, 0.2 reached, 0.30000000000000004 not.
        let ap = ap_11_point(&[0.1, 0.2, 0.3], &[1.0, 1.0, 1.0]);
        assert!((ap - 3.0 / 11.0).abs() < 1e-15);
    }

    proptest! {
        #[test]
        fn voc_ap_lies_in_unit_interval(
            boxes in prop::collection::vec((0usize..3, 0.0..100.0_f64, 0.0..100.0_f64, 1.0..50.0_f64, any::<bool>()), 1..20),
            dets in prop::collection::vec((0usize..3, 0.0..100.0_f64, 0.0..100.0_f64, 1.0..50.0_f64, 0.0..1.0_f64), 0..30),
        ) {
            let images = ["1", "2", "3"];
            let data = dataset(
                boxes.iter().map(|&(i, x, y, s, d)| gt(images[i], [x, y, x + s, y + s], d)).collect(),
                dets.iter().map(|&(i, x, y, s, p)| det(images[i], [x, y, x + s, y + s], p)).collect(),
            );
            for convention in [VocBoxConvention::PlusOne, VocBoxConvention::Continuous] {
                let r = evaluate_voc(&data, &VocOptions { convention, ..VocOptions::default() }).unwrap();
                let c = &r.classes[0];
                prop_assert_eq!(c.tp + c.fp + c.ignored, c.ndet);
                for ap in [c.ap_11pt, c.ap_all].into_iter().flatten() {
                    prop_assert!((0.0..=1.0 + 1e-12).contains(&ap), "{}", ap);
                }
            }
        }

        #[test]
        fn perfect_voc_detections_have_ap_one(
            boxes in prop::collection::vec((0usize..3, 0.0..100.0_f64, 0.0..100.0_f64, 1.0..50.0_f64), 1..20),
        ) {
            let images = ["1", "2", "3"];
            let data = dataset(
                boxes.iter().map(|&(i, x, y, s)| gt(images[i], [x, y, x + s, y + s], false)).collect(),
                boxes.iter().enumerate().map(|(j, &(i, x, y, s))| det(images[i], [x, y, x + s, y + s], 1.0 - j as f64 * 1e-3)).collect(),
            );
            let r = evaluate_voc(&data, &VocOptions::default()).unwrap();
            let c = &r.classes[0];
            prop_assert!((c.ap_all.unwrap_or(0.0) - 1.0).abs() < 1e-12);
            prop_assert!((c.ap_11pt.unwrap_or(0.0) - 1.0).abs() < 1e-12);
        }
    }
}
