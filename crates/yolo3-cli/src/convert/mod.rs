//! `yolo3 convert`: move weights and annotations between darknet, keras-yolo3, YOLO txt and
//! yolo3's own checkpoints, so nobody has to redo work to switch tools.
//!
//! * `convert weights`: darknet `.weights` + cfg to a safetensors checkpoint, or a checkpoint
//!   back to `.weights`; the direction follows the input's extension. The darknet header
//!   (version and `seen`) is kept in the checkpoint's `extra` metadata (`darknet_header`), so
//!   darknet -> checkpoint -> darknet reproduces the file byte for byte.
//! * `convert keras`: keras-yolo3 `.h5` weights (`yolo.h5`, `trained_weights_*.h5`) with
//!   their `anchors.txt` (or the network's darknet cfg) and `classes.txt` to a checkpoint.
//! * `convert annotations`: any supported dataset to keras-yolo3's `train.txt` (+
//!   `classes.txt` beside it; the job of keras' `voc_annotation.py`) or to a YOLO txt folder
//!   (`images/`, `labels/`, `classes.txt`).
//!
//! Neither ever writes over one of its inputs or deletes anything. An existing output file is
//! replaced only with `--force`; a YOLO output folder must be new or empty; a `classes.txt`
//! that exists beside a keras output is kept when it lists the same classes and refused (or,
//! with `--force`, replaced) when it does not.

mod annotations;
mod keras;
mod weights;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Subcommand;

use crate::args::Global;

/// `yolo3 convert`.
#[derive(Debug, clap::Args)]
pub(crate) struct ConvertArgs {
    #[command(subcommand)]
    what: ConvertCommand,
}

#[derive(Debug, Subcommand)]
enum ConvertCommand {
    /// Darknet .weights (+ --cfg) to a .safetensors checkpoint, or a checkpoint to .weights.
    Weights(weights::WeightsArgs),
    /// The first layers of darknet .weights (+ --cfg) or of a checkpoint as a partial
    /// .weights file (darknet's `partial`, e.g. darknet53.conv.74), to initialise training.
    Partial(weights::PartialArgs),
    /// keras-yolo3 .h5 weights (+ --anchors, or --cfg) to a .safetensors checkpoint.
    Keras(keras::KerasArgs),
    /// Any supported dataset to keras train.txt or YOLO txt labels.
    Annotations(annotations::AnnotationsArgs),
}

/// Runs `yolo3 convert`.
pub(crate) fn run(args: ConvertArgs, global: &Global) -> anyhow::Result<ExitCode> {
    match args.what {
        ConvertCommand::Weights(a) => weights::weights(&a, global),
        ConvertCommand::Partial(a) => weights::partial(&a, global),
        ConvertCommand::Keras(a) => keras::keras(&a, global),
        ConvertCommand::Annotations(a) => annotations::annotations(&a, global),
    }
}

fn say(global: &Global, text: &str) {
    if global.chatty() {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }
}
