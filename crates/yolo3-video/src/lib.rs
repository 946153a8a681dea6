//! Video in and out for yolo3, through the FFmpeg libraries of the system (`ffmpeg-next`, a
//! maintained binding over libavformat, libavcodec, libavdevice and libswscale; on Debian the
//! `libav*-dev` packages that `scripts/setup.sh` installs).
//!
//! * [`Source`] tells a video input from an image path: a video file (by extension), a V4L2
//!   camera (`/dev/videoN`) or a network stream (`rtsp://`, `rtmp://`, `http(s)://`, ...).
//! * [`VideoReader`] decodes its frames to RGB [`image::RgbImage`]s, with their index and time;
//!   a network stream that drops is reopened a few times before the reader gives up with an
//!   error that says so, and an ended stream is the end of the frames.
//! * [`VideoWriter`] encodes RGB frames to a video file at a given frame rate (H.264 through
//!   libx264 where FFmpeg has it, else MPEG-4 part 2).
//!
//! Frames are converted with libswscale; an RGB24 source (PNG- or FFV1-coded RGB, raw video) is
//! copied as it is, so its frames are the exact pixels that went in.

mod error;
mod open;
mod reader;
mod source;
mod writer;

pub use error::{Result, VideoError};
pub use reader::{Frame, VideoReader, STREAM_TIMEOUT};
pub use source::Source;
pub use writer::VideoWriter;

/// Initialises FFmpeg once (formats, devices); every entry point calls it.
fn init() -> Result<()> {
    static INIT: std::sync::OnceLock<std::result::Result<(), ffmpeg_next::Error>> =
        std::sync::OnceLock::new();
    let done = INIT.get_or_init(|| {
        ffmpeg_next::init()?;
        ffmpeg_next::log::set_level(ffmpeg_next::log::Level::Error);
        Ok(())
    });
    match done {
        Ok(()) => Ok(()),
        Err(source) => Err(VideoError::Init { source: *source }),
    }
}
