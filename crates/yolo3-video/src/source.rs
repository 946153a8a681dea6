//! What counts as a video input.

use std::path::{Path, PathBuf};

/// Extensions read as video files (anything else goes to the image readers).
pub(crate) const VIDEO_EXTENSIONS: &[&str] =
    &["mp4", "m4v", "mov", "mkv", "webm", "avi", "mpg", "mpeg", "ts", "wmv", "flv", "nut", "gif"];

/// URL schemes read as network streams.
const STREAM_SCHEMES: &[&str] = &[
    "rtsp://", "rtsps://", "rtmp://", "rtmps://", "http://", "https://", "udp://", "tcp://",
    "srt://",
];

/// A video input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A video file.
    File(PathBuf),
    /// A V4L2 camera, `/dev/videoN`.
    Camera(PathBuf),
    /// A network stream, by URL.
    Stream(String),
}

impl Source {
    /// The video input `input` names, or `None` for an image or a folder.
    #[must_use]
    pub fn classify(input: &str) -> Option<Self> {
        let lower = input.to_ascii_lowercase();
        if STREAM_SCHEMES.iter().any(|s| lower.starts_with(s)) {
            return Some(Self::Stream(input.to_owned()));
        }
        let path = Path::new(input);
        if input.starts_with("/dev/video") {
            return Some(Self::Camera(path.to_owned()));
        }
        let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
        ext.filter(|e| VIDEO_EXTENSIONS.contains(&e.as_str())).map(|_| Self::File(path.to_owned()))
    }

    /// Whether it is an `http://` or `https://` URL (a file on a server: reopened, it starts
    /// from its beginning again).
    #[must_use]
    pub fn is_http(&self) -> bool {
        matches!(self, Self::Stream(url) if {
            let lower = url.to_ascii_lowercase();
            lower.starts_with("http://") || lower.starts_with("https://")
        })
    }

    /// How messages name it.
    #[must_use]
    pub fn name(&self) -> String {
        match self {
            Self::File(p) | Self::Camera(p) => p.display().to_string(),
            Self::Stream(url) => url.clone(),
        }
    }

    /// A stem for the outputs of this source (`clip` for `clip.mp4`, `video0`, `stream`).
    #[must_use]
    pub fn stem(&self) -> String {
        match self {
            Self::File(p) | Self::Camera(p) => {
                p.file_stem().map_or_else(|| "video".into(), |s| s.to_string_lossy().into_owned())
            }
            Self::Stream(_) => "stream".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn videos_cameras_and_streams_are_told_from_images() {
        assert_eq!(Source::classify("a/clip.MP4"), Some(Source::File("a/clip.MP4".into())));
        assert_eq!(Source::classify("/dev/video0"), Some(Source::Camera("/dev/video0".into())));
        assert_eq!(
            Source::classify("rtsp://cam.local/live"),
            Some(Source::Stream("rtsp://cam.local/live".into()))
        );
        for image in ["a.jpg", "b.png", "folder", "x.mp4.png"] {
            assert_eq!(Source::classify(image), None, "{image}");
        }
        assert_eq!(Source::classify("/dev/video2").unwrap().stem(), "video2");
    }
}
