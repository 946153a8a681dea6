//! `convert weights` (darknet `.weights` <-> checkpoint; the darknet header rides in the
//! checkpoint's metadata) and `convert partial` (darknet's `partial`: the first layers only).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use yolo3_model::{CheckpointInfo, Darknet, DarknetWeights, WeightsFormat, WeightsHeader};

use super::say;
use crate::args::Global;
use crate::guard::{check_extension, check_output};
use crate::model_load::{read_cfg, read_names};

/// `yolo3 convert weights`.
#[derive(Debug, clap::Args)]
pub(super) struct WeightsArgs {
    /// Input: darknet .weights (needs --cfg) or a .safetensors checkpoint.
    #[arg(long, short = 'w')]
    weights: PathBuf,
    /// Darknet cfg of the .weights file.
    #[arg(long)]
    cfg: Option<PathBuf>,
    /// Class names stored in the checkpoint (default: 0, 1, 2, ...).
    #[arg(long)]
    classes: Option<PathBuf>,
    /// Output: a .safetensors checkpoint (from .weights) or a .weights file (from a checkpoint).
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Replace the output file if it exists (an input is never replaced).
    #[arg(long)]
    force: bool,
}

/// `yolo3 convert partial`.
#[derive(Debug, clap::Args)]
pub(super) struct PartialArgs {
    /// Input: darknet .weights (needs --cfg) or a .safetensors checkpoint.
    #[arg(long, short = 'w')]
    weights: PathBuf,
    /// Darknet cfg of the .weights file.
    #[arg(long)]
    cfg: Option<PathBuf>,
    /// Keep the convolutions of layers 0 to N-1 (darknet's layer numbering; 74 for
    /// darknet53.conv.74 from yolov3.cfg).
    #[arg(long, value_parser = crate::ranges::count(1, 100_000))]
    layers: usize,
    /// Output: the partial darknet weights file (darknet names it like `darknet53.conv.74`).
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Replace the output file if it exists (an input is never replaced).
    #[arg(long)]
    force: bool,
}

pub(super) fn weights(args: &WeightsArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let inputs = [Some(&args.weights), args.cfg.as_ref(), args.classes.as_ref()];
    let inputs = inputs.into_iter().flatten().map(PathBuf::as_path);
    let from_checkpoint = WeightsFormat::of(&args.weights) == WeightsFormat::Checkpoint;
    if from_checkpoint {
        check_extension("--out", &args.out, &["weights"], "a checkpoint converted to darknet")?;
    } else {
        check_extension("--out", &args.out, &["safetensors"], "darknet weights converted")?;
    }
    check_output("--out", &args.out, inputs, args.force)?;
    if from_checkpoint {
        if args.cfg.is_some() || args.classes.is_some() {
            tracing::warn!("--cfg and --classes are ignored: the checkpoint carries its own");
        }
        let (_, weights) = read_darknet(&args.weights, None)?;
        weights
            .write(&args.out, crate::guard::existing(args.force))
            .with_context(|| format!("writing {}", args.out.display()))?;
        say(
            global,
            &format!(
                "{} convolutions (darknet {}) written to {}",
                weights.convs.len(),
                weights.header,
                args.out.display()
            ),
        );
    } else {
        let Some(cfg_path) = &args.cfg else {
            bail!("{} is read as darknet weights, which needs --cfg", args.weights.display());
        };
        let cfg = read_cfg(cfg_path)?;
        let weights = DarknetWeights::read(&args.weights, &cfg)
            .with_context(|| format!("reading darknet weights {}", args.weights.display()))?;
        let mut net = Darknet::new(cfg, tch::Device::Cpu).context("building the network")?;
        let loaded = net
            .load_darknet_weights(&weights)
            .with_context(|| format!("loading {}", args.weights.display()))?;
        let total = net.config().conv_layers().len();
        if loaded == 0 {
            bail!(
                "{} holds no convolution weights (only a header); there is nothing to convert",
                args.weights.display()
            );
        }
        if loaded < total {
            eprintln!(
                "warning: {} holds {loaded} of {total} convolutions; the rest are random in the checkpoint",
                args.weights.display()
            );
        }
        let info = CheckpointInfo {
            class_names: class_names(args.classes.as_deref(), &net)?,
            extra: BTreeMap::from([(
                WeightsHeader::CHECKPOINT_KEY.to_owned(),
                weights.header.to_string(),
            )]),
        };
        net.save_checkpoint(&args.out, &info, crate::guard::existing(args.force))
            .with_context(|| format!("writing {}", args.out.display()))?;
        say(global, &format!("{loaded} convolutions written to {}", args.out.display()));
    }
    Ok(ExitCode::SUCCESS)
}

/// The class names for a checkpoint of `net`: those of `classes` (as many as the network has),
/// else `0, 1, 2, ...`.
fn class_names(classes: Option<&Path>, net: &Darknet) -> anyhow::Result<Vec<String>> {
    let count = net.heads().first().map_or(0, |h| h.classes.max(0) as usize);
    let Some(path) = classes else {
        return Ok((0..count).map(|c| c.to_string()).collect());
    };
    let names = read_names(path)?;
    if names.len() != count {
        bail!("{}: {} names, the network has {count} classes", path.display(), names.len());
    }
    Ok(names)
}

/// The network and darknet content of a `.weights` + cfg pair or of a checkpoint.
fn read_darknet(weights: &Path, cfg: Option<&Path>) -> anyhow::Result<(Darknet, DarknetWeights)> {
    if WeightsFormat::of(weights) == WeightsFormat::Checkpoint {
        let (net, info) = Darknet::from_checkpoint(weights, tch::Device::Cpu)
            .with_context(|| format!("loading checkpoint {}", weights.display()))?;
        let header = match info.extra.get(WeightsHeader::CHECKPOINT_KEY) {
            Some(t) => WeightsHeader::parse_text(t).with_context(|| {
                format!(
                    "{}: metadata {} = {t:?} is not `major minor revision seen`",
                    weights.display(),
                    WeightsHeader::CHECKPOINT_KEY
                )
            })?,
            None => WeightsHeader::default(),
        };
        let content = net.export_darknet_weights(header).context("exporting the convolutions")?;
        Ok((net, content))
    } else {
        let Some(cfg_path) = cfg else {
            bail!("{} is read as darknet weights, which needs --cfg", weights.display());
        };
        let cfg = read_cfg(cfg_path)?;
        let content = DarknetWeights::read(weights, &cfg)
            .with_context(|| format!("reading darknet weights {}", weights.display()))?;
        let net = Darknet::new(cfg, tch::Device::Cpu).context("building the network")?;
        Ok((net, content))
    }
}

pub(super) fn partial(args: &PartialArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let inputs = [Some(&args.weights), args.cfg.as_ref()];
    check_output("--out", &args.out, inputs.iter().flatten(), args.force)?;
    let (net, mut content) = read_darknet(&args.weights, args.cfg.as_deref())?;
    let layers = net.config().layers().len();
    if args.layers > layers {
        bail!("--layers {}: {} has only {layers} layers", args.layers, net.config().name());
    }
    let keep = net.config().conv_layers().iter().filter(|&&l| l < args.layers).count();
    if keep > content.convs.len() {
        bail!(
            "{} holds {} convolutions; layers 0-{} have {keep}",
            args.weights.display(),
            content.convs.len(),
            args.layers - 1
        );
    }
    content.convs.truncate(keep);
    // darknet's `partial` loads the network with `seen` cleared: training starts anew.
    content.header.seen = 0;
    content
        .write(&args.out, crate::guard::existing(args.force))
        .with_context(|| format!("writing {}", args.out.display()))?;
    say(
        global,
        &format!(
            "{keep} convolutions (layers 0-{}) written to {}",
            args.layers - 1,
            args.out.display()
        ),
    );
    Ok(ExitCode::SUCCESS)
}
