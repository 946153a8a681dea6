//! The one error type of the training crate. It wraps the errors of the crates below with the
//! context of where in a run they happened (epoch, batch, images, file).

use std::path::PathBuf;

use thiserror::Error;

/// What can stop a training or validation run.
#[derive(Debug, Error)]
pub enum TrainError {
    /// The network, a cfg, weights or a checkpoint.
    #[error(transparent)]
    Model(#[from] yolo3_model::ModelError),
    /// Reading or preparing data.
    #[error(transparent)]
    Data(#[from] yolo3_data::DataError),
    /// The loss, targets or decode rejected their input.
    #[error("{context}")]
    Core {
        /// Where it happened.
        context: String,
        /// The core error.
        #[source]
        source: yolo3_core::CoreError,
    },
    /// The loss became NaN or infinite.
    #[error(
        "the loss is not finite at epoch {epoch}, batch {batch} (images: {images}); lower the \
         learning rate or check these annotations"
    )]
    NonFiniteLoss {
        /// Epoch (1-based).
        epoch: usize,
        /// Batch within the epoch (0-based).
        batch: usize,
        /// The image files of the batch.
        images: String,
        /// What the core reported.
        #[source]
        source: Option<yolo3_core::CoreError>,
    },
    /// Another rank's loss was not finite: every rank stops at the same batch.
    #[error(
        "the loss is not finite on {ranks} other rank(s) at epoch {epoch}, batch {batch}; their \
         error names the images"
    )]
    PeerNonFiniteLoss {
        /// Epoch (1-based).
        epoch: usize,
        /// Batch within the epoch (0-based).
        batch: usize,
        /// How many ranks.
        ranks: usize,
    },
    /// A distributed-run failure (a lost rank, a timeout, the launch environment).
    #[error(transparent)]
    Distributed(#[from] yolo3_dist::DistError),
    /// The configuration is inconsistent.
    #[error("configuration: {0}")]
    Config(String),
    /// Reading or writing a run file failed.
    #[error(transparent)]
    File(#[from] yolo3_io::fsio::FileError),
    /// A run file holds something it should not (its content parsed, but is inconsistent).
    #[error("{}: {message}", path.display())]
    RunFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A run file (args.toml, results.csv, a state file) could not be parsed or encoded.
    #[error("{}: {what}", path.display())]
    RunFileFormat {
        /// The file.
        path: PathBuf,
        /// What was being done, or where in the file.
        what: String,
        /// The parser's or encoder's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Drawing or saving a plot.
    #[error(transparent)]
    Viz(#[from] yolo3_viz::VizError),
    /// A device name that is not `cpu`, `cuda` or `cuda:N`, or a GPU that is not there.
    #[error(transparent)]
    RunFolder(#[from] yolo3_io::run_folder::RunFolderError),
    /// A device name that cannot be used.
    #[error(transparent)]
    Device(#[from] yolo3_model::DeviceError),
    /// Anchor k-means on the training boxes failed.
    #[error("anchor k-means on the training boxes")]
    Anchors(#[source] yolo3_core::kmeans::KmeansError),
    /// Another process trains in the run folder.
    #[error(transparent)]
    Locked(#[from] yolo3_io::lock::LockError),
    /// Ctrl-C or SIGTERM: the run stopped before the next batch. `epochs_done` complete
    /// epochs are saved in `run_dir` (none: the folder was removed, when this call created it).
    #[error("{}", interrupted_message(run_dir, *epochs_done))]
    Interrupted {
        /// The run folder.
        run_dir: PathBuf,
        /// Epochs complete and saved.
        epochs_done: usize,
    },
}

fn interrupted_message(run_dir: &std::path::Path, epochs_done: usize) -> String {
    if epochs_done == 0 {
        return format!(
            "interrupted before the first epoch ended; nothing of {} to resume",
            run_dir.display()
        );
    }
    format!(
        "interrupted: the run stopped after epoch {epochs_done}, which is saved; continue it with\n  \
         yolo3 train --resume {}",
        run_dir.display()
    )
}

impl TrainError {
    /// A run file that could not be parsed or encoded.
    pub(crate) fn format(
        path: impl Into<PathBuf>,
        what: impl Into<String>,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::RunFileFormat { path: path.into(), what: what.into(), source: Box::new(source) }
    }
}

/// Result with [`TrainError`].
pub type Result<T, E = TrainError> = std::result::Result<T, E>;
