//! `yolo3 anchors` (being written).
use std::process::ExitCode;
/// `yolo3 anchors`.
#[derive(Debug, clap::Args)]
pub struct AnchorsArgs {}
pub fn run(_args: AnchorsArgs, _global: &crate::args::Global) -> anyhow::Result<ExitCode> {
    anyhow::bail!("yolo3 anchors is being written")
}
