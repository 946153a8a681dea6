//! `convert keras`: keras-yolo3 `.h5` weights with their anchors (or cfg) and classes to a
//! checkpoint.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use yolo3_model::{CheckpointInfo, Detector, ModelFiles};

use super::say;
use crate::args::Global;
use crate::guard::{check_extension, check_output};
use crate::model_load::keras_network;

/// `yolo3 convert keras`.
#[derive(Debug, clap::Args)]
pub(super) struct KerasArgs {
    /// Input: keras-yolo3 weights (`model.save_weights` or `model.save` .h5, Keras 2 or
    /// tf.keras).
    #[arg(long, short = 'w')]
    weights: PathBuf,
    /// keras-yolo3 anchors.txt: the network is keras-yolo3's YOLOv3 or tiny-YOLOv3 (chosen by
    /// the file's convolution count) with these anchors.
    #[arg(long, conflicts_with = "cfg", required_unless_present = "cfg")]
    anchors: Option<PathBuf>,
    /// The network's darknet cfg instead of --anchors (its anchors and masks are used).
    #[arg(long)]
    cfg: Option<PathBuf>,
    /// keras-yolo3 classes.txt, stored in the checkpoint (default: 0, 1, 2, ...).
    #[arg(long)]
    classes: Option<PathBuf>,
    /// Output: a .safetensors checkpoint.
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Replace the output file if it exists (an input is never replaced).
    #[arg(long)]
    force: bool,
}

pub(super) fn keras(args: &KerasArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let inputs =
        [Some(&args.weights), args.anchors.as_ref(), args.cfg.as_ref(), args.classes.as_ref()];
    check_extension("--out", &args.out, &["safetensors"], "keras weights converted")?;
    check_output("--out", &args.out, inputs.iter().flatten(), args.force)?;
    let network = keras_network(&args.weights, args.cfg.as_deref(), args.anchors.as_deref())?;
    let files = ModelFiles::Keras { weights: args.weights.clone(), network };
    let detector = Detector::load(&files, args.classes.as_deref(), tch::Device::Cpu)
        .with_context(|| format!("loading keras weights {}", args.weights.display()))?;
    let net = detector.net();
    let info =
        CheckpointInfo { class_names: detector.class_names().to_vec(), extra: BTreeMap::new() };
    net.save_checkpoint(&args.out, &info, crate::guard::existing(args.force))
        .with_context(|| format!("writing {}", args.out.display()))?;
    say(
        global,
        &format!(
            "{} convolutions of {} ({} classes) written to {}",
            net.config().conv_layers().len(),
            args.weights.display(),
            info.class_names.len(),
            args.out.display()
        ),
    );
    Ok(ExitCode::SUCCESS)
}
