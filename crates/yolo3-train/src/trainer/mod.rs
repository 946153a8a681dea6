//! The training loop: data in parallel ahead of the step, the network's forward pass, the exact
//! loss through [`YoloLoss`](yolo3_model::YoloLoss), gradient accumulation to the nominal
//! batch, the optimizer and the schedule; validation, `results.csv`, plots and checkpoints
//! every epoch. In a data-parallel run ([`Replicas`]) every rank takes its slice of each batch
//! and the gradients are averaged before each step (see `replicas.rs` for why that is the
//! single-process step); a single process is a world of one and goes through the same code.
//!
//! The parts, in the order a run meets them:
//! * `protocol`: who leads (rank 0, or the only process) and what it tells the others: the
//!   plan before the first step, each epoch's outcome after validation;
//! * `setup`: a session from a new or resumed run folder (rank 0) or from the plan (the other
//!   ranks), and the checks every rank makes on its parts;
//! * `advice`: the objects' sizes in the input, and a warning with the remedy when they are
//!   too small for the network's strides;
//! * `init`: the cfg trained (classes and anchors adapted), head biases from the data's priors,
//!   initial weights transferred by shape;
//! * `cache`: the image cache shared by training and validation;
//! * `epoch`: one epoch of steps, returning its statistics;
//! * `session`: the run from epoch to epoch, validation, the row and the files;
//! * `run_state`: what is saved beside each checkpoint to resume (state-file rotation).
//!
//! Files of a run folder:
//! * `args.toml`: the resolved [`TrainConfig`]; `model.cfg`: the cfg actually trained (classes
//!   and anchors adapted);
//! * `weights/last.safetensors` and `weights/last.state-<epoch>.safetensors` (optimizer and
//!   schedule position) after every epoch, `weights/best.safetensors` at the best validation
//!   mAP50-95, and `weights/best.weights` (darknet format) at the end;
//! * `results.csv` and `results.png`.
//!
//! Only rank 0 of a distributed run touches the folder; it validates on the whole validation
//! set while the other ranks wait (the mAP needs every detection in one place, the result is
//! that of a single process, and on one machine rank 0 borrows the waiting ranks' threads).

mod advice;
mod cache;
mod epoch;
mod init;
mod protocol;
mod run_state;
mod session;
mod setup;

use std::path::{Path, PathBuf};

use yolo3_core::metrics::MapSummary;
use yolo3_io::fsio::Existing;
use yolo3_io::fsio::FileError;

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::observer::Observer;
use crate::replicas::Replicas;
use crate::results::EpochRow;
pub use init::kmeans_anchors;
use protocol::lead_or_follow;
use session::Session;

/// What a finished run reports.
#[derive(Debug)]
pub struct TrainSummary {
    /// The run folder.
    pub run_dir: PathBuf,
    /// Every epoch's results.
    pub rows: Vec<EpochRow>,
    /// The final validation of the best checkpoint (rank 0 validates: `None` on the other
    /// ranks of a distributed run).
    pub best: Option<MapSummary>,
    /// Class names.
    pub class_names: Vec<String>,
    /// The best checkpoint.
    pub best_checkpoint: PathBuf,
    /// Wall time of this invocation, in seconds.
    pub seconds: f64,
}

/// Starts a new run. In a distributed run every rank calls it with the same settings; rank 0's
/// are the ones used.
///
/// A run that fails before its first epoch is recorded removes the run folder it created, so
/// the next run gets the same name instead of `exp2` beside an empty `exp`.
pub fn train(
    config: TrainConfig,
    replicas: &Replicas,
    observer: &mut dyn Observer,
) -> Result<TrainSummary> {
    lead_or_follow(replicas, observer, |observer| {
        config.check()?;
        let run_dir = yolo3_io::run_folder::create(&config.project, &config.name)?;
        let result = (|| {
            let _lock = lock_run(&run_dir, observer)?;
            let path = run_dir.join("args.toml");
            let args = config
                .to_toml()
                .map_err(|e| TrainError::format(&path, "encoding the settings", e))?;
            yolo3_io::fsio::write_atomic(&path, args.as_bytes(), Existing::Replace)
                .map_err(FileError::on("writing", &path))?;
            Session::open(config, run_dir.clone(), false, replicas, observer)?.run(observer)
        })();
        if result.is_err() && !run_dir.join("results.csv").exists() {
            // Everything in it was written by this call; nothing of the user's is inside.
            if std::fs::remove_dir_all(&run_dir).is_ok() {
                observer.message(&format!(
                    "removed {}: the run ended before its first epoch",
                    run_dir.display()
                ));
            }
        }
        result
    })
}

/// Continues the run in `run_dir` from its last checkpoint, with any number of ranks (each
/// epoch's batches are the same whatever the world size; only rank 0 reads the folder).
pub fn resume(
    run_dir: &Path,
    replicas: &Replicas,
    observer: &mut dyn Observer,
) -> Result<TrainSummary> {
    lead_or_follow(replicas, observer, |observer| {
        // A missing folder is named as such, not by the lock file that cannot be made in it.
        std::fs::read_dir(run_dir).map_err(FileError::on("reading", run_dir))?;
        let _lock = lock_run(run_dir, observer)?;
        let path = run_dir.join("args.toml");
        let text = yolo3_io::fsio::read_text(&path).map_err(FileError::on("reading", &path))?;
        let config = TrainConfig::from_toml(&text)
            .map_err(|e| TrainError::format(&path, "not a valid args.toml", e))?;
        config.check()?;
        Session::open(config, run_dir.to_owned(), true, replicas, observer)?.run(observer)
    })
}

/// Locks `run_dir` for this process (rank 0 alone writes it), so that a `--resume` of a run
/// that is still training, or two at once, is refused instead of both writing the folder.
fn lock_run(run_dir: &Path, observer: &mut dyn Observer) -> Result<yolo3_io::lock::FolderLock> {
    let (lock, previous) = yolo3_io::lock::FolderLock::acquire(run_dir)?;
    if let Some(previous) = previous {
        observer.message(&format!(
            "{}: the process that held it ({previous}) has ended; taking it over",
            lock.path().display()
        ));
    }
    Ok(lock)
}
