//! Encoding RGB frames to a video file.

use std::path::{Path, PathBuf};

use ffmpeg_next::format::{context::Output, Pixel};
use ffmpeg_next::software::scaling::{self, Flags};
use ffmpeg_next::{codec, encoder, frame, Packet, Rational};
use image::RgbImage;

use crate::error::{Result, VideoError};

/// An open output video (see the crate docs). Call [`VideoWriter::finish`] to flush it.
pub struct VideoWriter {
    path: PathBuf,
    output: Output,
    encoder: encoder::Video,
    scaler: scaling::Context,
    /// The frames' size.
    size: (u32, u32),
    /// The encoded size: `size` made even.
    encoded: (u32, u32),
    time_base: Rational,
    stream_time_base: Rational,
    frames: i64,
}

impl std::fmt::Debug for VideoWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VideoWriter").field("path", &self.path).finish_non_exhaustive()
    }
}

impl VideoWriter {
    /// Creates `path` (its extension picks the container, `.mp4` for instance) for frames of
    /// `width x height` at `fps` frames per second. H.264 and MPEG-4 need even sides: an odd
    /// side is encoded one pixel larger, its last column or row repeated (every pixel of the
    /// frame is kept, at its place), and a warning says so.
    pub fn create(path: &Path, width: u32, height: u32, fps: f64) -> Result<Self> {
        crate::init()?;
        let err = |source| VideoError::Write { path: path.to_owned(), source };
        let mut output = ffmpeg_next::format::output(path).map_err(err)?;
        let codec = encoder::find(codec::Id::H264)
            .or_else(|| encoder::find(codec::Id::MPEG4))
            .ok_or_else(|| VideoError::NoEncoder { path: path.to_owned() })?;
        let global_header =
            output.format().flags().contains(ffmpeg_next::format::Flags::GLOBAL_HEADER);
        let (w, h) = ((width + 1) & !1, (height + 1) & !1);
        if (w, h) != (width, height) {
            tracing::warn!(
                "{}: frames of {width}x{height} are encoded as {w}x{h} (H.264 needs even sides; \
                 the last column or row is repeated)",
                path.display()
            );
        }
        // Frame rate as a rational in thousandths (29.97 -> 29970/1000).
        let rate = Rational::new((fps.max(0.001) * 1000.0).round() as i32, 1000);
        let time_base = rate.invert();
        let mut stream = output.add_stream(codec).map_err(err)?;
        let mut enc =
            codec::context::Context::new_with_codec(codec).encoder().video().map_err(err)?;
        enc.set_width(w);
        enc.set_height(h);
        enc.set_format(Pixel::YUV420P);
        enc.set_time_base(time_base);
        enc.set_frame_rate(Some(rate));
        if global_header {
            enc.set_flags(codec::Flags::GLOBAL_HEADER);
        }
        let encoder = enc.open_as(codec).map_err(err)?;
        stream.set_parameters(&encoder);
        stream.set_time_base(time_base);
        stream.set_rate(rate);
        stream.set_avg_frame_rate(rate);
        output.write_header().map_err(err)?;
        let stream_time_base = output.stream(0).map_or(time_base, |s| s.time_base());
        let scaler =
            scaling::Context::get(Pixel::RGB24, w, h, Pixel::YUV420P, w, h, Flags::BILINEAR)
                .map_err(err)?;
        Ok(Self {
            path: path.to_owned(),
            output,
            encoder,
            scaler,
            size: (width, height),
            encoded: (w, h),
            time_base,
            stream_time_base,
            frames: 0,
        })
    }

    /// Appends one frame (it must have the size given to [`VideoWriter::create`]; another
    /// size is scaled to it).
    pub fn write(&mut self, image: &RgbImage) -> Result<()> {
        let err = |source| VideoError::Write { path: self.path.clone(), source };
        let image = if image.dimensions() == self.size {
            std::borrow::Cow::Borrowed(image)
        } else {
            std::borrow::Cow::Owned(image::imageops::resize(
                image,
                self.size.0,
                self.size.1,
                image::imageops::FilterType::Triangle,
            ))
        };
        let (w, h) = self.size;
        let (ew, eh) = self.encoded;
        let mut rgb = frame::Video::new(Pixel::RGB24, ew, eh);
        let stride = rgb.stride(0);
        let row = 3 * w as usize;
        let data = rgb.data_mut(0);
        for y in 0..eh as usize {
            // The padding row repeats the last one; the padding column the last pixel.
            let src_y = y.min(h as usize - 1);
            let src = &image.as_raw()[src_y * row..(src_y + 1) * row];
            let dst = &mut data[y * stride..y * stride + 3 * ew as usize];
            dst[..row].copy_from_slice(src);
            if ew > w {
                dst[row..].copy_from_slice(&src[row - 3..]);
            }
        }
        let mut yuv = frame::Video::empty();
        self.scaler.run(&rgb, &mut yuv).map_err(err)?;
        yuv.set_pts(Some(self.frames));
        self.frames += 1;
        self.encoder.send_frame(&yuv).map_err(err)?;
        self.drain()
    }

    /// Flushes the encoder and writes the container's trailer; returns the frames written.
    pub fn finish(mut self) -> Result<i64> {
        let err = |source| VideoError::Write { path: self.path.clone(), source };
        self.encoder.send_eof().map_err(err)?;
        self.drain()?;
        self.output
            .write_trailer()
            .map_err(|source| VideoError::Write { path: self.path.clone(), source })?;
        Ok(self.frames)
    }

    fn drain(&mut self) -> Result<()> {
        let mut packet = Packet::empty();
        while self.encoder.receive_packet(&mut packet).is_ok() {
            packet.set_stream(0);
            packet.rescale_ts(self.time_base, self.stream_time_base);
            packet
                .write_interleaved(&mut self.output)
                .map_err(|source| VideoError::Write { path: self.path.clone(), source })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Source, VideoReader};

    #[test]
    fn written_frames_read_back_with_their_rate_size_and_colours() {
        let dir = tempfile::tempdir().unwrap();
        for (w, h, expected) in [(64, 48, (64, 48)), (65, 49, (66, 50))] {
            let path = dir.path().join(format!("clip{w}.mp4"));
            let colours =
                [[200u8, 30, 30], [30, 200, 30], [30, 30, 200], [120, 120, 120], [250, 250, 10]];
            let mut writer = VideoWriter::create(&path, w, h, 10.0).unwrap();
            for c in colours {
                writer.write(&RgbImage::from_pixel(w, h, image::Rgb(c))).unwrap();
            }
            assert_eq!(writer.finish().unwrap(), 5);
            let mut reader = VideoReader::open(&Source::File(path.clone())).unwrap();
            assert!((reader.frame_rate().unwrap() - 10.0).abs() < 1e-6);
            let mut k = 0;
            while let Some(frame) = reader.next_frame().unwrap() {
                assert_eq!(frame.image.dimensions(), expected);
                assert!((frame.time - k as f64 / 10.0).abs() < 1e-6, "{}", frame.time);
                let centre = frame.image.get_pixel(expected.0 / 2, expected.1 / 2).0;
                for (got, want) in centre.iter().zip(colours[k]) {
                    assert!(
                        (i32::from(*got) - i32::from(want)).abs() <= 12,
                        "{centre:?} vs {:?}",
                        colours[k]
                    );
                }
                k += 1;
            }
            assert_eq!(k, 5);
        }
    }
}
