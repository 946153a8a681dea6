//! Decoding a [`Source`] to RGB frames.

use std::time::Duration;

use ffmpeg_next::format::{context::Input, Pixel};
use ffmpeg_next::software::scaling::{self, Flags};
use ffmpeg_next::{codec, decoder, frame, media, Packet};
use image::RgbImage;

use crate::error::{Result, VideoError};
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
}

impl std::fmt::Debug for VideoReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoReader")
            .field("source", &self.source)
            .field("frame_rate", &self.frame_rate)
            .finish_non_exhaustive()
    }
}

/// The input, its decoder, the video stream's index, time base and frame rate; a stream that
/// stalls for `timeout` is an error.
fn open_input(
    source: &Source,
    timeout: Duration,
) -> Result<(Input, decoder::Video, usize, f64, Option<f64>)> {
    crate::init()?;
    let name = source.name();
    let open_err = |source| VideoError::Open { name: name.clone(), source };
    let input = match source {
        Source::File(path) => ffmpeg_next::format::input(path).map_err(open_err)?,
        Source::Stream(url) => {
            // `rw_timeout` bounds every protocol's reads and writes; `timeout` is the socket
            // timeout of tcp, http and rtsp. Both in microseconds.
            let micros = timeout.as_micros().to_string();
            let mut options = ffmpeg_next::Dictionary::new();
            options.set("rw_timeout", &micros);
            options.set("timeout", &micros);
            ffmpeg_next::format::input_with_dictionary(url, options).map_err(open_err)?
        }
        Source::Camera(path) => {
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

impl VideoReader {
    /// Opens `source`.
    pub fn open(source: &Source) -> Result<Self> {
        let (input, decoder, stream, time_base, frame_rate) = open_input(source, STREAM_TIMEOUT)?;
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

    /// The next frame, `None` at the end of the source.
    pub fn next_frame(&mut self) -> Result<Option<Frame>> {
        let mut decoded = frame::Video::empty();
        loop {
            if self.decoder.receive_frame(&mut decoded).is_ok() {
                return self.convert(&decoded).map(Some);
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
                Err(e) => self.recover(e)?,
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
        let (input, decoder, stream, time_base, _) =
            open_input(&self.source, STREAM_TIMEOUT).map_err(|_| self.read_error(error))?;
        (self.input, self.decoder, self.stream, self.time_base) =
            (input, decoder, stream, time_base);
        Ok(())
    }

    /// A decoded frame as RGB.
    fn convert(&mut self, decoded: &frame::Video) -> Result<Frame> {
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
        let time = decoded.timestamp().map_or_else(
            || index as f64 / self.frame_rate.unwrap_or(1.0),
            |t| t as f64 * self.time_base,
        );
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
        let server = std::thread::spawn(move || {
            let (connection, _) = listener.accept().unwrap();
            std::thread::sleep(Duration::from_secs(6));
            drop(connection);
        });
        let started = Instant::now();
        let source = Source::Stream(format!("http://127.0.0.1:{port}/clip.mp4"));
        let error = open_input(&source, Duration::from_secs(1)).err().expect("no video came");
        let took = started.elapsed();
        assert!(took < Duration::from_secs(5), "took {took:?}");
        assert!(error.to_string().contains("clip.mp4"), "{error}");
        server.join().unwrap();
    }
}
