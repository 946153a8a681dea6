//! The errors of `yolo3-core`'s geometry, targets, loss and decode.
//!
//! Every variant says what was wrong and where (layer, image, row, field), so that a caller can
//! report bad input without a panic and without guessing.

use thiserror::Error;

/// What went wrong in a core computation.
#[derive(Debug, Error)]
pub enum CoreError {
    /// A buffer or list does not have the size the configuration implies.
    #[error("{what} of layer {layer}: expected {expected}, got {actual}")]
    ShapeMismatch {
        /// Which input.
        what: &'static str,
        /// Layer index (0 is the coarsest).
        layer: usize,
        /// What the configuration implies.
        expected: String,
        /// What was given.
        actual: String,
    },
    /// The number of layers given differs from the anchor mask's.
    #[error("{what}: expected {expected} layers (one per anchor-mask row), got {actual}")]
    LayerCount {
        /// Which input.
        what: &'static str,
        /// Layers in the anchor mask.
        expected: usize,
        /// Layers given.
        actual: usize,
    },
    /// A prediction is NaN or infinite.
    #[error(
        "non-finite prediction {value} in layer {layer}, image {image}, row {row}, column {col}, \
         channel {channel}"
    )]
    NonFinite {
        /// Layer index.
        layer: usize,
        /// Image in the batch.
        image: usize,
        /// Grid row.
        row: usize,
        /// Grid column.
        col: usize,
        /// Channel.
        channel: usize,
        /// The offending value.
        value: f64,
    },
    /// A box's class is not below the number of classes.
    #[error("image {image}, box {row}: class {class} is out of range (the model has {num_classes} classes)")]
    ClassOutOfRange {
        /// Image in the batch.
        image: usize,
        /// Row of the box in that image's list.
        row: usize,
        /// The class given.
        class: usize,
        /// Classes of the model.
        num_classes: usize,
    },
    /// A box lies (partly) outside the network input or has a non-finite coordinate.
    #[error(
        "image {image}, box {row}: ({x_min}, {y_min}, {x_max}, {y_max}) is not inside the \
         {input_w}x{input_h} input"
    )]
    BoxOutsideInput {
        /// Image in the batch.
        image: usize,
        /// Row of the box in that image's list.
        row: usize,
        /// Left.
        x_min: f32,
        /// Top.
        y_min: f32,
        /// Right.
        x_max: f32,
        /// Bottom.
        y_max: f32,
        /// Input width.
        input_w: usize,
        /// Input height.
        input_h: usize,
    },
    /// An anchor set or anchor mask is malformed.
    #[error("anchors: {reason}")]
    InvalidAnchors {
        /// Why.
        reason: String,
    },
    /// An `anchors.txt` file could not be parsed.
    #[error("{path}: field {field}: {reason}")]
    AnchorsFile {
        /// File (or `<string>`).
        path: String,
        /// 1-based position of the number in the file.
        field: usize,
        /// Why.
        reason: String,
    },
    /// An `anchors.txt` file could not be read or written.
    #[error("{path}")]
    Io {
        /// File.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// An option is out of its range.
    #[error("option {name} = {value}: {reason}")]
    InvalidOption {
        /// The option.
        name: &'static str,
        /// Its value.
        value: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// An image size is not usable for decoding.
    #[error("image {image}: size {height}x{width} is not positive and finite")]
    InvalidImageSize {
        /// Image in the batch.
        image: usize,
        /// Height given.
        height: f64,
        /// Width given.
        width: f64,
    },
}
