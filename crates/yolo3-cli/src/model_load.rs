//! The model flags of `detect` and `eval` (and the file readers `convert` shares), turned
//! into a [`yolo3_model::ModelFiles`] for [`Detector::load`], which documents what each kind
//! of model needs.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use yolo3_model::{Config, Detector, KerasNetwork, ModelFiles, WeightsFormat};

/// Where the model comes from (flags shared by `detect` and `eval`).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ModelArgs {
    /// Model: a .safetensors checkpoint (carries its cfg and class names), darknet .weights
    /// (needs --cfg) or keras-yolo3 .h5 weights (needs --anchors or --cfg).
    #[arg(long, short = 'w')]
    pub weights: Option<PathBuf>,
    /// Darknet cfg, for .weights files (and .h5 files of a network keras-yolo3 does not
    /// build). Given alone (no --weights): random weights, for benchmarking only.
    #[arg(long)]
    pub cfg: Option<PathBuf>,
    /// keras-yolo3 anchors.txt, for .h5 weights without --cfg.
    #[arg(long, conflicts_with = "cfg")]
    pub anchors: Option<PathBuf>,
    /// Class-name file (one per line) for darknet .weights or keras .h5 (default: 0, 1, 2, ...).
    #[arg(long)]
    pub classes: Option<PathBuf>,
}

/// Loads the detector described by `args` onto `device`.
pub(crate) fn load_detector(args: &ModelArgs, device: tch::Device) -> anyhow::Result<Detector> {
    let format = args.weights.as_deref().map(WeightsFormat::of);
    if args.anchors.is_some() && format != Some(WeightsFormat::Keras) {
        bail!("--anchors is for keras .h5 weights; other models carry their anchors in their cfg");
    }
    let files = match (&args.weights, &args.cfg) {
        (Some(w), cfg) if format == Some(WeightsFormat::Checkpoint) => {
            if cfg.is_some() {
                tracing::warn!(
                    "--cfg is ignored: the checkpoint {} carries its own cfg",
                    w.display()
                );
            }
            ModelFiles::Checkpoint(w.clone())
        }
        (Some(w), cfg) if format == Some(WeightsFormat::Keras) => ModelFiles::Keras {
            weights: w.clone(),
            network: keras_network(w, cfg.as_deref(), args.anchors.as_deref())?,
        },
        (Some(w), Some(cfg)) => ModelFiles::Darknet { cfg: cfg.clone(), weights: w.clone() },
        (Some(w), None) => bail!(
            "{} is not a .safetensors checkpoint or .h5 keras weights, so --cfg is needed to read \
             it as darknet weights",
            w.display()
        ),
        (None, Some(cfg)) => ModelFiles::Untrained(cfg.clone()),
        (None, None) => bail!("give --weights (a checkpoint, or darknet .weights with --cfg)"),
    };
    Detector::load(&files, args.classes.as_deref(), device)
        .with_context(|| format!("loading the model {}", files.path().display()))
}

/// The network of keras weights: the anchors (keras-yolo3's own network) or a cfg.
pub(crate) fn keras_network(
    path: &Path,
    cfg: Option<&Path>,
    anchors: Option<&Path>,
) -> anyhow::Result<KerasNetwork> {
    match (cfg, anchors) {
        (Some(cfg), None) => Ok(KerasNetwork::Cfg(cfg.to_path_buf())),
        (None, Some(anchors)) => Ok(KerasNetwork::Anchors(anchors.to_path_buf())),
        (Some(_), Some(_)) => bail!("give --cfg or --anchors, not both: a cfg has its anchors"),
        (None, None) => bail!(
            "{} is read as keras weights, which needs --anchors (keras-yolo3's anchors.txt) or \
             the network's darknet --cfg",
            path.display()
        ),
    }
}

/// Reads and parses a darknet cfg, naming the file on failure.
pub(crate) fn read_cfg(path: &Path) -> anyhow::Result<Config> {
    Config::from_file(path).with_context(|| format!("reading cfg {}", path.display()))
}

/// Reads a class-name file, naming the file on failure.
pub(crate) fn read_names(path: &Path) -> anyhow::Result<Vec<String>> {
    yolo3_data::read_class_names(path)
        .with_context(|| format!("reading class names {}", path.display()))
}
