//! The training loop: data in parallel ahead of the step, the network's forward pass, the exact
//! loss through [`YoloLoss`], gradient accumulation to the nominal batch, the optimizer and the
//! schedule; validation, `results.csv`, plots and checkpoints every epoch. In a data-parallel
//! run ([`Replicas`]) every rank takes its slice of each batch and the gradients are averaged
//! before each step (see `replicas.rs` for why that is the single-process step).
//!
//! Files of a run folder:
//! * `args.toml`: the resolved [`TrainConfig`]; `model.cfg`: the cfg actually trained (classes
//!   and anchors adapted);
//! * `weights/last.safetensors` and `weights/last.state-<epoch>.safetensors` (optimizer and
//!   schedule position) after every epoch, `weights/best.safetensors` at the best validation mAP50-95,
//!   and `weights/best.weights` (darknet format) at the end;
//! * `results.csv` and `results.png`.
//!
//! Saving an epoch writes a new state file named after the epoch, then replaces the checkpoint
//! (atomically, it names its epoch), then deletes older state files. A run killed at any point
//! therefore always has a checkpoint and the state file of the same epoch. Only rank 0 of a
//! distributed run touches the folder; it validates on the whole validation set while the
//! other ranks wait (the mAP needs every detection in one place, the result is that of a
//! single process, and on one machine rank 0 borrows the waiting ranks' threads).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tch::Tensor;
use yolo3_core::fsio::Existing;
use yolo3_core::kmeans::{cluster_anchors, KmeansOptions};
use yolo3_core::metrics::MapSummary;
use yolo3_core::{Anchors, DecodeOptions, IgnoreScope, LossOptions, LossTerms, TinyMask};
use yolo3_data::{
    AugmentOptions, Dataset, ImageCache, InputSize, Loader, LoaderOptions, MosaicOptions,
    MultiScale, Stage,
};
use yolo3_model::{CheckpointInfo, Config, Darknet, DarknetWeights, WeightsHeader};

use crate::cfg_text::tiny_cfg;
use crate::config::{
    parse_device, AnchorSource, CacheConfig, DataSource, ModelSource, TrainConfig,
};
use crate::data::{load_splits, Splits};
use crate::error::{Result, TorchResult, TrainError};
use crate::loss_op::YoloLoss;
use crate::observer::{BatchProgress, Observer};
use crate::optim::Optimizer;
use crate::replicas::Replicas;
use crate::run_dir::{next_run_dir, read_results, write_atomic, write_results, EpochRow};
use crate::schedule::{Position, ScheduleState};
use crate::validate::evaluate;

/// What a finished run reports.
#[derive(Debug)]
pub struct TrainSummary {
    /// The run folder.
    pub run_dir: PathBuf,
    /// Every epoch's results.
    pub rows: Vec<EpochRow>,
    /// The final validation of the best checkpoint (rank 0 validates: `None` on the other
    /// ranks of a distributed run).
    pub best: Option<MapSummary>,
    /// Class names.
    pub class_names: Vec<String>,
    /// The best checkpoint.
    pub best_checkpoint: PathBuf,
    /// Wall time of this invocation, in seconds.
    pub seconds: f64,
}

/// The mutable position of a run, saved in `last.state-<epoch>.safetensors`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct RunState {
    /// Epochs completed.
    epochs_done: usize,
    /// Optimizer steps taken.
    optimizer_steps_taken: usize,
    /// Schedule state.
    schedule: ScheduleState,
    /// Best validation mAP50-95 so far.
    best_fitness: f64,
    /// Per-parameter optimizer step counts.
    optimizer_steps: BTreeMap<String, i64>,
}

/// What rank 0 sends the other ranks of a distributed run before the first step.
#[derive(serde::Serialize, serde::Deserialize)]
struct Plan {
    run_dir: PathBuf,
    /// `args.toml`'s text.
    config: String,
    /// The cfg trained.
    model_cfg: String,
    /// Whether the run resumes (the optimizer state follows under its own key).
    resumed: bool,
    state: RunState,
    /// `results.csv` lines of the epochs done.
    rows: Vec<String>,
}

/// What rank 0 sends after validating an epoch.
#[derive(serde::Serialize, serde::Deserialize)]
struct EpochOutcome {
    state: RunState,
    row: String,
    stop: bool,
}

/// Starts a new run. In a distributed run every rank calls it with the same settings; rank 0's
/// are the ones used.
///
/// A run that fails before its first epoch is recorded removes the run folder it created, so
/// the next run gets the same name instead of `exp2` beside an empty `exp`.
pub fn train(
    config: TrainConfig,
    replicas: &Replicas,
    observer: &mut dyn Observer,
) -> Result<TrainSummary> {
    lead_or_follow(replicas, observer, |observer| {
        config.validate()?;
        let run_dir = next_run_dir(&config.project, &config.name)?;
        let result = (|| {
            let _lock = lock_run(&run_dir, observer)?;
            let args = config.to_toml().map_err(|e| {
                TrainError::format(run_dir.join("args.toml"), "encoding the settings", e)
            })?;
            write_atomic(&run_dir.join("args.toml"), args.as_bytes(), Existing::Replace)?;
            Session::open(config, run_dir.clone(), false, replicas, observer)?.run(observer)
        })();
        if result.is_err() && !run_dir.join("results.csv").exists() {
            // Everything in it was written by this call; nothing of the user's is inside.
            if std::fs::remove_dir_all(&run_dir).is_ok() {
                observer.message(&format!(
                    "removed {}: the run ended before its first epoch",
                    run_dir.display()
                ));
            }
        }
        result
    })
}

/// Continues the run in `run_dir` from its last checkpoint, with any number of ranks (each
/// epoch's batches are the same whatever the world size; only rank 0 reads the folder).
pub fn resume(
    run_dir: &Path,
    replicas: &Replicas,
    observer: &mut dyn Observer,
) -> Result<TrainSummary> {
    lead_or_follow(replicas, observer, |observer| {
        // A missing folder is named as such, not by the lock file that cannot be made in it.
        std::fs::read_dir(run_dir).map_err(|source| TrainError::Io {
            action: "reading",
            path: run_dir.to_owned(),
            source,
        })?;
        let _lock = lock_run(run_dir, observer)?;
        let path = run_dir.join("args.toml");
        let text = yolo3_core::fsio::read_text(&path).map_err(|source| TrainError::Io {
            action: "reading",
            path: path.clone(),
            source,
        })?;
        let config = TrainConfig::from_toml(&text)
            .map_err(|e| TrainError::format(path, "not a valid args.toml", e))?;
        config.validate()?;
        Session::open(config, run_dir.to_owned(), true, replicas, observer)?.run(observer)
    })
}

/// Locks `run_dir` for this process (rank 0 alone writes it), so that a `--resume` of a run
/// that is still training, or two at once, is refused instead of both writing the folder.
fn lock_run(run_dir: &Path, observer: &mut dyn Observer) -> Result<yolo3_core::lock::FolderLock> {
    let (lock, previous) = yolo3_core::lock::FolderLock::acquire(run_dir)?;
    if let Some(previous) = previous {
        observer.message(&format!(
            "{}: the process that held it ({previous}) has ended; taking it over",
            lock.path().display()
        ));
    }
    Ok(lock)
}

/// Rank 0 (or a single process) runs `lead`; the other ranks follow rank 0's plan. An error
/// is also left for the other ranks, so that they name it.
fn lead_or_follow(
    replicas: &Replicas,
    observer: &mut dyn Observer,
    lead: impl FnOnce(&mut dyn Observer) -> Result<TrainSummary>,
) -> Result<TrainSummary> {
    let result = if replicas.is_leader() {
        lead(observer)
    } else {
        Session::follow(replicas, observer).and_then(|s| s.run(observer))
    };
    if let Err(e) = &result {
        replicas.report(e);
    }
    result
}

struct Session {
    config: TrainConfig,
    run_dir: PathBuf,
    train: Arc<Dataset>,
    val: Arc<Dataset>,
    net: Darknet,
    loss: YoloLoss,
    optimizer: Optimizer,
    state: RunState,
    rows: Vec<EpochRow>,
    /// Layers `0..freeze_below` are frozen for the whole run.
    freeze_below: usize,
    replicas: Replicas,
    /// A follower's private copy of generated data (removed with the session).
    _scratch: Option<tempfile::TempDir>,
}

/// The device of this rank: `cuda` means `cuda:LOCAL_RANK` in a distributed run.
fn rank_device(config: &TrainConfig, replicas: &Replicas) -> Result<tch::Device> {
    match (config.device.as_str(), replicas.group()) {
        ("cuda", Some(group)) => Ok(parse_device(&format!("cuda:{}", group.env().local_rank))?),
        (name, _) => Ok(parse_device(name)?),
    }
}

impl Session {
    /// Rank 0 (or the only process): reads the data and the run folder, builds the network.
    fn open(
        config: TrainConfig,
        run_dir: PathBuf,
        resuming: bool,
        replicas: &Replicas,
        observer: &mut dyn Observer,
    ) -> Result<Self> {
        let device = rank_device(&config, replicas)?;
        tch::manual_seed(config.seed as i64);
        let splits = load_splits(&config.data, &run_dir, config.seed)?;
        let weights_dir = run_dir.join("weights");
        std::fs::create_dir_all(&weights_dir).map_err(|source| TrainError::Io {
            action: "creating",
            path: weights_dir.clone(),
            source,
        })?;
        let cfg_path = run_dir.join("model.cfg");
        let mut optimizer_bytes = None;
        let last = run_dir.join("weights/last.safetensors");
        // A run stopped before its first checkpoint (killed during epoch 1, or between epoch
        // 1's table and its checkpoint) has nothing to resume from: it starts over in its folder.
        let resuming = resuming && {
            let saved = last.exists();
            if !saved {
                observer.message(&format!(
                    "{} has no checkpoint yet (the run stopped before its first epoch was \
                     saved): starting it over",
                    run_dir.display()
                ));
            }
            saved
        };
        let (net, optimizer, state, rows) = if resuming {
            let (net, info) = Darknet::from_checkpoint(&last, device)?;
            let ckpt_epoch: usize =
                info.extra.get("epoch").and_then(|e| e.parse().ok()).ok_or_else(|| {
                    TrainError::RunFile {
                        path: last.clone(),
                        message: "no `epoch` in the checkpoint's metadata".into(),
                    }
                })?;
            let state_path = state_file(&run_dir, ckpt_epoch);
            let bytes = yolo3_core::fsio::read_bytes(&state_path).map_err(|source| {
                TrainError::Io { action: "reading", path: state_path.clone(), source }
            })?;
            let (optimizer, state) = restore_state(&config, &bytes, &state_path, device)?;
            if ckpt_epoch != state.epochs_done {
                return Err(TrainError::RunFile {
                    path: state_path,
                    message: format!("holds epoch {}, expected {ckpt_epoch}", state.epochs_done),
                });
            }
            optimizer_bytes = Some(bytes);
            let rows: Vec<EpochRow> = read_results(&run_dir.join("results.csv"))?
                .into_iter()
                .filter(|r| r.epoch <= state.epochs_done)
                .collect();
            observer.message(&format!(
                "resuming {} after epoch {}",
                run_dir.display(),
                state.epochs_done
            ));
            (net, Some(optimizer), state, rows)
        } else {
            let text = model_cfg_text(&config, &splits.train)?;
            write_atomic(&cfg_path, text.as_bytes(), Existing::Replace)?;
            let cfg = Config::parse(&text, &cfg_path.display().to_string())?;
            let mut net = Darknet::new(cfg, device)?;
            // Data priors first: heads a weights file cannot fill keep them.
            init_head_biases(&net, config.input)?;
            if let Some(weights) = &config.weights {
                load_initial_weights(&mut net, weights, observer)?;
            }
            (net, None, RunState::fresh(), Vec::new())
        };
        if replicas.world() > 1 {
            let plan = Plan {
                run_dir: run_dir.clone(),
                config: config.to_toml().map_err(|e| {
                    TrainError::format(run_dir.join("args.toml"), "encoding the settings", e)
                })?,
                model_cfg: net.config().text().to_owned(),
                resumed: resuming,
                state: state.clone(),
                rows: rows.iter().map(EpochRow::to_csv).collect(),
            };
            let plan = serde_json::to_vec(&plan).expect("plain data serialises");
            replicas.share("plan", || Ok(plan))?;
            if let Some(bytes) = optimizer_bytes {
                replicas.share("optimizer", || Ok(bytes))?;
            }
        }
        Self::assemble(
            config, run_dir, splits, net, optimizer, state, rows, replicas, None, observer,
        )
    }

    /// The other ranks: everything from rank 0's plan; the data read (or generated into a
    /// private folder) by this process, the run folder never touched.
    fn follow(replicas: &Replicas, observer: &mut dyn Observer) -> Result<Self> {
        let plan = replicas.share("plan", || unreachable!("rank 0 publishes the plan"))?;
        let plan: Plan = serde_json::from_slice(&plan).map_err(|e| {
            TrainError::Config(format!("rank 0's plan is not valid (a different yolo3?): {e}"))
        })?;
        let config = TrainConfig::from_toml(&plan.config)
            .map_err(|e| TrainError::Config(format!("rank 0's settings are not valid: {e}")))?;
        let device = rank_device(&config, replicas)?;
        tch::manual_seed(config.seed as i64);
        // Generated data goes to a folder of this process' own; files are read where they are.
        let scratch = match config.data {
            DataSource::Synthetic { .. } => {
                Some(tempfile::tempdir().map_err(|source| TrainError::Io {
                    action: "creating a folder for the generated data in",
                    path: std::env::temp_dir(),
                    source,
                })?)
            }
            DataSource::Files { .. } => None,
        };
        let data_root = scratch.as_ref().map_or(plan.run_dir.as_path(), tempfile::TempDir::path);
        let splits = load_splits(&config.data, data_root, config.seed)?;
        let cfg = Config::parse(&plan.model_cfg, "rank 0's model cfg")?;
        let net = Darknet::new(cfg, device)?;
        let optimizer = if plan.resumed {
            let bytes = replicas.share("optimizer", || unreachable!("rank 0 publishes it"))?;
            Some(restore_state(&config, &bytes, Path::new("rank 0's optimizer state"), device)?.0)
        } else {
            None
        };
        let results = plan.run_dir.join("results.csv");
        let rows = plan
            .rows
            .iter()
            .enumerate()
            .map(|(i, line)| EpochRow::parse(line, &results, i + 2))
            .collect::<Result<Vec<_>>>()?;
        Self::assemble(
            config,
            plan.run_dir,
            splits,
            net,
            optimizer,
            plan.state,
            rows,
            replicas,
            scratch,
            observer,
        )
    }

    /// What every rank does with its parts: checks, the loss, the process group's backend.
    fn assemble(
        config: TrainConfig,
        run_dir: PathBuf,
        splits: Splits,
        mut net: Darknet,
        optimizer: Option<Optimizer>,
        state: RunState,
        rows: Vec<EpochRow>,
        replicas: &Replicas,
        scratch: Option<tempfile::TempDir>,
        observer: &mut dyn Observer,
    ) -> Result<Self> {
        if splits.train.samples.is_empty() || splits.val.samples.is_empty() {
            return Err(TrainError::Config(format!(
                "{} training and {} validation images: both splits need images",
                splits.train.samples.len(),
                splits.val.samples.len()
            )));
        }
        replicas.check_batch(config.batch, splits.train.samples.len())?;
        observer.message(&format!("train: {}", splits.train.summary()));
        observer.message(&format!("val: {}", splits.val.summary()));
        let class_names = splits.train.class_names.clone();
        let largest = if config.multi_scale {
            config.input.max(yolo3_data::MultiScale::default().max)
        } else {
            config.input
        };
        yolo3_model::memory::check_fits(
            net.config(),
            largest,
            config.batch.div_ceil(replicas.world()),
            yolo3_model::memory::Pass::Training,
        )?;
        let heads_classes = net.heads().first().map_or(0, |h| h.classes as usize);
        if heads_classes != class_names.len() {
            return Err(TrainError::Config(format!(
                "the network has {heads_classes} classes but the dataset has {} ({:?})",
                class_names.len(),
                class_names
            )));
        }
        let freeze_below = config.freeze.map_or(Ok(0), |f| f.layers(net.config()))?;
        if freeze_below > 0 {
            observer.message(&format!(
                "freeze: layers 0..{freeze_below} get no gradient and keep their batch-norm \
                 statistics"
            ));
        }
        let anchors = net.config().anchors()?;
        let options = LossOptions {
            ignore_thresh: config.ignore_thresh,
            ignore_scope: if config.darknet_ignore {
                IgnoreScope::Image
            } else {
                IgnoreScope::SameLayer
            },
        };
        let loss = YoloLoss::new(anchors, class_names.len(), options);
        if let Some(group) = replicas.group() {
            group.start(yolo3_dist::Backend::for_device(net.device()))?;
            observer.message(&format!(
                "rank {} of {}: {:?} backend, batch {} of the global {}, batch norm over {}",
                group.rank(),
                group.world(),
                group.backend().expect("just started"),
                replicas.shard().range(config.batch).len(),
                config.batch,
                if config.local_bn { "each rank's slice (--local-bn)" } else { "the global batch" }
            ));
        }
        if !config.local_bn {
            net.set_replica_sum(replicas.replica_sum());
        }
        observer.message(&format!(
            "model: {} ({} parameters) on {:?}, input {}",
            net.config().name(),
            net.var_store().trainable_variables().iter().map(Tensor::numel).sum::<usize>(),
            net.device(),
            config.input
        ));
        Ok(Self {
            optimizer: optimizer.unwrap_or_else(|| Optimizer::new(config.optimizer)),
            train: Arc::new(splits.train),
            val: Arc::new(splits.val),
            config,
            run_dir,
            net,
            loss,
            state,
            rows,
            freeze_below,
            replicas: replicas.clone(),
            _scratch: scratch,
        })
    }

    fn loader(&self) -> Result<Loader> {
        let c = &self.config;
        let options = LoaderOptions {
            batch_size: c.batch,
            input: InputSize::square(c.input),
            shuffle: true,
            augment: c.augment.then(AugmentOptions::default),
            mosaic: (c.augment && c.mosaic).then(MosaicOptions::default),
            multi_scale: c.multi_scale.then(MultiScale::default),
            seed: c.seed,
            drop_last: self.train.samples.len() > c.batch,
        };
        Ok(Loader::all(Arc::clone(&self.train), options)?.with_shard(self.replicas.shard()))
    }

    fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            score_threshold: self.config.val_score_threshold,
            iou_threshold: 0.5,
            max_boxes: self.config.val_max_boxes,
            ..DecodeOptions::default()
        }
    }

    /// Validation of `net` on rank 0, with the threads of the ranks waiting on this machine.
    fn validate(
        &self,
        net: &Darknet,
        cache: &Arc<ImageCache>,
        observer: &mut dyn Observer,
    ) -> Result<crate::validate::Evaluation> {
        let threads = tch::get_num_threads();
        let local = self.replicas.group().map_or(1, |g| g.env().local_world);
        if local > 1 {
            tch::set_num_threads(threads * local as i32);
        }
        let result = evaluate(
            net,
            &self.loss,
            &self.val,
            self.config.input,
            self.config.batch.max(8),
            &self.decode_options(),
            cache,
            observer,
        );
        tch::set_num_threads(threads);
        result
    }

    fn run(mut self, observer: &mut dyn Observer) -> Result<TrainSummary> {
        let started = Instant::now();
        let seconds_before = self.rows.last().map_or(0.0, |r| r.seconds);
        let loader = self.loader()?;
        let cache = self.open_cache(&loader, observer)?;
        let loader = loader.with_cache(Arc::clone(&cache));
        let batches = loader.batches_per_epoch();
        let accumulate = (self.config.nominal_batch / self.config.batch).max(1);
        let world = self.replicas.world();
        self.replicas.broadcast_variables(&self.net)?;
        let mut params: Vec<(String, Tensor)> =
            self.net.var_store().variables().into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let mut stop = false;
        for epoch in self.state.epochs_done..self.config.epochs {
            if stop {
                break;
            }
            let body_frozen = self.config.schedule.body_frozen(epoch);
            let heads = self.net.config().head_conv_layers();
            let below = self.freeze_below;
            self.net.freeze(|i| i < below || (body_frozen && !heads.contains(&i)));
            observer.epoch_start(epoch + 1, self.config.epochs, batches);
            let epoch_start = Instant::now();
            let reduce_before = self.replicas.reduce_seconds();
            let steps_before = self.state.optimizer_steps_taken;
            let mut sums = LossTerms::default();
            let mut images = 0usize;
            let mut lr = 0.0;
            Optimizer::zero_grad(&mut params);
            for (b, batch) in loader.prefetch(epoch as u64, 0, 2).enumerate() {
                let batch = batch?;
                let n = batch.len();
                let (h, w) = (batch.input.height, batch.input.width);
                let xs = Tensor::f_from_slice(&batch.images)
                    .and_then(|t| t.f_view([n as i64, 3, i64::from(h), i64::from(w)]))
                    .and_then(|t| t.f_to_device(self.net.device()))
                    .torch(|| "uploading a batch".into())?;
                let outputs = self.net.forward_t(&xs, true)?;
                let computed = self
                    .loss
                    .compute(&outputs, &batch.boxes, (h as usize, w as usize))
                    .map_err(|e| {
                        let images = batch
                            .indices
                            .iter()
                            .map(|&i| self.train.samples[i].image_path.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ");
                        match e {
                            TrainError::Core { source, .. } => TrainError::NonFiniteLoss {
                                epoch: epoch + 1,
                                batch: b,
                                images,
                                source: Some(source),
                            },
                            other => other,
                        }
                    });
                // Every rank learns of a non-finite loss on any of them before any backward.
                let out = match computed {
                    Ok(out) => Ok(out),
                    Err(e @ TrainError::NonFiniteLoss { .. }) => Err(e),
                    Err(other) => return Err(other),
                };
                let terms = out.as_ref().map_or(LossTerms::default(), |o| o.parts.terms());
                self.replicas.set_progress((epoch * batches + b + 1) as u64);
                // Ctrl-C on any rank stops every rank before this batch's backward pass.
                let totals = self.replicas.step_totals(out.is_ok(), terms, n)?;
                if totals.interrupted > 0 {
                    return Err(TrainError::Interrupted {
                        run_dir: self.run_dir.clone(),
                        epochs_done: self.state.epochs_done,
                    });
                }
                let out = out?;
                if totals.non_finite > 0 {
                    return Err(TrainError::PeerNonFiniteLoss {
                        epoch: epoch + 1,
                        batch: b,
                        ranks: totals.non_finite,
                    });
                }
                // This rank's share of the global batch's loss (see replicas.rs).
                let share = (n * world) as f64 / totals.images as f64;
                let scaled = out
                    .loss
                    .f_mul_scalar(share / accumulate as f64)
                    .torch(|| "scaling the loss".into())?;
                scaled.f_backward().map_err(|e| self.replicas.torch_error("backward pass", e))?;
                sums += totals.terms / totals.images as f64;
                images += totals.images;
                if (b + 1) % accumulate == 0 || b + 1 == batches {
                    let at = Position {
                        epoch,
                        step: self.state.optimizer_steps_taken,
                        epoch_fraction: b as f64 / batches as f64,
                        epochs: self.config.epochs,
                        total_steps: self.config.epochs * batches.div_ceil(accumulate),
                    };
                    lr = self.config.schedule.lr(at, &self.state.schedule);
                    self.replicas.mean_gradients(&params)?;
                    self.optimizer.step(&params, lr)?;
                    Optimizer::zero_grad(&mut params);
                    self.state.optimizer_steps_taken += 1;
                }
                let done = (b + 1) as f64;
                observer.batch_end(&BatchProgress {
                    epoch: epoch + 1,
                    epochs: self.config.epochs,
                    batch: b + 1,
                    batches,
                    parts: sums / done,
                    images_per_sec: images as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9),
                    lr,
                    input: h,
                });
            }
            let seconds = epoch_start.elapsed().as_secs_f64().max(1e-9);
            let mut speed = format!("epoch {}: {:.1} images/s", epoch + 1, images as f64 / seconds);
            if world > 1 {
                let steps = (self.state.optimizer_steps_taken - steps_before).max(1);
                let reduce = self.replicas.reduce_seconds() - reduce_before;
                let _ = write!(
                    speed,
                    " over {world} ranks; gradient all-reduce {:.1} ms per step ({:.1}% of the \
                     epoch's training time)",
                    reduce * 1e3 / steps as f64,
                    100.0 * reduce / seconds
                );
            }
            observer.message(&speed);
            let train_terms = sums / batches.max(1) as f64;
            let replicas = self.replicas.clone();
            let outcome = replicas.share(&format!("epoch-{}", epoch + 1), || {
                let outcome = self.end_epoch(
                    epoch,
                    train_terms,
                    lr,
                    seconds_before,
                    started,
                    &cache,
                    observer,
                )?;
                Ok(serde_json::to_vec(&outcome).expect("plain data serialises"))
            })?;
            let outcome: EpochOutcome = serde_json::from_slice(&outcome)
                .map_err(|e| TrainError::Config(format!("rank 0's epoch outcome: {e}")))?;
            if !self.replicas.is_leader() {
                let results = self.run_dir.join("results.csv");
                self.state = outcome.state;
                self.rows.push(EpochRow::parse(&outcome.row, &results, epoch + 2)?);
            }
            let row = self.rows.last().expect("this epoch's row").clone();
            stop = outcome.stop;
            observer.epoch_end(&row);
        }
        let best_checkpoint = self.run_dir.join("weights/best.safetensors");
        let best = if self.replicas.is_leader() {
            let (best_net, _) = Darknet::from_checkpoint(&best_checkpoint, self.net.device())?;
            let weights = best_net.export_darknet_weights(WeightsHeader {
                seen: (self.state.optimizer_steps_taken * self.config.nominal_batch) as u64,
                ..WeightsHeader::default()
            })?;
            weights.write(self.run_dir.join("weights/best.weights"), Existing::Replace)?;
            Some(self.validate(&best_net, &cache, observer)?.map)
        } else {
            None
        };
        Ok(TrainSummary {
            run_dir: self.run_dir.clone(),
            rows: self.rows,
            best,
            class_names: self.train.class_names.clone(),
            best_checkpoint,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    /// Rank 0's end of an epoch: validation, the row, the schedule's verdict, the files.
    fn end_epoch(
        &mut self,
        epoch: usize,
        train: LossTerms,
        lr: f64,
        seconds_before: f64,
        started: Instant,
        cache: &Arc<ImageCache>,
        observer: &mut dyn Observer,
    ) -> Result<EpochOutcome> {
        let eval = self.validate(&self.net, cache, observer)?;
        let (precision, recall) = eval.map.mean_precision_recall();
        let row = EpochRow {
            epoch: epoch + 1,
            train,
            val: eval.loss,
            precision,
            recall,
            map50: eval.map.map50.unwrap_or(0.0),
            map50_95: eval.map.map50_95.unwrap_or(0.0),
            lr,
            seconds: seconds_before + started.elapsed().as_secs_f64(),
        };
        self.rows.push(row.clone());
        let stop =
            self.config.schedule.end_epoch(epoch, eval.loss.total(), &mut self.state.schedule);
        self.state.epochs_done = epoch + 1;
        let fitness = row.map50_95;
        if fitness > self.state.best_fitness {
            self.state.best_fitness = fitness;
            self.save_checkpoint(&self.run_dir.join("weights/best.safetensors"))?;
        }
        // The table first: a run killed before the checkpoint below resumes at the previous
        // epoch and drops this row, so no row is ever missing or doubled.
        write_results(&self.run_dir.join("results.csv"), &self.rows)?;
        crate::plots::write_results_png(&self.run_dir.join("results.png"), &self.rows)?;
        self.save_last()?;
        Ok(EpochOutcome { state: self.state.clone(), row: row.to_csv(), stop })
    }

    /// The run's image cache, shared by training and validation; for RAM, the memory it will
    /// take is printed first and refused above half of what is available.
    fn open_cache(&self, loader: &Loader, observer: &mut dyn Observer) -> Result<Arc<ImageCache>> {
        let val_stage = Stage::Letterboxed(InputSize::square(self.config.input));
        let what = |stage: Stage| match stage {
            Stage::Decoded => "decoded: augmentation rescales every epoch".to_owned(),
            Stage::Letterboxed(i) => format!("letterboxed to {}x{}", i.width, i.height),
        };
        let (train_stage, where_) = match &self.config.cache {
            CacheConfig::None => return Ok(ImageCache::none()),
            CacheConfig::Ram => (loader.cache_stage(), "in memory".to_owned()),
            CacheConfig::Disk { dir } => (loader.cache_stage(), format!("in {}", dir.display())),
        };
        let train = ImageCache::bytes_needed(&self.train, train_stage)?;
        let val = ImageCache::bytes_needed(&self.val, val_stage)?;
        let mb = |b: u64| b as f64 / 1e6;
        observer.message(&format!(
            "cache: {:.0} MB {where_} ({} training images {}; {} validation images {})",
            mb(train + val),
            self.train.samples.len(),
            what(train_stage),
            self.val.samples.len(),
            what(val_stage),
        ));
        match &self.config.cache {
            CacheConfig::None => unreachable!("returned above"),
            CacheConfig::Disk { dir } => Ok(ImageCache::disk(dir)?),
            CacheConfig::Ram => {
                let available = yolo3_model::memory::available_bytes().unwrap_or(u64::MAX);
                if train + val > available / 2 {
                    return Err(TrainError::Config(format!(
                        "--cache ram needs {:.0} MB, more than half of the {:.0} MB available; \
                         use --cache disk{}",
                        mb(train + val),
                        mb(available),
                        if train_stage == Stage::Decoded {
                            " (or train without augmentation, which caches letterboxed images)"
                        } else {
                            ""
                        }
                    )));
                }
                Ok(ImageCache::ram())
            }
        }
    }

    fn info(&self) -> CheckpointInfo {
        CheckpointInfo {
            class_names: self.train.class_names.clone(),
            extra: BTreeMap::from([
                ("epoch".to_owned(), self.state.epochs_done.to_string()),
                ("input".to_owned(), self.config.input.to_string()),
            ]),
        }
    }

    fn save_checkpoint(&self, path: &Path) -> Result<()> {
        Ok(self.net.save_checkpoint(path, &self.info(), Existing::Replace)?)
    }

    fn save_last(&mut self) -> Result<()> {
        let (tensors, steps) = self.optimizer.state()?;
        self.state.optimizer_steps = steps;
        let state_json = serde_json::to_string(&self.state).expect("plain data serialises");
        let meta = HashMap::from([("run_state".to_owned(), state_json)]);
        let state_path = state_file(&self.run_dir, self.state.epochs_done);
        crate::tensors::save(&state_path, &tensors, meta)?;
        self.save_checkpoint(&self.run_dir.join("weights/last.safetensors"))?;
        // Only now is the previous epoch's state unreachable.
        let weights = self.run_dir.join("weights");
        for entry in std::fs::read_dir(&weights).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("last.state-") && entry.path() != state_path {
                std::fs::remove_file(entry.path()).map_err(|source| TrainError::Io {
                    action: "removing",
                    path: entry.path(),
                    source,
                })?;
            }
        }
        Ok(())
    }
}

impl RunState {
    fn fresh() -> Self {
        Self {
            epochs_done: 0,
            optimizer_steps_taken: 0,
            schedule: ScheduleState::default(),
            // Below any mAP (JSON, which carries the state to other ranks, has no infinity).
            best_fitness: -1.0,
            optimizer_steps: BTreeMap::new(),
        }
    }
}

/// The optimizer and run state in the bytes of a state file (`path` names them in errors).
fn restore_state(
    config: &TrainConfig,
    bytes: &[u8],
    path: &Path,
    device: tch::Device,
) -> Result<(Optimizer, RunState)> {
    let (tensors, meta) = crate::tensors::parse(bytes, path)?;
    let state: RunState = meta
        .get("run_state")
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| TrainError::RunFile {
            path: path.to_owned(),
            message: "no valid `run_state` metadata".into(),
        })?;
    let optimizer = Optimizer::restore(config.optimizer, &tensors, &state.optimizer_steps, device)?;
    Ok((optimizer, state))
}

/// The optimizer and schedule state saved with the checkpoint of `epoch`.
fn state_file(run_dir: &Path, epoch: usize) -> PathBuf {
    run_dir.join(format!("weights/last.state-{epoch}.safetensors"))
}

/// The cfg text to train: the preset or a file, adapted to the dataset's classes and anchors.
fn model_cfg_text(config: &TrainConfig, train: &Dataset) -> Result<String> {
    let classes = train.class_names.len();
    let base = match &config.model {
        ModelSource::TinyPreset { width_divisor } => {
            let scale = config.input as f32 / 416.0;
            let default: Vec<[f32; 2]> = yolo3_core::anchors::TINY_ANCHORS
                .iter()
                .map(|[w, h]| [w * scale, h * scale])
                .collect();
            tiny_cfg(*width_divisor, config.input, classes, &default)
        }
        ModelSource::Cfg { path } => yolo3_core::fsio::read_text(path)
            .map_err(|source| TrainError::Io { action: "reading", path: path.clone(), source })?,
    };
    let cfg_name = match &config.model {
        ModelSource::Cfg { path } => path.display().to_string(),
        ModelSource::TinyPreset { .. } => "the built-in tiny-YOLOv3 cfg".to_owned(),
    };
    let base = Config::parse(&base, &cfg_name)?;
    let n_anchors = {
        base.layers()
            .iter()
            .find_map(|l| {
                if let yolo3_model::Layer::Yolo(y) = l {
                    Some(y.anchors.len())
                } else {
                    None
                }
            })
            .unwrap_or(9)
    };
    let anchors: Option<Vec<[f32; 2]>> = match &config.anchors {
        AnchorSource::Cfg => None,
        AnchorSource::File { path } => {
            let sizes = Anchors::read(path, TinyMask::Darknet)
                .map_err(|source| TrainError::Core { context: "anchors file".into(), source })?
                .sizes()
                .to_vec();
            if sizes.len() != n_anchors {
                return Err(TrainError::Config(format!(
                    "{} holds {} anchors; the [yolo] layers of {cfg_name} use {n_anchors}",
                    path.display(),
                    sizes.len()
                )));
            }
            Some(sizes)
        }
        AnchorSource::Kmeans => Some(kmeans_anchors(train, n_anchors, config.input, config.seed)?),
    };
    Ok(base.adapted(classes, anchors.as_deref())?.text().to_owned())
}

/// k-means anchors of the training boxes, letterboxed to a square `input`.
pub fn kmeans_anchors(train: &Dataset, k: usize, input: u32, seed: u64) -> Result<Vec<[f32; 2]>> {
    let (sizes, _) = train.letterboxed_box_sizes(input);
    let clusters = cluster_anchors(&sizes, k, &KmeansOptions { seed, ..KmeansOptions::default() })
        .map_err(TrainError::Anchors)?;
    Ok(clusters.anchors.iter().map(|[w, h]| [(*w as f32).max(1.0), (*h as f32).max(1.0)]).collect())
}

/// Sets the head biases of a network trained from scratch so that its first predictions match
/// the data's priors: objectness `ln(3 / slots)` (about three objects per image spread over the
/// layer's `H * W * A` slots) and class `ln(1 / C)`. With zero biases every slot starts at
/// objectness 0.5 and the first epochs are spent pushing hundreds of background slots down.
fn init_head_biases(net: &Darknet, input: u32) -> Result<()> {
    let vars = net.var_store().variables();
    for head in net.heads() {
        let name = format!("layers.{}.conv.bias", head.source_layer);
        let Some(bias) = vars.get(&name) else { continue };
        let (gh, gw) = head.grid(i64::from(input), i64::from(input));
        let slots = (gh * gw) as f64 * head.anchors.len() as f64;
        let fields = 5 + head.classes;
        let mut values = vec![0.0f32; bias.numel()];
        for a in 0..head.anchors.len() as i64 {
            values[(a * fields + 4) as usize] = (3.0 / slots).ln() as f32;
            for c in 0..head.classes {
                values[(a * fields + 5 + c) as usize] = (1.0 / head.classes as f64).ln() as f32;
            }
        }
        let init = Tensor::f_from_slice(&values)
            .and_then(|t| t.f_to_device(bias.device()))
            .torch(|| name.clone())?;
        tch::no_grad(|| bias.shallow_clone().f_copy_(&init)).torch(|| name.clone())?;
    }
    Ok(())
}

/// Loads darknet `.weights` (full or partial), keras-yolo3 `.h5` weights or a checkpoint's
/// tensors as the starting point. Loads initial weights by shape: every layer the file has in
/// the network's shape, so that official 80-class weights start a run on a dataset with other
/// classes (the heads keep the data-prior initialisation). Prints what was transferred; `-v` lists the re-initialised heads.
fn load_initial_weights(net: &mut Darknet, path: &Path, observer: &mut dyn Observer) -> Result<()> {
    let extension = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let transfer = if path.extension().is_some_and(|e| e == "safetensors") {
        net.transfer_checkpoint(path)?.0
    } else if matches!(extension.as_deref(), Some("h5" | "hdf5")) {
        // keras-yolo3 weights: darknet's content once read, so the same transfer by shape.
        net.transfer_keras(&yolo3_model::KerasWeights::read(path)?)?
    } else {
        let (weights, layouts) = DarknetWeights::read_transfer(path, net.config())?;
        if weights.convs.is_empty() {
            return Err(TrainError::Config(format!(
                "{} holds no convolution weights (only a header); train without --weights to \
                 start from scratch",
                path.display()
            )));
        }
        net.transfer_darknet_weights(&weights, &layouts)?
    };
    for h in &transfer.reinitialised {
        tracing::debug!(
            "layer {}: {} filters in {}, {} in the network; re-initialised",
            h.layer,
            h.file_filters,
            path.display(),
            h.filters
        );
    }
    observer.message(&format!("weights: {}", transfer.describe(&path.display().to_string())));
    Ok(())
}
