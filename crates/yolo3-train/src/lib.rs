//! Training YOLOv3 detectors on libtorch with the exact keras-yolo3 loss.
//!
//! [`train`] starts a run from a [`TrainConfig`] (its `Default` is the embedded synthetic
//! run), [`resume`] continues one from its folder; both run alone or as one rank of a
//! data-parallel run ([`Replicas`], on `yolo3_dist`). The loss enters autograd through
//! [`YoloLoss`]; [`evaluate`] gives the validation loss and mAP that every epoch logs.

pub mod cfg_text;
pub mod config;
pub mod data;
pub mod error;
pub mod loss_op;
pub mod observer;
pub mod optim;
pub mod plots;
mod replicas;
pub mod run_dir;
pub mod schedule;
mod tensors;
pub mod trainer;
pub mod validate;

pub use config::{
    parse_device, AnchorSource, CacheConfig, DataSource, DeviceError, Freeze, ModelSource,
    TrainConfig,
};
pub use error::{Result, TrainError};
pub use loss_op::YoloLoss;
pub use observer::{BatchProgress, Observer, Silent};
pub use optim::{Optimizer, OptimizerKind};
pub use replicas::Replicas;
pub use run_dir::EpochRow;
pub use schedule::Schedule;
pub use trainer::{kmeans_anchors, resume, train, TrainSummary};
pub use validate::{evaluate, Evaluation};
