//! Framework-free heart of yolo3: box geometry, anchors, keras-yolo3's target assignment, the
//! exact YOLOv3 loss with its analytic gradient in one fused pass, decoding with NMS, mAP
//! (COCO and Pascal VOC), anchor k-means, and the tiles of large images with the merge of
//! their boxes.
//!
//! Everything here works on plain slices with an explicit [`Layout`], so any tensor engine can
//! call it: `yolo3-train` wires the loss into libtorch's autograd, and `yolo3-model`'s decoder
//! reads the network's heads with [`decode`].
//!
//! ```
//! use yolo3_core::{assign_targets, yolo_loss, Anchors, HeadConfig, Layout};
//! use yolo3_core::{BoxXyxy, LabeledBox, LossOptions};
//!
//! let config = HeadConfig::new(64, 64, 2, Anchors::yolov3()).unwrap();
//! let boxes = [LabeledBox { bbox: BoxXyxy::new(8.0, 8.0, 40.0, 30.0), class: 1 }];
//! let targets = assign_targets(&config, &[&boxes]).unwrap();
//! let preds: Vec<Vec<f32>> =
//!     (0..3).map(|l| vec![0.0; config.head_shape(l, 1).len()]).collect();
//! let inputs = config.inputs(1, &preds);
//! let mut grads = preds.clone();
//! let mut grad_refs: Vec<&mut [f32]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
//! let parts = yolo_loss(&config, Layout::Nchw, 1, &inputs, &targets,
//!                       &LossOptions::default(), &mut grad_refs).unwrap();
//! assert!(parts.total > 0.0);
//! ```

pub mod anchors;
pub mod decode;
pub mod error;
pub mod geometry;
pub mod head;
pub mod kmeans;
pub mod layout;
mod line_writer;
pub mod loss;
pub mod metrics;
pub mod nms;
pub mod real;
mod simd;
pub mod targets;
pub mod tiles;

pub use anchors::{Anchors, TinyMask};
pub use decode::{decode, DecodeOptions, DecodedBox};
pub use error::CoreError;
pub use geometry::{BoxCxcywh, BoxXyxy, LabeledBox};
pub use head::{HeadConfig, HeadInput};
pub use layout::{HeadShape, Layout};
pub use loss::{
    yolo_loss, yolo_loss_with_best_iou, IgnoreScope, LossOptions, LossParts, LossTerms,
};
pub use nms::non_max_suppression;
pub use real::Real;
pub use targets::{assign_targets, ObjectCell, Targets};
