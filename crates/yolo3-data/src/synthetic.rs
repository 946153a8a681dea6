//! The embedded synthetic dataset: coloured shapes on textured backgrounds with exact boxes.
//!
//! It exists so that `yolo3 train` works with no data at all and so the whole reader path is
//! exercised: the generator writes PNG files plus keras-yolo3 `train.txt` / `val.txt` and
//! `classes.txt`, which are then read like any user dataset.
//!
//! Four classes, each with its own shape **and** colour (jittered per object, with a little
//! pixel noise): red circles, blue squares, green triangles (pointing up or down) and yellow
//! crosses. Objects are 1-4 per image, their box sides 12 %-45 % of the image by default, with
//! a mild aspect jitter; they may overlap (`IoU <= 0.3`) but no object covers another's centre.
//! Backgrounds are low-saturation two-colour gradients with a sinusoidal texture and noise, so
//! they never look like an object.
//!
//! Boxes are exact: every box has integer corners and is the geometric extent of its shape,
//! which is rasterised with 4x4 supersampled coverage inside that box (continuous coordinates,
//! `x_max` is the right edge). Each image is generated from its own `ChaCha8` stream keyed by
//! `(seed, split, index)`, so the output is identical for a seed whatever the thread count.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use image::{Rgb, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use yolo3_core::{BoxXyxy, LabeledBox};

use crate::error::{DataError, Result};

/// Class names, in class-index order.
pub const CLASS_NAMES: [&str; 4] = ["circle", "square", "triangle", "cross"];

/// Base colour of each class.
pub const CLASS_COLOURS: [[u8; 3]; 4] =
    [[220, 40, 40], [40, 80, 225], [40, 185, 60], [235, 205, 30]];

/// Generator options; `Default` is the dataset `yolo3 train` uses with no arguments.
#[derive(Clone, Debug, PartialEq)]
pub struct SyntheticOptions {
    /// Training images.
    pub images_train: usize,
    /// Validation images.
    pub images_val: usize,
    /// Side of the square images in pixels.
    pub size: u32,
    /// Seed.
    pub seed: u64,
    /// Fewest objects per image.
    pub min_objects: usize,
    /// Most objects per image.
    pub max_objects: usize,
    /// Smallest box side as a fraction of the image side.
    pub min_scale: f32,
    /// Largest box side as a fraction of the image side.
    pub max_scale: f32,
    /// Per-channel colour jitter of an object's colour (`+-`).
    pub colour_jitter: u8,
}

impl Default for SyntheticOptions {
    fn default() -> Self {
        Self {
            images_train: 1000,
            images_val: 200,
            size: 160,
            seed: 0,
            min_objects: 1,
            max_objects: 4,
            min_scale: 0.12,
            max_scale: 0.45,
            colour_jitter: 25,
        }
    }
}

/// Where [`generate`] wrote the dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntheticDataset {
    /// The output folder.
    pub root: PathBuf,
    /// keras-yolo3 annotations of the training split.
    pub train: PathBuf,
    /// keras-yolo3 annotations of the validation split.
    pub val: PathBuf,
    /// The class-name file.
    pub classes: PathBuf,
    /// The class names.
    pub class_names: Vec<String>,
}

/// Which split an image belongs to (part of its random key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Split {
    /// Training.
    Train,
    /// Validation.
    Val,
}

impl Split {
    fn name(self) -> &'static str {
        match self {
            Self::Train => "train",
            Self::Val => "val",
        }
    }
}

/// Generates the dataset into `dir`: `images/{train,val}/NNNNNN.png`, `train.txt`, `val.txt`
/// (image paths relative to `dir`) and `classes.txt`.
pub fn generate(dir: &Path, options: &SyntheticOptions) -> Result<SyntheticDataset> {
    if options.size < 16
        || options.min_objects > options.max_objects
        || options.min_scale <= 0.0
        || options.max_scale > 1.0
        || options.min_scale > options.max_scale
    {
        return Err(DataError::InvalidOption {
            option: "synthetic",
            message: format!("inconsistent options {options:?}"),
        });
    }
    let mut annotation_files = Vec::new();
    for (split, count) in [(Split::Train, options.images_train), (Split::Val, options.images_val)] {
        let img_dir = dir.join("images").join(split.name());
        std::fs::create_dir_all(&img_dir)
            .map_err(|e| DataError::io(&img_dir, "cannot create folder", e))?;
        let lines: Vec<Result<String>> = (0..count)
            .into_par_iter()
            .map(|i| {
                let (image, boxes) = render(options, split, i);
                let rel = format!("images/{}/{i:06}.png", split.name());
                crate::image_io::save_png(&image, &dir.join(&rel))?;
                let mut line = rel;
                for b in &boxes {
                    let bb = b.bbox;
                    let _ = write!(
                        line,
                        " {},{},{},{},{}",
                        bb.x_min, bb.y_min, bb.x_max, bb.y_max, b.class
                    );
                }
                line.push('\n');
                Ok(line)
            })
            .collect();
        let text: String = lines.into_iter().collect::<Result<Vec<_>>>()?.concat();
        let path = dir.join(format!("{}.txt", split.name()));
        std::fs::write(&path, text)
            .map_err(|e| DataError::io(&path, "cannot write annotations", e))?;
        annotation_files.push(path);
    }
    let class_names: Vec<String> = CLASS_NAMES.iter().map(|s| (*s).to_string()).collect();
    let classes = dir.join("classes.txt");
    crate::dataset::write_class_names(&classes, &class_names, yolo3_io::fsio::Existing::Replace)?;
    let val = annotation_files.pop().unwrap_or_default();
    let train = annotation_files.pop().unwrap_or_default();
    tracing::info!(root = %dir.display(), train = options.images_train, val = options.images_val, "synthetic dataset written");
    Ok(SyntheticDataset { root: dir.to_path_buf(), train, val, classes, class_names })
}

/// Renders image `index` of `split` and its boxes (pixels, exact).
#[must_use]
pub fn render(
    options: &SyntheticOptions,
    split: Split,
    index: usize,
) -> (RgbImage, Vec<LabeledBox>) {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&options.seed.to_le_bytes());
    key[8..16].copy_from_slice(&(index as u64).to_le_bytes());
    key[16] = split as u8;
    key[24..].copy_from_slice(b"yolo3syn");
    let mut rng = ChaCha8Rng::from_seed(key);
    let size = options.size;
    let mut image = background(size, &mut rng);
    let n = rng.random_range(options.min_objects..=options.max_objects);
    let mut boxes: Vec<LabeledBox> = Vec::with_capacity(n);
    for _ in 0..n {
        for _attempt in 0..30 {
            let class = rng.random_range(0..CLASS_NAMES.len());
            let side = rng.random_range(options.min_scale..=options.max_scale) * size as f32;
            let aspect: f32 = if class == 0 {
                rng.random_range(0.85..1.18)
            } else {
                rng.random_range(0.75..1.33)
            };
            let w = (side * aspect.sqrt()).round().clamp(4.0, size as f32);
            let h = (side / aspect.sqrt()).round().clamp(4.0, size as f32);
            let x0 = rng.random_range(0..=(size - w as u32)) as f32;
            let y0 = rng.random_range(0..=(size - h as u32)) as f32;
            let bbox = BoxXyxy::new(x0, y0, x0 + w, y0 + h);
            if boxes.iter().any(|b| conflicts(&b.bbox, &bbox)) {
                continue;
            }
            let colour = jitter_colour(CLASS_COLOURS[class], options.colour_jitter, &mut rng);
            let flip = rng.random_bool(0.5);
            draw(&mut image, class, bbox, colour, flip, &mut rng);
            boxes.push(LabeledBox { bbox, class });
            break;
        }
    }
    (image, boxes)
}

/// Whether a new box may not be placed next to an existing one.
fn conflicts(a: &BoxXyxy, b: &BoxXyxy) -> bool {
    let contains =
        |o: &BoxXyxy, x: f32, y: f32| x > o.x_min && x < o.x_max && y > o.y_min && y < o.y_max;
    let ca = a.to_cxcywh();
    let cb = b.to_cxcywh();
    a.iou(b) > 0.3 || contains(b, ca.cx, ca.cy) || contains(a, cb.cx, cb.cy)
}

fn jitter_colour(base: [u8; 3], jitter: u8, rng: &mut ChaCha8Rng) -> [f32; 3] {
    let j = f32::from(jitter);
    base.map(|c| (f32::from(c) + rng.random_range(-j..=j)).clamp(0.0, 255.0))
}

fn background(size: u32, rng: &mut ChaCha8Rng) -> RgbImage {
    // Low-saturation colours: a grey level plus a small tint.
    let mut tint = || {
        let g: f32 = rng.random_range(50.0..200.0);
        [0; 3].map(|_: u8| g + rng.random_range(-22.0..22.0))
    };
    let (c0, c1) = (tint(), tint());
    let angle: f32 = rng.random_range(0.0..std::f32::consts::TAU);
    let (dx, dy) = (angle.cos(), angle.sin());
    let freq: f32 = rng.random_range(0.05..0.3);
    let tex_angle: f32 = rng.random_range(0.0..std::f32::consts::TAU);
    let (tx, ty) = (tex_angle.cos() * freq, tex_angle.sin() * freq);
    let amp: f32 = rng.random_range(4.0..16.0);
    let noise: f32 = rng.random_range(3.0..12.0);
    let s = size as f32;
    let mut img = RgbImage::new(size, size);
    for (x, y, px) in img.enumerate_pixels_mut() {
        let (xf, yf) = (x as f32, y as f32);
        let t = (((xf - s / 2.0) * dx + (yf - s / 2.0) * dy) / s + 0.5).clamp(0.0, 1.0);
        let tex = amp * (xf * tx + yf * ty).sin();
        let mut out = [0u8; 3];
        for k in 0..3 {
            let v = c0[k] * (1.0 - t) + c1[k] * t + tex + rng.random_range(-noise..=noise);
            out[k] = v.round().clamp(0.0, 255.0) as u8;
        }
        *px = Rgb(out);
    }
    img
}

/// Whether the point `(x, y)` lies inside shape `class` drawn in `b`.
fn inside(class: usize, b: &BoxXyxy, flip: bool, x: f32, y: f32) -> bool {
    let (w, h) = (b.width(), b.height());
    let u = (x - b.x_min) / w; // 0..1 across the box
    let v = (y - b.y_min) / h;
    if !(0.0..=1.0).contains(&u) || !(0.0..=1.0).contains(&v) {
        return false;
    }
    match class {
        0 => {
            let (a, c) = (u - 0.5, v - 0.5);
            a * a + c * c <= 0.25
        }
        1 => true,
        2 => {
            // Isosceles triangle, apex at the top centre (bottom when flipped).
            let v = if flip { 1.0 - v } else { v };
            (u - 0.5).abs() <= v * 0.5
        }
        _ => {
            // A plus sign with arms 36 % of the box thick.
            let t = 0.18;
            (u - 0.5).abs() <= t || (v - 0.5).abs() <= t
        }
    }
}

fn draw(
    image: &mut RgbImage,
    class: usize,
    b: BoxXyxy,
    colour: [f32; 3],
    flip: bool,
    rng: &mut ChaCha8Rng,
) {
    const SS: u32 = 4;
    let (x0, y0, x1, y1) = (b.x_min as u32, b.y_min as u32, b.x_max as u32, b.y_max as u32);
    for py in y0..y1 {
        for px in x0..x1 {
            let mut hits = 0u32;
            for sy in 0..SS {
                for sx in 0..SS {
                    let x = px as f32 + (sx as f32 + 0.5) / SS as f32;
                    let y = py as f32 + (sy as f32 + 0.5) / SS as f32;
                    hits += u32::from(inside(class, &b, flip, x, y));
                }
            }
            if hits == 0 {
                continue;
            }
            let alpha = hits as f32 / (SS * SS) as f32;
            let p = image.get_pixel_mut(px, py);
            for (dst, base) in p.0.iter_mut().zip(colour) {
                let c = (base + rng.random_range(-6.0..=6.0)).clamp(0.0, 255.0);
                *dst = (f32::from(*dst) * (1.0 - alpha) + c * alpha).round() as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shape_covers_its_box_centre_and_touches_its_edges() {
        let b = BoxXyxy::new(10.0, 10.0, 30.0, 40.0);
        for class in 0..4 {
            for flip in [false, true] {
                assert!(inside(class, &b, flip, 20.0, 25.0));
                assert!(!inside(class, &b, flip, 9.9, 25.0));
                // Each edge has some covered point close to it.
                let near =
                    |pts: &[(f32, f32)]| pts.iter().any(|&(x, y)| inside(class, &b, flip, x, y));
                let xs: Vec<(f32, f32)> = (0..=60).map(|i| (10.2, 10.0 + i as f32 * 0.5)).collect();
                assert!(near(&xs), "class {class} left edge");
                let ys: Vec<(f32, f32)> = (0..=40).map(|i| (10.0 + i as f32 * 0.5, 10.2)).collect();
                let ye: Vec<(f32, f32)> = (0..=40).map(|i| (10.0 + i as f32 * 0.5, 39.8)).collect();
                assert!(near(&ys) && near(&ye), "class {class} top/bottom edge");
            }
        }
    }
}
