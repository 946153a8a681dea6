//! `yolo3 eval` (being written).
use std::process::ExitCode;
/// `yolo3 eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {}
pub fn run(_args: EvalArgs, _global: &crate::args::Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("yolo3 eval is being written")
}
