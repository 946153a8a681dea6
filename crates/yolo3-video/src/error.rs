//! The errors of the video crate: each names the source or file and keeps FFmpeg's error.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong reading or writing video.
#[derive(Debug, Error)]
pub enum VideoError {
    /// FFmpeg could not be initialised.
    #[error("initialising FFmpeg")]
    Init {
        /// FFmpeg's error.
        #[source]
        source: ffmpeg_next::Error,
    },
    /// A source could not be opened (missing file, unknown format, unreachable stream).
    #[error("opening {name}")]
    Open {
        /// The file, device or URL.
        name: String,
        /// FFmpeg's error.
        #[source]
        source: ffmpeg_next::Error,
    },
    /// A file or camera that is not there.
    #[error("{name}: no such {what}")]
    Missing {
        /// The file or device.
        name: String,
        /// "file" or "camera (video device)".
        what: &'static str,
    },
    /// A stream sent a budget's worth of data (or time) without one video frame.
    #[error(
        "{name}: {what} without a video frame; not a video this program can read (the limit \
         before the first frame)"
    )]
    NoFrame {
        /// The URL.
        name: String,
        /// "64 MB" or "60 s".
        what: String,
    },
    /// The source has no video stream.
    #[error("{name} has no video stream")]
    NoVideo {
        /// The file, device or URL.
        name: String,
    },
    /// Reading or decoding failed (and, for a stream, reopening it did not help).
    #[error("reading {name} at frame {frame}{}", reopened(*.reconnects))]
    Read {
        /// The file, device or URL.
        name: String,
        /// Frames delivered before the failure.
        frame: u64,
        /// How many times a stream was reopened before giving up.
        reconnects: u32,
        /// FFmpeg's error.
        #[source]
        source: ffmpeg_next::Error,
    },
    /// Encoding or writing a video failed.
    #[error("writing {}", path.display())]
    Write {
        /// The output file.
        path: PathBuf,
        /// FFmpeg's error.
        #[source]
        source: ffmpeg_next::Error,
    },
    /// FFmpeg has neither an H.264 nor an MPEG-4 encoder.
    #[error("writing {}: FFmpeg has no H.264 or MPEG-4 video encoder", path.display())]
    NoEncoder {
        /// The output file.
        path: PathBuf,
    },
}

/// `" (reopened N times)"` after a stream was reopened, else nothing.
fn reopened(times: u32) -> String {
    if times > 0 {
        format!(" (reopened {times} times)")
    } else {
        String::new()
    }
}

/// The result type of the crate.
pub type Result<T> = std::result::Result<T, VideoError>;
