//! What decode and the loss need to know about each `[yolo]` head, taken from the cfg.
//!
//! Convention: heads are listed in cfg order, which is also the order of the network's
//! outputs. Anchors are the ones selected by the head's `mask`, in mask order, in input
//! pixels of the cfg's `[net]` size (darknet divides them by the actual input size when
//! decoding). Output channel `a*(5+classes) + e` belongs to anchor slot `a`.

/// One detection head.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadSpec {
    /// Darknet index of the `[yolo]` layer.
    pub yolo_layer: usize,
    /// Darknet index of the layer whose raw output the head reads (the one before it).
    pub source_layer: usize,
    /// The anchor indices of `mask`.
    pub mask: Vec<usize>,
    /// `(w, h)` in pixels for each anchor slot, i.e. `anchors[mask[a]]`.
    pub anchors: Vec<[f32; 2]>,
    /// Input pixels per output cell (32, 16, 8 for `YOLOv3`).
    pub stride: i64,
    /// Number of classes.
    pub classes: i64,
    /// `IoU` above which unassigned predictions are not pushed to background.
    pub ignore_thresh: f64,
    /// `IoU` above which darknet also assigns a truth.
    pub truth_thresh: f64,
}

impl HeadSpec {
    /// Channels of the head's output: `anchors * (5 + classes)`.
    #[must_use]
    pub fn channels(&self) -> i64 {
        self.anchors.len() as i64 * (5 + self.classes)
    }

    /// Output grid `(height, width)` for an input of `height x width` pixels, assuming the
    /// size is a multiple of the stride (see [`crate::Config::output_shapes`] for the exact
    /// darknet arithmetic).
    #[must_use]
    pub fn grid(&self, height: i64, width: i64) -> (i64, i64) {
        (height / self.stride, width / self.stride)
    }
}
