//! keras-yolo3's `preprocess_true_boxes`: ground-truth boxes to per-layer training targets,
//! bit-exact, in a sparse form the loss reads and in keras' dense `y_true` form.
//!
//! The rules, each a keras-yolo3 quirk kept on purpose (see `shared/golden/README.md`,
//! "Target files"):
//! * the centre is `floor((min + max) / 2)` in `f32`; sizes are `max - min`;
//! * centre and size are normalised by a correctly rounded `f32` division by the input size;
//! * a row is valid iff its width is `> 0` (a zero-height box is kept);
//! * the best anchor is the argmax of the origin-centred IoU in `f64` (with `w*h` formed in
//!   `f32`), first index on a tie;
//! * the box goes to every layer whose mask holds that anchor (keras' tiny mask puts anchor 3 on
//!   both layers and drops anchor 0);
//! * the cell is `floor(f64(x_f32) * W)`, which puts some centres lying exactly on a cell border
//!   into the previous cell;
//! * a later box in the same cell and anchor slot overwrites the geometry, class bits accumulate.
//!
//! Invalid rows anywhere in the list are skipped (keras' row shift for non-trailing padding is
//! not reproduced).

use crate::error::CoreError;
use crate::geometry::LabeledBox;
use crate::head::HeadConfig;

/// One anchor slot of one cell that holds a target.
#[derive(Clone, Debug, PartialEq)]
pub struct ObjectCell {
    /// Image in the batch.
    pub image: usize,
    /// Grid row `j`.
    pub row: usize,
    /// Grid column `i`.
    pub col: usize,
    /// Anchor slot `k` within the layer.
    pub slot: usize,
    /// `(x, y, w, h)`: centre and size normalised by the input width / height (`f32`, as keras).
    pub xywh: [f32; 4],
    /// The classes whose bit is set, ascending (more than one after a collision).
    pub classes: Vec<usize>,
}

/// The targets of a batch: for each layer, the cells that hold an object, sorted by
/// `(image, row, col, slot)`; and for each image, all its valid boxes in normalised centre form
/// (darknet's ignore rule compares against these).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Targets {
    /// Images in the batch.
    pub batch: usize,
    /// Per layer, the object cells in `(image, row, col, slot)` order.
    pub layers: Vec<Vec<ObjectCell>>,
    /// Per image, every valid box as normalised `(x, y, w, h)`.
    pub truths: Vec<Vec<[f32; 4]>>,
}

impl ObjectCell {
    fn key(&self) -> (usize, usize, usize, usize) {
        (self.image, self.row, self.col, self.slot)
    }
}

impl Targets {
    /// The object cells of one image on one layer, in `(row, col, slot)` order.
    #[must_use]
    pub fn cells(&self, layer: usize, image: usize) -> &[ObjectCell] {
        let cells = &self.layers[layer];
        let start = cells.partition_point(|c| c.image < image);
        let end = cells.partition_point(|c| c.image <= image);
        &cells[start..end]
    }

    /// keras' dense `y_true` for layer `l`: `(B, H, W, A, 5 + C)` in `f32`.
    #[must_use]
    pub fn to_dense(&self, config: &HeadConfig, layer: usize) -> Vec<f32> {
        let shape = config.head_shape(layer, self.batch);
        let fields = shape.fields();
        let mut out = vec![0.0f32; shape.len()];
        for cell in &self.layers[layer] {
            let base = (((cell.image * shape.height + cell.row) * shape.width + cell.col)
                * shape.anchors
                + cell.slot)
                * fields;
            out[base..base + 4].copy_from_slice(&cell.xywh);
            out[base + 4] = 1.0;
            for &c in &cell.classes {
                out[base + 5 + c] = 1.0;
            }
        }
        out
    }

    /// Reads keras' dense `y_true` (one `(B, H, W, A, 5 + C)` buffer per layer) back into the
    /// sparse form. The object flag and class bits must be 0 or 1. The per-image truth list is
    /// gathered from the object cells of every layer.
    pub fn from_dense(
        config: &HeadConfig,
        batch: usize,
        y_true: &[&[f32]],
    ) -> Result<Self, CoreError> {
        if y_true.len() != config.num_layers() {
            return Err(CoreError::LayerCount {
                what: "y_true",
                expected: config.num_layers(),
                actual: y_true.len(),
            });
        }
        let mut targets =
            Self { batch, layers: vec![Vec::new(); y_true.len()], truths: vec![Vec::new(); batch] };
        for (l, data) in y_true.iter().enumerate() {
            let shape = config.head_shape(l, batch);
            shape.check_len("y_true", l, data.len())?;
            let fields = shape.fields();
            for (n, cell) in data.chunks_exact(fields).enumerate() {
                let flag_ok = |v: f32| v == 0.0 || v == 1.0;
                if !flag_ok(cell[4]) || !cell[5..].iter().all(|&v| flag_ok(v)) {
                    return Err(CoreError::ShapeMismatch {
                        what: "y_true",
                        layer: l,
                        expected: "object flag and class bits of 0 or 1".into(),
                        actual: format!("{:?} at cell {n}", &cell[4..]),
                    });
                }
                if cell[4] == 0.0 {
                    continue;
                }
                let slot = n % shape.anchors;
                let col = (n / shape.anchors) % shape.width;
                let row = (n / (shape.anchors * shape.width)) % shape.height;
                let image = n / (shape.anchors * shape.width * shape.height);
                let xywh = [cell[0], cell[1], cell[2], cell[3]];
                let classes = (0..config.num_classes).filter(|&c| cell[5 + c] != 0.0).collect();
                targets.layers[l].push(ObjectCell { image, row, col, slot, xywh, classes });
                targets.truths[image].push(xywh);
            }
        }
        Ok(targets)
    }
}

/// The best anchor of a `w x h` box (pixels) by origin-centred IoU, as keras computes it. When
/// no anchor overlaps (every IoU is 0, as for `h = 0`) the first anchor wins, as in keras.
#[must_use]
pub fn best_anchor(sizes: &[[f32; 2]], w: f32, h: f32) -> usize {
    let box_area = f64::from(w * h);
    let (w, h) = (f64::from(w), f64::from(h));
    let mut best = (0, f64::NEG_INFINITY);
    for (n, &[aw, ah]) in sizes.iter().enumerate() {
        let (aw, ah) = (f64::from(aw), f64::from(ah));
        let inter = w.min(aw).max(0.0) * h.min(ah).max(0.0);
        let iou = inter / (box_area + aw * ah - inter);
        if iou > best.1 {
            best = (n, iou);
        }
    }
    best.0
}

/// Assigns each image's boxes (network-input pixels) to the layers, cells and anchor slots that
/// train on them. `boxes[b]` is image `b`'s list; rows with `x_max - x_min <= 0` are padding and
/// skipped. A class `>= C`, a non-finite coordinate or a box outside the input is an error.
pub fn assign_targets(config: &HeadConfig, boxes: &[&[LabeledBox]]) -> Result<Targets, CoreError> {
    let batch = boxes.len();
    let (in_w, in_h) = (config.input_w as f32, config.input_h as f32);
    let mut targets = Targets {
        batch,
        layers: vec![Vec::new(); config.num_layers()],
        truths: vec![Vec::new(); batch],
    };
    for (image, rows) in boxes.iter().enumerate() {
        let mut image_cells: Vec<Vec<ObjectCell>> = vec![Vec::new(); config.num_layers()];
        for (row_index, lb) in rows.iter().enumerate() {
            let b = lb.bbox;
            let inside = b.is_finite()
                && b.x_min >= 0.0
                && b.y_min >= 0.0
                && b.x_max <= in_w
                && b.y_max <= in_h;
            if !inside {
                return Err(CoreError::BoxOutsideInput {
                    image,
                    row: row_index,
                    x_min: b.x_min,
                    y_min: b.y_min,
                    x_max: b.x_max,
                    y_max: b.y_max,
                    input_w: config.input_w,
                    input_h: config.input_h,
                });
            }
            let w = b.x_max - b.x_min;
            if w <= 0.0 {
                continue;
            }
            if lb.class >= config.num_classes {
                return Err(CoreError::ClassOutOfRange {
                    image,
                    row: row_index,
                    class: lb.class,
                    num_classes: config.num_classes,
                });
            }
            let h = b.y_max - b.y_min;
            // keras' `(min + max) // 2` in f32, rounding of the sum included.
            #[allow(clippy::manual_midpoint)]
            let cx = ((b.x_min + b.x_max) / 2.0).floor();
            #[allow(clippy::manual_midpoint)]
            let cy = ((b.y_min + b.y_max) / 2.0).floor();
            let xywh = [cx / in_w, cy / in_h, w / in_w, h / in_h];
            targets.truths[image].push(xywh);
            let n = best_anchor(config.anchors.sizes(), w, h);
            for (l, mask_row) in config.anchors.mask().iter().enumerate() {
                let Some(slot) = mask_row.iter().position(|&m| m == n) else { continue };
                let (grid_h, grid_w) = config.grid(l);
                let col = ((f64::from(xywh[0]) * grid_w as f64).floor() as usize).min(grid_w - 1);
                let row = ((f64::from(xywh[1]) * grid_h as f64).floor() as usize).min(grid_h - 1);
                let cells = &mut image_cells[l];
                if let Some(cell) =
                    cells.iter_mut().find(|c| (c.row, c.col, c.slot) == (row, col, slot))
                {
                    cell.xywh = xywh;
                    if let Err(at) = cell.classes.binary_search(&lb.class) {
                        cell.classes.insert(at, lb.class);
                    }
                } else {
                    cells.push(ObjectCell { image, row, col, slot, xywh, classes: vec![lb.class] });
                }
            }
        }
        for (l, mut cells) in image_cells.into_iter().enumerate() {
            cells.sort_by_key(ObjectCell::key);
            targets.layers[l].extend(cells);
        }
    }
    Ok(targets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anchors::{Anchors, TinyMask};
    use crate::geometry::BoxXyxy;

    fn lb(x0: f32, y0: f32, x1: f32, y1: f32, class: usize) -> LabeledBox {
        LabeledBox { bbox: BoxXyxy::new(x0, y0, x1, y1), class }
    }

    #[test]
    fn border_centre_lands_in_previous_cell_as_keras_does() {
        // cx = 240 at 416 wide, stride 16: f32(240/416) rounds below, so keras picks i = 14.
        let config = HeadConfig::new(416, 416, 4, Anchors::yolov3()).unwrap();
        let boxes = [lb(210.0, 210.0, 270.0, 270.0, 1)];
        let t = assign_targets(&config, &[&boxes]).unwrap();
        let cell = t.layers.iter().flatten().next().unwrap();
        assert_eq!((cell.col, cell.row), (14, 14));
    }

    #[test]
    fn collision_overwrites_geometry_and_accumulates_classes() {
        let config = HeadConfig::new(64, 64, 3, Anchors::yolov3()).unwrap();
        let boxes = [lb(10.0, 10.0, 20.0, 22.0, 2), lb(11.0, 10.0, 19.0, 22.0, 0)];
        let t = assign_targets(&config, &[&boxes]).unwrap();
        let cells: Vec<_> = t.layers.iter().flatten().collect();
        assert_eq!(cells.len(), 1);
        assert_eq!(cells[0].classes, vec![0, 2]);
        assert_eq!(cells[0].xywh, [15.0 / 64.0, 16.0 / 64.0, 8.0 / 64.0, 12.0 / 64.0]);
        let dense = t.to_dense(&config, 2);
        let back = Targets::from_dense(
            &config,
            1,
            &[&t.to_dense(&config, 0), &t.to_dense(&config, 1), &dense],
        )
        .unwrap();
        assert_eq!(back.layers, t.layers);
    }

    #[test]
    fn tiny_keras_mask_drops_anchor_zero_boxes() {
        let config = HeadConfig::new(416, 416, 3, Anchors::tiny(TinyMask::Keras)).unwrap();
        let boxes = [lb(100.0, 100.0, 110.0, 114.0, 0)];
        let t = assign_targets(&config, &[&boxes]).unwrap();
        assert!(t.layers.iter().all(Vec::is_empty));
        assert_eq!(t.truths[0].len(), 1);
        let config = HeadConfig::new(416, 416, 3, Anchors::tiny(TinyMask::Darknet)).unwrap();
        let t = assign_targets(&config, &[&boxes]).unwrap();
        assert_eq!(t.layers[1].len(), 1);
    }

    #[test]
    fn padding_rows_in_the_middle_are_skipped() {
        let config = HeadConfig::new(64, 64, 3, Anchors::yolov3()).unwrap();
        let with_gap =
            [lb(1.0, 1.0, 30.0, 30.0, 1), lb(0.0, 0.0, 0.0, 0.0, 0), lb(40.0, 40.0, 50.0, 60.0, 2)];
        let without = [with_gap[0], with_gap[2]];
        assert_eq!(
            assign_targets(&config, &[&with_gap]).unwrap(),
            assign_targets(&config, &[&without]).unwrap()
        );
    }

    #[test]
    fn bad_boxes_are_errors_naming_image_and_row() {
        let config = HeadConfig::new(64, 64, 3, Anchors::yolov3()).unwrap();
        let err = assign_targets(&config, &[&[], &[lb(0.0, 0.0, 65.0, 10.0, 0)]]).unwrap_err();
        assert!(matches!(err, CoreError::BoxOutsideInput { image: 1, row: 0, .. }), "{err}");
        let err = assign_targets(&config, &[&[lb(0.0, 0.0, 5.0, 10.0, 3)]]).unwrap_err();
        assert!(matches!(err, CoreError::ClassOutOfRange { class: 3, .. }), "{err}");
        let err = assign_targets(&config, &[&[lb(f32::NAN, 0.0, 5.0, 10.0, 0)]]).unwrap_err();
        assert!(matches!(err, CoreError::BoxOutsideInput { .. }), "{err}");
    }
}
