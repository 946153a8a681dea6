//! Data for yolo3: annotation readers and writers, image decoding, keras-yolo3's augmentation,
//! letterboxing, deterministic parallel batching and the embedded synthetic dataset.
//!
//! Conventions used throughout the crate:
//! * boxes are [`yolo3_core::LabeledBox`] corner boxes in **pixels**, continuous coordinates
//!   (width is `x_max - x_min`, no "+1"); in a [`Dataset`] they are pixels of the original
//!   image, in a [`Batch`] pixels of the network input;
//! * images are decoded to 8-bit RGB; network inputs are `f32` **CHW RGB in `[0, 1]`**;
//! * class indices are contiguous `0..class_names.len()`;
//! * every error names its file, line (where the format has lines) and field ([`DataError`]);
//!   nothing panics on bad input and nothing is printed (diagnostics go to `tracing`).
//!
//! Readers: [`read_train_txt`], [`read_voc_dir`] / [`read_voc_files`], [`read_coco`],
//! [`read_yolo`], or [`read_dataset`] with format detection ([`detect_format`]).

pub mod augment;
pub mod cache;
pub mod coco;
pub mod dataset;
pub mod error;
pub mod format;
pub mod image_io;
pub mod letterbox;
pub mod loader;
pub mod mosaic;
pub mod synthetic;
pub mod tiles;
pub mod train_txt;
pub mod unique;
mod validate;
pub mod voc;
pub mod yolo_txt;

pub use augment::{random_data, AugmentOptions, Augmented, HsvShift};
pub use cache::{CachedImage, ImageCache, Stage};
pub use coco::read_coco;
pub use dataset::{
    read_class_names, write_class_names, Dataset, DatasetSummary, DifficultPolicy, IgnoreReason,
    IgnoredBox, ImageSize, ReadOptions, Sample, UnreadableImage,
};
pub use error::{DataError, Location, Result};
pub use format::{detect_format, read_dataset, DatasetFormat, OpenOptions};
pub use image_io::{image_size, load_rgb, to_chw, MAX_PIXELS};
pub use letterbox::{letterbox, InputSize, Letterbox};
pub use loader::{sample_rng, Batch, Loader, LoaderOptions, MultiScale, Prefetch, Shard};
pub use mosaic::{mosaic, MosaicOptions};
pub use synthetic::{generate, SyntheticDataset, SyntheticOptions};
pub use tiles::TileOptions;
pub use train_txt::{read_train_txt, read_train_txt_with_classes, write_train_txt};
pub use unique::UniqueNames;
pub use voc::{read_voc_dir, read_voc_files};
pub use yolo_txt::{push_yolo_line, read_yolo, write_yolo, ImagePlacement, YoloWritten};
