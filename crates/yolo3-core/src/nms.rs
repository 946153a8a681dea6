//! Greedy hard non-maximum suppression with TensorFlow's rules
//! (`tf.image.non_max_suppression`), which keras-yolo3's `yolo_eval` calls per class.
//!
//! Candidates are visited by descending score, a tie going to the lower index. A candidate is
//! kept unless its IoU with an already kept box is strictly above the threshold. Selection stops
//! after `max_output` boxes. IoU is taken on corner boxes normalised to min/max order; a box of
//! area `<= 0` has IoU 0 with everything.

use crate::geometry::iou_xyxy;
use crate::real::Real;

/// Returns the indices of the kept boxes, in the order they were kept (descending score).
/// `boxes` are corners in any consistent axis order; NaN scores sort last.
#[must_use]
pub fn non_max_suppression<T: Real>(
    boxes: &[[T; 4]],
    scores: &[T],
    iou_threshold: T,
    max_output: usize,
) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len().min(scores.len())).collect();
    order.sort_by(|&a, &b| {
        let (sa, sb) = (scores[a].to_f64(), scores[b].to_f64());
        match (sa.is_nan(), sb.is_nan()) {
            (false, false) => sb.total_cmp(&sa),
            (a_nan, b_nan) => a_nan.cmp(&b_nan),
        }
        .then(a.cmp(&b))
    });
    let mut kept: Vec<usize> = Vec::new();
    for idx in order {
        if kept.len() >= max_output {
            break;
        }
        // `!(iou > t)`, not `iou <= t`: a NaN IoU (from NaN coordinates) suppresses nothing,
        // as in TensorFlow.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if kept.iter().all(|&k| !(iou_xyxy(boxes[idx], boxes[k]) > iou_threshold)) {
            kept.push(idx);
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn suppresses_strictly_above_threshold_and_breaks_ties_by_index() {
        // Two boxes with IoU exactly 0.5 both survive a 0.5 threshold.
        let boxes = [[0.0f64, 0.0, 2.0, 1.0], [0.0, 0.0, 1.0, 1.0], [10.0, 10.0, 11.0, 11.0]];
        let scores = [0.9, 0.9, 0.8];
        assert_eq!(non_max_suppression(&boxes, &scores, 0.5, 10), vec![0, 1, 2]);
        assert_eq!(non_max_suppression(&boxes, &scores, 0.49, 10), vec![0, 2]);
        assert_eq!(non_max_suppression(&boxes, &scores, 0.5, 2), vec![0, 1]);
    }

    fn arb_boxes() -> impl Strategy<Value = Vec<([f32; 4], f32)>> {
        prop::collection::vec(
            (0f32..50.0, 0f32..50.0, 1f32..30.0, 1f32..30.0, 0f32..1.0)
                .prop_map(|(x, y, w, h, s)| ([x, y, x + w, y + h], s)),
            0..40,
        )
    }

    proptest! {
        #[test]
        fn output_is_a_score_ordered_subset_with_no_overlapping_pair(
            items in arb_boxes(), thr in 0.1f32..0.9, max in 1usize..50,
        ) {
            let boxes: Vec<_> = items.iter().map(|b| b.0).collect();
            let scores: Vec<_> = items.iter().map(|b| b.1).collect();
            let kept = non_max_suppression(&boxes, &scores, thr, max);
            prop_assert!(kept.len() <= max);
            let mut seen = std::collections::HashSet::new();
            for w in kept.windows(2) {
                prop_assert!(scores[w[0]] >= scores[w[1]]);
            }
            for (n, &a) in kept.iter().enumerate() {
                prop_assert!(seen.insert(a));
                for &b in &kept[n + 1..] {
                    prop_assert!(iou_xyxy(boxes[a], boxes[b]) <= thr);
                }
            }
            // Every dropped box (before the cap was reached) overlaps a kept one.
            if kept.len() < max {
                for i in 0..boxes.len() {
                    if !seen.contains(&i) {
                        prop_assert!(kept.iter().any(|&k| iou_xyxy(boxes[i], boxes[k]) > thr));
                    }
                }
            }
        }
    }
}
