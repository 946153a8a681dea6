//! keras-yolo3's `yolo_eval`: raw head outputs to detections in original-image pixels.
//!
//! For every layer, cell and anchor slot (`shared/golden/README.md`, "Decode files"):
//! * the box is decoded as in the loss, then corrected for the letterbox: with
//!   `f = min(in_h/img_h, in_w/img_w)` and `new = round_half_even(img * f)`, the centre is
//!   shifted by `(in - new) / 2 / in` and scaled, with the size, by `in / new`;
//! * `score_c = sigmoid(objectness) * sigmoid(class_c)`; candidates with `score_c >= threshold`
//!   (and, with [`DecodeOptions::classes`], of a listed class) go, per class in ascending
//!   order, through [`non_max_suppression`] with at most `max_boxes` kept per class;
//! * the output is class-major, by descending score within a class; one candidate may appear
//!   under several classes.
//!
//! With [`DecodeOptions::agnostic`] (ultralytics' `agnostic_nms`), NMS runs once over the
//! candidates of every class together, keeping at most `max_boxes` per image, by descending
//! score: overlapping boxes of different classes suppress each other, and a box that passes
//! the threshold under several classes keeps only its best one.
//!
//! Candidates are numbered layer by layer, then in `(row, col, slot)` order within an image;
//! [`Detection::candidate`] keeps that number.

use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::geometry::BoxXyxy;
use crate::head::{head_box, HeadConfig, HeadInput};
use crate::layout::Layout;
use crate::nms::non_max_suppression;
use crate::real::{sigmoid, Real};

/// Thresholds of the decode; the defaults are keras-yolo3's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DecodeOptions {
    /// Minimum `objectness * class probability` of a candidate (keras: 0.6).
    pub score_threshold: f64,
    /// NMS suppresses a box whose IoU with a kept one is above this (keras: 0.5).
    pub iou_threshold: f64,
    /// At most this many boxes per class and image (keras: 20); per image with `agnostic`.
    pub max_boxes: usize,
    /// One NMS over all classes instead of one per class (see the module docs).
    #[serde(default)]
    pub agnostic: bool,
    /// Keep only these classes (`None`: all); filtered before NMS.
    #[serde(default)]
    pub classes: Option<Vec<usize>>,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            score_threshold: 0.6,
            iou_threshold: 0.5,
            max_boxes: 20,
            agnostic: false,
            classes: None,
        }
    }
}

/// One detected object, in original-image pixels (not clipped to the image).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct DecodedBox<T = f32> {
    /// Left.
    pub x_min: T,
    /// Top.
    pub y_min: T,
    /// Right.
    pub x_max: T,
    /// Bottom.
    pub y_max: T,
    /// `objectness * class probability`.
    pub score: T,
    /// Class index.
    pub class: usize,
    /// The candidate's position in the image's candidate list.
    pub candidate: usize,
}

impl<T: Real> DecodedBox<T> {
    /// The box in `f32` corner form.
    #[must_use]
    pub fn bbox(&self) -> BoxXyxy {
        BoxXyxy::new(
            self.x_min.to_f64() as f32,
            self.y_min.to_f64() as f32,
            self.x_max.to_f64() as f32,
            self.y_max.to_f64() as f32,
        )
    }
}

/// A candidate that passed the threshold for at least one class.
struct Candidate<T> {
    index: usize,
    corners: [T; 4],
    class: usize,
    score: T,
}

/// Decodes a batch. `image_sizes[b]` is image `b`'s original `(height, width)` in pixels.
pub fn decode<T: Real>(
    config: &HeadConfig,
    layout: Layout,
    preds: &[HeadInput<'_, T>],
    image_sizes: &[(f64, f64)],
    options: &DecodeOptions,
) -> Result<Vec<Vec<DecodedBox<T>>>, CoreError> {
    let batch = image_sizes.len();
    let shapes = config.check_inputs(batch, preds, "predictions")?;
    if !(0.0..=1.0).contains(&options.iou_threshold) {
        return Err(CoreError::InvalidOption {
            name: "iou_threshold",
            value: options.iou_threshold.to_string(),
            reason: "must be in [0, 1]",
        });
    }
    if !options.score_threshold.is_finite() {
        return Err(CoreError::InvalidOption {
            name: "score_threshold",
            value: options.score_threshold.to_string(),
            reason: "must be finite",
        });
    }
    for (image, &(h, w)) in image_sizes.iter().enumerate() {
        if !(h > 0.0 && w > 0.0 && h.is_finite() && w.is_finite()) {
            return Err(CoreError::InvalidImageSize { image, height: h, width: w });
        }
    }
    let thr = T::from_f64(options.score_threshold);
    let in_h = T::from_usize(config.input_h);
    let in_w = T::from_usize(config.input_w);

    let mut out = Vec::with_capacity(batch);
    for (image, &(img_h, img_w)) in image_sizes.iter().enumerate() {
        let (img_h, img_w) = (T::from_f64(img_h), T::from_f64(img_w));
        let ratio_h = in_h / img_h;
        let ratio_w = in_w / img_w;
        let f = if ratio_h < ratio_w { ratio_h } else { ratio_w };
        let new_h = (img_h * f).round_ties_even();
        let new_w = (img_w * f).round_ties_even();
        let two = T::from_f64(2.0);
        let (off_y, off_x) = ((in_h - new_h) / two / in_h, (in_w - new_w) / two / in_w);
        let (scale_y, scale_x) = (in_h / new_h, in_w / new_w);

        let mut candidates: Vec<Candidate<T>> = Vec::new();
        let mut index = 0;
        for (l, (shape, input)) in shapes.iter().zip(preds).enumerate() {
            let s = layout.strides(shape);
            let image_len = shape.image_len();
            let pred = &input.data[image * image_len..(image + 1) * image_len];
            let fields = shape.fields();
            let grid = [T::from_usize(shape.width), T::from_usize(shape.height)];
            for row in 0..shape.height {
                for col in 0..shape.width {
                    for a in 0..shape.anchors {
                        let at = |p: usize| pred[s.offset(a * fields + p, row, col)];
                        let this = index;
                        index += 1;
                        let conf = sigmoid(at(4));
                        if conf < thr {
                            continue; // every score is conf * prob <= conf
                        }
                        let [aw, ah] = config.anchors.slot(l, a);
                        let [px, py, pw, ph] = head_box(
                            [at(0), at(1), at(2), at(3)],
                            [T::from_usize(col), T::from_usize(row)],
                            grid,
                            [T::from_f32(aw), T::from_f32(ah)],
                            [in_w, in_h],
                        );
                        let cy = (py - off_y) * scale_y;
                        let cx = (px - off_x) * scale_x;
                        let (bh, bw) = (ph * scale_y, pw * scale_x);
                        let corners = [
                            (cx - bw / two) * img_w,
                            (cy - bh / two) * img_h,
                            (cx + bw / two) * img_w,
                            (cy + bh / two) * img_h,
                        ];
                        for class in 0..shape.num_classes {
                            if options.classes.as_ref().is_some_and(|k| !k.contains(&class)) {
                                continue;
                            }
                            let score = conf * sigmoid(at(5 + class));
                            if score >= thr {
                                candidates.push(Candidate { index: this, corners, class, score });
                            }
                        }
                    }
                }
            }
        }
        let mut detections = Vec::new();
        let iou_thr = T::from_f64(options.iou_threshold);
        let groups: Vec<&[Candidate<T>]> = if options.agnostic {
            candidates.sort_by_key(|c| (c.index, c.class));
            vec![&candidates[..]]
        } else {
            candidates.sort_by_key(|c| (c.class, c.index));
            candidates.chunk_by(|a, b| a.class == b.class).collect()
        };
        for group in groups {
            let boxes: Vec<[T; 4]> = group.iter().map(|c| c.corners).collect();
            let scores: Vec<T> = group.iter().map(|c| c.score).collect();
            for k in non_max_suppression(&boxes, &scores, iou_thr, options.max_boxes) {
                let c = &group[k];
                detections.push(DecodedBox {
                    x_min: c.corners[0],
                    y_min: c.corners[1],
                    x_max: c.corners[2],
                    y_max: c.corners[3],
                    score: c.score,
                    class: c.class,
                    candidate: c.index,
                });
            }
        }
        out.push(detections);
    }
    Ok(out)
}
