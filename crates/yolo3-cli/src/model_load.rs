//! Loading a detector for `detect` and `eval` from whatever the user has.
//!
//! `detect` and `eval` accept three kinds of model, so that keras-yolo3 and darknet users can
//! start from the files they already have:
//! * `--weights ckpt.safetensors`: a yolo3 checkpoint; it carries its cfg, its class names and
//!   (when `yolo3 train` wrote it) the training input size in its `extra.input` metadata;
//! * `--weights model.weights --cfg model.cfg [--classes names]`: darknet weights; the class
//!   names default to `0, 1, ...` (the cfg only knows how many there are);
//! * `--weights yolo.h5 --anchors anchors.txt [--classes classes.txt]`: keras-yolo3 weights,
//!   with the network keras-yolo3 builds for them (or `--cfg model.cfg` instead of the anchors);
//! * `--cfg model.cfg` alone: random initial weights. Only useful to measure speed (the
//!   benchmark uses it for full `YOLOv3`, whose weights file is 248 MB); a warning says so.
//!
//! The default network input is the checkpoint's training input, else the cfg's `[net]`
//! width (darknet's own choice at inference).

use std::path::{Path, PathBuf};

use anyhow::{bail, Context as _};
use yolo3_core::{Anchors, TinyMask};
use yolo3_model::{Config, Darknet, DarknetWeights, KerasWeights};

/// A network ready for inference, with what decoding it needs.
pub struct LoadedModel {
    /// The network (inference mode is chosen per call).
    pub net: Darknet,
    /// Class names, index = class id.
    pub class_names: Vec<String>,
    /// Whether the names are real (from the checkpoint or --classes) rather than `0, 1, ...`.
    pub names_known: bool,
    /// Anchors and masks in head order (coarsest first).
    pub anchors: Anchors,
    /// The input side the model was trained at (checkpoint) or the cfg's width.
    pub default_input: u32,
    /// The model's file, for messages.
    pub name: String,
}

/// Where the model comes from (flags shared by `detect` and `eval`).
#[derive(Debug, Clone, clap::Args)]
pub struct ModelArgs {
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

/// Whether `path` names a safetensors checkpoint (by extension).
pub fn is_checkpoint(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("safetensors"))
}

/// Whether `path` names keras weights (by extension: `.h5`, `.hdf5`).
pub fn is_keras(path: &Path) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case("h5") || e.eq_ignore_ascii_case("hdf5"))
}

/// The network of keras-yolo3 weights: `cfg` when given, else the one keras-yolo3 builds for
/// the file with the anchors of `anchors` (an `anchors.txt`), with every weight loaded.
pub fn load_keras(
    path: &Path,
    cfg: Option<&Path>,
    anchors: Option<&Path>,
    device: tch::Device,
) -> anyhow::Result<Darknet> {
    let keras = KerasWeights::read(path)
        .with_context(|| format!("reading keras weights {}", path.display()))?;
    let cfg = match (cfg, anchors) {
        (Some(cfg), None) => read_cfg(cfg)?,
        (None, Some(anchors)) => {
            let sizes = Anchors::read(anchors, TinyMask::Keras)
                .with_context(|| format!("reading anchors {}", anchors.display()))?;
            keras.config(sizes.sizes()).context("choosing the network")?
        }
        (Some(_), Some(_)) => bail!("give --cfg or --anchors, not both: a cfg has its anchors"),
        (None, None) => bail!(
            "{} is read as keras weights, which needs --anchors (keras-yolo3's anchors.txt) or \
             the network's darknet --cfg",
            path.display()
        ),
    };
    let mut net = Darknet::new(cfg, device).context("building the network")?;
    net.load_keras(&keras)
        .with_context(|| format!("loading {} into the network", path.display()))?;
    Ok(net)
}

/// Loads the model described by `args` onto `device`.
pub fn load_model(args: &ModelArgs, device: tch::Device) -> anyhow::Result<LoadedModel> {
    if args.anchors.is_some() && !args.weights.as_deref().is_some_and(is_keras) {
        bail!("--anchors is for keras .h5 weights; other models carry their anchors in their cfg");
    }
    let (net, names, trained_input) = match (&args.weights, &args.cfg) {
        (Some(w), _) if is_checkpoint(w) => {
            if args.cfg.is_some() {
                tracing::warn!(
                    "--cfg is ignored: the checkpoint {} carries its own cfg",
                    w.display()
                );
            }
            let (net, info) = Darknet::from_checkpoint(w, device)
                .with_context(|| format!("loading checkpoint {}", w.display()))?;
            let input = info.extra.get("input").and_then(|s| s.parse::<u32>().ok());
            let names = match &args.classes {
                Some(c) => Some(read_names(c)?),
                None if info.class_names.is_empty() => None,
                None => Some(info.class_names),
            };
            (net, names, input)
        }
        (Some(w), cfg) if is_keras(w) => {
            let net = load_keras(w, cfg.as_deref(), args.anchors.as_deref(), device)?;
            let names = args.classes.as_deref().map(read_names).transpose()?;
            (net, names, None)
        }
        (Some(w), Some(cfg_path)) => {
            let cfg = read_cfg(cfg_path)?;
            let weights = DarknetWeights::read(w, &cfg)
                .with_context(|| format!("reading darknet weights {}", w.display()))?;
            let mut net = Darknet::new(cfg, device).context("building the network")?;
            let loaded = net
                .load_darknet_weights(&weights)
                .with_context(|| format!("loading {} into the network", w.display()))?;
            let total = net.config().conv_layers().len();
            if loaded < total {
                bail!(
                    "{} holds {loaded} of the {total} convolutions of {}; detection and \
                     evaluation need them all (a partial file such as darknet53.conv.74 only \
                     initialises training)",
                    w.display(),
                    cfg_path.display()
                );
            }
            let names = args.classes.as_deref().map(read_names).transpose()?;
            (net, names, None)
        }
        (Some(w), None) => bail!(
            "{} is not a .safetensors checkpoint or .h5 keras weights, so --cfg is needed to read \
             it as darknet weights",
            w.display()
        ),
        (None, Some(cfg_path)) => {
            tracing::warn!(
                "no --weights: the network has random weights (useful for benchmarks only)"
            );
            let net = Darknet::new(read_cfg(cfg_path)?, device).context("building the network")?;
            let names = args.classes.as_deref().map(read_names).transpose()?;
            (net, names, None)
        }
        (None, None) => bail!("give --weights (a checkpoint, or darknet .weights with --cfg)"),
    };
    let anchors = yolo3_train::anchors_of(net.config())
        .with_context(|| format!("reading the anchors of {}", net.config().name()))?;
    let num_classes = net.heads().first().map_or(0, |h| h.classes.max(0) as usize);
    let names_known = names.is_some();
    let class_names = match names {
        Some(n) if n.len() == num_classes => n,
        Some(n) => bail!("{} class names, but the network has {num_classes} classes", n.len()),
        None => (0..num_classes).map(|c| c.to_string()).collect(),
    };
    let cfg_width = u32::try_from(net.config().net().width).unwrap_or(416);
    let name = args.weights.as_ref().or(args.cfg.as_ref()).map(|p| p.display().to_string());
    Ok(LoadedModel {
        net,
        class_names,
        names_known,
        anchors,
        default_input: trained_input.unwrap_or(cfg_width),
        name: name.unwrap_or_default(),
    })
}

/// Reads and parses a darknet cfg, naming the file on failure.
pub fn read_cfg(path: &Path) -> anyhow::Result<Config> {
    Config::from_file(path).with_context(|| format!("reading cfg {}", path.display()))
}

/// Reads a class-name file, naming the file on failure.
pub fn read_names(path: &Path) -> anyhow::Result<Vec<String>> {
    yolo3_data::read_class_names(path)
        .with_context(|| format!("reading class names {}", path.display()))
}

impl LoadedModel {
    /// The network input side: `--input` when given (checked when parsed), else the model's
    /// default, which must be a multiple of 32 too; batches of `batch` images at that side
    /// must fit in the available memory.
    pub fn input(&self, given: Option<u32>, batch: usize) -> anyhow::Result<u32> {
        let side = match given {
            Some(side) => side,
            None => self.checked_default_input()?,
        };
        yolo3_model::memory::check_fits(
            self.net.config(),
            side,
            batch,
            yolo3_model::memory::Pass::Inference,
        )?;
        Ok(side)
    }

    fn checked_default_input(&self) -> anyhow::Result<u32> {
        let side = self.default_input;
        yolo3_train::config::check_input_side(side).map_err(|why| {
            anyhow::anyhow!(
                "{}: the model's input side {side} (its checkpoint's training input, else its \
                 cfg's width) is not usable: {why}; give --input",
                self.name
            )
        })
    }
}
