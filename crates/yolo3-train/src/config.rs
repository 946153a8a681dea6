//! The resolved configuration of a training run, saved as `args.toml` in the run folder and
//! read back by `--resume`. `TrainConfig::default()` is the embedded out-of-the-box run: a
//! generated synthetic dataset and the built-in narrow tiny-YOLOv3 at 160 pixels on the CPU.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::TrainError;
use crate::optim::OptimizerKind;
use crate::schedule::Schedule;

use yolo3_model::check_input_side;

/// Where the images and boxes come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DataSource {
    /// The built-in synthetic shapes, generated into `<run>/data`.
    Synthetic {
        /// Training images.
        train_images: usize,
        /// Validation images.
        val_images: usize,
        /// Image side in pixels.
        size: u32,
        /// Generator seed.
        seed: u64,
    },
    /// Annotation files in any supported format.
    Files {
        /// Training annotations (keras `train.txt`, VOC folder, COCO JSON, YOLO folder).
        train: PathBuf,
        /// Validation annotations; without them `val_fraction` of the training images are
        /// held out.
        val: Option<PathBuf>,
        /// Class-name file, where the format needs one and it is not found beside the data.
        classes: Option<PathBuf>,
        /// Fraction of training images held out when `val` is absent.
        val_fraction: f64,
    },
}

/// Which network to train.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSource {
    /// The built-in tiny-YOLOv3 with hidden widths divided by `width_divisor`.
    TinyPreset {
        /// 1 is the official width.
        width_divisor: u32,
    },
    /// A darknet cfg file (adapted to the dataset's classes).
    Cfg {
        /// The file.
        path: PathBuf,
    },
}

/// Where the anchors come from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AnchorSource {
    /// As the cfg has them (the preset: keras' tiny anchors scaled to the input).
    Cfg,
    /// k-means (1 - IoU) on the training boxes, scaled to the input size.
    Kmeans,
    /// A keras `anchors.txt`.
    File {
        /// The file.
        path: PathBuf,
    },
}

/// Where decoded images are kept between epochs (see [`yolo3_data::cache`]).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CacheConfig {
    /// Every epoch decodes every image.
    #[default]
    None,
    /// In memory (the amount is printed first and refused above half the available memory).
    Ram,
    /// One file per image in a cache folder.
    Disk {
        /// The folder.
        dir: PathBuf,
    },
}

/// The ranges of a run's settings, in one place: the command line's parsers and
/// [`TrainConfig::check`] both read them. They are what the computation can use (upper bounds
/// where a value sizes an allocation), not what is sensible.
pub mod limits {
    use std::ops::RangeInclusive;

    /// Images per forward pass.
    pub const BATCH: RangeInclusive<usize> = 1..=1024;
    /// Images per optimizer step.
    pub const NOMINAL_BATCH: RangeInclusive<usize> = 1..=65_536;
    /// Epochs of a run.
    pub const EPOCHS: RangeInclusive<usize> = 1..=100_000;
    /// Epochs with the body frozen (keras schedule).
    pub const FROZEN_EPOCHS: RangeInclusive<usize> = 0..=100_000;
    /// Width divisor of the built-in tiny-YOLOv3 (1: the official widths; 16 leaves 1 filter
    /// in its narrowest layer).
    pub const WIDTH_DIVISOR: RangeInclusive<u32> = 1..=16;
    /// Layers `0..N` of `--freeze N`.
    pub const FREEZE_LAYERS: RangeInclusive<usize> = 1..=100_000;
    /// Images of each synthetic split.
    pub const SYNTHETIC_IMAGES: RangeInclusive<usize> = 1..=1_000_000;
    /// Side of the synthetic images in pixels.
    pub const SYNTHETIC_SIZE: RangeInclusive<u32> = 32..=4096;
    /// Tile side in image pixels.
    pub const TILE: RangeInclusive<u32> = 32..=8192;
}

/// Fraction of the training images held out for validation when no validation set is given.
pub const DEFAULT_VAL_FRACTION: f64 = 0.1;

/// Which layers train with no gradient and fixed batch-norm statistics.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Freeze {
    /// Layers `0..N` (darknet indices), as darknet's `stopbackward` and ultralytics' `freeze`.
    Layers(usize),
    /// The backbone ([`yolo3_model::Config::backbone_layers`]).
    Backbone,
}

impl Freeze {
    /// How many leading layers this freezes in `cfg`, checked to leave every head trainable.
    pub fn layers(self, cfg: &yolo3_model::Config) -> Result<usize, TrainError> {
        let n = match self {
            Self::Layers(n) => n,
            Self::Backbone => cfg.backbone_layers().ok_or_else(|| {
                TrainError::Config(format!(
                    "--freeze backbone: {} has no backbone this tool recognises (no 1x1 conv \
                     outside a residual block before the first head); give --freeze N",
                    cfg.name()
                ))
            })?,
        };
        if let Some(head) = cfg.head_conv_layers().into_iter().find(|&h| h < n) {
            return Err(TrainError::Config(format!(
                "--freeze {n} would freeze head conv layer {head} of {}: freeze at most {} layers",
                cfg.name(),
                cfg.head_conv_layers().into_iter().min().unwrap_or(0)
            )));
        }
        Ok(n)
    }
}

/// Everything a run needs.
// The flags are independent switches of a saved configuration, not a state machine.
#[allow(clippy::struct_excessive_bools)]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// The data.
    pub data: DataSource,
    /// The network.
    pub model: ModelSource,
    /// Initial weights: darknet `.weights` (full, or partial such as `darknet53.conv.74`), a
    /// `.safetensors` checkpoint or a keras-yolo3 `.h5`; none trains from scratch.
    pub weights: Option<PathBuf>,
    /// Layers frozen for the whole run (none: every layer trains, but see the schedule).
    #[serde(default)]
    pub freeze: Option<Freeze>,
    /// The anchors.
    pub anchors: AnchorSource,
    /// Square input side in pixels (a multiple of 32).
    pub input: u32,
    /// Images larger than this many pixels train on random tiles of this side at full
    /// resolution and validate on their grid of tiles (`yolo3_data::tiles`); `None`: whole
    /// images, letterboxed.
    #[serde(default)]
    pub tile: Option<u32>,
    /// Images per forward pass.
    pub batch: usize,
    /// Images per optimizer step (gradients are accumulated over `nominal_batch / batch`
    /// passes).
    pub nominal_batch: usize,
    /// Epochs.
    pub epochs: usize,
    /// Optimizer.
    pub optimizer: OptimizerKind,
    /// Learning-rate schedule.
    pub schedule: Schedule,
    /// Decoded-image cache.
    #[serde(default)]
    pub cache: CacheConfig,
    /// keras-yolo3's random augmentation (off: letterbox only).
    pub augment: bool,
    /// Mosaic augmentation.
    pub mosaic: bool,
    /// Multi-scale training (320..608 by 32, every 10 batches).
    pub multi_scale: bool,
    /// The loss' ignore threshold (keras: 0.5).
    pub ignore_thresh: f64,
    /// Batch norm's running-statistics update rate (libtorch's convention; darknet's and
    /// keras' 0.99 rolling average is 0.01).
    #[serde(default = "default_bn_momentum")]
    pub bn_momentum: f64,
    /// Ignore against every box of the image (darknet) instead of the layer's (keras).
    pub darknet_ignore: bool,
    /// In a data-parallel run, normalise each rank's slice by its own batch-norm statistics
    /// (PyTorch DDP without `SyncBatchNorm`): no collectives in the forward pass, but the step
    /// is no longer the single-process step of the global batch.
    #[serde(default)]
    pub local_bn: bool,
    /// Seed of the data order, augmentation and initialisation.
    pub seed: u64,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: String,
    /// Folder holding the run folders.
    pub project: PathBuf,
    /// Run folder name (`exp`, then `exp2`, ...).
    pub name: String,
    /// Score threshold of the validation decode (low, so mAP sees the whole PR curve).
    pub val_score_threshold: f64,
    /// Boxes per class and image in the validation decode.
    pub val_max_boxes: usize,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            data: DataSource::Synthetic { train_images: 1200, val_images: 200, size: 160, seed: 0 },
            model: ModelSource::TinyPreset { width_divisor: 4 },
            weights: None,
            freeze: None,
            anchors: AnchorSource::Kmeans,
            input: 160,
            tile: None,
            batch: 16,
            nominal_batch: 16,
            epochs: 30,
            optimizer: OptimizerKind::adam(),
            schedule: Schedule::Cosine { lr: 3e-3, warmup_epochs: 1.0, final_fraction: 0.02 },
            cache: CacheConfig::None,
            augment: true,
            mosaic: false,
            multi_scale: false,
            ignore_thresh: 0.5,
            bn_momentum: default_bn_momentum(),
            darknet_ignore: false,
            local_bn: false,
            seed: 0,
            device: "cpu".into(),
            project: PathBuf::from("runs/train"),
            name: "exp".into(),
            val_score_threshold: 0.005,
            val_max_boxes: 100,
        }
    }
}

/// Darknet's and keras' batch-norm momentum, the default (and that of runs saved before the
/// setting existed).
fn default_bn_momentum() -> f64 {
    yolo3_model::network::BN_MOMENTUM
}

impl CacheConfig {
    /// The folder of `--cache disk` when none is given: `$XDG_CACHE_HOME/yolo3/images`, else
    /// `~/.cache/yolo3/images`, else `.yolo3-cache` here.
    #[must_use]
    pub fn default_dir() -> PathBuf {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")));
        base.map_or_else(|| PathBuf::from(".yolo3-cache"), |b| b.join("yolo3/images"))
    }
}

impl TrainConfig {
    /// The TOML text of `args.toml`.
    pub fn to_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string_pretty(self)
    }

    /// Parses `args.toml`.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Checks every value against its range before anything is read or written, so a bad
    /// value is reported as itself (not as a missing checkpoint or a non-finite loss later).
    pub fn check(&self) -> Result<(), TrainError> {
        let bad = |what: String| Err(TrainError::Config(what));
        if let Err(why) = check_input_side(self.input) {
            return bad(format!("input {why}"));
        }
        let outside = |what: &str, value: usize, range: &std::ops::RangeInclusive<usize>| {
            (!range.contains(&value))
                .then(|| format!("{what} {value}: not in {}..={}", range.start(), range.end()))
        };
        let counts = [
            ("batch", self.batch, limits::BATCH),
            ("nominal batch", self.nominal_batch, limits::NOMINAL_BATCH),
            ("epochs", self.epochs, limits::EPOCHS),
        ];
        if let Some(why) = counts.iter().find_map(|(w, v, r)| outside(w, *v, r)) {
            return bad(why);
        }
        if self.nominal_batch < self.batch {
            return bad(format!(
                "batch {} and nominal batch {}: need batch <= nominal batch",
                self.batch, self.nominal_batch
            ));
        }
        if let Some(side) = self.tile.filter(|s| !limits::TILE.contains(s)) {
            let (lo, hi) = (limits::TILE.start(), limits::TILE.end());
            return bad(format!("tile {side}: not in {lo}..={hi}"));
        }
        if let Some(Freeze::Layers(n)) = self.freeze {
            if let Some(why) = outside("freeze", n, &limits::FREEZE_LAYERS) {
                return bad(why);
            }
        }
        if !(self.bn_momentum > 0.0 && self.bn_momentum <= 1.0) {
            return bad(format!("batch-norm momentum {}: not in (0, 1]", self.bn_momentum));
        }
        if !(0.0..=1.0).contains(&self.ignore_thresh) {
            return bad(format!("ignore threshold {}: not in [0, 1]", self.ignore_thresh));
        }
        for (what, lr) in self.schedule.learning_rates() {
            if !(lr.is_finite() && lr > 0.0) {
                return bad(format!("{what} {lr}: not a positive number"));
            }
        }
        match &self.data {
            DataSource::Synthetic { train_images, val_images, size, .. } => {
                let images = &limits::SYNTHETIC_IMAGES;
                if !(images.contains(train_images)
                    && images.contains(val_images)
                    && limits::SYNTHETIC_SIZE.contains(size))
                {
                    return bad(format!(
                        "synthetic data of {train_images} training and {val_images} validation \
                         images of {size} pixels: need {}..={} images per split and {}..={} \
                         pixels",
                        images.start(),
                        images.end(),
                        limits::SYNTHETIC_SIZE.start(),
                        limits::SYNTHETIC_SIZE.end()
                    ));
                }
            }
            DataSource::Files { val_fraction, val, .. } => {
                if val.is_none() && !(0.0..1.0).contains(val_fraction) {
                    return bad(format!("validation fraction {val_fraction}: not in [0, 1)"));
                }
            }
        }
        if let ModelSource::TinyPreset { width_divisor } = self.model {
            if !limits::WIDTH_DIVISOR.contains(&width_divisor) {
                let (lo, hi) = (limits::WIDTH_DIVISOR.start(), limits::WIDTH_DIVISOR.end());
                return bad(format!("width divisor {width_divisor}: not in {lo}..={hi}"));
            }
        }
        Ok(yolo3_io::run_folder::check_name(&self.name)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_the_limits_are_refused() {
        TrainConfig::default().check().unwrap();
        let d = TrainConfig::default;
        let synthetic =
            |size| DataSource::Synthetic { train_images: 4, val_images: 2, size, seed: 0 };
        let cases = [
            TrainConfig { batch: 0, ..d() },
            TrainConfig { batch: 2048, nominal_batch: 2048, ..d() },
            TrainConfig { nominal_batch: 70_000, ..d() },
            TrainConfig { batch: 32, nominal_batch: 16, ..d() },
            TrainConfig { epochs: 0, ..d() },
            TrainConfig { model: ModelSource::TinyPreset { width_divisor: 0 }, ..d() },
            TrainConfig { model: ModelSource::TinyPreset { width_divisor: 17 }, ..d() },
            TrainConfig { freeze: Some(Freeze::Layers(0)), ..d() },
            TrainConfig { data: synthetic(31), ..d() },
            TrainConfig { input: 100, ..d() },
            TrainConfig { name: "a/b".into(), ..d() },
        ];
        for c in cases {
            assert!(c.check().is_err(), "accepted: {c:?}");
        }
        let edges = [
            TrainConfig { batch: 1024, nominal_batch: 1024, ..d() },
            TrainConfig { model: ModelSource::TinyPreset { width_divisor: 16 }, ..d() },
            TrainConfig { data: synthetic(4096), ..d() },
        ];
        for c in edges {
            c.check().unwrap();
        }
    }

    #[test]
    fn default_config_round_trips_through_toml() {
        let c = TrainConfig::default();
        let text = c.to_toml().unwrap();
        assert_eq!(TrainConfig::from_toml(&text).unwrap(), c);
    }
}
