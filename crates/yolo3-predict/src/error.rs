//! The crate's error type. Per-image write failures are not errors of the run: they are
//! returned with the image's result ([`crate::ImageResult::error`]) so that the other images
//! are still written.

use std::path::PathBuf;

/// What stops a detection run.
#[derive(Debug, thiserror::Error)]
pub enum PredictError {
    /// The network or the decode.
    #[error(transparent)]
    Model(#[from] yolo3_model::ModelError),
    /// Reading an image or a dataset.
    #[error(transparent)]
    Data(#[from] yolo3_data::DataError),
    /// Reading or writing a video.
    #[error(transparent)]
    Video(#[from] yolo3_video::VideoError),
    /// A video source failed after some frames; their outputs are complete.
    #[error(
        "{frames} frames of {source_name} were processed; their outputs are in {}",
        out_dir.display()
    )]
    VideoStopped {
        /// Frames processed and written.
        frames: u64,
        /// The source, for messages.
        source_name: String,
        /// Where the outputs are.
        out_dir: PathBuf,
        /// The reader's error.
        #[source]
        source: yolo3_video::VideoError,
    },
    /// A file operation.
    #[error(transparent)]
    File(#[from] yolo3_io::fsio::FileError),
    /// A JSON output could not be encoded.
    #[error("encoding {}", path.display())]
    Json {
        /// The file it was for.
        path: PathBuf,
        /// serde's error.
        #[source]
        source: serde_json::Error,
    },
}

/// Result with [`PredictError`].
pub type Result<T, E = PredictError> = std::result::Result<T, E>;
