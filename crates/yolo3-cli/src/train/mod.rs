//! `yolo3 train`: flags to a [`TrainConfig`], progress bars as the observer, and the final
//! per-class table.

mod defaults;
mod flags;
mod launch;

use std::process::ExitCode;

use indicatif::ProgressBar;
use yolo3_train::{BatchProgress, EpochRow, Observer};

pub(crate) use self::flags::TrainArgs;
use crate::args::Global;

/// Draws one bar per epoch and prints each epoch's results line.
struct BarObserver {
    quiet: bool,
    bar: Option<ProgressBar>,
    val_bar: Option<ProgressBar>,
}

impl Observer for BarObserver {
    fn message(&mut self, text: &str) {
        if !self.quiet {
            eprintln!("{text}");
        }
    }

    fn epoch_start(&mut self, epoch: usize, epochs: usize, batches: usize) {
        let bar = crate::progress::bar(batches as u64, self.quiet);
        bar.set_prefix(format!("epoch {epoch}/{epochs}"));
        self.bar = Some(bar);
    }

    fn batch_end(&mut self, p: &BatchProgress) {
        if let Some(bar) = &self.bar {
            bar.set_position(p.batch as u64);
            bar.set_message(format!(
                "xy {:.3} wh {:.3} conf {:.3} cls {:.3} | {:.1} img/s lr {:.1e} @{}",
                p.parts.xy,
                p.parts.wh,
                p.parts.confidence,
                p.parts.class,
                p.images_per_sec,
                p.lr,
                p.input
            ));
        }
    }

    fn validation_start(&mut self, batches: usize) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let bar = crate::progress::bar(batches as u64, self.quiet);
        bar.set_prefix("validating");
        self.val_bar = Some(bar);
    }

    fn validation_batch(&mut self) {
        if let Some(bar) = &self.val_bar {
            bar.inc(1);
        }
    }

    fn epoch_end(&mut self, r: &EpochRow) {
        if let Some(bar) = self.val_bar.take() {
            bar.finish_and_clear();
        }
        if !self.quiet {
            eprintln!("{r}");
        }
    }
}

/// Runs `yolo3 train`: alone, as a launcher of ranks, or as one rank.
pub(crate) fn run(args: &TrainArgs, global: &Global) -> anyhow::Result<ExitCode> {
    if args.dist.launches() {
        return launch::launch(&args.dist, global.threads);
    }
    let replicas = args.dist.replicas()?;
    // Rank 0 speaks for the run; the others only print their errors.
    let quiet = !global.chatty() || !replicas.is_leader();
    let mut observer = BarObserver { quiet, bar: None, val_bar: None };
    let summary = match &args.resume {
        Some(dir) => yolo3_train::resume(dir, &replicas, &mut observer)?,
        None => yolo3_train::train(args.to_config(), &replicas, &mut observer)?,
    };
    if let (Some(best), false) = (&summary.best, quiet) {
        println!("{}", best.table(&summary.class_names));
        println!(
            "run: {} ({:.1} min); best: {} (mAP50 {:.3}, mAP50-95 {:.3})",
            summary.run_dir.display(),
            summary.seconds / 60.0,
            summary.best_checkpoint.display(),
            best.map50.unwrap_or(0.0),
            best.map50_95.unwrap_or(0.0)
        );
    }
    Ok(ExitCode::SUCCESS)
}
