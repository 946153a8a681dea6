//! Detection boxes with labels drawn onto the image they were found in (the `detect` output).
//!
//! Boxes are in pixels of that image ([`BoxXyxy`], continuous corners, rounded to the nearest
//! pixel edge). The outline grows inwards from the box edge. Each label (`"dog 0.87"`) sits on a
//! filled background in the box colour just above the box, or inside its top edge when there is
//! no room above, and is shifted sideways to stay in the image. Parts of a box outside the
//! image are clipped; boxes wholly outside or with non-finite corners are skipped. All outlines
//! are drawn before all labels so that no box hides a label.

use image::RgbImage;
use yolo3_core::BoxXyxy;

use crate::draw::{draw_rect, fill_rect, PixelRect};
use crate::font::{draw_text, text_height, text_width};
use crate::palette::text_color_on;

/// One box to draw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Annotation {
    /// The box, in pixels of the image.
    pub bbox: BoxXyxy,
    /// The text shown above the box, e.g. `dog 0.87`; empty for no label.
    pub label: String,
    /// Outline and label background colour.
    pub color: [u8; 3],
}

/// How [`annotate`] draws.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AnnotateOptions {
    /// Outline thickness in pixels; `None` picks one from the image size (about 0.3% of the
    /// mean side, at least 2).
    pub thickness: Option<u32>,
    /// Font scale (1 = 8-pixel-high text); `None` picks one from the image size (about 3% of
    /// the mean side, at least 1).
    pub font_scale: Option<u32>,
    /// Whether to draw the labels.
    pub labels: bool,
}

impl Default for AnnotateOptions {
    fn default() -> Self {
        Self { thickness: None, font_scale: None, labels: true }
    }
}

impl AnnotateOptions {
    /// The outline thickness used on a `width x height` image.
    #[must_use]
    pub fn thickness_for(&self, width: u32, height: u32) -> u32 {
        self.thickness.unwrap_or_else(|| {
            let mean_side = f64::midpoint(f64::from(width), f64::from(height));
            ((mean_side * 0.003).round() as u32).max(2)
        })
    }

    /// The font scale used on a `width x height` image.
    #[must_use]
    pub fn font_scale_for(&self, width: u32, height: u32) -> u32 {
        self.font_scale
            .unwrap_or_else(|| {
                let mean_side = f64::midpoint(f64::from(width), f64::from(height));
                (mean_side * 0.03 / 8.0).round() as u32
            })
            .max(1)
    }
}

/// Draws `detections` onto `image` (see the module docs for placement and clipping).
pub fn annotate(image: &mut RgbImage, detections: &[Annotation], options: &AnnotateOptions) {
    let (width, height) = image.dimensions();
    let thickness = options.thickness_for(width, height);
    let scale = options.font_scale_for(width, height);
    let visible: Vec<(PixelRect, &Annotation)> = detections
        .iter()
        .filter_map(|a| PixelRect::from_box(&a.bbox).map(|r| (r, a)))
        .filter(|(r, _)| !r.clip(width, height).is_empty())
        .collect();
    for (rect, a) in &visible {
        draw_rect(image, *rect, thickness, a.color);
    }
    if !options.labels {
        return;
    }
    let mut placed_labels: Vec<PixelRect> = Vec::new();
    for (rect, a) in &visible {
        if a.label.is_empty() {
            continue;
        }
        let placed = label_rect(*rect, &a.label, scale, width, height, &placed_labels);
        placed_labels.push(placed);
        fill_rect(image, placed, a.color);
        let pad = label_padding(scale) as i32;
        draw_text(
            image,
            placed.left + pad,
            placed.top + pad,
            &a.label,
            scale,
            text_color_on(a.color),
        );
    }
}

/// Padding around label text, in pixels.
fn label_padding(scale: u32) -> u32 {
    scale + 1
}

/// Where the label of the box `rect` goes in a `width x height` image: above the box, else
/// (no room above) inside it at the top of its visible part; moved down, then up, one label
/// height at a time (up to the box's height) while it covers a label placed earlier (`taken`).
fn label_rect(
    rect: PixelRect,
    label: &str,
    scale: u32,
    width: u32,
    height: u32,
    taken: &[PixelRect],
) -> PixelRect {
    let pad = label_padding(scale);
    let w = text_width(label, scale) + 2 * pad;
    let h = text_height(scale) + 2 * pad;
    let clipped = rect.clip(width, height);
    let max_left = i64::from(width) - i64::from(w);
    let left = i64::from(clipped.left).min(max_left).max(0);
    let max_top = (i64::from(height) - i64::from(h)).max(0);
    let above = i64::from(rect.top) - i64::from(h);
    let top = if above >= 0 {
        above
    } else {
        // No room above: inside the box, at the top of its visible part.
        i64::from(clipped.top).min(max_top)
    };
    let at = |top: i64| PixelRect::from_size(left as i32, top as i32, w, h);
    let free = |r: &PixelRect| !taken.iter().any(|t| t.overlaps(r));
    let first = at(top);
    if free(&first) {
        return first;
    }
    let steps = (i64::from(clipped.height()) / i64::from(h)).max(1) + 1;
    (1..=steps)
        .flat_map(|k| [top + k * i64::from(h), top - k * i64::from(h)])
        .filter(|&t| (0..=max_top).contains(&t))
        .map(at)
        .find(free)
        .unwrap_or(first)
}

#[cfg(test)]
mod tests {
    use super::*;

    const GREEN: [u8; 3] = [0, 200, 0];
    const BLACK: [u8; 3] = [0, 0, 0];

    fn options(labels: bool) -> AnnotateOptions {
        AnnotateOptions { thickness: Some(2), font_scale: Some(1), labels }
    }

    fn count(image: &RgbImage, color: [u8; 3]) -> usize {
        image.pixels().filter(|p| p.0 == color).count()
    }

    #[test]
    fn box_outline_matches_rounded_corners() {
        let mut image = RgbImage::new(40, 40);
        let a = Annotation {
            bbox: BoxXyxy::new(10.2, 12.0, 29.8, 30.0),
            label: String::new(),
            color: GREEN,
        };
        annotate(&mut image, &[a], &options(true));
        assert_eq!(count(&image, GREEN), 20 * 18 - 16 * 14);
        assert_eq!(image.get_pixel(10, 12).0, GREEN);
        assert_eq!(image.get_pixel(29, 29).0, GREEN);
        assert_eq!(image.get_pixel(30, 30).0, BLACK);
        assert_eq!(image.get_pixel(12, 14).0, BLACK);
    }

    #[test]
    fn label_sits_above_the_box_with_contrasting_text() {
        let mut image = RgbImage::new(100, 80);
        let a = Annotation {
            bbox: BoxXyxy::new(20.0, 40.0, 90.0, 70.0),
            label: "dog 0.87".into(),
            color: GREEN,
        };
        annotate(&mut image, &[a], &options(true));
        // Label box: width 47 + 4, height 8 + 4, bottom edge at the box top.
        let label = PixelRect::new(20, 28, 20 + 51, 40);
        let mut text_pixels = 0;
        for y in label.top..label.bottom {
            for x in label.left..label.right {
                let p = image.get_pixel(x as u32, y as u32).0;
                assert!(p == GREEN || p == [255, 255, 255], "({x}, {y}) = {p:?}");
                text_pixels += usize::from(p != GREEN);
            }
        }
        assert!(text_pixels > 30);
        assert_eq!(image.get_pixel(19, 35).0, BLACK);
        assert_eq!(image.get_pixel(71, 35).0, BLACK);
    }

    #[test]
    fn labels_of_boxes_at_one_place_do_not_cover_each_other() {
        let mut image = RgbImage::new(120, 100);
        let boxes = [(20.0, 40.0), (22.0, 42.0), (24.0, 41.0)];
        let annotations: Vec<Annotation> = boxes
            .iter()
            .map(|&(x, y)| Annotation {
                bbox: BoxXyxy::new(x, y, x + 60.0, y + 50.0),
                label: "person 0.9".into(),
                color: GREEN,
            })
            .collect();
        let mut taken = Vec::new();
        for a in &annotations {
            let rect = PixelRect::from_box(&a.bbox).unwrap();
            let placed = label_rect(rect, &a.label, 1, 120, 100, &taken);
            assert!(
                taken.iter().all(|t: &PixelRect| !t.overlaps(&placed)),
                "{placed:?} covers {taken:?}"
            );
            assert!(placed.top >= 0 && placed.bottom <= 100);
            taken.push(placed);
        }
        annotate(&mut image, &annotations, &options(true));
        assert_eq!(
            taken[0],
            PixelRect::new(20, 28, 20 + 4 + 59, 40),
            "the first stays above its box"
        );
    }

    #[test]
    fn label_moves_inside_when_there_is_no_room_above() {
        let mut image = RgbImage::new(100, 80);
        let a = Annotation {
            bbox: BoxXyxy::new(10.0, 2.0, 60.0, 50.0),
            label: "cat".into(),
            color: GREEN,
        };
        annotate(&mut image, &[a], &options(true));
        assert_eq!(image.get_pixel(10, 0).0, BLACK);
        assert_eq!(label_rect(PixelRect::new(10, 2, 60, 50), "cat", 1, 100, 80, &[]).top, 2);
    }

    #[test]
    fn boxes_partly_outside_draw_their_visible_part() {
        let mut image = RgbImage::new(50, 40);
        let detections = [
            Annotation {
                bbox: BoxXyxy::new(-30.0, -20.0, 20.0, 15.0),
                label: "left 0.5".into(),
                color: GREEN,
            },
            Annotation {
                bbox: BoxXyxy::new(40.0, 30.0, 1e9, 1e9),
                label: "right".into(),
                color: [0, 0, 255],
            },
        ];
        annotate(&mut image, &detections, &options(false));
        // First box: only its right and bottom edges are inside.
        assert_eq!(image.get_pixel(19, 5).0, GREEN);
        assert_eq!(image.get_pixel(5, 14).0, GREEN);
        assert_eq!(image.get_pixel(0, 0).0, BLACK);
        assert_eq!(count(&image, GREEN), 2 * 15 + 2 * 20 - 4);
        // Second box: its top-left corner is inside.
        assert_eq!(image.get_pixel(40, 30).0, [0, 0, 255]);
        assert_eq!(image.get_pixel(49, 31).0, [0, 0, 255]);
        // With labels, nothing panics and the labels stay in the image.
        annotate(&mut image, &detections, &options(true));
        let label = label_rect(PixelRect::new(40, 30, i32::MAX, i32::MAX), "right", 1, 50, 40, &[]);
        assert!(label.left >= 0 && label.right <= 50 && label.top >= 0 && label.bottom <= 40);
    }

    #[test]
    fn boxes_wholly_outside_or_invalid_draw_nothing() {
        let mut image = RgbImage::new(30, 30);
        let detections = [
            Annotation {
                bbox: BoxXyxy::new(-50.0, -50.0, -10.0, -10.0),
                label: "gone".into(),
                color: GREEN,
            },
            Annotation {
                bbox: BoxXyxy::new(31.0, 0.0, 90.0, 20.0),
                label: "gone".into(),
                color: GREEN,
            },
            Annotation {
                bbox: BoxXyxy::new(f32::NAN, 0.0, 10.0, 10.0),
                label: "nan".into(),
                color: GREEN,
            },
            Annotation {
                bbox: BoxXyxy::new(0.0, f32::INFINITY, 10.0, 10.0),
                label: "inf".into(),
                color: GREEN,
            },
            Annotation {
                bbox: BoxXyxy::new(5.0, 5.0, 5.0, 20.0),
                label: "flat".into(),
                color: GREEN,
            },
        ];
        annotate(&mut image, &detections, &AnnotateOptions::default());
        assert_eq!(count(&image, BLACK), 900);
    }

    #[test]
    fn label_wider_than_the_image_starts_at_the_left_edge() {
        let mut image = RgbImage::new(20, 20);
        let a = Annotation {
            bbox: BoxXyxy::new(5.0, 5.0, 15.0, 15.0),
            label: "a very long label".into(),
            color: GREEN,
        };
        annotate(&mut image, &[a], &options(true));
        assert_eq!(
            label_rect(PixelRect::new(5, 5, 15, 15), "a very long label", 1, 20, 20, &[]).left,
            0
        );
    }

    #[test]
    fn automatic_sizes_grow_with_the_image() {
        let auto = AnnotateOptions::default();
        assert_eq!(auto.thickness_for(64, 64), 2);
        assert_eq!(auto.thickness_for(1920, 1080), 5);
        assert_eq!(auto.font_scale_for(64, 64), 1);
        assert_eq!(auto.font_scale_for(640, 480), 2);
        assert!(auto.font_scale_for(1920, 1080) > auto.font_scale_for(640, 480));
    }
}
