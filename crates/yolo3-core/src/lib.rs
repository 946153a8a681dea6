//! Framework-free heart of yolo3: box geometry, anchors, keras-yolo3's target assignment, the
//! exact YOLOv3 loss with its analytic gradient in one fused pass, decoding with NMS, mAP
//! (COCO and Pascal VOC) and anchor k-means.
//!
//! Everything here works on plain slices with an explicit [`layout::Layout`], so any tensor
//! engine can call it; `yolo3-model` wires it into libtorch's autograd.

pub mod geometry;
pub mod kmeans;
pub mod metrics;

pub use geometry::{BoxCxcywh, BoxXyxy, LabeledBox};
