//! Advice at the start of a run: how large the objects are in the network's input, and a
//! warning with the remedy when they are too small for its strides. A head of stride `s` gives
//! one prediction per `s x s` cell; an object smaller than a cell (a 15-pixel tree crown of a
//! 2300-pixel photo letterboxed to 416 is 3 pixels) is below what the finest head resolves,
//! and training on it teaches little, silently. A larger input, or the images cut into tiles
//! at full resolution (`--tile`), brings the objects back to a size the network can see.

/// The distribution of box sides (`sqrt(w * h)`) in input pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct BoxSides {
    /// Median side.
    pub(super) median: f64,
    /// 10th percentile.
    pub(super) p10: f64,
    /// Boxes counted.
    pub(super) count: usize,
}

impl BoxSides {
    /// The sides of boxes given as `[w, h]` in input pixels (`None` without boxes).
    pub(super) fn of(sizes: &[[f64; 2]]) -> Option<Self> {
        let mut sides: Vec<f64> = sizes.iter().map(|[w, h]| (w * h).sqrt()).collect();
        if sides.is_empty() {
            return None;
        }
        sides.sort_by(f64::total_cmp);
        let at = |q: f64| sides[((sides.len() - 1) as f64 * q).round() as usize];
        Some(Self { median: at(0.5), p10: at(0.1), count: sides.len() })
    }
}

/// The lines a run prints about its boxes at `input` for a network whose finest head has
/// stride `stride`: the sizes, then a warning with the remedy when the median box is smaller
/// than one cell, or a note when a tenth of them is under half a cell.
pub(super) fn box_size_advice(sides: &BoxSides, input: u32, stride: u32) -> Vec<String> {
    let stride_f = f64::from(stride);
    let mut lines = vec![format!(
        "boxes in the {input}-pixel input: median side {:.0} px, 10th percentile {:.0} px \
         ({} boxes; the finest head's cells are {stride} px)",
        sides.median, sides.p10, sides.count
    )];
    let remedy = format!(
        "train on tiles at full resolution (--tile {}, and detect and eval with the same \
         --tile) or at a larger --input",
        input.max(416)
    );
    if sides.median < stride_f {
        lines.push(format!(
            "warning: most objects are smaller than one {stride}-pixel cell of the finest head, \
             too small for the network to learn; {remedy}"
        ));
    } else if sides.p10 < stride_f / 2.0 {
        lines.push(format!(
            "note: a tenth of the objects are under {:.0} px, half a cell of the finest head; if \
             they matter, {remedy}",
            stride_f / 2.0
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides_are_geometric_means_and_percentiles_of_the_sorted_list() {
        let sizes: Vec<[f64; 2]> = (1..=11).map(|k| [f64::from(k), 4.0 * f64::from(k)]).collect();
        let sides = BoxSides::of(&sizes).unwrap();
        assert_eq!(sides.count, 11);
        assert!((sides.median - 12.0).abs() < 1e-12); // sqrt(6 * 24)
        assert!((sides.p10 - 4.0).abs() < 1e-12); // sqrt(2 * 8)
        assert_eq!(BoxSides::of(&[]), None);
    }

    #[test]
    fn small_objects_get_the_remedy_and_large_ones_no_warning() {
        // Tree crowns of a 2300-pixel photo letterboxed to 416: 3 to 15 pixels.
        let small = BoxSides { median: 7.0, p10: 4.0, count: 574 };
        let lines = box_size_advice(&small, 416, 16);
        assert_eq!(lines.len(), 2);
        assert!(lines[1].starts_with("warning:") && lines[1].contains("--tile 416"), "{lines:?}");
        let some_small = BoxSides { median: 40.0, p10: 6.0, count: 100 };
        assert!(box_size_advice(&some_small, 160, 16)[1].starts_with("note:"));
        let fine = BoxSides { median: 40.0, p10: 20.0, count: 100 };
        assert_eq!(box_size_advice(&fine, 160, 16).len(), 1);
    }
}
