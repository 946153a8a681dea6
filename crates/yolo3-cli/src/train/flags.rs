//! The flags of `yolo3 train` and how they change [`TrainConfig::default`]: a flag that is not
//! given leaves the library's default in place, so the two cannot drift apart.

use std::path::PathBuf;

use clap::{Args, ValueEnum};

use super::defaults;
use yolo3_train::config::{limits, DEFAULT_VAL_FRACTION};
use yolo3_train::{
    AnchorSource, CacheConfig, DataSource, Freeze, ModelSource, OptimizerKind, Schedule,
    TrainConfig,
};

/// Optimizers.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum OptimizerArg {
    /// Adam (keras-yolo3).
    Adam,
    /// SGD with momentum 0.9 and weight decay 5e-4 on conv kernels (darknet).
    Sgd,
}

/// Learning-rate schedules.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum ScheduleArg {
    /// keras-yolo3: body frozen at 1e-3, then all layers at 1e-4 with reduce-on-plateau and
    /// early stopping.
    Keras,
    /// darknet: burn-in over 100 steps, then x0.1 at 80% and x0.1 at 90% of the run.
    Darknet,
    /// Warm-up then cosine decay.
    Cosine,
}

/// Where anchors come from.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum AnchorsArg {
    /// As written in the cfg.
    Cfg,
    /// k-means on the training boxes.
    Kmeans,
}

/// Where decoded images are kept between epochs.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(super) enum CacheArg {
    /// In memory (the amount is printed first; refused above half the available memory).
    Ram,
    /// One file per image in --cache-dir.
    Disk,
}

/// `yolo3 train`.
// Independent on/off flags of the command line.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Args)]
pub(crate) struct TrainArgs {
    /// Training annotations: keras train.txt, a Pascal VOC folder, a COCO JSON or a YOLO folder.
    /// Without it, the built-in synthetic dataset is generated into the run folder.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Validation annotations (default: hold out --val-fraction of the training images).
    #[arg(long)]
    val: Option<PathBuf>,
    /// Class-name file (one name per line), where the format needs one.
    #[arg(long)]
    classes: Option<PathBuf>,
    /// Fraction of training images held out for validation when --val is absent, in [0, 1).
    #[arg(long, default_value_t = DEFAULT_VAL_FRACTION, value_parser = crate::ranges::fraction_below_one)]
    val_fraction: f64,
    /// Images of the synthetic training split, 1-1000000 (with no --data).
    #[arg(long, value_parser = crate::ranges::within(&limits::SYNTHETIC_IMAGES),
          help = defaults::synthetic("Images of the synthetic training split, 1-1000000 (with no --data)", |d| d.0))]
    synthetic_images: Option<usize>,
    /// Images of the synthetic validation split, 1-1000000 (with no --data).
    #[arg(long, value_parser = crate::ranges::within(&limits::SYNTHETIC_IMAGES),
          help = defaults::synthetic("Images of the synthetic validation split, 1-1000000 (with no --data)", |d| d.1))]
    synthetic_val_images: Option<usize>,
    /// Side of the synthetic images in pixels, 32-4096 (with no --data).
    #[arg(long, value_parser = crate::ranges::within_u32(&limits::SYNTHETIC_SIZE),
          help = defaults::synthetic("Side of the synthetic images in pixels, 32-4096 (with no --data)", |d| d.2 as usize))]
    synthetic_size: Option<u32>,
    /// Darknet cfg of the network (default: the built-in narrow tiny-YOLOv3). Its classes,
    /// head filters and (with --anchors kmeans) anchors are adapted to the dataset.
    #[arg(long)]
    cfg: Option<PathBuf>,
    /// Width divisor of the built-in tiny-YOLOv3 (1-16; 1 = official widths).
    #[arg(long, value_parser = crate::ranges::within_u32(&limits::WIDTH_DIVISOR),
          help = defaults::width_divisor("Width divisor of the built-in tiny-YOLOv3 (1-16; 1 = official widths)"))]
    width_divisor: Option<u32>,
    /// Initial weights: darknet .weights (full, or partial like darknet53.conv.74), a
    /// .safetensors checkpoint or keras-yolo3 .h5; loaded by shape (heads of another class
    /// count are re-initialised).
    #[arg(long)]
    weights: Option<PathBuf>,
    /// Freeze layers 0..N (darknet indices; 1-100000) or `backbone` (darknet53 in YOLOv3,
    /// the first 13 layers in tiny): no gradient, batch-norm statistics kept, for the whole run.
    #[arg(long, value_name = "N|backbone", value_parser = freeze)]
    freeze: Option<Freeze>,
    /// Anchors: from the cfg or k-means on the training boxes.
    #[arg(
        long,
        value_enum,
        help = "Anchors: from the cfg or k-means on the training boxes [default: kmeans for the built-in network, cfg with --cfg]"
    )]
    anchors: Option<AnchorsArg>,
    /// Anchors from a keras anchors.txt (overrides --anchors).
    #[arg(long)]
    anchors_file: Option<PathBuf>,
    /// Square input side in pixels, a multiple of 32 up to 8192.
    #[arg(long, value_parser = crate::ranges::input_side(),
          help = defaults::of("Square input side in pixels, a multiple of 32 up to 8192", |c| c.input))]
    input: Option<u32>,
    /// Images larger than SIDE pixels train on random SIDE x SIDE tiles at full resolution
    /// (as many per epoch as their grid of tiles at 20% overlap) and validate on that grid; for
    /// small objects in large photos (32-8192). Mosaic is not used with tiles.
    #[arg(long, value_name = "SIDE", value_parser = crate::ranges::within_u32(&limits::TILE))]
    tile: Option<u32>,
    /// Images per forward pass (1-1024).
    #[arg(long, value_parser = crate::ranges::within(&limits::BATCH),
          help = defaults::of("Images per forward pass (1-1024)", |c| c.batch))]
    batch: Option<usize>,
    /// Images per optimizer step (1-65536; gradients accumulate over nominal/batch passes).
    #[arg(long, value_parser = crate::ranges::within(&limits::NOMINAL_BATCH),
          help = defaults::of("Images per optimizer step (1-65536; gradients accumulate over nominal/batch passes; at least --batch)", |c| c.nominal_batch))]
    nominal_batch: Option<usize>,
    /// Epochs (1-100000).
    #[arg(long, value_parser = crate::ranges::within(&limits::EPOCHS),
          help = defaults::of("Epochs (1-100000)", |c| c.epochs))]
    epochs: Option<usize>,
    /// Optimizer.
    #[arg(long, value_enum, help = defaults::of("Optimizer", |c| c.optimizer.name()))]
    optimizer: Option<OptimizerArg>,
    /// Learning-rate schedule.
    #[arg(long, value_enum, help = defaults::of("Learning-rate schedule", |c| c.schedule.name()))]
    schedule: Option<ScheduleArg>,
    /// Peak learning rate, > 0 (keras schedule: the frozen stage's; the unfrozen stage uses a tenth).
    #[arg(long, value_parser = crate::ranges::positive, help = defaults::learning_rate())]
    lr: Option<f64>,
    /// Epochs with the body frozen (keras schedule; 0-100000).
    #[arg(long, default_value_t = 0, value_parser = crate::ranges::within(&limits::FROZEN_EPOCHS))]
    frozen_epochs: usize,
    /// Keep decoded images between epochs: letterboxed when nothing random follows, else as
    /// decoded. Results are the same as without.
    #[arg(
        long,
        value_enum,
        help = "Keep decoded images between epochs: letterboxed when nothing random follows, else as decoded; results are the same as without [default: none]"
    )]
    cache: Option<CacheArg>,
    /// Folder of --cache disk (default: $XDG_CACHE_HOME/yolo3/images or
    /// ~/.cache/yolo3/images).
    #[arg(long, requires = "cache")]
    cache_dir: Option<PathBuf>,
    /// Turn keras-yolo3's random augmentation off (letterbox only).
    #[arg(long)]
    no_augment: bool,
    /// Mosaic augmentation.
    #[arg(long)]
    mosaic: bool,
    /// Multi-scale training: 320..608 by 32, changing every 10 batches.
    #[arg(long)]
    multi_scale: bool,
    /// Ignore threshold of the loss, in [0, 1] (keras: 0.5).
    #[arg(long, value_parser = crate::ranges::unit,
          help = defaults::of("Ignore threshold of the loss, in [0, 1]", |c| c.ignore_thresh))]
    ignore_thresh: Option<f64>,
    /// Batch norm's running-statistics update rate, in (0, 1] (`running = (1 - m) * running +
    /// m * batch`; 0.01 is darknet's and keras' 0.99 rolling average).
    #[arg(long, value_parser = crate::ranges::rate,
          help = defaults::of("Batch norm's running-statistics update rate, in (0, 1]: running = (1 - m) * running + m * batch", |c| c.bn_momentum))]
    bn_momentum: Option<f64>,
    /// Ignore mask against every box of the image (darknet) instead of the layer's (keras).
    #[arg(long)]
    darknet_ignore: bool,
    /// With several processes: batch norm from each process' own slice of the batch (faster,
    /// as PyTorch DDP without SyncBatchNorm) instead of the whole batch's statistics (exact:
    /// the step of one process of the same batch).
    #[arg(long)]
    local_bn: bool,
    /// Seed of data order, augmentation and initialisation.
    #[arg(long, help = defaults::of("Seed of data order, augmentation and initialisation", |c| c.seed))]
    seed: Option<u64>,
    #[command(flatten)]
    device: crate::args::DeviceArg,
    /// Folder of the run folders.
    #[arg(long, default_value = "runs/train")]
    project: PathBuf,
    /// Run name (exp, exp2, ... when taken).
    #[arg(long, default_value = "exp")]
    name: String,
    /// Continue the run in this folder from its last checkpoint (other flags are ignored;
    /// a distributed run can continue with another number of processes).
    #[arg(long)]
    pub resume: Option<PathBuf>,
    #[command(flatten)]
    pub dist: super::launch::DistArgs,
}

impl TrainArgs {
    pub(crate) fn to_config(&self) -> TrainConfig {
        let mut c = TrainConfig::default();
        if let Some(train) = &self.data {
            c.data = DataSource::Files {
                train: train.clone(),
                val: self.val.clone(),
                classes: self.classes.clone(),
                val_fraction: self.val_fraction,
            };
        } else if let DataSource::Synthetic { train_images, val_images, size, .. } = &mut c.data {
            *train_images = self.synthetic_images.unwrap_or(*train_images);
            *val_images = self.synthetic_val_images.unwrap_or(*val_images);
            *size = self.synthetic_size.unwrap_or(*size);
        }
        if let Some(cfg) = &self.cfg {
            c.model = ModelSource::Cfg { path: cfg.clone() };
            c.anchors = AnchorSource::Cfg;
        }
        if let (Some(d), ModelSource::TinyPreset { width_divisor }) =
            (self.width_divisor, &mut c.model)
        {
            *width_divisor = d;
        }
        c.weights.clone_from(&self.weights);
        c.freeze = self.freeze;
        match (self.anchors, &self.anchors_file) {
            (_, Some(path)) => c.anchors = AnchorSource::File { path: path.clone() },
            (Some(AnchorsArg::Cfg), None) => c.anchors = AnchorSource::Cfg,
            (Some(AnchorsArg::Kmeans), None) => c.anchors = AnchorSource::Kmeans,
            (None, None) => {}
        }
        if let Some(v) = self.input {
            c.input = v;
        }
        c.tile = self.tile;
        if let Some(v) = self.batch {
            c.batch = v;
            c.nominal_batch = c.nominal_batch.max(v);
        }
        if let Some(v) = self.nominal_batch {
            c.nominal_batch = v;
        }
        if let Some(v) = self.epochs {
            c.epochs = v;
        }
        match self.optimizer {
            Some(OptimizerArg::Adam) => c.optimizer = OptimizerKind::adam(),
            Some(OptimizerArg::Sgd) => c.optimizer = OptimizerKind::sgd(),
            None => {}
        }
        match self.schedule {
            Some(ScheduleArg::Keras) => {
                let mut s = Schedule::keras(self.frozen_epochs);
                if let (Some(lr), Schedule::KerasTwoStage { frozen_lr, lr: unfrozen, .. }) =
                    (self.lr, &mut s)
                {
                    *frozen_lr = lr;
                    *unfrozen = lr / 10.0;
                }
                c.schedule = s;
            }
            Some(ScheduleArg::Darknet) => {
                c.schedule = Schedule::darknet(self.lr.unwrap_or(Schedule::DARKNET_LR));
            }
            Some(ScheduleArg::Cosine) | None => {
                if let (Some(v), Schedule::Cosine { lr, .. }) = (self.lr, &mut c.schedule) {
                    *lr = v;
                }
            }
        }
        c.cache = match self.cache {
            None => CacheConfig::None,
            Some(CacheArg::Ram) => CacheConfig::Ram,
            Some(CacheArg::Disk) => CacheConfig::Disk {
                dir: self.cache_dir.clone().unwrap_or_else(CacheConfig::default_dir),
            },
        };
        c.augment = !self.no_augment;
        c.mosaic = self.mosaic;
        c.multi_scale = self.multi_scale;
        if let Some(v) = self.ignore_thresh {
            c.ignore_thresh = v;
        }
        if let Some(v) = self.bn_momentum {
            c.bn_momentum = v;
        }
        c.darknet_ignore = self.darknet_ignore;
        c.local_bn = self.local_bn;
        if let Some(v) = self.seed {
            c.seed = v;
        }
        c.device.clone_from(&self.device.device);
        c.project.clone_from(&self.project);
        c.name.clone_from(&self.name);
        c
    }
}

/// `--freeze`: `backbone` or a layer count `N` (layers `0..N`).
fn freeze(text: &str) -> Result<Freeze, String> {
    if text.trim().eq_ignore_ascii_case("backbone") {
        return Ok(Freeze::Backbone);
    }
    let range = limits::FREEZE_LAYERS;
    match text.trim().parse::<usize>() {
        Ok(n) if range.contains(&n) => Ok(Freeze::Layers(n)),
        _ => Err(format!(
            "{text:?} is neither `backbone` nor a layer count in {}..={}",
            range.start(),
            range.end()
        )),
    }
}
