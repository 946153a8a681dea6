//! Memory layouts of a YOLO head's raw output, and the index arithmetic for them.
//!
//! A head with `A` anchors and `C` classes has `A*(5+C)` channels; channel `a*(5+C) + p` is
//! field `p` of anchor slot `a` (`0` tx, `1` ty, `2` tw, `3` th, `4` objectness, `5+c` class
//! `c`). A convolutional network emits it as NCHW, `(B, A*(5+C), H, W)`; keras-yolo3 keeps it
//! channels-last, NHWC, `(B, H, W, A*(5+C))`. In both, one image's values are one contiguous
//! block, which is what lets the loss work on images in parallel.

use crate::error::CoreError;

/// How a head's raw output is laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Layout {
    /// `(B, A*(5+C), H, W)`, as a conv net emits it.
    #[default]
    Nchw,
    /// `(B, H, W, A*(5+C))`, as keras-yolo3 has it.
    Nhwc,
}

/// The dimensions of one head's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadShape {
    /// Images in the batch.
    pub batch: usize,
    /// Grid rows.
    pub height: usize,
    /// Grid columns.
    pub width: usize,
    /// Anchor slots per cell.
    pub anchors: usize,
    /// Classes.
    pub num_classes: usize,
}

impl HeadShape {
    /// Fields per anchor slot, `5 + C`.
    #[must_use]
    pub fn fields(&self) -> usize {
        5 + self.num_classes
    }

    /// Channels, `A * (5 + C)`.
    #[must_use]
    pub fn channels(&self) -> usize {
        self.anchors * self.fields()
    }

    /// Values per image, `H * W * channels`.
    #[must_use]
    pub fn image_len(&self) -> usize {
        self.height * self.width * self.channels()
    }

    /// Values in the whole tensor.
    #[must_use]
    pub fn len(&self) -> usize {
        self.batch * self.image_len()
    }

    /// Whether the tensor holds no value.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Checks that a buffer has exactly this shape's number of values.
    pub fn check_len(&self, what: &'static str, layer: usize, len: usize) -> Result<(), CoreError> {
        if len == self.len() {
            Ok(())
        } else {
            Err(CoreError::ShapeMismatch {
                what,
                layer,
                expected: format!(
                    "{} values (B={} H={} W={} channels={})",
                    self.len(),
                    self.batch,
                    self.height,
                    self.width,
                    self.channels()
                ),
                actual: format!("{len} values"),
            })
        }
    }
}

/// Strides to walk one image's block of a head: the offset of `(channel, row, col)` is
/// `channel * channel + row * row + col * col`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Strides {
    /// Step between channels.
    pub channel: usize,
    /// Step between grid rows.
    pub row: usize,
    /// Step between grid columns.
    pub col: usize,
}

impl Layout {
    /// The strides inside one image's block.
    #[must_use]
    pub fn strides(self, shape: &HeadShape) -> Strides {
        match self {
            Layout::Nchw => {
                Strides { channel: shape.height * shape.width, row: shape.width, col: 1 }
            }
            Layout::Nhwc => {
                Strides { channel: 1, row: shape.width * shape.channels(), col: shape.channels() }
            }
        }
    }
}

impl Strides {
    /// Offset of `(channel, row, col)` inside an image's block.
    #[inline]
    #[must_use]
    pub fn offset(&self, channel: usize, row: usize, col: usize) -> usize {
        channel * self.channel + row * self.row + col * self.col
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strides_match_row_major_layouts() {
        let s = HeadShape { batch: 2, height: 3, width: 4, anchors: 3, num_classes: 2 };
        assert_eq!(s.channels(), 21);
        let nchw = Layout::Nchw.strides(&s);
        assert_eq!(nchw.offset(5, 2, 3), (5 * 3 + 2) * 4 + 3);
        let nhwc = Layout::Nhwc.strides(&s);
        assert_eq!(nhwc.offset(5, 2, 3), (2 * 4 + 3) * 21 + 5);
    }
}
