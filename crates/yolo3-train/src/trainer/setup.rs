//! A session from its parts. Rank 0 (or the only process) reads the data and the run folder
//! (new, or resumed from its last checkpoint) and builds the network; the other ranks build
//! the same from rank 0's plan; every rank then checks what it holds and starts its process
//! group.

use std::path::PathBuf;
use std::sync::Arc;

use tch::Tensor;
use yolo3_core::{IgnoreScope, LossOptions};
use yolo3_io::fsio::Existing;
use yolo3_io::fsio::FileError;
use yolo3_model::{parse_device, Config, Darknet, YoloLoss};

use super::advice::{box_size_advice, BoxSides};
use super::init::{init_head_biases, load_initial_weights, model_cfg_text};
use super::protocol::{decode, encode, Plan};
use super::run_state::{restore_state, RunFiles, RunState};
use super::session::Session;
use crate::config::{DataSource, TrainConfig};
use crate::data::{load_splits, Splits};
use crate::error::{Result, TrainError};
use crate::observer::Observer;
use crate::optim::Optimizer;
use crate::replicas::Replicas;
use crate::results::{read_results, EpochRow};

/// The device of this rank: `cuda` means `cuda:LOCAL_RANK` in a distributed run.
fn rank_device(config: &TrainConfig, replicas: &Replicas) -> Result<tch::Device> {
    match (config.device.as_str(), replicas.group()) {
        ("cuda", Some(group)) => Ok(parse_device(&format!("cuda:{}", group.env().local_rank))?),
        (name, _) => Ok(parse_device(name)?),
    }
}

/// What a session is assembled from.
struct Parts {
    config: TrainConfig,
    run_dir: PathBuf,
    splits: Splits,
    net: Darknet,
    optimizer: Option<Optimizer>,
    state: RunState,
    rows: Vec<EpochRow>,
    scratch: Option<tempfile::TempDir>,
}

impl Session {
    /// Rank 0 (or the only process): reads the data and the run folder, builds the network,
    /// and publishes the plan.
    pub(super) fn open(
        config: TrainConfig,
        run_dir: PathBuf,
        resuming: bool,
        replicas: &Replicas,
        observer: &mut dyn Observer,
    ) -> Result<Self> {
        let device = rank_device(&config, replicas)?;
        tch::manual_seed(config.seed as i64);
        let splits = load_splits(&config.data, &run_dir, config.seed)?;
        let files = RunFiles::new(&run_dir);
        files.create()?;
        let last = files.last();
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
        let mut optimizer_bytes = None;
        let (net, optimizer, state, rows) = if resuming {
            let (net, info) = Darknet::from_checkpoint(&last, device)?;
            let epoch: usize =
                info.extra.get("epoch").and_then(|e| e.parse().ok()).ok_or_else(|| {
                    TrainError::RunFile {
                        path: last.clone(),
                        message: "no `epoch` in the checkpoint's metadata".into(),
                    }
                })?;
            let (optimizer, state, bytes) = files.read_state(epoch, config.optimizer, device)?;
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
            let cfg_path = run_dir.join("model.cfg");
            let text = model_cfg_text(&config, &splits.train)?;
            yolo3_io::fsio::write_atomic(&cfg_path, text.as_bytes(), Existing::Replace)
                .map_err(FileError::on("writing", &cfg_path))?;
            let cfg = Config::parse(&text, &cfg_path.display().to_string())?;
            let mut net = Darknet::new(cfg, device)?;
            // Data priors first: heads a weights file cannot fill keep them.
            init_head_biases(&net, config.input)?;
            if let Some(weights) = &config.weights {
                load_initial_weights(&mut net, weights, observer)?;
            }
            (net, None, RunState::fresh(), Vec::new())
        };
        replicas.share("plan", || {
            Ok(encode(&Plan {
                run_dir: run_dir.clone(),
                config: config.to_toml().map_err(|e| {
                    TrainError::format(run_dir.join("args.toml"), "encoding the settings", e)
                })?,
                model_cfg: net.config().text().to_owned(),
                resumed: resuming,
                state: state.clone(),
                rows: rows.iter().map(EpochRow::to_csv).collect(),
            }))
        })?;
        if let Some(bytes) = optimizer_bytes {
            replicas.share("optimizer", || Ok(bytes))?;
        }
        let parts = Parts { config, run_dir, splits, net, optimizer, state, rows, scratch: None };
        Self::assemble(parts, replicas, observer)
    }

    /// The other ranks: everything from rank 0's plan; the data read (or generated into a
    /// private folder) by this process, the run folder never touched.
    pub(super) fn follow(replicas: &Replicas, observer: &mut dyn Observer) -> Result<Self> {
        let plan = replicas.share("plan", || unreachable!("rank 0 publishes the plan"))?;
        let plan: Plan = decode(&plan, "plan")?;
        let config = TrainConfig::from_toml(&plan.config)
            .map_err(|e| TrainError::Config(format!("rank 0's settings are not valid: {e}")))?;
        let device = rank_device(&config, replicas)?;
        tch::manual_seed(config.seed as i64);
        // Generated data goes to a folder of this process' own; files are read where they are.
        let scratch = match config.data {
            DataSource::Synthetic { .. } => Some(tempfile::tempdir().map_err(FileError::on(
                "creating a folder for the generated data in",
                &std::env::temp_dir(),
            ))?),
            DataSource::Files { .. } => None,
        };
        let data_root = scratch.as_ref().map_or(plan.run_dir.as_path(), tempfile::TempDir::path);
        let splits = load_splits(&config.data, data_root, config.seed)?;
        let cfg = Config::parse(&plan.model_cfg, "rank 0's model cfg")?;
        let net = Darknet::new(cfg, device)?;
        let optimizer = if plan.resumed {
            let bytes = replicas.share("optimizer", || unreachable!("rank 0 publishes it"))?;
            let path = std::path::Path::new("rank 0's optimizer state");
            Some(restore_state(config.optimizer, &bytes, path, device)?.0)
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
        let parts = Parts {
            config,
            run_dir: plan.run_dir,
            splits,
            net,
            optimizer,
            state: plan.state,
            rows,
            scratch,
        };
        Self::assemble(parts, replicas, observer)
    }

    /// What every rank does with its parts: checks, the loss, the process group's backend.
    fn assemble(parts: Parts, replicas: &Replicas, observer: &mut dyn Observer) -> Result<Self> {
        let Parts { config, run_dir, splits, mut net, optimizer, state, rows, scratch } = parts;
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
        let stride = net.heads().iter().map(|h| h.stride).min();
        if let (true, Some(stride), Some(sides)) = (
            replicas.is_leader(),
            stride,
            BoxSides::of(&splits.train.input_box_sizes(config.input, config.tile).0),
        ) {
            for line in box_size_advice(&sides, config.input, stride as u32) {
                observer.message(&line);
            }
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
        net.set_bn_momentum(config.bn_momentum);
        observer.message(&format!(
            "model: {} ({} parameters) on {:?}, input {}",
            net.config().name(),
            net.var_store().trainable_variables().iter().map(Tensor::numel).sum::<usize>(),
            net.device(),
            config.input
        ));
        Ok(Self {
            optimizer: optimizer.unwrap_or_else(|| Optimizer::new(config.optimizer)),
            files: RunFiles::new(&run_dir),
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
}
