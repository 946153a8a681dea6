//! What the loss, the targets and the decode need to know about a detector's heads: the
//! network input size, the number of classes and the anchors with their layer mask.
//!
//! Layer `l` has stride `32 >> l` (32, 16, 8), so its grid is `input / stride`. keras-yolo3
//! derives the input size from the coarsest grid as `32 * (H_0, W_0)`; requiring the input to
//! be a multiple of 32 makes the two the same.

use crate::anchors::{layer_stride, Anchors};
use crate::error::CoreError;
use crate::layout::HeadShape;
use crate::real::{sigmoid, Real};

/// keras-yolo3's `yolo_head` for one slot: the raw `[tx, ty, tw, th]` at grid cell
/// `[col, row]` to a normalised centre-form box `[x, y, w, h]`, as
/// `((sigmoid(t_xy) + cell) / grid, exp(t_wh) * anchor / input)`. `grid` is the layer's
/// `[cols, rows]`, `anchor` the slot's `[w, h]` in pixels and `input` the network's `[w, h]`.
/// The loss and the decode both call this, in this operation order.
#[inline]
#[must_use]
pub fn head_box<T: Real>(
    t: [T; 4],
    cell: [T; 2],
    grid: [T; 2],
    anchor: [T; 2],
    input: [T; 2],
) -> [T; 4] {
    [
        (sigmoid(t[0]) + cell[0]) / grid[0],
        (sigmoid(t[1]) + cell[1]) / grid[1],
        t[2].exp() * anchor[0] / input[0],
        t[3].exp() * anchor[1] / input[1],
    ]
}

/// The heads of a YOLOv3-style detector.
#[derive(Clone, Debug, PartialEq)]
pub struct HeadConfig {
    /// Network input height in pixels (a multiple of 32).
    pub input_h: usize,
    /// Network input width in pixels (a multiple of 32).
    pub input_w: usize,
    /// Number of classes.
    pub num_classes: usize,
    /// Anchors and the mask assigning them to layers.
    pub anchors: Anchors,
}

/// One head's raw output for a batch, with its grid size.
#[derive(Clone, Copy, Debug)]
pub struct HeadInput<'a, T> {
    /// The values, in the layout given alongside.
    pub data: &'a [T],
    /// Grid rows.
    pub height: usize,
    /// Grid columns.
    pub width: usize,
    /// Channels, which must be `A * (5 + C)`.
    pub channels: usize,
}

impl HeadConfig {
    /// A configuration, checked: the input must be a positive multiple of 32 and there must be
    /// at least one class.
    pub fn new(
        input_h: usize,
        input_w: usize,
        num_classes: usize,
        anchors: Anchors,
    ) -> Result<Self, CoreError> {
        if input_h == 0
            || input_w == 0
            || !input_h.is_multiple_of(32)
            || !input_w.is_multiple_of(32)
        {
            return Err(CoreError::InvalidOption {
                name: "input size",
                value: format!("{input_h}x{input_w}"),
                reason: "must be a positive multiple of 32",
            });
        }
        if num_classes == 0 {
            return Err(CoreError::InvalidOption {
                name: "num_classes",
                value: "0".into(),
                reason: "a detector needs at least one class",
            });
        }
        Ok(Self { input_h, input_w, num_classes, anchors })
    }

    /// Number of output layers.
    #[must_use]
    pub fn num_layers(&self) -> usize {
        self.anchors.num_layers()
    }

    /// Grid `(rows, columns)` of layer `l`.
    #[must_use]
    pub fn grid(&self, layer: usize) -> (usize, usize) {
        let s = layer_stride(layer);
        (self.input_h / s, self.input_w / s)
    }

    /// The shape of layer `l`'s output for a batch.
    #[must_use]
    pub fn head_shape(&self, layer: usize, batch: usize) -> HeadShape {
        let (height, width) = self.grid(layer);
        HeadShape {
            batch,
            height,
            width,
            anchors: self.anchors.per_layer(),
            num_classes: self.num_classes,
        }
    }

    /// Views one buffer per layer (each of this configuration's shape for `batch`) as head
    /// inputs; the lengths are checked when the inputs are used.
    #[must_use]
    pub fn inputs<'a, T>(&self, batch: usize, data: &'a [Vec<T>]) -> Vec<HeadInput<'a, T>> {
        data.iter()
            .enumerate()
            .map(|(l, d)| {
                let s = self.head_shape(l, batch);
                HeadInput { data: d, height: s.height, width: s.width, channels: s.channels() }
            })
            .collect()
    }

    /// Checks a set of head outputs against this configuration and returns their shapes.
    pub fn check_inputs<T>(
        &self,
        batch: usize,
        inputs: &[HeadInput<'_, T>],
        what: &'static str,
    ) -> Result<Vec<HeadShape>, CoreError> {
        if inputs.len() != self.num_layers() {
            return Err(CoreError::LayerCount {
                what,
                expected: self.num_layers(),
                actual: inputs.len(),
            });
        }
        inputs
            .iter()
            .enumerate()
            .map(|(l, input)| {
                let shape = self.head_shape(l, batch);
                if input.channels != shape.channels() {
                    return Err(CoreError::ShapeMismatch {
                        what,
                        layer: l,
                        expected: format!(
                            "{} channels ({} anchors x (5 + {} classes))",
                            shape.channels(),
                            shape.anchors,
                            shape.num_classes
                        ),
                        actual: format!("{} channels", input.channels),
                    });
                }
                if (input.height, input.width) != (shape.height, shape.width) {
                    return Err(CoreError::ShapeMismatch {
                        what,
                        layer: l,
                        expected: format!("grid {}x{}", shape.height, shape.width),
                        actual: format!("grid {}x{}", input.height, input.width),
                    });
                }
                shape.check_len(what, l, input.data.len())?;
                Ok(shape)
            })
            .collect()
    }
}
