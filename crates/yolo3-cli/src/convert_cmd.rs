//! `yolo3 convert` (being written).
use std::process::ExitCode;
/// `yolo3 convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {}
pub fn run(_args: ConvertArgs, _global: &crate::args::Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("yolo3 convert is being written")
}
