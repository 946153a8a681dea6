//! `yolo3`: train, run and measure YOLOv3 detectors from the command line.
//!
//! Thin glue over the library crates: argument parsing (clap derive; the `///` comments are the
//! help text), progress bars on stderr (hidden when stderr is not a terminal), logs through
//! `tracing`, and errors printed with their whole chain. `main -> run -> ExitCode`.

// The binary's tables and summaries on stdout are its product.
#![allow(clippy::print_stdout)]

mod anchors_cmd;
mod args;
mod confusion_match;
mod convert_cmd;
mod detect_cmd;
mod eval_cmd;
mod model_load;
mod progress;
mod table;
mod train_cmd;

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
    Train(train_cmd::TrainArgs),
    /// Detect objects in images or folders and write annotated images and predictions.
    Detect(detect_cmd::DetectArgs),
    /// Compute COCO and Pascal VOC mAP of a model on a dataset, or of a predictions file.
    Eval(eval_cmd::EvalArgs),
    /// Fit anchors to a dataset with k-means (1 - IoU distance) and write anchors.txt.
    Anchors(anchors_cmd::AnchorsArgs),
    /// Convert weights (darknet <-> safetensors) and annotations (to keras train.txt or YOLO txt).
    Convert(convert_cmd::ConvertArgs),
}

fn main() -> ExitCode {
    passive_openmp();
    let cli = Cli::parse();
    cli.global.init_logging();
    match run(cli) {
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
        Command::Train(a) => train_cmd::run(&a, &cli.global),
        Command::Detect(a) => detect_cmd::run(a, &cli.global),
        Command::Eval(a) => eval_cmd::run(a, &cli.global),
        Command::Anchors(a) => anchors_cmd::run(a, &cli.global),
        Command::Convert(a) => convert_cmd::run(a, &cli.global),
    }
}

/// Re-runs the process with `OMP_WAIT_POLICY=PASSIVE` unless the variable is set.
///
/// libtorch's OpenMP threads spin while they wait for work by default. On a quiet machine that
/// saves about 10% of a training epoch; on a shared one, where a spinning thread waits for a
/// descheduled partner, a training step measured 2.0 s instead of 0.12 s. libgomp reads the
/// policy once when it loads, before `main`, so it can only be set for a new process image.
/// Setting the variable (to anything) keeps the caller's choice.
fn passive_openmp() {
    #[cfg(unix)]
    if std::env::var_os("OMP_WAIT_POLICY").is_none() {
        use std::os::unix::process::CommandExt;
        if let Ok(exe) = std::env::current_exe() {
            let err = std::process::Command::new(exe)
                .args(std::env::args_os().skip(1))
                .env("OMP_WAIT_POLICY", "PASSIVE")
                .exec();
            // exec only returns on failure; carry on with the default policy.
            tracing::debug!("could not re-run with OMP_WAIT_POLICY=PASSIVE: {err}");
        }
    }
}
