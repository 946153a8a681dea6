//! Letterboxing: keras-yolo3's `letterbox_image` and `get_random_data(random=False)`.
//!
//! The image is scaled by `scale = min(w / iw, h / ih)` to `nw = int(iw * scale)`,
//! `nh = int(ih * scale)` with a bicubic filter and pasted at `((w - nw) // 2, (h - nh) // 2)`
//! on a grey `(128, 128, 128)` canvas of the network input size `w x h`. Boxes follow as
//! `x * scale + dx`, `y * scale + dy` (keras uses `scale`, not `nw / iw`). [`Letterbox`] keeps
//! the parameters so detections in network-input pixels can be mapped back to the image.

use image::imageops::FilterType;
use image::{Rgb, RgbImage};
use yolo3_core::{BoxXyxy, LabeledBox};

use crate::dataset::ImageSize;

/// The network input size in pixels (keras' `input_shape` is `(height, width)`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct InputSize {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl InputSize {
    /// A square input.
    #[must_use]
    pub const fn square(side: u32) -> Self {
        Self { width: side, height: side }
    }
}

/// The grey of keras-yolo3's canvas.
pub const GREY: Rgb<u8> = Rgb([128, 128, 128]);

/// The parameters of one letterbox transform.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Letterbox {
    /// The original image size.
    pub image: ImageSize,
    /// The network input size.
    pub input: InputSize,
    /// `min(w / iw, h / ih)`.
    pub scale: f64,
    /// `int(iw * scale)`.
    pub resized_width: u32,
    /// `int(ih * scale)`.
    pub resized_height: u32,
    /// Left offset `(w - nw) // 2`.
    pub dx: u32,
    /// Top offset `(h - nh) // 2`.
    pub dy: u32,
}

impl Letterbox {
    /// The transform of an image of `image` size into `input`.
    #[must_use]
    pub fn new(image: ImageSize, input: InputSize) -> Self {
        let (iw, ih) = (f64::from(image.width.max(1)), f64::from(image.height.max(1)));
        let (w, h) = (f64::from(input.width), f64::from(input.height));
        let scale = (w / iw).min(h / ih);
        let resized_width = ((iw * scale) as u32).clamp(1, input.width.max(1));
        let resized_height = ((ih * scale) as u32).clamp(1, input.height.max(1));
        Self {
            image,
            input,
            scale,
            resized_width,
            resized_height,
            dx: (input.width - resized_width) / 2,
            dy: (input.height - resized_height) / 2,
        }
    }

    /// A box in image pixels to network-input pixels.
    #[must_use]
    pub fn forward(&self, b: BoxXyxy) -> BoxXyxy {
        let s = self.scale;
        let (dx, dy) = (f64::from(self.dx), f64::from(self.dy));
        let f = |v: f32, d: f64| (f64::from(v) * s + d) as f32;
        BoxXyxy::new(f(b.x_min, dx), f(b.y_min, dy), f(b.x_max, dx), f(b.y_max, dy))
    }

    /// A box in network-input pixels back to image pixels (not clipped).
    #[must_use]
    pub fn inverse(&self, b: BoxXyxy) -> BoxXyxy {
        let s = self.scale;
        let (dx, dy) = (f64::from(self.dx), f64::from(self.dy));
        let f = |v: f32, d: f64| ((f64::from(v) - d) / s) as f32;
        BoxXyxy::new(f(b.x_min, dx), f(b.y_min, dy), f(b.x_max, dx), f(b.y_max, dy))
    }

    /// Labelled boxes to network-input pixels.
    #[must_use]
    pub fn forward_boxes(&self, boxes: &[LabeledBox]) -> Vec<LabeledBox> {
        boxes.iter().map(|b| LabeledBox { bbox: self.forward(b.bbox), class: b.class }).collect()
    }

    /// Resizes and pastes `image` (which must have the size given to [`Letterbox::new`]).
    #[must_use]
    pub fn apply(&self, image: &RgbImage) -> RgbImage {
        self.paste_resized(&resize_bicubic(image, self.resized_width, self.resized_height))
    }

    /// Writes the letterboxed `image` (which must have the size given to [`Letterbox::new`]) into
    /// `out` as `input.height x input.width x 3` floats in `[0, 1]` (each byte / 255): the
    /// same values as [`Letterbox::apply`] then a conversion, without the grey canvas and the
    /// paste in between (an image already of the resized size is not copied either).
    ///
    /// # Panics
    /// If `out` does not hold exactly `3 * input.width * input.height` floats.
    pub fn write_normalized(&self, image: &RgbImage, out: &mut [f32]) {
        let (w, h) = (self.input.width as usize, self.input.height as usize);
        assert_eq!(out.len(), 3 * w * h, "letterbox output of {w}x{h}x3 floats");
        let resized;
        let pasted = if image.dimensions() == (self.resized_width, self.resized_height) {
            image
        } else {
            resized = resize_bicubic(image, self.resized_width, self.resized_height);
            &resized
        };
        out.fill(f32::from(GREY.0[0]) / 255.0);
        let row = 3 * self.resized_width as usize;
        let (dx, dy) = (self.dx as usize, self.dy as usize);
        for (y, src) in pasted.as_raw().chunks_exact(row).enumerate() {
            let start = 3 * ((dy + y) * w + dx);
            for (o, &v) in out[start..start + row].iter_mut().zip(src) {
                *o = f32::from(v) / 255.0;
            }
        }
    }

    /// Pastes an image already resized to `resized_width x resized_height` on the grey canvas
    /// (the second half of [`Letterbox::apply`]; the image cache keeps the first).
    #[must_use]
    pub fn paste_resized(&self, resized: &RgbImage) -> RgbImage {
        let mut canvas = grey_canvas(self.input);
        paste(&mut canvas, resized, i64::from(self.dx), i64::from(self.dy));
        canvas
    }
}

/// Letterboxes an image and its boxes into `input`.
#[must_use]
pub fn letterbox(
    image: &RgbImage,
    boxes: &[LabeledBox],
    input: InputSize,
) -> (RgbImage, Vec<LabeledBox>, Letterbox) {
    let lb = Letterbox::new(ImageSize { width: image.width(), height: image.height() }, input);
    (lb.apply(image), lb.forward_boxes(boxes), lb)
}

/// Bicubic resize (Catmull-Rom, PIL's `BICUBIC` kernel, widened when downscaling).
#[must_use]
pub fn resize_bicubic(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    if image.dimensions() == (width, height) {
        return image.clone();
    }
    image::imageops::resize(image, width.max(1), height.max(1), FilterType::CatmullRom)
}

/// A grey canvas of the input size.
#[must_use]
pub fn grey_canvas(size: InputSize) -> RgbImage {
    RgbImage::from_pixel(size.width, size.height, GREY)
}

/// Copies `src` onto `dst` with its top-left corner at `(x, y)` (which may be negative or make
/// `src` overhang; the overlap is copied, like PIL's `paste`).
pub fn paste(dst: &mut RgbImage, src: &RgbImage, x: i64, y: i64) {
    paste_clipped(dst, src, x, y, (0, 0, i64::from(dst.width()), i64::from(dst.height())));
}

/// Like [`paste`] but only inside the destination region `(x0, y0, x1, y1)` (exclusive ends).
pub fn paste_clipped(
    dst: &mut RgbImage,
    src: &RgbImage,
    x: i64,
    y: i64,
    region: (i64, i64, i64, i64),
) {
    let (rx0, ry0) = (region.0.max(0), region.1.max(0));
    let rx1 = region.2.min(i64::from(dst.width()));
    let ry1 = region.3.min(i64::from(dst.height()));
    let x0 = x.max(rx0);
    let y0 = y.max(ry0);
    let x1 = (x + i64::from(src.width())).min(rx1);
    let y1 = (y + i64::from(src.height())).min(ry1);
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    let dw = dst.width() as usize;
    let sw = src.width() as usize;
    let n = (x1 - x0) as usize * 3;
    let s_raw = src.as_raw();
    let d_raw: &mut [u8] = dst;
    for yy in y0..y1 {
        let d_off = (yy as usize * dw + x0 as usize) * 3;
        let s_off = ((yy - y) as usize * sw + (x0 - x) as usize) * 3;
        d_raw[d_off..d_off + n].copy_from_slice(&s_raw[s_off..s_off + n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_letterbox_parameters() {
        // 500x375 into 416x416: scale 0.832, nw 416, nh 312, dy 52.
        let lb = Letterbox::new(ImageSize { width: 500, height: 375 }, InputSize::square(416));
        assert_eq!((lb.resized_width, lb.resized_height, lb.dx, lb.dy), (416, 312, 0, 52));
        let b = BoxXyxy::new(10.0, 20.0, 300.0, 370.0);
        let f = lb.forward(b);
        assert!((f.y_min - (20.0 * 0.832 + 52.0)).abs() < 1e-4);
        let back = lb.inverse(f);
        for (a, b) in [
            (back.x_min, b.x_min),
            (back.y_min, b.y_min),
            (back.x_max, b.x_max),
            (back.y_max, b.y_max),
        ] {
            assert!((a - b).abs() < 1e-3, "{a} vs {b}");
        }
    }

    #[test]
    fn letterboxed_image_is_grey_outside_and_keeps_colour_inside() {
        let img = RgbImage::from_pixel(40, 20, Rgb([200, 10, 10]));
        let (out, _, lb) = letterbox(&img, &[], InputSize::square(32));
        assert_eq!((lb.resized_width, lb.resized_height, lb.dx, lb.dy), (32, 16, 0, 8));
        assert_eq!(*out.get_pixel(5, 2), GREY);
        assert_eq!(*out.get_pixel(5, 30), GREY);
        assert_eq!(*out.get_pixel(16, 16), Rgb([200, 10, 10]));
    }

    #[test]
    fn paste_handles_negative_offsets_and_overhang() {
        let mut dst = RgbImage::from_pixel(4, 4, GREY);
        let src = RgbImage::from_pixel(3, 3, Rgb([1, 2, 3]));
        paste(&mut dst, &src, -2, 2);
        assert_eq!(*dst.get_pixel(0, 2), Rgb([1, 2, 3]));
        assert_eq!(*dst.get_pixel(0, 3), Rgb([1, 2, 3]));
        assert_eq!(*dst.get_pixel(1, 2), GREY);
        assert_eq!(*dst.get_pixel(0, 1), GREY);
    }

    #[test]
    fn normalized_write_equals_the_letterboxed_image_scaled() {
        // A downscale with grey bars, an upscale, and an image already of the input size.
        for ((iw, ih), input) in
            [((300, 180), (160, 160)), ((50, 70), (96, 128)), ((64, 64), (64, 64))]
        {
            let image = RgbImage::from_fn(iw, ih, |x, y| {
                Rgb([(x * 7 % 256) as u8, (y * 11 % 256) as u8, ((x + y) * 5 % 256) as u8])
            });
            let lb = Letterbox::new(
                ImageSize { width: iw, height: ih },
                InputSize { width: input.0, height: input.1 },
            );
            let expected: Vec<f32> =
                lb.apply(&image).as_raw().iter().map(|&v| f32::from(v) / 255.0).collect();
            let mut got = vec![-1f32; expected.len()];
            lb.write_normalized(&image, &mut got);
            assert_eq!(got, expected, "{iw}x{ih} into {input:?}");
        }
    }
}
