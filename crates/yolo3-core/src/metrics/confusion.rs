//! Matching one image's detections to its ground truth for a detector's confusion matrix.
//!
//! The usual rules (as ultralytics draws the matrix), with `C` classes and index `C` meaning
//! background:
//! * only detections with a finite `score >= score_threshold` and a class below `C` take part;
//! * detections are taken by descending score (ties in input order); each one takes the
//!   **unmatched** regular ground truth of **any** class with the highest `IoU`, if that `IoU`
//!   is at least `iou_threshold` (the first on ties): a `(predicted, true)` pair, off the
//!   diagonal when the classes differ;
//! * a detection matching nothing is `(predicted, background)`, unless it overlaps a difficult
//!   or crowd box by `iou_threshold` (those neither count nor penalise, as in the mAP rules);
//! * every regular ground truth left unmatched is `(background, true)`.
//!
//! Ground truth of a class outside `0..C` is ignored.

use super::{DetectedBox, GroundTruthBox};

/// One count of a confusion matrix: `(predicted, true)` class, `None` for background.
pub type ConfusionPair = (Option<usize>, Option<usize>);

/// The `(predicted, true)` pairs of one image under the rules of the module docs.
#[must_use]
pub fn confusion_pairs(
    detections: &[DetectedBox],
    ground_truth: &[GroundTruthBox],
    num_classes: usize,
    score_threshold: f32,
    iou_threshold: f32,
) -> Vec<ConfusionPair> {
    let regular: Vec<&GroundTruthBox> =
        ground_truth.iter().filter(|g| !g.crowd && !g.difficult && g.class < num_classes).collect();
    let ignored: Vec<&GroundTruthBox> =
        ground_truth.iter().filter(|g| g.crowd || g.difficult).collect();
    let mut order: Vec<&DetectedBox> = detections
        .iter()
        .filter(|d| d.score.is_finite() && d.score >= score_threshold && d.class < num_classes)
        .collect();
    order.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut taken = vec![false; regular.len()];
    let mut pairs = Vec::new();
    for d in order {
        let mut best: Option<(usize, f32)> = None;
        for (j, g) in regular.iter().enumerate() {
            let iou = d.bbox.iou(&g.bbox);
            if !taken[j] && iou >= iou_threshold && best.is_none_or(|(_, b)| iou > b) {
                best = Some((j, iou));
            }
        }
        match best {
            Some((j, _)) => {
                taken[j] = true;
                pairs.push((Some(d.class), Some(regular[j].class)));
            }
            None if ignored.iter().any(|g| d.bbox.iou(&g.bbox) >= iou_threshold) => {}
            None => pairs.push((Some(d.class), None)),
        }
    }
    let missed = regular.iter().zip(taken).filter(|(_, taken)| !taken);
    pairs.extend(missed.map(|(g, _)| (None, Some(g.class))));
    pairs
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BoxXyxy;

    fn gt(x: f32, class: usize) -> GroundTruthBox {
        GroundTruthBox { bbox: BoxXyxy::new(x, 0.0, x + 10.0, 10.0), class, ..Default::default() }
    }

    fn det(x: f32, class: usize, score: f32) -> DetectedBox {
        DetectedBox { bbox: BoxXyxy::new(x, 0.0, x + 10.0, 10.0), score, class }
    }

    #[test]
    fn matches_confusions_misses_and_false_positives() {
        let gts = [gt(0.0, 0), gt(20.0, 1), gt(40.0, 1)];
        // right class, wrong class, a false positive, one below the score threshold.
        let dets = [det(0.0, 0, 0.9), det(20.0, 0, 0.8), det(80.0, 1, 0.7), det(40.0, 1, 0.1)];
        let pairs = confusion_pairs(&dets, &gts, 2, 0.25, 0.5);
        assert_eq!(
            pairs,
            [(Some(0), Some(0)), (Some(0), Some(1)), (Some(1), None), (None, Some(1))]
        );
    }

    #[test]
    fn a_ground_truth_is_matched_once_by_the_best_score() {
        let pairs =
            confusion_pairs(&[det(0.0, 0, 0.8), det(0.0, 0, 0.9)], &[gt(0.0, 0)], 1, 0.25, 0.5);
        assert_eq!(pairs, [(Some(0), Some(0)), (Some(0), None)]);
    }

    #[test]
    fn difficult_boxes_neither_count_nor_penalise() {
        let hard = GroundTruthBox { difficult: true, ..gt(0.0, 0) };
        assert!(confusion_pairs(&[det(0.0, 0, 0.9)], &[hard], 1, 0.25, 0.5).is_empty());
    }

    #[test]
    fn classes_outside_the_matrix_are_ignored() {
        let pairs = confusion_pairs(&[det(0.0, 3, 0.9)], &[gt(30.0, 5)], 2, 0.25, 0.5);
        assert!(pairs.is_empty());
    }
}
