//! keras-yolo3's training augmentation, `get_random_data(random=True)`.
//!
//! Steps and random draws, in keras' order (`rand(a, b)` is uniform in `[a, b)`):
//! 1. aspect jitter `new_ar = w / h * rand(1 - j, 1 + j) / rand(1 - j, 1 + j)` and scale
//!    `rand(0.25, 2)`; `nh = int(scale * h), nw = int(nh * new_ar)` if `new_ar < 1`, else
//!    `nw = int(scale * w), nh = int(nw / new_ar)`; bicubic resize to `nw x nh`;
//! 2. placement `dx = int(rand(0, w - nw))`, `dy = int(rand(0, h - nh))` on a grey 128 canvas
//!    (negative offsets crop, like PIL's `paste`);
//! 3. horizontal flip with probability 0.5;
//! 4. HSV distortion: hue `+= rand(-0.1, 0.1)` (wrapped), saturation and value multiplied by
//!    `rand(1, 1.5)` or its inverse (each with probability 0.5), then clipped to `[0, 1]`, in
//!    matplotlib's `rgb_to_hsv` / `hsv_to_rgb` convention. The result stays `f32` (keras does
//!    not requantise to 8 bits either);
//! 5. boxes: shuffled, `x * nw / iw + dx`, `y * nh / ih + dy`, mirrored when flipped, clipped
//!    to the canvas, boxes with width or height `<= 1` dropped, at most `max_boxes` kept.
//!    (keras stores the transformed boxes in an integer array, truncating them; here they stay
//!    fractional.)
//!
//! Output: network input CHW RGB `f32` in `[0, 1]` and boxes in network-input pixels.

use image::RgbImage;
use rand::seq::SliceRandom;
use rand::Rng;
use yolo3_core::{BoxXyxy, LabeledBox};

use crate::image_io::to_chw;
use crate::letterbox::{grey_canvas, paste, resize_bicubic, InputSize};

/// Parameters of the random augmentation; `Default` is keras-yolo3's.
#[derive(Clone, Debug, PartialEq)]
pub struct AugmentOptions {
    /// Aspect-ratio jitter `j`.
    pub jitter: f64,
    /// Scale range (fraction of the input size).
    pub scale_min: f64,
    /// Upper end of the scale range.
    pub scale_max: f64,
    /// Probability of a horizontal flip.
    pub flip_probability: f64,
    /// Hue shift amplitude (fraction of the hue circle).
    pub hue: f64,
    /// Saturation factor bound (`>= 1`).
    pub saturation: f64,
    /// Value factor bound (`>= 1`).
    pub value: f64,
    /// Boxes kept per image at most.
    pub max_boxes: usize,
    /// Boxes with width or height not above this many pixels are dropped.
    pub min_box_size: f32,
}

impl Default for AugmentOptions {
    fn default() -> Self {
        Self {
            jitter: 0.3,
            scale_min: 0.25,
            scale_max: 2.0,
            flip_probability: 0.5,
            hue: 0.1,
            saturation: 1.5,
            value: 1.5,
            max_boxes: 20,
            min_box_size: 1.0,
        }
    }
}

/// A network input and its boxes.
#[derive(Clone, Debug, PartialEq)]
pub struct Augmented {
    /// CHW RGB `f32` in `[0, 1]`, `3 * height * width` values.
    pub image: Vec<f32>,
    /// Boxes in network-input pixels.
    pub boxes: Vec<LabeledBox>,
    /// The input size.
    pub input: InputSize,
}

/// keras' `rand(a, b)`: uniform in `[a, b)`, also when `b < a`.
pub(crate) fn rand_uniform<R: Rng + ?Sized>(rng: &mut R, a: f64, b: f64) -> f64 {
    rng.random::<f64>() * (b - a) + a
}

/// One draw of the HSV distortion.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HsvShift {
    /// Added to the hue (fraction of the circle).
    pub hue: f64,
    /// Saturation factor.
    pub saturation: f64,
    /// Value factor.
    pub value: f64,
}

impl HsvShift {
    /// No change.
    pub const IDENTITY: Self = Self { hue: 0.0, saturation: 1.0, value: 1.0 };

    /// keras' draws: `hue = rand(-hue, hue)`, `sat = rand(1, sat) if rand() < .5 else
    /// 1 / rand(1, sat)`, same for value.
    pub fn sample<R: Rng + ?Sized>(options: &AugmentOptions, rng: &mut R) -> Self {
        let hue = rand_uniform(rng, -options.hue, options.hue);
        let mut factor = |bound: f64| {
            if rand_uniform(rng, 0.0, 1.0) < 0.5 {
                rand_uniform(rng, 1.0, bound)
            } else {
                1.0 / rand_uniform(rng, 1.0, bound)
            }
        };
        let saturation = factor(options.saturation);
        let value = factor(options.value);
        Self { hue, saturation, value }
    }

    /// Applies the distortion and returns CHW `f32` in `[0, 1]`.
    #[must_use]
    pub fn apply(&self, image: &RgbImage) -> Vec<f32> {
        if *self == Self::IDENTITY {
            return to_chw(image);
        }
        let (w, h) = image.dimensions();
        let plane = (w * h) as usize;
        let mut out = vec![0f32; 3 * plane];
        let (dh, sf, vf) = (self.hue as f32, self.saturation as f32, self.value as f32);
        for (i, px) in image.as_raw().chunks_exact(3).enumerate() {
            let rgb =
                [f32::from(px[0]) / 255.0, f32::from(px[1]) / 255.0, f32::from(px[2]) / 255.0];
            let [mut hh, s, v] = rgb_to_hsv(rgb);
            hh += dh;
            if hh > 1.0 {
                hh -= 1.0;
            }
            if hh < 0.0 {
                hh += 1.0;
            }
            let hsv = [hh.clamp(0.0, 1.0), (s * sf).clamp(0.0, 1.0), (v * vf).clamp(0.0, 1.0)];
            let [r, g, b] = hsv_to_rgb(hsv);
            out[i] = r;
            out[plane + i] = g;
            out[2 * plane + i] = b;
        }
        out
    }
}

/// matplotlib's `rgb_to_hsv` for one pixel, all components in `[0, 1]`.
#[must_use]
pub fn rgb_to_hsv([r, g, b]: [f32; 3]) -> [f32; 3] {
    let v = r.max(g).max(b);
    let delta = v - r.min(g).min(b);
    if delta <= 0.0 {
        return [0.0, 0.0, v];
    }
    // matplotlib assigns in the order r, g, b, so the last maximal channel wins.
    let h = if b == v {
        4.0 + (r - g) / delta
    } else if g == v {
        2.0 + (b - r) / delta
    } else {
        (g - b) / delta
    };
    [(h / 6.0).rem_euclid(1.0), delta / v, v]
}

/// matplotlib's `hsv_to_rgb` for one pixel.
#[must_use]
pub fn hsv_to_rgb([h, s, v]: [f32; 3]) -> [f32; 3] {
    if s == 0.0 {
        return [v, v, v];
    }
    let i = (h * 6.0).floor();
    let f = h * 6.0 - i;
    let p = v * (1.0 - s);
    let q = v * (1.0 - s * f);
    let t = v * (1.0 - s * (1.0 - f));
    match (i as i64).rem_euclid(6) {
        0 => [v, t, p],
        1 => [q, v, p],
        2 => [p, v, t],
        3 => [p, q, v],
        4 => [t, p, v],
        _ => [v, p, q],
    }
}

/// Mirrors an image left-right in place.
pub fn flip_horizontal(image: &mut RgbImage) {
    image::imageops::flip_horizontal_in_place(image);
}

/// Mirrors boxes in an image of width `w`.
pub(crate) fn flip_boxes(boxes: &mut [LabeledBox], w: f32) {
    for b in boxes {
        let (x0, x1) = (b.bbox.x_min, b.bbox.x_max);
        b.bbox.x_min = w - x1;
        b.bbox.x_max = w - x0;
    }
}

/// keras' clipping: `x_min, y_min < 0 -> 0`, `x_max > w -> w`, `y_max > h -> h`, then boxes
/// with width or height `<= min_size` dropped, then at most `max_boxes` kept.
pub(crate) fn clip_and_filter(
    boxes: &mut Vec<LabeledBox>,
    w: f32,
    h: f32,
    min_size: f32,
    max_boxes: usize,
) {
    for b in boxes.iter_mut() {
        b.bbox.x_min = b.bbox.x_min.max(0.0);
        b.bbox.y_min = b.bbox.y_min.max(0.0);
        b.bbox.x_max = b.bbox.x_max.min(w);
        b.bbox.y_max = b.bbox.y_max.min(h);
    }
    boxes.retain(|b| b.bbox.width() > min_size && b.bbox.height() > min_size);
    boxes.truncate(max_boxes);
}

/// The geometric part of the augmentation: returns the canvas (before flip and colour) and the
/// boxes mapped onto it (not yet clipped).
pub(crate) fn random_placement<R: Rng + ?Sized>(
    image: &RgbImage,
    boxes: &[LabeledBox],
    input: InputSize,
    options: &AugmentOptions,
    rng: &mut R,
) -> (RgbImage, Vec<LabeledBox>) {
    let (w, h) = (f64::from(input.width), f64::from(input.height));
    let (iw, ih) = (f64::from(image.width().max(1)), f64::from(image.height().max(1)));
    let j = options.jitter;
    let new_ar = w / h * rand_uniform(rng, 1.0 - j, 1.0 + j) / rand_uniform(rng, 1.0 - j, 1.0 + j);
    let scale = rand_uniform(rng, options.scale_min, options.scale_max);
    let (nw, nh) = if new_ar < 1.0 {
        let nh = (scale * h) as i64;
        (((nh as f64) * new_ar) as i64, nh)
    } else {
        let nw = (scale * w) as i64;
        (nw, ((nw as f64) / new_ar) as i64)
    };
    let (nw, nh) = (nw.max(1), nh.max(1));
    let resized = resize_bicubic(image, nw as u32, nh as u32);
    let dx = rand_uniform(rng, 0.0, w - nw as f64) as i64;
    let dy = rand_uniform(rng, 0.0, h - nh as f64) as i64;
    let mut canvas = grey_canvas(input);
    paste(&mut canvas, &resized, dx, dy);
    let (sx, sy) = (nw as f64 / iw, nh as f64 / ih);
    let (dxf, dyf) = (dx as f64, dy as f64);
    let map = |v: f32, s: f64, d: f64| (f64::from(v) * s + d) as f32;
    let out = boxes
        .iter()
        .map(|b| LabeledBox {
            bbox: BoxXyxy::new(
                map(b.bbox.x_min, sx, dxf),
                map(b.bbox.y_min, sy, dyf),
                map(b.bbox.x_max, sx, dxf),
                map(b.bbox.y_max, sy, dyf),
            ),
            class: b.class,
        })
        .collect();
    (canvas, out)
}

/// keras-yolo3's `get_random_data(random=True)` on a decoded image and its boxes (pixels).
pub fn random_data<R: Rng + ?Sized>(
    image: &RgbImage,
    boxes: &[LabeledBox],
    input: InputSize,
    options: &AugmentOptions,
    rng: &mut R,
) -> Augmented {
    let (mut canvas, mut boxes) = random_placement(image, boxes, input, options, rng);
    finish(&mut canvas, &mut boxes, input, options, rng)
}

/// Flip, colour, box clipping and shuffling shared by [`random_data`] and mosaic.
pub(crate) fn finish<R: Rng + ?Sized>(
    canvas: &mut RgbImage,
    boxes: &mut Vec<LabeledBox>,
    input: InputSize,
    options: &AugmentOptions,
    rng: &mut R,
) -> Augmented {
    let (w, h) = (input.width as f32, input.height as f32);
    let flip = rand_uniform(rng, 0.0, 1.0) < options.flip_probability;
    if flip {
        flip_horizontal(canvas);
        flip_boxes(boxes, w);
    }
    let shift = HsvShift::sample(options, rng);
    let image = shift.apply(canvas);
    boxes.shuffle(rng);
    clip_and_filter(boxes, w, h, options.min_box_size, options.max_boxes);
    Augmented { image, boxes: std::mem::take(boxes), input }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hsv_round_trip() {
        for rgb in
            [[0.2f32, 0.4, 0.9], [1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.1, 0.9, 0.3], [0.0, 0.0, 0.0]]
        {
            let back = hsv_to_rgb(rgb_to_hsv(rgb));
            for k in 0..3 {
                assert!((back[k] - rgb[k]).abs() < 1e-6, "{rgb:?} -> {back:?}");
            }
        }
        // Pure red has hue 0, pure green 1/3, pure blue 2/3.
        assert_eq!(rgb_to_hsv([0.0, 1.0, 0.0])[0], 1.0 / 3.0);
        assert_eq!(rgb_to_hsv([0.0, 0.0, 1.0])[0], 2.0 / 3.0);
    }

    #[test]
    fn keras_clipping_rules() {
        let mut boxes = vec![
            LabeledBox { bbox: BoxXyxy::new(-5.0, -5.0, 20.0, 20.0), class: 0 },
            LabeledBox { bbox: BoxXyxy::new(10.0, 10.0, 10.5, 30.0), class: 1 },
            LabeledBox { bbox: BoxXyxy::new(120.0, 10.0, 140.0, 30.0), class: 2 },
        ];
        clip_and_filter(&mut boxes, 100.0, 100.0, 1.0, 20);
        assert_eq!(boxes.len(), 1);
        assert_eq!(boxes[0].bbox, BoxXyxy::new(0.0, 0.0, 20.0, 20.0));
    }
}
