//! COCO bounding-box evaluation, equal to pycocotools' `COCOeval(iouType='bbox')`.
//!
//! The conventions fixed here (each one changes published numbers if done differently):
//!
//! * Boxes are `[x, y, w, h]` in pixels. The `IoU` follows maskApi.c's `bbIou` operation order:
//!   `iw = min(dx+dw, gx+gw) - max(dx, gx)` (0 if `<= 0`), likewise `ih`, `i = iw*ih`,
//!   `u = dw*dh + gw*gh - i`, or `u = dw*dh` for a crowd GT (intersection over the detection).
//! * A GT's area for the area ranges is its annotation's `area` field, not `w*h`; a detection's
//!   area is `w*h`. Area ranges are inclusive at both ends.
//! * Detections are sorted by score, descending and stable (file order on ties), and cut to the
//!   top `max_dets.last()` (100) per image **and category** before matching.
//! * Matching is greedy in score order with `IoU >= t`; on equal `IoU` the later GT (in the list
//!   with non-ignored GTs first) wins; a non-ignored GT is always preferred over an ignored one;
//!   a crowd GT can absorb any number of detections. An unmatched detection outside the area
//!   range is ignored.
//! * Accumulation concatenates images in ascending id and sorts stably, so score ties across
//!   images go to the smaller image id. Precision is `tp / (tp + fp + 2^-52)`, made
//!   non-increasing from the right, and sampled at the first recall `>=` each threshold.
//! * A (category, area, maxDets) cell without non-ignored GT is `-1` and left out of every mean.
//!
//! Extensions beyond pycocotools, never triggered by its JSON format: [`CocoAnnotation::ignore`]
//! marks a regular (non-crowd) GT as ignored, which is how [`super::summary`] carries VOC-style
//! "difficult" boxes; pycocotools overwrites its own `ignore` field with `iscrowd`, so the JSON
//! reader never sets it.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::json::{self, Ctx};
use super::{linspace, mean_valid, MetricsError};

/// `np.spacing(1)`, the term pycocotools adds to `tp + fp`.
const PRECISION_EPS: f64 = f64::EPSILON;

/// One image of a COCO ground-truth file. Only `id` takes part in the evaluation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoImage {
    /// Image id.
    pub id: i64,
    /// Width in pixels, if given.
    pub width: Option<u32>,
    /// Height in pixels, if given.
    pub height: Option<u32>,
    /// File name, if given.
    pub file_name: Option<String>,
}

/// One category of a COCO ground-truth file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoCategory {
    /// Category id (not necessarily contiguous).
    pub id: i64,
    /// Category name.
    pub name: String,
    /// Supercategory, if given.
    pub supercategory: Option<String>,
}

/// One ground-truth box of a COCO "instances" file. Segmentations are not read.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoAnnotation {
    /// Annotation id.
    pub id: i64,
    /// The image it belongs to.
    pub image_id: i64,
    /// Its category.
    pub category_id: i64,
    /// `[x, y, w, h]` in pixels.
    pub bbox: [f64; 4],
    /// The area used for the area ranges (the segmentation's area in COCO, not `w*h`).
    pub area: f64,
    /// Crowd region: ignored, matched by intersection over the detection area, any number of
    /// times.
    pub iscrowd: bool,
    /// Extension: an ignored regular GT (matched once, by `IoU`, and never counted). Not read from
    /// JSON; see the module docs.
    #[serde(default)]
    pub ignore: bool,
}

/// One entry of a COCO results list.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoDetection {
    /// The image it belongs to.
    pub image_id: i64,
    /// Its category.
    pub category_id: i64,
    /// `[x, y, w, h]` in pixels.
    pub bbox: [f64; 4],
    /// Confidence; higher is better.
    pub score: f64,
}

/// A COCO ground-truth file: images, categories and box annotations.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CocoDataset {
    /// The images.
    pub images: Vec<CocoImage>,
    /// The categories, in file order.
    pub categories: Vec<CocoCategory>,
    /// The annotations, in file order.
    pub annotations: Vec<CocoAnnotation>,
}

/// An inclusive area range `[lo, hi]` with its label (`all`, `small`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AreaRange {
    /// Label used by the summary (`all`, `small`, `medium`, `large`).
    pub label: String,
    /// Smallest area in the range.
    pub lo: f64,
    /// Largest area in the range.
    pub hi: f64,
}

/// Evaluation parameters. [`Default`] is pycocotools' default for `iouType='bbox'`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoParams {
    /// `IoU` thresholds, `np.linspace(0.5, 0.95, 10)`.
    pub iou_thresholds: Vec<f64>,
    /// Recall thresholds, `np.linspace(0, 1, 101)`.
    pub recall_thresholds: Vec<f64>,
    /// Area ranges: all, small, medium, large.
    pub area_ranges: Vec<AreaRange>,
    /// Detections kept per image and category, ascending: 1, 10, 100. The last one is the cut
    /// applied before matching.
    pub max_dets: Vec<usize>,
}

impl Default for CocoParams {
    fn default() -> Self {
        let range = |label: &str, lo: f64, hi: f64| AreaRange { label: label.to_owned(), lo, hi };
        Self {
            iou_thresholds: linspace(0.5, 0.95, 10),
            recall_thresholds: linspace(0.0, 1.0, 101),
            area_ranges: vec![
                range("all", 0.0, 1e10),
                range("small", 0.0, 32.0 * 32.0),
                range("medium", 32.0 * 32.0, 96.0 * 96.0),
                range("large", 96.0 * 96.0, 1e10),
            ],
            max_dets: vec![1, 10, 100],
        }
    }
}

/// The 12 numbers of `COCOeval.stats`, `-1` where undefined.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoStats {
    /// AP at `IoU` .50:.95, all areas, 100 detections.
    pub ap: f64,
    /// AP at `IoU` .50.
    pub ap50: f64,
    /// AP at `IoU` .75.
    pub ap75: f64,
    /// AP for small objects.
    pub ap_small: f64,
    /// AP for medium objects.
    pub ap_medium: f64,
    /// AP for large objects.
    pub ap_large: f64,
    /// AR with 1 detection per image.
    pub ar1: f64,
    /// AR with 10 detections per image.
    pub ar10: f64,
    /// AR with 100 detections per image.
    pub ar100: f64,
    /// AR for small objects.
    pub ar_small: f64,
    /// AR for medium objects.
    pub ar_medium: f64,
    /// AR for large objects.
    pub ar_large: f64,
}

impl CocoStats {
    /// The field names (also the JSON keys), in `COCOeval.stats` order.
    pub const FIELDS: [&'static str; 12] = [
        "ap",
        "ap50",
        "ap75",
        "ap_small",
        "ap_medium",
        "ap_large",
        "ar1",
        "ar10",
        "ar100",
        "ar_small",
        "ar_medium",
        "ar_large",
    ];

    /// The values in `COCOeval.stats` order.
    #[must_use]
    pub fn to_array(&self) -> [f64; 12] {
        [
            self.ap,
            self.ap50,
            self.ap75,
            self.ap_small,
            self.ap_medium,
            self.ap_large,
            self.ar1,
            self.ar10,
            self.ar100,
            self.ar_small,
            self.ar_medium,
            self.ar_large,
        ]
    }
}

/// The summary numbers of one category, with `COCOeval.summarize`'s rule applied to it alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CocoCategoryResult {
    /// Category id.
    pub category_id: i64,
    /// Category name.
    pub name: String,
    /// Non-crowd GTs.
    pub n_gt: usize,
    /// Crowd GTs.
    pub n_gt_crowd: usize,
    /// Detections of this category in the results list (before any cut).
    pub n_det: usize,
    /// The 12 summary numbers for this category alone (flattened into the same JSON object).
    #[serde(flatten)]
    pub stats: CocoStats,
    /// AP at each `IoU` threshold (all areas, 100 detections).
    pub ap_per_iou: Vec<f64>,
    /// Recall at each `IoU` threshold (all areas, 100 detections).
    pub recall_per_iou: Vec<f64>,
    /// The sampled precision at `IoU` .50 for each recall threshold.
    pub precision_iou50: Vec<f64>,
}

/// A raw precision/recall curve: one point per detection in accumulation order (ignored
/// detections keep their place), before the envelope and the 101-point sampling.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PrCurve {
    /// Number of non-ignored GTs (the recall denominator).
    pub n_positives: usize,
    /// Score of each detection.
    pub scores: Vec<f64>,
    /// Recall after each detection.
    pub recall: Vec<f64>,
    /// Precision after each detection, `tp / (tp + fp + 2^-52)`.
    pub precision: Vec<f64>,
}

/// The result of [`evaluate_coco`]: `eval['precision']`, `eval['recall']`, the stats, the
/// per-category summary and a per-detection matching status.
#[derive(Clone, Debug)]
pub struct CocoEvaluation {
    /// The parameters used.
    pub params: CocoParams,
    /// Image ids, ascending.
    pub image_ids: Vec<i64>,
    /// Category ids, ascending (the `K` axis).
    pub category_ids: Vec<i64>,
    /// `COCOeval.stats`.
    pub stats: CocoStats,
    /// One entry per category, ascending id.
    pub per_category: Vec<CocoCategoryResult>,
    /// One string per detection (input order), one character per `IoU` threshold, area `all`:
    /// `T` matched, `F` unmatched, `I` ignored (matched to an ignored GT, or unmatched and
    /// outside the area range), `X` not evaluated (beyond the per-image-and-category cut, or
    /// of a category the ground truth does not list).
    pub det_status: Vec<String>,
    precision: Vec<f64>,
    recall: Vec<f64>,
    categories: Vec<CategoryEval>,
}

impl CocoEvaluation {
    /// The shape `[T, R, K, A, M]` of the precision array.
    #[must_use]
    pub fn precision_shape(&self) -> [usize; 5] {
        [
            self.params.iou_thresholds.len(),
            self.params.recall_thresholds.len(),
            self.category_ids.len(),
            self.params.area_ranges.len(),
            self.params.max_dets.len(),
        ]
    }

    /// The shape `[T, K, A, M]` of the recall array.
    #[must_use]
    pub fn recall_shape(&self) -> [usize; 4] {
        let [t, _, k, a, m] = self.precision_shape();
        [t, k, a, m]
    }

    /// `eval['precision']` flattened in C order, shape [`Self::precision_shape`].
    #[must_use]
    pub fn precision_array(&self) -> &[f64] {
        &self.precision
    }

    /// `eval['recall']` flattened in C order, shape [`Self::recall_shape`].
    #[must_use]
    pub fn recall_array(&self) -> &[f64] {
        &self.recall
    }

    /// `precision[t, r, k, a, m]`, or `None` if an index is out of range.
    #[must_use]
    pub fn precision(&self, t: usize, r: usize, k: usize, a: usize, m: usize) -> Option<f64> {
        let [nt, nr, nk, na, nm] = self.precision_shape();
        (t < nt && r < nr && k < nk && a < na && m < nm)
            .then(|| self.precision[(((t * nr + r) * nk + k) * na + a) * nm + m])
    }

    /// `recall[t, k, a, m]`, or `None` if an index is out of range.
    #[must_use]
    pub fn recall(&self, t: usize, k: usize, a: usize, m: usize) -> Option<f64> {
        let [nt, nk, na, nm] = self.recall_shape();
        (t < nt && k < nk && a < na && m < nm)
            .then(|| self.recall[((t * nk + k) * na + a) * nm + m])
    }

    /// The raw PR curve of category index `k` at `IoU` index `t`, area index `a` and maxDets index
    /// `m`, or `None` if an index is out of range or the cell has no non-ignored GT (`-1`).
    #[must_use]
    pub fn pr_curve(&self, k: usize, t: usize, a: usize, m: usize) -> Option<PrCurve> {
        let category = self.categories.get(k)?;
        let images = category.per_area.get(a)?;
        let max_det = *self.params.max_dets.get(m)?;
        if t >= self.params.iou_thresholds.len() {
            return None;
        }
        let n_positives: usize = images.iter().map(|e| e.n_regular_gt).sum();
        if n_positives == 0 {
            return None;
        }
        let entries = accumulation_order(images, max_det);
        let (recall, precision) = cumulative_pr(images, &entries, t, n_positives);
        let scores = entries.iter().map(|&(i, d)| images[i].scores[d]).collect();
        Some(PrCurve { n_positives, scores, recall, precision })
    }
}

impl CocoDataset {
    /// Reads a COCO "instances" file.
    pub fn read(path: &Path) -> Result<Self, MetricsError> {
        let text = json::read(path)?;
        Self::parse(&text, &path.display().to_string())
    }

    /// Parses a COCO "instances" JSON text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, MetricsError> {
        let ctx = Ctx { file };
        let root = ctx.parse(text)?;
        let root = ctx.object(&root, "<root>")?;

        let images = ctx.member_items(root, "", "images", |v, path| parse_image(ctx, v, path))?;
        let categories =
            ctx.member_items(root, "", "categories", |v, path| parse_category(ctx, v, path))?;
        let annotations =
            ctx.member_items(root, "", "annotations", |v, path| parse_annotation(ctx, v, path))?;
        unique_ids(ctx, "images", images.iter().map(|i| i.id))?;
        unique_ids(ctx, "categories", categories.iter().map(|c| c.id))?;
        // pycocotools keys annotations by id: of two with one id, the last is evaluated twice.
        unique_ids(ctx, "annotations", annotations.iter().map(|a| a.id))?;
        Ok(Self { images, categories, annotations })
    }
}

impl CocoDetection {
    /// Reads a COCO results file (a JSON list of detections).
    pub fn read_list(path: &Path) -> Result<Vec<Self>, MetricsError> {
        let text = json::read(path)?;
        Self::parse_list(&text, &path.display().to_string())
    }

    /// Parses a COCO results list; `file` names it in errors. An empty list is valid.
    pub fn parse_list(text: &str, file: &str) -> Result<Vec<Self>, MetricsError> {
        let ctx = Ctx { file };
        let root = ctx.parse(text)?;
        ctx.items(&root, "", |v, path| parse_detection(ctx, v, path))
    }
}

/// Refuses a list whose `id`s repeat: pycocotools would keep the last entry of an id and
/// evaluate silently against it.
fn unique_ids(
    ctx: Ctx<'_>,
    list: &str,
    ids: impl Iterator<Item = i64>,
) -> Result<(), MetricsError> {
    let mut first = std::collections::HashMap::new();
    for (i, id) in ids.enumerate() {
        if let Some(j) = first.insert(id, i) {
            return Err(ctx.invalid(
                &format!("{list}[{i}].id"),
                format!("id {id} is already used by {list}[{j}]"),
            ));
        }
    }
    Ok(())
}

fn parse_image(ctx: Ctx<'_>, value: &Value, path: &str) -> Result<CocoImage, MetricsError> {
    let object = ctx.object(value, path)?;
    let (id, field) = ctx.member(object, path, "id")?;
    let id = ctx.i64(id, &field)?;
    let width = ctx.image_size(object, path, "width")?;
    let height = ctx.image_size(object, path, "height")?;
    let file_name = match object.get("file_name") {
        None | Some(Value::Null) => None,
        Some(v) => Some(ctx.string(v, &json::join(path, "file_name"))?),
    };
    Ok(CocoImage { id, width, height, file_name })
}

fn parse_category(ctx: Ctx<'_>, value: &Value, path: &str) -> Result<CocoCategory, MetricsError> {
    let object = ctx.object(value, path)?;
    let (id, field) = ctx.member(object, path, "id")?;
    let id = ctx.i64(id, &field)?;
    let (name, field) = ctx.member(object, path, "name")?;
    let name = ctx.string(name, &field)?;
    let supercategory = match object.get("supercategory") {
        None | Some(Value::Null) => None,
        Some(v) => Some(ctx.string(v, &json::join(path, "supercategory"))?),
    };
    Ok(CocoCategory { id, name, supercategory })
}

fn parse_annotation(
    ctx: Ctx<'_>,
    value: &Value,
    path: &str,
) -> Result<CocoAnnotation, MetricsError> {
    let object = ctx.object(value, path)?;
    let (v, field) = ctx.member(object, path, "id")?;
    let id = ctx.i64(v, &field)?;
    let (v, field) = ctx.member(object, path, "image_id")?;
    let image_id = ctx.i64(v, &field)?;
    let (v, field) = ctx.member(object, path, "category_id")?;
    let category_id = ctx.i64(v, &field)?;
    let (v, field) = ctx.member(object, path, "bbox")?;
    let bbox = ctx.bbox(v, &field)?;
    check_size(ctx, bbox, &field)?;
    let (v, field) = ctx.member(object, path, "area")?;
    let area = ctx.f64(v, &field)?;
    let iscrowd = match object.get("iscrowd") {
        None | Some(Value::Null) => false,
        Some(v) => ctx.flag(v, &json::join(path, "iscrowd"))?,
    };
    Ok(CocoAnnotation { id, image_id, category_id, bbox, area, iscrowd, ignore: false })
}

fn parse_detection(ctx: Ctx<'_>, value: &Value, path: &str) -> Result<CocoDetection, MetricsError> {
    let object = ctx.object(value, path)?;
    let (v, field) = ctx.member(object, path, "image_id")?;
    let image_id = ctx.i64(v, &field)?;
    let (v, field) = ctx.member(object, path, "category_id")?;
    let category_id = ctx.i64(v, &field)?;
    let (v, field) = ctx.member(object, path, "bbox")?;
    let bbox = ctx.bbox(v, &field)?;
    check_size(ctx, bbox, &field)?;
    let (v, field) = ctx.member(object, path, "score")?;
    let score = ctx.f64(v, &field)?;
    Ok(CocoDetection { image_id, category_id, bbox, score })
}

/// Rejects non-finite coordinates and negative widths or heights.
fn check_size(ctx: Ctx<'_>, bbox: [f64; 4], field: &str) -> Result<(), MetricsError> {
    if bbox.iter().any(|x| !x.is_finite()) {
        return Err(ctx.invalid(field, "coordinates must be finite"));
    }
    if bbox[2] < 0.0 || bbox[3] < 0.0 {
        return Err(ctx.invalid(
            field,
            format!("width and height must be >= 0, found {} x {}", bbox[2], bbox[3]),
        ));
    }
    Ok(())
}

/// The matching results of one (image, category, area range), pycocotools' `evalImgs` entry.
#[derive(Clone, Debug)]
struct ImageEval {
    /// Scores of the kept detections, descending.
    scores: Vec<f64>,
    /// `[T, D]`: matched to some GT at threshold t.
    matched: Vec<bool>,
    /// `[T, D]`: ignored at threshold t.
    ignored: Vec<bool>,
    /// GTs that are not ignored in this area range.
    n_regular_gt: usize,
}

/// Per area range, the [`ImageEval`]s of the images that have GT or detections of a category,
/// in ascending image id.
#[derive(Clone, Debug)]
struct CategoryEval {
    per_area: Vec<Vec<ImageEval>>,
}

/// The GTs and detections of one category on one image, as indices into the inputs.
#[derive(Clone, Debug, Default)]
struct Cell {
    gts: Vec<usize>,
    dets: Vec<usize>,
}

struct CategoryOutput {
    eval: CategoryEval,
    /// `[T, R, A, M]`.
    precision: Vec<f64>,
    /// `[T, A, M]`.
    recall: Vec<f64>,
    /// `(detection index, status)` for every detection of the category.
    status: Vec<(usize, String)>,
}

/// Evaluates `detections` against `ground_truth` as `COCOeval(iouType='bbox')` does with
/// `params`.
///
/// Detections of a category that the ground truth does not list are dropped (status `X`), as
/// pycocotools does; so are GT annotations of unlisted categories. A detection or annotation on
/// an image the ground truth does not list is an error.
pub fn evaluate_coco(
    ground_truth: &CocoDataset,
    detections: &[CocoDetection],
    params: &CocoParams,
) -> Result<CocoEvaluation, MetricsError> {
    validate_params(params)?;
    validate_boxes(ground_truth, detections)?;

    let mut image_ids: Vec<i64> = ground_truth.images.iter().map(|i| i.id).collect();
    image_ids.sort_unstable();
    image_ids.dedup();
    let image_index: HashMap<i64, usize> =
        image_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();

    let mut category_ids: Vec<i64> = ground_truth.categories.iter().map(|c| c.id).collect();
    category_ids.sort_unstable();
    category_ids.dedup();
    let category_index: HashMap<i64, usize> =
        category_ids.iter().enumerate().map(|(i, &id)| (id, i)).collect();
    let mut names = vec![String::new(); category_ids.len()];
    for category in ground_truth.categories.iter().rev() {
        if let Some(&k) = category_index.get(&category.id) {
            names[k].clone_from(&category.name);
        }
    }

    let n_iou = params.iou_thresholds.len();
    let mut cells: Vec<BTreeMap<usize, Cell>> = vec![BTreeMap::new(); category_ids.len()];
    let mut n_gt = vec![0_usize; category_ids.len()];
    let mut n_gt_crowd = vec![0_usize; category_ids.len()];
    let mut n_det = vec![0_usize; category_ids.len()];
    for (j, annotation) in ground_truth.annotations.iter().enumerate() {
        let Some(&i) = image_index.get(&annotation.image_id) else {
            return Err(MetricsError::UnknownImage {
                file: "ground truth".to_owned(),
                field: format!("annotations[{j}].image_id"),
                image_id: annotation.image_id.to_string(),
            });
        };
        if let Some(&k) = category_index.get(&annotation.category_id) {
            cells[k].entry(i).or_default().gts.push(j);
            if annotation.iscrowd {
                n_gt_crowd[k] += 1;
            } else {
                n_gt[k] += 1;
            }
        }
    }
    let mut det_status = vec!["X".repeat(n_iou); detections.len()];
    for (j, detection) in detections.iter().enumerate() {
        let Some(&i) = image_index.get(&detection.image_id) else {
            return Err(MetricsError::UnknownImage {
                file: "detections".to_owned(),
                field: format!("[{j}].image_id"),
                image_id: detection.image_id.to_string(),
            });
        };
        if let Some(&k) = category_index.get(&detection.category_id) {
            cells[k].entry(i).or_default().dets.push(j);
            n_det[k] += 1;
        }
    }

    let outputs: Vec<CategoryOutput> = cells
        .par_iter()
        .map(|cells| evaluate_category(cells, &ground_truth.annotations, detections, params))
        .collect();

    let [nt, nr, nk, na, nm] = [
        n_iou,
        params.recall_thresholds.len(),
        category_ids.len(),
        params.area_ranges.len(),
        params.max_dets.len(),
    ];
    let mut precision = vec![-1.0; nt * nr * nk * na * nm];
    let mut recall = vec![-1.0; nt * nk * na * nm];
    let mut categories = Vec::with_capacity(nk);
    for (k, output) in outputs.into_iter().enumerate() {
        for t in 0..nt {
            for a in 0..na {
                for m in 0..nm {
                    recall[((t * nk + k) * na + a) * nm + m] = output.recall[(t * na + a) * nm + m];
                    for r in 0..nr {
                        precision[(((t * nr + r) * nk + k) * na + a) * nm + m] =
                            output.precision[((t * nr + r) * na + a) * nm + m];
                    }
                }
            }
        }
        for (j, status) in output.status {
            det_status[j] = status;
        }
        categories.push(output.eval);
    }

    let mut evaluation = CocoEvaluation {
        params: params.clone(),
        image_ids,
        category_ids,
        stats: CocoStats {
            ap: -1.0,
            ap50: -1.0,
            ap75: -1.0,
            ap_small: -1.0,
            ap_medium: -1.0,
            ap_large: -1.0,
            ar1: -1.0,
            ar10: -1.0,
            ar100: -1.0,
            ar_small: -1.0,
            ar_medium: -1.0,
            ar_large: -1.0,
        },
        per_category: Vec::new(),
        det_status,
        precision,
        recall,
        categories,
    };
    evaluation.stats = summarize(&evaluation, None);
    evaluation.per_category = (0..nk)
        .map(|k| {
            let stats = summarize(&evaluation, Some(k));
            let all = area_index(params, "all");
            let m_last = nm - 1;
            let iou50 = iou_index(params, 0.5);
            CocoCategoryResult {
                category_id: evaluation.category_ids[k],
                name: names[k].clone(),
                n_gt: n_gt[k],
                n_gt_crowd: n_gt_crowd[k],
                n_det: n_det[k],
                stats,
                ap_per_iou: (0..nt)
                    .map(|t| {
                        all.map_or(-1.0, |a| {
                            mean_valid(
                                (0..nr).filter_map(|r| evaluation.precision(t, r, k, a, m_last)),
                            )
                        })
                    })
                    .collect(),
                recall_per_iou: (0..nt)
                    .map(|t| all.and_then(|a| evaluation.recall(t, k, a, m_last)).unwrap_or(-1.0))
                    .collect(),
                precision_iou50: match (iou50, all) {
                    (Some(t), Some(a)) => {
                        (0..nr).filter_map(|r| evaluation.precision(t, r, k, a, m_last)).collect()
                    }
                    _ => Vec::new(),
                },
            }
        })
        .collect();
    Ok(evaluation)
}

fn validate_params(params: &CocoParams) -> Result<(), MetricsError> {
    let invalid = |name, reason: &str| {
        Err(MetricsError::InvalidParameter { name, reason: reason.to_owned() })
    };
    if params.iou_thresholds.is_empty() || params.iou_thresholds.iter().any(|t| !t.is_finite()) {
        return invalid("iou_thresholds", "must be a non-empty list of finite values");
    }
    if params.recall_thresholds.is_empty()
        || params.recall_thresholds.iter().any(|t| !t.is_finite())
    {
        return invalid("recall_thresholds", "must be a non-empty list of finite values");
    }
    if params.area_ranges.is_empty()
        || params.area_ranges.iter().any(|r| r.lo.is_nan() || r.hi.is_nan())
    {
        return invalid("area_ranges", "must be a non-empty list of ranges without NaN");
    }
    if params.max_dets.is_empty() || params.max_dets.windows(2).any(|w| w[0] > w[1]) {
        return invalid("max_dets", "must be a non-empty ascending list");
    }
    Ok(())
}

/// Checks in-memory inputs the way the JSON readers do (finite values, sizes `>= 0`).
fn validate_boxes(
    ground_truth: &CocoDataset,
    detections: &[CocoDetection],
) -> Result<(), MetricsError> {
    let gt_ctx = Ctx { file: "ground truth" };
    for (j, annotation) in ground_truth.annotations.iter().enumerate() {
        check_size(gt_ctx, annotation.bbox, &format!("annotations[{j}].bbox"))?;
        if !annotation.area.is_finite() {
            return Err(gt_ctx.invalid(&format!("annotations[{j}].area"), "must be finite"));
        }
    }
    let det_ctx = Ctx { file: "detections" };
    for (j, detection) in detections.iter().enumerate() {
        check_size(det_ctx, detection.bbox, &format!("[{j}].bbox"))?;
        if !detection.score.is_finite() {
            return Err(det_ctx.invalid(&format!("[{j}].score"), "must be finite"));
        }
    }
    Ok(())
}

/// maskApi.c `bbIou` for one pair, in its operation order.
fn bb_iou(d: [f64; 4], g: [f64; 4], crowd: bool) -> f64 {
    let iw = (d[0] + d[2]).min(g[0] + g[2]) - d[0].max(g[0]);
    if iw <= 0.0 {
        return 0.0;
    }
    let ih = (d[1] + d[3]).min(g[1] + g[3]) - d[1].max(g[1]);
    if ih <= 0.0 {
        return 0.0;
    }
    let inter = iw * ih;
    let det_area = d[2] * d[3];
    let union = if crowd { det_area } else { det_area + g[2] * g[3] - inter };
    inter / union
}

fn evaluate_category(
    cells: &BTreeMap<usize, Cell>,
    annotations: &[CocoAnnotation],
    detections: &[CocoDetection],
    params: &CocoParams,
) -> CategoryOutput {
    let nt = params.iou_thresholds.len();
    let na = params.area_ranges.len();
    let nr = params.recall_thresholds.len();
    let nm = params.max_dets.len();
    let max_det = params.max_dets.last().copied().unwrap_or(0);
    let status_area = area_index(params, "all").unwrap_or(0);

    let mut per_area: Vec<Vec<ImageEval>> = vec![Vec::with_capacity(cells.len()); na];
    let mut status = Vec::new();
    for cell in cells.values() {
        // Step 4: stable sort by descending score, then the per-(image, category) cut.
        let mut order = cell.dets.clone();
        order.sort_by(|&a, &b| detections[b].score.total_cmp(&detections[a].score));
        for &j in order.iter().skip(max_det) {
            status.push((j, "X".repeat(nt)));
        }
        order.truncate(max_det);
        let gts: Vec<&CocoAnnotation> = cell.gts.iter().map(|&j| &annotations[j]).collect();
        let ng = gts.len();
        let ious: Vec<f64> = order
            .iter()
            .flat_map(|&j| gts.iter().map(move |g| bb_iou(detections[j].bbox, g.bbox, g.iscrowd)))
            .collect();
        let scores: Vec<f64> = order.iter().map(|&j| detections[j].score).collect();

        for (a, range) in params.area_ranges.iter().enumerate() {
            let ignore: Vec<bool> = gts
                .iter()
                .map(|g| g.iscrowd || g.ignore || g.area < range.lo || g.area > range.hi)
                .collect();
            let reordered: Vec<usize> =
                (0..ng).filter(|&g| !ignore[g]).chain((0..ng).filter(|&g| ignore[g])).collect();
            let nd = order.len();
            let mut matched = vec![false; nt * nd];
            let mut ignored = vec![false; nt * nd];
            for (t, &threshold) in params.iou_thresholds.iter().enumerate() {
                let mut taken = vec![false; ng];
                for d in 0..nd {
                    let mut best = threshold.min(1.0 - 1e-10);
                    let mut found: Option<usize> = None;
                    for &g in &reordered {
                        if taken[g] && !gts[g].iscrowd {
                            continue;
                        }
                        if found.is_some_and(|m| !ignore[m]) && ignore[g] {
                            break;
                        }
                        let iou = ious[d * ng + g];
                        if iou < best {
                            continue;
                        }
                        best = iou;
                        found = Some(g);
                    }
                    if let Some(g) = found {
                        matched[t * nd + d] = true;
                        ignored[t * nd + d] = ignore[g];
                        taken[g] = true;
                    }
                }
            }
            // Step 7: an unmatched detection outside the area range is ignored.
            for (d, &j) in order.iter().enumerate() {
                let b = detections[j].bbox;
                let area = b[2] * b[3];
                if area < range.lo || area > range.hi {
                    for t in 0..nt {
                        if !matched[t * nd + d] {
                            ignored[t * nd + d] = true;
                        }
                    }
                }
            }
            if a == status_area {
                for (d, &j) in order.iter().enumerate() {
                    let s: String = (0..nt)
                        .map(|t| match (matched[t * nd + d], ignored[t * nd + d]) {
                            (_, true) => 'I',
                            (true, false) => 'T',
                            (false, false) => 'F',
                        })
                        .collect();
                    status.push((j, s));
                }
            }
            per_area[a].push(ImageEval {
                scores: scores.clone(),
                matched,
                ignored,
                n_regular_gt: ignore.iter().filter(|&&i| !i).count(),
            });
        }
    }

    let mut precision = vec![-1.0; nt * nr * na * nm];
    let mut recall = vec![-1.0; nt * na * nm];
    for (a, images) in per_area.iter().enumerate() {
        let n_positives: usize = images.iter().map(|e| e.n_regular_gt).sum();
        if n_positives == 0 {
            continue;
        }
        for (m, &max_det) in params.max_dets.iter().enumerate() {
            let entries = accumulation_order(images, max_det);
            for t in 0..nt {
                let (rc, mut pr) = cumulative_pr(images, &entries, t, n_positives);
                recall[(t * na + a) * nm + m] = rc.last().copied().unwrap_or(0.0);
                for i in (1..pr.len()).rev() {
                    if pr[i] > pr[i - 1] {
                        pr[i - 1] = pr[i];
                    }
                }
                for (r, &threshold) in params.recall_thresholds.iter().enumerate() {
                    let idx = rc.partition_point(|&x| x < threshold);
                    precision[((t * nr + r) * na + a) * nm + m] =
                        pr.get(idx).copied().unwrap_or(0.0);
                }
            }
        }
    }
    CategoryOutput { eval: CategoryEval { per_area }, precision, recall, status }
}

/// Step 9: the first `max_det` detections of each image (ascending id), stably sorted by
/// descending score. Entries are `(image position, detection position)`.
fn accumulation_order(images: &[ImageEval], max_det: usize) -> Vec<(usize, usize)> {
    let mut entries: Vec<(usize, usize)> = images
        .iter()
        .enumerate()
        .flat_map(|(i, e)| (0..e.scores.len().min(max_det)).map(move |d| (i, d)))
        .collect();
    entries.sort_by(|&(ia, da), &(ib, db)| images[ib].scores[db].total_cmp(&images[ia].scores[da]));
    entries
}

/// Step 10: recall and precision after each entry at `IoU` index `t`.
fn cumulative_pr(
    images: &[ImageEval],
    entries: &[(usize, usize)],
    t: usize,
    n_positives: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut tp = 0.0_f64;
    let mut fp = 0.0_f64;
    let mut rc = Vec::with_capacity(entries.len());
    let mut pr = Vec::with_capacity(entries.len());
    for &(i, d) in entries {
        let e = &images[i];
        let nd = e.scores.len();
        if !e.ignored[t * nd + d] {
            if e.matched[t * nd + d] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
        }
        rc.push(tp / n_positives as f64);
        pr.push(tp / (tp + fp + PRECISION_EPS));
    }
    (rc, pr)
}

fn area_index(params: &CocoParams, label: &str) -> Option<usize> {
    params.area_ranges.iter().position(|r| r.label == label)
}

fn iou_index(params: &CocoParams, threshold: f64) -> Option<usize> {
    params.iou_thresholds.iter().position(|&t| t == threshold)
}

/// `COCOeval.summarizeDets`, over every category (`None`) or one category index.
fn summarize(e: &CocoEvaluation, category: Option<usize>) -> CocoStats {
    let [nt, nr, nk, _, nm] = e.precision_shape();
    let params = &e.params;
    let ks: Vec<usize> = category.map_or_else(|| (0..nk).collect(), |k| vec![k]);
    let ks = ks.as_slice();
    let m_at = |max_det: usize| params.max_dets.iter().position(|&m| m == max_det);
    let m_last = Some(nm - 1);
    let ap = |iou: Option<f64>, area: &str, m: Option<usize>| -> f64 {
        let (Some(a), Some(m)) = (area_index(params, area), m) else { return -1.0 };
        let ts: Vec<usize> = match iou {
            None => (0..nt).collect(),
            Some(threshold) => iou_index(params, threshold).into_iter().collect(),
        };
        if ts.is_empty() {
            return -1.0;
        }
        mean_valid(ts.iter().flat_map(|&t| {
            (0..nr).flat_map(move |r| ks.iter().filter_map(move |&k| e.precision(t, r, k, a, m)))
        }))
    };
    let ar = |area: &str, m: Option<usize>| -> f64 {
        let (Some(a), Some(m)) = (area_index(params, area), m) else { return -1.0 };
        mean_valid((0..nt).flat_map(|t| ks.iter().filter_map(move |&k| e.recall(t, k, a, m))))
    };
    CocoStats {
        ap: ap(None, "all", m_last),
        ap50: ap(Some(0.5), "all", m_last),
        ap75: ap(Some(0.75), "all", m_last),
        ap_small: ap(None, "small", m_last),
        ap_medium: ap(None, "medium", m_last),
        ap_large: ap(None, "large", m_last),
        ar1: ar("all", m_at(1)),
        ar10: ar("all", m_at(10)),
        ar100: ar("all", m_at(100)),
        ar_small: ar("small", m_last),
        ar_medium: ar("medium", m_last),
        ar_large: ar("large", m_last),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn dataset(boxes: &[(i64, [f64; 4], bool)]) -> CocoDataset {
        let mut images: Vec<i64> = boxes.iter().map(|b| b.0).collect();
        images.sort_unstable();
        images.dedup();
        CocoDataset {
            images: images
                .into_iter()
                .map(|id| CocoImage { id, width: None, height: None, file_name: None })
                .collect(),
            categories: vec![CocoCategory { id: 1, name: "a".into(), supercategory: None }],
            annotations: boxes
                .iter()
                .enumerate()
                .map(|(j, &(image_id, bbox, iscrowd))| CocoAnnotation {
                    id: j as i64 + 1,
                    image_id,
                    category_id: 1,
                    bbox,
                    area: bbox[2] * bbox[3],
                    iscrowd,
                    ignore: false,
                })
                .collect(),
        }
    }

    #[test]
    fn default_thresholds_equal_numpy_linspace() {
        let p = CocoParams::default();
        assert_eq!(p.iou_thresholds[8], 0.899_999_999_999_999_9);
        assert_eq!(p.iou_thresholds[9], 0.95);
        assert_eq!(p.recall_thresholds[70], 0.700_000_000_000_000_1);
        assert_eq!(p.recall_thresholds[100], 1.0);
    }

    #[test]
    fn crowd_iou_is_intersection_over_detection_area() {
        let iou = bb_iou([0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 100.0, 100.0], true);
        assert_eq!(iou, 1.0);
        let iou = bb_iou([0.0, 0.0, 10.0, 10.0], [0.0, 0.0, 100.0, 100.0], false);
        assert_eq!(iou, 0.01);
    }

    #[test]
    fn detection_on_unknown_image_is_an_error() {
        let gt = dataset(&[(1, [0.0, 0.0, 10.0, 10.0], false)]);
        let dets = [CocoDetection { image_id: 9, category_id: 1, bbox: [0.0; 4], score: 1.0 }];
        let err = evaluate_coco(&gt, &dets, &CocoParams::default()).unwrap_err();
        assert!(matches!(err, MetricsError::UnknownImage { .. }), "{err}");
    }

    #[test]
    fn parse_errors_name_file_and_field() {
        let text = r#"{"images": [{"id": 1}], "categories": [{"id": 1, "name": "a"}],
            "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, "w", 1], "area": 1}]}"#;
        let err = CocoDataset::parse(text, "gt.json").unwrap_err().to_string();
        assert!(err.contains("gt.json") && err.contains("annotations[0].bbox[2]"), "{err}");
        let err = CocoDetection::parse_list(
            r#"[{"image_id": 1, "bbox": [0,0,1,1], "score": 1}]"#,
            "d.json",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("d.json") && err.contains("[0].category_id"), "{err}");
    }

    #[test]
    fn pr_curve_matches_sampled_precision_at_iou50() {
        let gt = dataset(&[(1, [0.0, 0.0, 10.0, 10.0], false), (2, [5.0, 5.0, 20.0, 20.0], false)]);
        let dets = [
            CocoDetection { image_id: 1, category_id: 1, bbox: [0.0, 0.0, 10.0, 10.0], score: 0.9 },
            CocoDetection { image_id: 2, category_id: 1, bbox: [50.0, 50.0, 5.0, 5.0], score: 0.8 },
            CocoDetection { image_id: 2, category_id: 1, bbox: [5.0, 5.0, 20.0, 20.0], score: 0.7 },
        ];
        let e = evaluate_coco(&gt, &dets, &CocoParams::default()).unwrap();
        let curve = e.pr_curve(0, 0, 0, 2).unwrap();
        assert_eq!(curve.scores, vec![0.9, 0.8, 0.7]);
        assert_eq!(curve.recall, vec![0.5, 0.5, 1.0]);
        assert_eq!(e.det_status, vec!["TTTTTTTTTT", "FFFFFFFFFF", "TTTTTTTTTT"]);
        assert!((e.stats.ap50 - (51.0 + 50.0 * 2.0 / 3.0) / 101.0).abs() < 1e-12);
    }

    fn arb_boxes() -> impl Strategy<Value = Vec<(i64, [f64; 4])>> {
        prop::collection::vec(
            (1_i64..5, 0.0..500.0_f64, 0.0..500.0_f64, 1.0..200.0_f64, 1.0..200.0_f64)
                .prop_map(|(i, x, y, w, h)| (i, [x, y, w, h])),
            1..40,
        )
    }

    proptest! {
        #[test]
        fn perfect_detections_have_ap_one(boxes in arb_boxes()) {
            let gt = dataset(&boxes.iter().map(|&(i, b)| (i, b, false)).collect::<Vec<_>>());
            let dets: Vec<CocoDetection> = boxes
                .iter()
                .enumerate()
                .map(|(j, &(image_id, bbox))| CocoDetection {
                    image_id, category_id: 1, bbox, score: 1.0 - j as f64 * 1e-3,
                })
                .collect();
            let e = evaluate_coco(&gt, &dets, &CocoParams::default()).unwrap();
            // Identical boxes may swap matches, but every GT is still found at every threshold.
            prop_assert!((e.stats.ap - 1.0).abs() < 1e-12);
            prop_assert!((e.stats.ar100 - 1.0).abs() < 1e-12);
        }

        #[test]
        fn ap_and_ar_lie_in_unit_interval_or_are_minus_one(
            boxes in arb_boxes(),
            jitter in prop::collection::vec((-20.0..20.0_f64, 0.0..1.0_f64), 40),
        ) {
            let gt = dataset(&boxes.iter().map(|&(i, b)| (i, b, false)).collect::<Vec<_>>());
            let dets: Vec<CocoDetection> = boxes
                .iter()
                .zip(&jitter)
                .map(|(&(image_id, b), &(dx, score))| CocoDetection {
                    image_id, category_id: 1, bbox: [b[0] + dx, b[1], b[2], b[3]], score,
                })
                .collect();
            let e = evaluate_coco(&gt, &dets, &CocoParams::default()).unwrap();
            for v in e.stats.to_array() {
                prop_assert!(v == -1.0 || (0.0..=1.0).contains(&v), "{v}");
            }
            for &p in e.precision_array() {
                prop_assert!(p == -1.0 || (0.0..=1.0).contains(&p));
            }
        }
    }
}
