//! Opaque drawing primitives on an [`RgbImage`]: rectangles, outlines and lines.
//!
//! Conventions:
//! * Pixel coordinates are integers, `(0, 0)` is the top-left pixel, `x` grows right and `y`
//!   grows down.
//! * A [`PixelRect`] covers pixels `left..right` by `top..bottom` (right and bottom exclusive),
//!   so a rectangle from 10 to 20 is 10 pixels wide, matching the continuous corner convention
//!   of [`BoxXyxy`].
//! * Colours are `[r, g, b]` bytes and overwrite the pixel (no alpha blending).
//! * Every primitive clips to the image: shapes partly or wholly outside never panic, they draw
//!   only the pixels that exist. Coordinates far outside (up to the `i32` range) are cheap.

use image::{Rgb, RgbImage};
use yolo3_core::BoxXyxy;

/// An integer pixel rectangle, `left..right` by `top..bottom` (exclusive ends).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct PixelRect {
    /// First column.
    pub left: i32,
    /// First row.
    pub top: i32,
    /// One past the last column.
    pub right: i32,
    /// One past the last row.
    pub bottom: i32,
}

impl PixelRect {
    /// The rectangle with the given corners (exclusive right and bottom).
    #[must_use]
    pub const fn new(left: i32, top: i32, right: i32, bottom: i32) -> Self {
        Self { left, top, right, bottom }
    }

    /// The rectangle at `(x, y)` with the given size.
    #[must_use]
    pub fn from_size(x: i32, y: i32, width: u32, height: u32) -> Self {
        let w = i32::try_from(width).unwrap_or(i32::MAX);
        let h = i32::try_from(height).unwrap_or(i32::MAX);
        Self::new(x, y, x.saturating_add(w), y.saturating_add(h))
    }

    /// The pixels covered by a box in pixel units: corners rounded to the nearest integer, so
    /// the box `(10.0, 10.0, 20.0, 20.0)` covers pixels 10..20. `None` if a corner is not
    /// finite. Far-away corners saturate at the `i32` range.
    #[must_use]
    pub fn from_box(bbox: &BoxXyxy) -> Option<Self> {
        let corners = [bbox.x_min, bbox.y_min, bbox.x_max, bbox.y_max];
        if corners.iter().any(|v| !v.is_finite()) {
            return None;
        }
        let [l, t, r, b] = corners.map(|v| v.round() as i32);
        Some(Self::new(l.min(r), t.min(b), l.max(r), t.max(b)))
    }

    /// Width in pixels (0 if empty).
    #[must_use]
    pub fn width(&self) -> u32 {
        (i64::from(self.right) - i64::from(self.left)).max(0) as u32
    }

    /// Height in pixels (0 if empty).
    #[must_use]
    pub fn height(&self) -> u32 {
        (i64::from(self.bottom) - i64::from(self.top)).max(0) as u32
    }

    /// Whether the rectangle covers no pixel.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.right <= self.left || self.bottom <= self.top
    }

    /// The part of the rectangle inside a `width x height` image (possibly empty).
    #[must_use]
    pub fn clip(&self, width: u32, height: u32) -> Self {
        let w = i32::try_from(width).unwrap_or(i32::MAX);
        let h = i32::try_from(height).unwrap_or(i32::MAX);
        Self::new(self.left.max(0), self.top.max(0), self.right.min(w), self.bottom.min(h))
    }

    /// Whether the two rectangles share a pixel.
    #[must_use]
    pub fn overlaps(&self, other: &Self) -> bool {
        self.left < other.right
            && other.left < self.right
            && self.top < other.bottom
            && other.top < self.bottom
    }

    /// Whether the pixel `(x, y)` is inside.
    #[must_use]
    pub fn contains(&self, x: i32, y: i32) -> bool {
        (self.left..self.right).contains(&x) && (self.top..self.bottom).contains(&y)
    }
}

/// Fills every pixel of `rect` that lies in the image.
pub fn fill_rect(image: &mut RgbImage, rect: PixelRect, color: [u8; 3]) {
    let clipped = rect.clip(image.width(), image.height());
    if clipped.is_empty() {
        return;
    }
    for y in clipped.top..clipped.bottom {
        for x in clipped.left..clipped.right {
            image.put_pixel(x as u32, y as u32, Rgb(color));
        }
    }
}

/// Draws the outline of `rect`: the pixels of `rect` within `thickness` of its border (the
/// outline grows inwards; a thickness of 0 draws nothing, a thickness of half the size or more
/// fills the rectangle).
pub fn draw_rect(image: &mut RgbImage, rect: PixelRect, thickness: u32, color: [u8; 3]) {
    if rect.is_empty() || thickness == 0 {
        return;
    }
    let t = i32::try_from(thickness).unwrap_or(i32::MAX);
    let PixelRect { left, top, right, bottom } = rect;
    let inner_top = top.saturating_add(t).min(bottom);
    let inner_bottom = bottom.saturating_sub(t).max(inner_top);
    fill_rect(image, PixelRect::new(left, top, right, inner_top), color);
    fill_rect(image, PixelRect::new(left, inner_bottom, right, bottom), color);
    let inner_left = left.saturating_add(t).min(right);
    let inner_right = right.saturating_sub(t).max(inner_left);
    fill_rect(image, PixelRect::new(left, inner_top, inner_left, inner_bottom), color);
    fill_rect(image, PixelRect::new(inner_right, inner_top, right, inner_bottom), color);
}

/// Draws a one-pixel line from `from` to `to`, both ends included (Bresenham).
pub fn draw_line(image: &mut RgbImage, from: (i32, i32), to: (i32, i32), color: [u8; 3]) {
    draw_thick_line(image, from, to, 1, color);
}

/// Draws a line `thickness` pixels wide: a `thickness x thickness` square centred on each pixel
/// of the Bresenham line from `from` to `to` (both ends included).
pub fn draw_thick_line(
    image: &mut RgbImage,
    from: (i32, i32),
    to: (i32, i32),
    thickness: u32,
    color: [u8; 3],
) {
    if thickness == 0 {
        return;
    }
    let t = i32::try_from(thickness).unwrap_or(i32::MAX).min(1 << 16);
    let margin = f64::from(t);
    let bounds =
        (-margin, -margin, f64::from(image.width()) + margin, f64::from(image.height()) + margin);
    let Some((from, to)) = clip_segment(from, to, bounds) else {
        return;
    };
    let half = (t - 1) / 2;
    bresenham(from, to, |x, y| {
        fill_rect(image, PixelRect::from_size(x - half, y - half, thickness, thickness), color);
    });
}

/// Calls `plot` for each pixel of the Bresenham line from `from` to `to`, ends included.
fn bresenham(from: (i32, i32), to: (i32, i32), mut plot: impl FnMut(i32, i32)) {
    let (mut x, mut y) = (i64::from(from.0), i64::from(from.1));
    let (x1, y1) = (i64::from(to.0), i64::from(to.1));
    let dx = (x1 - x).abs();
    let dy = -(y1 - y).abs();
    let sx = if x < x1 { 1 } else { -1 };
    let sy = if y < y1 { 1 } else { -1 };
    let mut err = dx + dy;
    loop {
        plot(x as i32, y as i32);
        if x == x1 && y == y1 {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

/// Clips a segment to `(x_min, y_min, x_max, y_max)` (Liang-Barsky). A segment with both ends
/// inside is returned unchanged, so lines in the image are exact Bresenham lines; otherwise the
/// clipped ends are rounded. `None` if nothing of the segment is inside.
fn clip_segment(
    from: (i32, i32),
    to: (i32, i32),
    (x_min, y_min, x_max, y_max): (f64, f64, f64, f64),
) -> Option<((i32, i32), (i32, i32))> {
    let inside = |(x, y): (i32, i32)| {
        let (x, y) = (f64::from(x), f64::from(y));
        (x_min..=x_max).contains(&x) && (y_min..=y_max).contains(&y)
    };
    if inside(from) && inside(to) {
        return Some((from, to));
    }
    let (x0, y0) = (f64::from(from.0), f64::from(from.1));
    let (dx, dy) = (f64::from(to.0) - x0, f64::from(to.1) - y0);
    let (mut t0, mut t1) = (0.0_f64, 1.0_f64);
    for (p, q) in [(-dx, x0 - x_min), (dx, x_max - x0), (-dy, y0 - y_min), (dy, y_max - y0)] {
        if p == 0.0 {
            if q < 0.0 {
                return None;
            }
        } else {
            let r = q / p;
            if p < 0.0 {
                t0 = t0.max(r);
            } else {
                t1 = t1.min(r);
            }
        }
    }
    if t0 > t1 {
        return None;
    }
    let at = |t: f64| ((x0 + t * dx).round() as i32, (y0 + t * dy).round() as i32);
    Some((at(t0), at(t1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const RED: [u8; 3] = [255, 0, 0];

    fn lit(image: &RgbImage) -> Vec<(u32, u32)> {
        image
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0 != [0, 0, 0])
            .map(|(x, y, _)| (x, y))
            .collect()
    }

    #[test]
    fn rect_outline_marks_exactly_the_border_pixels() {
        let mut image = RgbImage::new(20, 20);
        let rect = PixelRect::new(3, 4, 13, 12);
        draw_rect(&mut image, rect, 2, RED);
        for y in 0..20 {
            for x in 0..20 {
                let inside = (3..13).contains(&x) && (4..12).contains(&y);
                let inner = (5..11).contains(&x) && (6..10).contains(&y);
                let expected = inside && !inner;
                assert_eq!(image.get_pixel(x, y).0 == RED, expected, "({x}, {y})");
            }
        }
        assert_eq!(lit(&image).len(), 10 * 8 - 6 * 4);
    }

    #[test]
    fn thick_outline_of_a_small_rect_fills_it() {
        let mut image = RgbImage::new(10, 10);
        draw_rect(&mut image, PixelRect::new(2, 2, 5, 5), 4, RED);
        assert_eq!(lit(&image).len(), 9);
    }

    #[test]
    fn fill_rect_clips() {
        let mut image = RgbImage::new(8, 6);
        fill_rect(&mut image, PixelRect::new(-5, 4, 3, 100), RED);
        assert_eq!(lit(&image).len(), 3 * 2);
        fill_rect(&mut image, PixelRect::new(i32::MIN, i32::MIN, i32::MAX, -1), RED);
        fill_rect(&mut image, PixelRect::new(9, 0, 4, 3), RED);
        assert_eq!(lit(&image).len(), 6);
    }

    #[test]
    fn box_to_pixels_rounds_corners() {
        let rect = PixelRect::from_box(&BoxXyxy::new(10.4, 9.6, 19.5, 20.2)).unwrap();
        assert_eq!(rect, PixelRect::new(10, 10, 20, 20));
        assert_eq!((rect.width(), rect.height()), (10, 10));
        assert!(PixelRect::from_box(&BoxXyxy::new(f32::NAN, 0.0, 1.0, 1.0)).is_none());
        let far = PixelRect::from_box(&BoxXyxy::new(-1e30, 0.0, 1e30, 1.0)).unwrap();
        assert_eq!((far.left, far.right), (i32::MIN, i32::MAX));
    }

    #[test]
    fn lines_include_both_ends_and_are_connected() {
        let mut image = RgbImage::new(20, 20);
        draw_line(&mut image, (2, 3), (15, 9), RED);
        let pixels = lit(&image);
        assert_eq!(pixels.len(), 14, "one pixel per column of an x-major line");
        assert_eq!(image.get_pixel(2, 3).0, RED);
        assert_eq!(image.get_pixel(15, 9).0, RED);
        for x in 2..=15 {
            assert_eq!(pixels.iter().filter(|p| p.0 == x).count(), 1);
        }
    }

    #[test]
    fn horizontal_and_vertical_lines() {
        let mut image = RgbImage::new(10, 10);
        draw_line(&mut image, (1, 5), (8, 5), RED);
        draw_line(&mut image, (4, 8), (4, 0), RED);
        let pixels = lit(&image);
        assert_eq!(pixels.len(), 8 + 9 - 1);
        assert!(pixels.iter().all(|&(x, y)| y == 5 || x == 4));
    }

    #[test]
    fn lines_far_outside_are_clipped_quickly() {
        let mut image = RgbImage::new(10, 10);
        draw_line(&mut image, (i32::MIN, 5), (i32::MAX, 5), RED);
        assert_eq!(lit(&image).len(), 10);
        draw_line(&mut image, (-100, -100), (-1, 50), RED);
        draw_thick_line(&mut image, (i32::MIN, i32::MIN), (i32::MAX, i32::MAX), 3, RED);
        assert!(image.get_pixel(0, 0).0 == RED && image.get_pixel(9, 9).0 == RED);
    }

    #[test]
    fn thick_lines_are_centred() {
        let mut image = RgbImage::new(10, 10);
        draw_thick_line(&mut image, (2, 5), (7, 5), 3, RED);
        let pixels = lit(&image);
        assert!(pixels.iter().all(|&(x, y)| (1..=8).contains(&x) && (4..=6).contains(&y)));
        assert_eq!(pixels.len(), 8 * 3);
        draw_thick_line(&mut image, (0, 0), (0, 0), 0, [1, 1, 1]);
        assert_eq!(lit(&image).len(), 8 * 3);
    }
}
