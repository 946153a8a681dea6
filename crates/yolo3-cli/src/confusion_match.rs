//! Filling a detector's confusion matrix from per-image detections and ground truth.
//!
//! This is evaluation logic a library user would want too (it belongs beside
//! `yolo3_core::metrics`); it lives here until the owners of the library crates move it.
//!
//! Rules (the usual detector confusion matrix, as ultralytics draws it):
//! * only detections with `score >= score_threshold` take part;
//! * per image, detections are taken by descending score (ties in input order); each one takes
//!   the **unmatched** regular ground truth of **any** class with the highest `IoU`, if that
//!   `IoU` is at least `iou_threshold` (first on ties): a `(predicted, true)` count, which is
//!   off the diagonal when the classes differ;
//! * a detection matching nothing adds to the background **column** (predicted class, true
//!   background), unless it overlaps a difficult or crowd box by `iou_threshold` (those neither
//!   count nor penalise, as in the mAP rules);
//! * every regular ground truth left unmatched adds to the background **row** (predicted
//!   background, true class).

use yolo3_core::metrics::{DetectedBox, GroundTruthBox};
use yolo3_viz::ConfusionMatrix;

/// Adds one image's detections and ground truth to `matrix` (see the module docs). Boxes of a
/// class outside the matrix are ignored.
pub fn add_image(
    matrix: &mut ConfusionMatrix,
    detections: &[DetectedBox],
    ground_truth: &[GroundTruthBox],
    score_threshold: f32,
    iou_threshold: f32,
) {
    let n = matrix.num_classes();
    let regular: Vec<&GroundTruthBox> =
        ground_truth.iter().filter(|g| !g.crowd && !g.difficult && g.class < n).collect();
    let ignored: Vec<&GroundTruthBox> =
        ground_truth.iter().filter(|g| g.crowd || g.difficult).collect();
    let mut order: Vec<&DetectedBox> = detections
        .iter()
        .filter(|d| d.score >= score_threshold && d.class < n && d.score.is_finite())
        .collect();
    order.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut taken = vec![false; regular.len()];
    for d in order {
        let mut best: Option<(usize, f32)> = None;
        for (j, g) in regular.iter().enumerate() {
            if taken[j] {
                continue;
            }
            let iou = d.bbox.iou(&g.bbox);
            if iou >= iou_threshold && best.is_none_or(|(_, b)| iou > b) {
                best = Some((j, iou));
            }
        }
        match best {
            Some((j, _)) => {
                taken[j] = true;
                // Both indices are below `n`, so `add` cannot fail.
                let _ = matrix.add(Some(d.class), Some(regular[j].class));
            }
            None => {
                if !ignored.iter().any(|g| d.bbox.iou(&g.bbox) >= iou_threshold) {
                    let _ = matrix.add(Some(d.class), None);
                }
            }
        }
    }
    for (g, taken) in regular.iter().zip(taken) {
        if !taken {
            let _ = matrix.add(None, Some(g.class));
        }
    }
}

#[cfg(test)]
mod tests {
    use yolo3_core::BoxXyxy;

    use super::*;

    fn gt(x: f32, class: usize) -> GroundTruthBox {
        GroundTruthBox { bbox: BoxXyxy::new(x, 0.0, x + 10.0, 10.0), class, ..Default::default() }
    }

    fn det(x: f32, class: usize, score: f32) -> DetectedBox {
        DetectedBox { bbox: BoxXyxy::new(x, 0.0, x + 10.0, 10.0), score, class }
    }

    #[test]
    fn matches_confusions_misses_and_false_positives() {
        let mut m = ConfusionMatrix::new(vec!["a".into(), "b".into()]);
        let gts = [gt(0.0, 0), gt(20.0, 1), gt(40.0, 1)];
        // right class, wrong class, a false positive, one below the threshold.
        let dets = [det(0.0, 0, 0.9), det(20.0, 0, 0.8), det(80.0, 1, 0.7), det(40.0, 1, 0.1)];
        add_image(&mut m, &dets, &gts, 0.25, 0.5);
        assert_eq!(m.count(Some(0), Some(0)), 1);
        assert_eq!(m.count(Some(0), Some(1)), 1);
        assert_eq!(m.count(Some(1), None), 1);
        assert_eq!(m.count(None, Some(1)), 1);
        assert_eq!(m.count(Some(1), Some(1)), 0);
    }

    #[test]
    fn a_ground_truth_is_matched_once() {
        let mut m = ConfusionMatrix::new(vec!["a".into()]);
        add_image(&mut m, &[det(0.0, 0, 0.9), det(0.0, 0, 0.8)], &[gt(0.0, 0)], 0.25, 0.5);
        assert_eq!(m.count(Some(0), Some(0)), 1);
        assert_eq!(m.count(Some(0), None), 1);
    }

    #[test]
    fn difficult_boxes_neither_count_nor_penalise() {
        let mut m = ConfusionMatrix::new(vec!["a".into()]);
        let hard = GroundTruthBox { difficult: true, ..gt(0.0, 0) };
        add_image(&mut m, &[det(0.0, 0, 0.9)], &[hard], 0.25, 0.5);
        assert_eq!(m.count(Some(0), None) + m.count(None, Some(0)) + m.count(Some(0), Some(0)), 0);
    }
}
