//! `yolo3`: train, run and measure YOLOv3 detectors from the command line.
//!
//! Thin glue over the library crates: argument parsing (clap derive; the `///` comments are the
//! help text), progress bars on stderr (hidden when stderr is not a terminal), logs through
//! `tracing`, and errors printed with their whole chain. `main -> run -> ExitCode`.

// The binary's tables and summaries on stdout are its product.
#![allow(clippy::print_stdout)]

mod anchors;
mod args;
mod convert;
mod detect;
mod eval;
mod export;
mod guard;
mod model_load;
mod progress;
mod ranges;
mod signals;
mod train;
#[cfg(target_os = "linux")]
mod workdir;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Train, run and evaluate YOLOv3 object detectors (darknet cfg/weights, keras-yolo3's exact
/// loss, libtorch on CPU or CUDA).
#[derive(Debug, Parser)]
#[command(name = "yolo3", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    global: args::Global,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Train a detector (with no arguments: the built-in synthetic dataset and small model).
    Train(Box<train::TrainArgs>),
    /// Detect objects in images or folders and write annotated images and predictions.
    Detect(detect::DetectArgs),
    /// Compute COCO and Pascal VOC mAP of a model on a dataset, or of a predictions file.
    Eval(eval::EvalArgs),
    /// Fit anchors to a dataset with k-means (1 - IoU distance) and write anchors.txt.
    Anchors(anchors::AnchorsArgs),
    /// Convert weights (darknet <-> safetensors) and annotations (to keras train.txt or YOLO txt).
    Convert(convert::ConvertArgs),
    /// Export a model for another runtime (ONNX: ONNX Runtime, OpenCV DNN, TensorRT).
    Export(export::ExportArgs),
}

fn main() -> ExitCode {
    tuned_environment();
    signals::install();
    let cli = Cli::parse();
    cli.global.init_logging();
    let result = run(cli);
    if let Some(signal) = signals::received() {
        // Whatever the command finished is complete; say what stopped it, and exit as a
        // process stopped by that signal reports.
        match result {
            Ok(_) => {
                eprintln!("stopped by {}; the outputs written are complete", signals::name(signal));
            }
            Err(err) => eprintln!("stopped by {}: {err:#}", signals::name(signal)),
        }
        return ExitCode::from((128 + signal) as u8);
    }
    match result {
        Ok(code) => code,
        Err(err) => {
            // `{:#}` prints the whole chain: "reading x: line 3: field 2: ...".
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Train(a) => train::run(&a, &cli.global),
        Command::Detect(a) => detect::run(a, &cli.global),
        Command::Eval(a) => eval::run(a, &cli.global),
        Command::Anchors(a) => anchors::run(a, &cli.global),
        Command::Convert(a) => convert::run(a, &cli.global),
        Command::Export(a) => export::run(a, &cli.global),
    }
}

/// glibc malloc settings for libtorch's large, short-lived tensors: serve them from the heap
/// and keep freed memory for the next one, instead of a fresh `mmap` (and a page fault for every
/// 4 KB of it) per tensor.
const MALLOC_TUNABLES: &str =
    "glibc.malloc.mmap_threshold=4294967295:glibc.malloc.trim_threshold=4294967295";

/// Re-runs the process with the environment libtorch runs best in, for each variable the caller
/// has not set (setting one, to anything, keeps the caller's choice). Both are read once when
/// the process starts, before `main`, so they can only be set for a new process image.
///
/// * `OMP_WAIT_POLICY=PASSIVE`: libtorch's OpenMP threads spin while they wait for work by
///   default. On a quiet machine that saves about 10% of a training epoch; on a shared one,
///   where a spinning thread waits for a descheduled partner, a training step measured 2.0 s
///   instead of 0.12 s.
/// * `GLIBC_TUNABLES` = [`MALLOC_TUNABLES`] (Linux): YOLOv3 inference at batch 8 measured
///   3.75 s per batch with glibc's defaults and 2.70 s with these (PyTorch: 3.07 s and 2.65 s).
/// * `TORCH_CPP_LOG_LEVEL=FATAL`: libtorch's own log lines on stderr (c10d prints each failed
///   connection attempt with 20 lines of C++ stack frames) say nothing our errors do not say
///   better; setting the variable (to `INFO`, say) brings them back for debugging.
fn tuned_environment() {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        let mut wanted = vec![("OMP_WAIT_POLICY", "PASSIVE"), ("TORCH_CPP_LOG_LEVEL", "FATAL")];
        if cfg!(target_os = "linux") {
            wanted.push(("GLIBC_TUNABLES", MALLOC_TUNABLES));
        }
        wanted.retain(|(name, _)| std::env::var_os(name).is_none());
        if wanted.is_empty() {
            return;
        }
        if let Ok(exe) = std::env::current_exe() {
            let err = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .envs(wanted.iter().copied())
                .exec();
            // exec only returns on failure; carry on with the defaults.
            tracing::debug!("could not re-run with {wanted:?}: {err}");
        }
    }
}
