//! `yolo3 export`: a model as a file another runtime runs. `--format onnx` writes the ONNX
//! graph of `yolo3_model::onnx` (opset 17, dynamic batch, batch norm folded, raw heads out,
//! anchors and class names in the metadata) for ONNX Runtime, OpenCV DNN, TensorRT and the like.
//!
//! The input side is fixed in the file (darknet's pooling padding depends on it): the
//! checkpoint's training input unless `--input` says otherwise. The output is written to a
//! temporary file and renamed; an existing file is replaced only with `--force`, an input never.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::ValueEnum;
use yolo3_model::{onnx_bytes, OnnxOptions, ONNX_OPSET};

use crate::args::Global;
use crate::guard::{check_extension, check_output};
use crate::model_load::{load_detector, ModelArgs};

/// Export formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    /// ONNX (opset 17), the network's raw head outputs.
    Onnx,
}

/// `yolo3 export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "onnx")]
    format: Format,
    /// Network input side written into the file, a multiple of 32 up to 8192 (default: the
    /// checkpoint's training input, else the cfg's width).
    #[arg(long, value_parser = crate::ranges::input_side())]
    input: Option<u32>,
    /// Output file (.onnx).
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Replace the output file if it exists (an input is never replaced).
    #[arg(long)]
    force: bool,
}

// main.rs hands the parsed arguments over by value.
#[allow(clippy::needless_pass_by_value)]
pub(crate) fn run(args: ExportArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let Format::Onnx = args.format;
    let m = &args.model;
    let inputs = [&m.weights, &m.cfg, &m.anchors, &m.classes];
    check_extension("--out", &args.out, &["onnx"], "an ONNX export")?;
    check_output("--out", &args.out, inputs.into_iter().flatten(), args.force)?;
    let detector = load_detector(m, tch::Device::Cpu)?;
    let side = detector.input_side(args.input, 1)?;
    let options = OnnxOptions {
        height: i64::from(side),
        width: i64::from(side),
        class_names: detector.class_names().to_vec(),
    };
    let bytes = onnx_bytes(detector.net(), &options)?;
    yolo3_io::fsio::write_atomic(&args.out, &bytes, crate::guard::existing(args.force))
        .with_context(|| format!("writing {}", args.out.display()))?;
    if global.chatty() {
        let _ = writeln!(
            std::io::stderr().lock(),
            "{} ({} heads, input {side}x{side}, dynamic batch, opset {ONNX_OPSET}): {:.1} MB written to {}",
            detector.name(),
            detector.net().heads().len(),
            bytes.len() as f64 / 1e6,
            args.out.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
