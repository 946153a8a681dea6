//! COCO-style mAP for training and validation loops, from in-memory boxes.
//!
//! The boxes are converted to COCO form (`[x, y, w, h]` with `w = x_max - x_min`, computed in
//! `f64`; a GT's area is `w * h`) and evaluated by [`super::coco::evaluate_coco`] with default
//! parameters, so the numbers here are exactly pycocotools' numbers on the same boxes. Class
//! index `c` becomes category id `c`, image `i` becomes image id `i`.
//!
//! * `crowd` GTs are COCO crowd regions; `difficult` GTs are ignored regular GTs (matched once,
//!   by `IoU`, never counted), the VOC meaning. Both are left out of `instances` and recall.
//! * Per-class precision and recall are taken at the **maximum-F1 point** of the class's raw
//!   PR curve at `IoU` 0.5 (all areas, 100 detections per image): the confidence threshold a user
//!   would pick for that class. The first maximum wins on ties; with no true positive both are 0.
//!   (The last detection's operating point is always available through
//!   [`super::coco::CocoEvaluation::pr_curve`].)
//!
//! ```
//! use yolo3_core::metrics::{evaluate_map, DetectedBox, GroundTruthBox, ImageBoxes, COCO_MAX_DETS};
//! use yolo3_core::BoxXyxy;
//!
//! let bbox = BoxXyxy::new(10.0, 10.0, 60.0, 40.0);
//! let images = vec![ImageBoxes {
//!     ground_truth: vec![GroundTruthBox { bbox, class: 0, ..Default::default() }],
//!     detections: vec![DetectedBox { bbox, score: 0.9, class: 0 }],
//! }];
//! let summary = evaluate_map(&images, 2, COCO_MAX_DETS).unwrap();
//! assert!((summary.map50.unwrap() - 1.0).abs() < 1e-12);
//! assert_eq!(summary.classes[1].ap50, None); // no ground truth: undefined, not 0
//! ```

use serde::{Deserialize, Serialize};

use super::coco::{
    evaluate_coco, CocoAnnotation, CocoCategory, CocoDataset, CocoDetection, CocoEvaluation,
    CocoImage, CocoParams,
};
use super::table::{figure, Table};
use super::MetricsError;
use crate::geometry::BoxXyxy;

/// A ground-truth box of one image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GroundTruthBox {
    /// Corners in pixels.
    pub bbox: BoxXyxy,
    /// Class index, `0..num_classes`.
    pub class: usize,
    /// VOC "difficult": ignored, matched once by `IoU`.
    #[serde(default)]
    pub difficult: bool,
    /// COCO crowd region: ignored, matched any number of times by intersection over the
    /// detection's area.
    #[serde(default)]
    pub crowd: bool,
}

/// A detected box of one image.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DetectedBox {
    /// Corners in pixels.
    pub bbox: BoxXyxy,
    /// Confidence; higher is better.
    pub score: f32,
    /// Class index, `0..num_classes`.
    pub class: usize,
}

/// The ground truth and the detections of one image.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageBoxes {
    /// Ground-truth boxes.
    pub ground_truth: Vec<GroundTruthBox>,
    /// Detections (any order; at most the 100 best per class are evaluated, as COCO does).
    pub detections: Vec<DetectedBox>,
}

/// One class's row of a validation report.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClassSummary {
    /// Class index.
    pub class: usize,
    /// Images with at least one GT of the class (crowd and difficult included).
    pub images: usize,
    /// GTs of the class that count (neither crowd nor difficult).
    pub instances: usize,
    /// Precision at the max-F1 point at `IoU` 0.5.
    pub precision: f64,
    /// Recall at the max-F1 point at `IoU` 0.5.
    pub recall: f64,
    /// AP at `IoU` 0.5; `None` without counted instances.
    pub ap50: Option<f64>,
    /// AP at `IoU` 0.50:0.95; `None` without counted instances.
    pub ap50_95: Option<f64>,
}

/// The result of [`evaluate_map`].
#[derive(Clone, Debug)]
pub struct MapSummary {
    /// COCO AP50 over the classes with counted instances; `None` if there are none.
    pub map50: Option<f64>,
    /// COCO AP (`IoU` 0.50:0.95); `None` if no class has counted instances.
    pub map50_95: Option<f64>,
    /// One row per class index.
    pub classes: Vec<ClassSummary>,
    /// The full COCO evaluation behind the numbers (all 12 stats, PR curves).
    pub coco: CocoEvaluation,
}

impl MapSummary {
    /// Mean precision and recall over the classes that have counted instances (0 without any).
    #[must_use]
    pub fn mean_precision_recall(&self) -> (f64, f64) {
        mean_precision_recall(self.classes.iter())
    }

    /// `Class Images Instances P R mAP50 mAP50-95`: an `all` row, then one row per class
    /// (named by `class_names`, `?` past its end).
    #[must_use]
    pub fn table(&self, class_names: &[String]) -> String {
        let rows: Vec<(&str, &ClassSummary)> = self
            .classes
            .iter()
            .map(|c| (class_names.get(c.class).map_or("?", String::as_str), c))
            .collect();
        class_table(&rows, self.coco.image_ids.len(), self.map50, self.map50_95)
    }
}

fn mean_precision_recall<'a>(rows: impl Iterator<Item = &'a ClassSummary>) -> (f64, f64) {
    let with_gt: Vec<&ClassSummary> = rows.filter(|c| c.instances > 0).collect();
    if with_gt.is_empty() {
        return (0.0, 0.0);
    }
    let n = with_gt.len() as f64;
    (
        with_gt.iter().map(|c| c.precision).sum::<f64>() / n,
        with_gt.iter().map(|c| c.recall).sum::<f64>() / n,
    )
}

/// The per-class table of [`MapSummary::table`] from named rows.
pub(crate) fn class_table(
    rows: &[(&str, &ClassSummary)],
    images: usize,
    map50: Option<f64>,
    map50_95: Option<f64>,
) -> String {
    let mut table = Table::new(&["Class", "Images", "Instances", "P", "R", "mAP50", "mAP50-95"]);
    let (precision, recall) = mean_precision_recall(rows.iter().map(|(_, c)| *c));
    table.row(vec![
        "all".into(),
        images.to_string(),
        rows.iter().map(|(_, c)| c.instances).sum::<usize>().to_string(),
        format!("{precision:.3}"),
        format!("{recall:.3}"),
        figure(map50, 3),
        figure(map50_95, 3),
    ]);
    for (name, c) in rows {
        table.row(vec![
            (*name).to_owned(),
            c.images.to_string(),
            c.instances.to_string(),
            format!("{:.3}", c.precision),
            format!("{:.3}", c.recall),
            figure(c.ap50, 3),
            figure(c.ap50_95, 3),
        ]);
    }
    table.render()
}

/// pycocotools' detections per image and class (its `maxDets`' last value).
pub const COCO_MAX_DETS: usize = 100;

/// Evaluates per-image boxes for `num_classes` classes with COCO's rules; see the module docs.
/// COCO counts the `max_dets` best detections per image and class: pycocotools' 100
/// ([`COCO_MAX_DETS`]) unless more is asked for (a large photo holds hundreds of objects; at
/// 100 its recall could not pass 100 of them). The `ar100` figure is the recall at that count.
pub fn evaluate_map(
    images: &[ImageBoxes],
    num_classes: usize,
    max_dets: usize,
) -> Result<MapSummary, MetricsError> {
    let mut dataset = CocoDataset {
        images: (0..images.len())
            .map(|i| CocoImage { id: i as i64, width: None, height: None, file_name: None })
            .collect(),
        categories: (0..num_classes)
            .map(|c| CocoCategory { id: c as i64, name: c.to_string(), supercategory: None })
            .collect(),
        annotations: Vec::new(),
    };
    let mut detections = Vec::new();
    let mut class_images = vec![0_usize; num_classes];
    let mut seen = vec![usize::MAX; num_classes];
    for (i, image) in images.iter().enumerate() {
        for (j, g) in image.ground_truth.iter().enumerate() {
            let field = format!("images[{i}].ground_truth[{j}]");
            check_class(g.class, num_classes, "ground truth", &field)?;
            let bbox = to_xywh(g.bbox, "ground truth", &field)?;
            if seen[g.class] != i {
                seen[g.class] = i;
                class_images[g.class] += 1;
            }
            dataset.annotations.push(CocoAnnotation {
                id: dataset.annotations.len() as i64 + 1,
                image_id: i as i64,
                category_id: g.class as i64,
                bbox,
                area: bbox[2] * bbox[3],
                iscrowd: g.crowd,
                ignore: g.difficult,
            });
        }
        for (j, d) in image.detections.iter().enumerate() {
            let field = format!("images[{i}].detections[{j}]");
            check_class(d.class, num_classes, "detections", &field)?;
            let bbox = to_xywh(d.bbox, "detections", &field)?;
            if !d.score.is_finite() {
                return Err(MetricsError::InvalidField {
                    file: "detections".to_owned(),
                    field: format!("{field}.score"),
                    reason: format!("must be finite, found {}", d.score),
                });
            }
            detections.push(CocoDetection {
                image_id: i as i64,
                category_id: d.class as i64,
                bbox,
                score: f64::from(d.score),
            });
        }
    }
    let mut instances = vec![0_usize; num_classes];
    for a in &dataset.annotations {
        if !a.iscrowd && !a.ignore {
            instances[a.category_id as usize] += 1;
        }
    }

    let mut params = CocoParams::default();
    if max_dets > COCO_MAX_DETS {
        *params.max_dets.last_mut().expect("pycocotools' three counts") = max_dets;
    }
    let coco = evaluate_coco(&dataset, &detections, &params)?;
    let defined = |v: f64| (v > -1.0).then_some(v);
    let classes = (0..num_classes)
        .map(|c| {
            let row = &coco.per_category[c];
            let (precision, recall) = coco
                .pr_curve(c, 0, 0, 2)
                .map_or((0.0, 0.0), |curve| max_f1_point(&curve.precision, &curve.recall));
            ClassSummary {
                class: c,
                images: class_images[c],
                instances: instances[c],
                precision,
                recall,
                ap50: defined(row.stats.ap50),
                ap50_95: defined(row.stats.ap),
            }
        })
        .collect();
    Ok(MapSummary {
        map50: defined(coco.stats.ap50),
        map50_95: defined(coco.stats.ap),
        classes,
        coco,
    })
}

/// `(precision, recall)` at the first point of maximal F1, or `(0, 0)` without a true positive.
fn max_f1_point(precision: &[f64], recall: &[f64]) -> (f64, f64) {
    let mut best = (0.0, 0.0, 0.0);
    for (&p, &r) in precision.iter().zip(recall) {
        let f1 = if p + r > 0.0 { 2.0 * p * r / (p + r) } else { 0.0 };
        if f1 > best.0 {
            best = (f1, p, r);
        }
    }
    (best.1, best.2)
}

fn check_class(
    class: usize,
    num_classes: usize,
    file: &str,
    field: &str,
) -> Result<(), MetricsError> {
    if class < num_classes {
        Ok(())
    } else {
        Err(MetricsError::ClassOutOfRange {
            file: file.to_owned(),
            field: format!("{field}.class"),
            class,
            num_classes,
        })
    }
}

fn to_xywh(b: BoxXyxy, file: &str, field: &str) -> Result<[f64; 4], MetricsError> {
    let invalid = |reason: String| MetricsError::InvalidField {
        file: file.to_owned(),
        field: format!("{field}.bbox"),
        reason,
    };
    if !b.is_finite() {
        return Err(invalid("coordinates must be finite".to_owned()));
    }
    let (x0, y0) = (f64::from(b.x_min), f64::from(b.y_min));
    let (w, h) = (f64::from(b.x_max) - x0, f64::from(b.y_max) - y0);
    if w < 0.0 || h < 0.0 {
        return Err(invalid(format!("x_max < x_min or y_max < y_min ({b:?})")));
    }
    Ok([x0, y0, w, h])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt(x: f32, class: usize) -> GroundTruthBox {
        GroundTruthBox { bbox: BoxXyxy::new(x, x, x + 40.0, x + 40.0), class, ..Default::default() }
    }

    fn det(x: f32, score: f32, class: usize) -> DetectedBox {
        DetectedBox { bbox: BoxXyxy::new(x, x, x + 40.0, x + 40.0), score, class }
    }

    #[test]
    fn perfect_detections_give_map_one_and_unit_precision_recall() {
        let images = vec![
            ImageBoxes {
                ground_truth: vec![gt(0.0, 0), gt(100.0, 1)],
                detections: vec![det(0.0, 0.9, 0), det(100.0, 0.8, 1)],
            },
            ImageBoxes { ground_truth: vec![gt(10.0, 0)], detections: vec![det(10.0, 0.7, 0)] },
        ];
        let s = evaluate_map(&images, 3, COCO_MAX_DETS).unwrap();
        assert!((s.map50.unwrap() - 1.0).abs() < 1e-12);
        assert!((s.map50_95.unwrap() - 1.0).abs() < 1e-12);
        assert_eq!((s.classes[0].images, s.classes[0].instances), (2, 2));
        assert!((s.classes[0].recall - 1.0).abs() < 1e-12);
        assert!((s.classes[0].precision - 1.0).abs() < 1e-12);
        assert_eq!(s.classes[2].ap50, None, "a class without GT is undefined, not 0");
    }

    #[test]
    fn precision_and_recall_are_taken_at_max_f1() {
        // TP, TP, FP, FP: F1 is best after the second detection.
        let images = vec![ImageBoxes {
            ground_truth: vec![gt(0.0, 0), gt(100.0, 0)],
            detections: vec![
                det(0.0, 0.9, 0),
                det(100.0, 0.8, 0),
                det(200.0, 0.7, 0),
                det(300.0, 0.6, 0),
            ],
        }];
        let s = evaluate_map(&images, 1, COCO_MAX_DETS).unwrap();
        assert!((s.classes[0].recall - 1.0).abs() < 1e-12);
        assert!((s.classes[0].precision - 1.0).abs() < 1e-12);
    }

    #[test]
    fn out_of_range_class_is_an_error() {
        let images = vec![ImageBoxes { ground_truth: vec![gt(0.0, 5)], detections: vec![] }];
        let err = evaluate_map(&images, 2, COCO_MAX_DETS).unwrap_err();
        assert!(matches!(err, MetricsError::ClassOutOfRange { class: 5, num_classes: 2, .. }));
    }
}
