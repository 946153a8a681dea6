//! Decoding a [`Source`] to RGB frames.
//!
//! A network stream that drops is reopened (see [`VideoReader::next_frame`]); what the
//! reopened stream sends again is not delivered twice. An `http(s)://` source is a file on a
//! server: reopened, it starts from its beginning, so frames up to the last delivered time are
//! skipped. A session-based stream (`rtsp://`, `rtmp://`, `udp://`, ...) sends live frames
//! whose clock starts again with the new session: they are all new, and their times are
//! shifted to continue after the last delivered one. Frame numbers always continue.

use std::os::unix::ffi::OsStrExt as _;
use std::sync::Arc;
use std::time::Duration;

use ffmpeg_next::format::{context::Input, Pixel};
use ffmpeg_next::software::scaling::{self, Flags};
use ffmpeg_next::{codec, decoder, frame, media, Packet};
use image::RgbImage;

use crate::error::{Result, VideoError};
use crate::open::{Cut, Watch, BYTE_BUDGET, TIME_BUDGET};
use crate::source::Source;

/// Times a dropped network stream is reopened before the reader gives up.
const RECONNECTS: u32 = 3;

/// How long a network stream may send nothing, while opening or between packets, before
/// the read fails (and the stream is reopened, as when it drops): without it FFmpeg waits for
/// a stalled server forever.
pub const STREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// One decoded frame.
#[derive(Debug, Clone)]
pub struct Frame {
    /// Position in the source, from 0.
    pub index: u64,
    /// Presentation time in seconds (from the frame's timestamp; `index / fps` without one).
    pub time: f64,
    /// The pixels.
    pub image: RgbImage,
}

/// An open source and its decoder (see the crate docs).
pub struct VideoReader {
    source: Source,
    input: Input,
    decoder: decoder::Video,
    stream: usize,
    time_base: f64,
    frame_rate: Option<f64>,
    scaler: Option<(Pixel, u32, u32, scaling::Context)>,
    next_index: u64,
    reconnects: u32,
    flushed: bool,
    watch: Arc<Watch>,
    /// The time of the last delivered frame.
    last_time: Option<f64>,
    /// After an `http(s)` stream was reopened: frames up to this time were delivered already.
    replay_until: Option<f64>,
    /// After a session-based stream was reopened: the next frame sets [`Self::time_offset`].
    rebase_time: bool,
    /// Added to the frame times of the current session.
    time_offset: f64,
}

impl std::fmt::Debug for VideoReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoReader")
            .field("source", &self.source)
            .field("frame_rate", &self.frame_rate)
            .finish_non_exhaustive()
    }
}

/// An opened source: the input, its decoder, the video stream's index, time base and frame
/// rate.
type Opened = (Input, decoder::Video, usize, f64, Option<f64>);

/// Opens `source` under `watch`; a stream that stalls for `timeout` is an error.
fn open_input(source: &Source, timeout: Duration, watch: &Arc<Watch>) -> Result<Opened> {
    crate::init()?;
    let name = source.name();
    // A demuxer may turn the callback's "exit" into its own error ("moov atom not found"):
    // the watch says whether the callback ended the call.
    let open_err = |source| match watch.cut() {
        Some(cut) => cut_error(&name, cut, source),
        None => VideoError::Open { name: name.clone(), source },
    };
    let input = match source {
        Source::File(path) => {
            if std::fs::metadata(path).is_err() {
                return Err(VideoError::Missing { name, what: "file" });
            }
            crate::open::open(path.as_os_str().as_bytes(), ffmpeg_next::Dictionary::new(), watch)
                .map_err(open_err)?
        }
        Source::Stream(url) => {
            // `rw_timeout` bounds every protocol's reads and writes; `timeout` is the socket
            // timeout of tcp, http and rtsp. Both in microseconds. `probesize` (bytes) and
            // `analyzeduration` (microseconds) bound the analysis after the header at FFmpeg's
            // defaults, stated here because a stream must not depend on them.
            let micros = timeout.as_micros().to_string();
            let mut options = ffmpeg_next::Dictionary::new();
            options.set("rw_timeout", &micros);
            options.set("timeout", &micros);
            options.set("probesize", "5000000");
            options.set("analyzeduration", "5000000");
            crate::open::open(url.as_bytes(), options, watch).map_err(open_err)?
        }
        Source::Camera(path) => {
            if std::fs::metadata(path).is_err() {
                return Err(VideoError::Missing { name, what: "camera (video device)" });
            }
            let v4l2 = ffmpeg_next::device::input::video()
                .find(|f| f.name() == "video4linux2" || f.name() == "v4l2")
                .ok_or_else(|| open_err(ffmpeg_next::Error::DemuxerNotFound))?;
            ffmpeg_next::format::open_with(path, &v4l2, ffmpeg_next::Dictionary::new())
                .map_err(open_err)?
                .input()
        }
    };
    let stream = input
        .streams()
        .best(media::Type::Video)
        .ok_or(VideoError::NoVideo { name: name.clone() })?;
    let index = stream.index();
    let time_base = f64::from(stream.time_base());
    let rate = [stream.avg_frame_rate(), stream.rate()]
        .into_iter()
        .map(f64::from)
        .find(|r| r.is_finite() && *r > 0.0);
    let decoder = codec::context::Context::from_parameters(stream.parameters())
        .and_then(|c| c.decoder().video())
        .map_err(open_err)?;
    Ok((input, decoder, index, time_base, rate))
}

/// The error for a blocking call the interrupt callback ended.
fn cut_error(name: &str, cut: Cut, source: ffmpeg_next::Error) -> VideoError {
    let what = match cut {
        Cut::Interrupted => return VideoError::Open { name: name.to_owned(), source },
        Cut::Bytes => format!("{} MB read", BYTE_BUDGET >> 20),
        Cut::Time => format!("{} s", TIME_BUDGET.as_secs()),
    };
    VideoError::NoFrame { name: name.to_owned(), what }
}

impl VideoReader {
    /// Opens `source`.
    pub fn open(source: &Source) -> Result<Self> {
        let watch = Watch::new(matches!(source, Source::Stream(_)));
        let (input, decoder, stream, time_base, frame_rate) =
            open_input(source, STREAM_TIMEOUT, &watch)?;
        Ok(Self {
            source: source.clone(),
            input,
            decoder,
            stream,
            time_base,
            frame_rate,
            scaler: None,
            next_index: 0,
            reconnects: 0,
            flushed: false,
            watch,
            last_time: None,
            replay_until: None,
            rebase_time: false,
            time_offset: 0.0,
        })
    }

    /// Frames per second the source declares (`None` when it does not say).
    #[must_use]
    pub fn frame_rate(&self) -> Option<f64> {
        self.frame_rate
    }

    /// The source.
    #[must_use]
    pub fn source(&self) -> &Source {
        &self.source
    }

    /// The next frame, `None` at the end of the source or once the process was asked to stop
    /// ([`yolo3_io::interrupt`]; a stream waiting for data is cut short).
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        let mut decoded = frame::Video::empty();
        loop {
            if yolo3_io::interrupt::requested() {
                return Ok(None);
            }
            if self.decoder.receive_frame(&mut decoded).is_ok() {
                self.watch.frame_decoded();
                let raw = decoded.timestamp().map(|t| t as f64 * self.time_base);
                if let (Some(until), Some(t)) = (self.replay_until, raw) {
                    if t <= until + 1e-9 {
                        continue; // sent again by the reopened stream
                    }
                }
                self.replay_until = None;
                return self.convert(&decoded, raw).map(Some);
            }
            if self.flushed {
                return Ok(None);
            }
            let mut packet = Packet::empty();
            match packet.read(&mut self.input) {
                Ok(()) => {
                    if packet.stream() == self.stream {
                        // A packet the decoder refuses (a damaged one) is skipped, as ffmpeg does.
                        let _ = self.decoder.send_packet(&packet);
                    }
                }
                Err(ffmpeg_next::Error::Eof) => {
                    let _ = self.decoder.send_eof();
                    self.flushed = true;
                }
                Err(e) => match self.watch.cut() {
                    Some(Cut::Interrupted) => return Ok(None),
                    Some(cut) => return Err(cut_error(&self.source.name(), cut, e)),
                    None => self.recover(e)?,
                },
            }
        }
    }

    /// After a read error: reopen a network stream (up to [`RECONNECTS`] times, waiting a
    /// little longer each time), else give up.
    fn recover(&mut self, error: ffmpeg_next::Error) -> Result<()> {
        if !matches!(self.source, Source::Stream(_)) || self.reconnects >= RECONNECTS {
            return Err(self.read_error(error));
        }
        self.reconnects += 1;
        std::thread::sleep(Duration::from_millis(500 * u64::from(self.reconnects)));
        let watch = Watch::new(true);
        let (input, decoder, stream, time_base, _) =
            open_input(&self.source, STREAM_TIMEOUT, &watch).map_err(|_| self.read_error(error))?;
        (self.input, self.decoder, self.stream, self.time_base, self.watch) =
            (input, decoder, stream, time_base, watch);
        if self.source.is_http() {
            self.replay_until = self.last_time.map(|t| t - self.time_offset);
        } else {
            self.rebase_time = true;
        }
        Ok(())
    }

    /// A decoded frame as RGB; `raw` is its timestamp in seconds.
    fn convert(&mut self, decoded: &frame::Video, raw: Option<f64>) -> Result<Frame> {
        let (w, h, format) = (decoded.width(), decoded.height(), decoded.format());
        let rgb = if format == Pixel::RGB24 {
            None
        } else {
            if !matches!(&self.scaler, Some((f, sw, sh, _)) if *f == format && *sw == w && *sh == h)
            {
                let ctx = scaling::Context::get(format, w, h, Pixel::RGB24, w, h, Flags::BILINEAR)
                    .map_err(|source| self.read_error(source))?;
                self.scaler = Some((format, w, h, ctx));
            }
            let mut out = frame::Video::empty();
            let (_, _, _, ctx) = self.scaler.as_mut().expect("set above");
            if let Err(source) = ctx.run(decoded, &mut out) {
                return Err(self.read_error(source));
            }
            Some(out)
        };
        let frame = rgb.as_ref().unwrap_or(decoded);
        let (stride, data) = (frame.stride(0), frame.data(0));
        let row = 3 * w as usize;
        let mut pixels = Vec::with_capacity(row * h as usize);
        for y in 0..h as usize {
            pixels.extend_from_slice(&data[y * stride..y * stride + row]);
        }
        let image = RgbImage::from_raw(w, h, pixels).expect("w x h x 3 bytes");
        let index = self.next_index;
        self.next_index += 1;
        let step = 1.0 / self.frame_rate.unwrap_or(1.0);
        let time = match raw {
            None => index as f64 * step,
            Some(t) => {
                if std::mem::take(&mut self.rebase_time) {
                    // A new session's clock: continue one frame after the last delivered time.
                    self.time_offset = self.last_time.map_or(0.0, |last| last + step) - t;
                }
                t + self.time_offset
            }
        };
        self.last_time = Some(time);
        Ok(Frame { index, time, image })
    }

    fn read_error(&self, source: ffmpeg_next::Error) -> VideoError {
        VideoError::Read {
            name: self.source.name(),
            frame: self.next_index,
            reconnects: self.reconnects,
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    /// A server that accepts the connection and then sends nothing must not hang the reader.
    #[test]
    fn a_stalled_stream_is_an_error_after_the_timeout() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        // The server holds the connection, silent, until the test ends (or a minute): the
        // reader must give up on its own, at its 1 s timeout.
        let (release, held) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (connection, _) = listener.accept().unwrap();
            let _ = held.recv_timeout(Duration::from_secs(60));
            drop(connection);
        });
        let started = Instant::now();
        let source = Source::Stream(format!("http://127.0.0.1:{port}/clip.mp4"));
        let error = open_input(&source, Duration::from_secs(1), &Watch::new(true))
            .err()
            .expect("no video came");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(30), "took {took:?}");
        assert!(error.to_string().contains("clip.mp4"), "{error}");
        release.send(()).unwrap();
        server.join().unwrap();
    }
}
