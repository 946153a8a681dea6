//! Mosaic augmentation: four images in a 2x2 layout around a random centre.
//!
//! The centre `(cx, cy)` is drawn uniformly in `[centre_min, centre_max]` times the input size.
//! Image `k` (top-left, top-right, bottom-left, bottom-right) is scaled by
//! `rand(scale_min, scale_max) * min(w / iw, h / ih)` with keras' aspect jitter and placed with
//! its inner corner on the centre, so it fills its quadrant outwards; only the part inside its
//! quadrant is copied. Boxes follow, are clipped to their quadrant, and the usual finish of
//! [`crate::augment`] (flip, HSV, keras clipping, `max_boxes`) applies to the whole canvas.

use image::RgbImage;
use rand::Rng;
use yolo3_core::{BoxXyxy, LabeledBox};

use crate::augment::{finish, rand_uniform, AugmentOptions, Augmented};
use crate::letterbox::{grey_canvas, paste_clipped, resize_bicubic, InputSize};

/// Mosaic parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct MosaicOptions {
    /// Probability that a training sample is a mosaic (the other three images are drawn at
    /// random from the same index set).
    pub probability: f64,
    /// Lower bound of the centre, as a fraction of the input size.
    pub centre_min: f64,
    /// Upper bound of the centre.
    pub centre_max: f64,
    /// Lower bound of each tile's scale relative to fitting the whole input.
    pub scale_min: f64,
    /// Upper bound of each tile's scale.
    pub scale_max: f64,
}

impl Default for MosaicOptions {
    fn default() -> Self {
        Self { probability: 0.5, centre_min: 0.3, centre_max: 0.7, scale_min: 0.4, scale_max: 1.0 }
    }
}

/// Builds a mosaic from four decoded images and their boxes (pixels of each image).
pub fn mosaic<R: Rng + ?Sized>(
    tiles: [(&RgbImage, &[LabeledBox]); 4],
    input: InputSize,
    mosaic_options: &MosaicOptions,
    options: &AugmentOptions,
    rng: &mut R,
) -> Augmented {
    let (w, h) = (i64::from(input.width), i64::from(input.height));
    let cx =
        (rand_uniform(rng, mosaic_options.centre_min, mosaic_options.centre_max) * w as f64) as i64;
    let cy =
        (rand_uniform(rng, mosaic_options.centre_min, mosaic_options.centre_max) * h as f64) as i64;
    let mut canvas = grey_canvas(input);
    let mut boxes = Vec::new();
    for (k, (image, tile_boxes)) in tiles.into_iter().enumerate() {
        let (iw, ih) = (f64::from(image.width().max(1)), f64::from(image.height().max(1)));
        let j = options.jitter;
        let ar = rand_uniform(rng, 1.0 - j, 1.0 + j) / rand_uniform(rng, 1.0 - j, 1.0 + j);
        let fit = (w as f64 / iw).min(h as f64 / ih);
        let s = rand_uniform(rng, mosaic_options.scale_min, mosaic_options.scale_max) * fit;
        let nw = ((iw * s * ar.sqrt()) as i64).max(1);
        let nh = ((ih * s / ar.sqrt()) as i64).max(1);
        let resized = resize_bicubic(image, nw as u32, nh as u32);
        let (right, bottom) = (k % 2 == 1, k >= 2);
        let x = if right { cx } else { cx - nw };
        let y = if bottom { cy } else { cy - nh };
        let region = (
            if right { cx } else { 0 },
            if bottom { cy } else { 0 },
            if right { w } else { cx },
            if bottom { h } else { cy },
        );
        paste_clipped(&mut canvas, &resized, x, y, region);
        let (sx, sy) = (nw as f32 / iw as f32, nh as f32 / ih as f32);
        let (r0, r1, r2, r3) = (region.0 as f32, region.1 as f32, region.2 as f32, region.3 as f32);
        for b in tile_boxes {
            let bb = BoxXyxy::new(
                (b.bbox.x_min * sx + x as f32).clamp(r0, r2),
                (b.bbox.y_min * sy + y as f32).clamp(r1, r3),
                (b.bbox.x_max * sx + x as f32).clamp(r0, r2),
                (b.bbox.y_max * sy + y as f32).clamp(r1, r3),
            );
            if bb.width() > options.min_box_size && bb.height() > options.min_box_size {
                boxes.push(LabeledBox { bbox: bb, class: b.class });
            }
        }
    }
    finish(&mut canvas, &mut boxes, input, options, rng)
}
