//! Box geometry with the convention in the type name.
//!
//! * [`BoxXyxy`]: corners `(x_min, y_min, x_max, y_max)`, the form annotations and detections
//!   use. Coordinates are continuous: a box from 10 to 20 is 10 wide (no "+1 pixel").
//! * [`BoxCxcywh`]: centre and size, the form the network predicts and the loss compares.
//! * [`LabeledBox`]: a corner box with its class index, in pixels of the image it belongs to.
//!
//! The unit (pixels or normalised to `[0, 1]`) is a property of the value's origin and is named
//! in the field or function that produces it.

use serde::{Deserialize, Serialize};

/// An axis-aligned box by its corners. Width is `x_max - x_min` (continuous coordinates).
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BoxXyxy {
    /// Left edge.
    pub x_min: f32,
    /// Top edge.
    pub y_min: f32,
    /// Right edge.
    pub x_max: f32,
    /// Bottom edge.
    pub y_max: f32,
}

/// An axis-aligned box by its centre and size.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct BoxCxcywh {
    /// Centre x.
    pub cx: f32,
    /// Centre y.
    pub cy: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

/// A ground-truth or predicted box with its class index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LabeledBox {
    /// The box, in pixels of its image.
    pub bbox: BoxXyxy,
    /// Class index, `0..num_classes`.
    pub class: usize,
}

impl BoxXyxy {
    /// A box from its corners.
    #[must_use]
    pub const fn new(x_min: f32, y_min: f32, x_max: f32, y_max: f32) -> Self {
        Self { x_min, y_min, x_max, y_max }
    }

    /// Width (may be negative for a degenerate box).
    #[must_use]
    pub fn width(&self) -> f32 {
        self.x_max - self.x_min
    }

    /// Height (may be negative for a degenerate box).
    #[must_use]
    pub fn height(&self) -> f32 {
        self.y_max - self.y_min
    }

    /// Area, 0 for a degenerate box.
    #[must_use]
    pub fn area(&self) -> f32 {
        self.width().max(0.0) * self.height().max(0.0)
    }

    /// The same box in centre form.
    #[must_use]
    pub fn to_cxcywh(&self) -> BoxCxcywh {
        BoxCxcywh {
            cx: (self.x_min + self.x_max) * 0.5,
            cy: (self.y_min + self.y_max) * 0.5,
            w: self.width(),
            h: self.height(),
        }
    }

    /// Intersection over union; 0 when the union is empty. No "+1 pixel".
    #[must_use]
    pub fn iou(&self, other: &Self) -> f32 {
        iou_xyxy(
            [self.x_min, self.y_min, self.x_max, self.y_max],
            [other.x_min, other.y_min, other.x_max, other.y_max],
        )
    }

    /// Whether every coordinate is finite.
    #[must_use]
    pub fn is_finite(&self) -> bool {
        self.x_min.is_finite()
            && self.y_min.is_finite()
            && self.x_max.is_finite()
            && self.y_max.is_finite()
    }
}

impl BoxCxcywh {
    /// The same box in corner form.
    #[must_use]
    pub fn to_xyxy(&self) -> BoxXyxy {
        BoxXyxy {
            x_min: self.cx - self.w * 0.5,
            y_min: self.cy - self.h * 0.5,
            x_max: self.cx + self.w * 0.5,
            y_max: self.cy + self.h * 0.5,
        }
    }
}

/// IoU of two corner boxes given as `[x_min, y_min, x_max, y_max]`, generic over the float
/// type. Each box's extent is taken as its min and max coordinate, so a box with swapped corners
/// is normalised first; a box of area `<= 0` has IoU 0 (TensorFlow's NMS rule).
#[must_use]
pub fn iou_xyxy<T: Float>(a: [T; 4], b: [T; 4]) -> T {
    let (ax0, ax1) = min_max(a[0], a[2]);
    let (ay0, ay1) = min_max(a[1], a[3]);
    let (bx0, bx1) = min_max(b[0], b[2]);
    let (by0, by1) = min_max(b[1], b[3]);
    let area_a = (ax1 - ax0) * (ay1 - ay0);
    let area_b = (bx1 - bx0) * (by1 - by0);
    if area_a <= T::ZERO || area_b <= T::ZERO {
        return T::ZERO;
    }
    let iw = (min(ax1, bx1) - max(ax0, bx0)).max0();
    let ih = (min(ay1, by1) - max(ay0, by0)).max0();
    let inter = iw * ih;
    inter / (area_a + area_b - inter)
}

fn min_max<T: Float>(a: T, b: T) -> (T, T) {
    if a <= b {
        (a, b)
    } else {
        (b, a)
    }
}

fn min<T: Float>(a: T, b: T) -> T {
    if a <= b {
        a
    } else {
        b
    }
}

fn max<T: Float>(a: T, b: T) -> T {
    if a >= b {
        a
    } else {
        b
    }
}

/// The float operations the geometry needs, for `f32` and `f64`.
pub trait Float:
    Copy
    + PartialOrd
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
{
    /// Zero.
    const ZERO: Self;
    /// `max(self, 0)`.
    #[must_use]
    fn max0(self) -> Self {
        if self > Self::ZERO {
            self
        } else {
            Self::ZERO
        }
    }
}

impl Float for f32 {
    const ZERO: Self = 0.0;
}

impl Float for f64 {
    const ZERO: Self = 0.0;
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn arb_box() -> impl Strategy<Value = BoxXyxy> {
        (0f32..100.0, 0f32..100.0, 0.5f32..50.0, 0.5f32..50.0)
            .prop_map(|(x, y, w, h)| BoxXyxy::new(x, y, x + w, y + h))
    }

    #[test]
    fn iou_has_no_plus_one_pixel() {
        let a = BoxXyxy::new(0.0, 0.0, 10.0, 10.0);
        let b = BoxXyxy::new(5.0, 0.0, 15.0, 10.0);
        assert_eq!(a.iou(&b), 50.0 / 150.0);
    }

    #[test]
    fn degenerate_box_has_zero_iou() {
        let a = BoxXyxy::new(0.0, 0.0, 0.0, 10.0);
        assert_eq!(a.iou(&a), 0.0);
    }

    proptest! {
        #[test]
        fn iou_is_symmetric_and_bounded(a in arb_box(), b in arb_box()) {
            let ab = a.iou(&b);
            prop_assert_eq!(ab, b.iou(&a));
            prop_assert!((0.0..=1.0).contains(&ab));
        }

        #[test]
        fn iou_with_itself_is_one(a in arb_box()) {
            prop_assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        }

        #[test]
        fn conversions_round_trip(a in arb_box()) {
            let back = a.to_cxcywh().to_xyxy();
            prop_assert!((back.x_min - a.x_min).abs() < 1e-4);
            prop_assert!((back.y_max - a.y_max).abs() < 1e-4);
        }
    }
}
