//! Training YOLOv3 detectors on libtorch with the exact keras-yolo3 loss.
//!
//! [`train`] starts a run from a [`TrainConfig`] (its `Default` is the embedded synthetic
//! run), [`resume`] continues one from its folder; both run alone or as one rank of a
//! data-parallel run ([`Replicas`], on `yolo3_dist`). The loss enters autograd through
//! `yolo3_model::YoloLoss`, and every epoch's validation is `yolo3_model::evaluate`, the same
//! evaluation `yolo3 eval` runs. Progress goes to an [`Observer`].

pub mod cfg_text;
pub mod config;
pub mod data;
pub mod error;
pub mod observer;
pub mod optim;
pub mod plots;
mod replicas;
pub mod results;
pub mod schedule;
mod tensors;
pub mod trainer;

pub use config::{AnchorSource, CacheConfig, DataSource, Freeze, ModelSource, TrainConfig};
pub use error::{Result, TrainError};
pub use observer::{BatchProgress, Observer, Silent};
pub use optim::{Optimizer, OptimizerKind};
pub use replicas::Replicas;
pub use results::EpochRow;
pub use schedule::Schedule;
pub use trainer::{kmeans_anchors, resume, train, TrainSummary};
