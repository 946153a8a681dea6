//! `yolo3 detect` (being written).
use std::process::ExitCode;
/// `yolo3 detect`.
#[derive(Debug, clap::Args)]
pub struct DetectArgs {}
pub fn run(_args: DetectArgs, _global: &crate::args::Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("yolo3 detect is being written")
}
