//! Detection on a video file, a camera or a network stream: frames in batches through the same
//! detector as images, an annotated video at the source's frame rate (divided by
//! `--vid-stride`) and a JSON lines file with one line per processed frame:
//! `{"frame": i, "time": seconds, "boxes": [{"class", "name", "score", "bbox": [x, y, w, h]}]}`
//! (the `predictions.json` rounding). A stream that drops is reopened by the reader; when it
//! cannot be, or a file is damaged, what was processed so far is kept and the error is
//! reported.

use std::io::Write as _;
use std::path::Path;
use std::time::Instant;

use serde::Serialize;
use yolo3_io::fsio::FileError;
use yolo3_model::{DecodeOptions, Detector};
use yolo3_video::{Source, VideoReader, VideoWriter};

use crate::error::{PredictError, Result};
use crate::outputs::{coco_box, drawn, ImageOutputs};

/// What detection on one video needs.
pub struct VideoJob<'a> {
    /// The detector.
    pub detector: &'a Detector,
    /// Its input side.
    pub side: u32,
    /// Decode options.
    pub options: &'a DecodeOptions,
    /// Which outputs (`no_images` leaves the video out; `line_width` draws its boxes).
    pub saving: &'a ImageOutputs,
    /// Frames per forward pass.
    pub batch: usize,
    /// Every `stride`-th frame is processed.
    pub stride: u64,
}

/// One box of a JSON line.
#[derive(Serialize)]
struct LineBox<'a> {
    class: usize,
    name: &'a str,
    score: f64,
    bbox: [f64; 4],
}

/// One JSON line.
#[derive(Serialize)]
struct Line<'a> {
    frame: u64,
    time: f64,
    boxes: Vec<LineBox<'a>>,
}

/// What a video run did.
#[derive(Clone, Copy, Debug)]
pub struct VideoSummary {
    /// Frames processed.
    pub frames: u64,
    /// Boxes found.
    pub boxes: usize,
    /// Wall time.
    pub seconds: f64,
}

/// Runs `job` over `source`, writing `<stem>.mp4` (unless `--no-images`) and `<stem>.jsonl`
/// into `out_dir`. An error after some frames leaves their outputs complete; so does Ctrl-C,
/// which ends the frames (the reader returns no more) and so closes the video properly.
///
/// # Errors
/// [`PredictError::VideoStopped`] when the source failed after some frames (their outputs are
/// complete); any other error before the first output.
pub fn detect_video(
    source: &Source,
    stem: &str,
    out_dir: &Path,
    job: &VideoJob<'_>,
) -> Result<VideoSummary> {
    let mut reader = VideoReader::open(source)?;
    let fps = reader.frame_rate().unwrap_or(30.0) / job.stride as f64;
    let lines_path = out_dir.join(format!("{stem}.jsonl"));
    let video_path = out_dir.join(format!("{stem}.mp4"));
    let mut lines =
        std::fs::File::create_new(&lines_path).map_err(FileError::on("creating", &lines_path))?;
    let mut writer: Option<VideoWriter> = None;
    let started = Instant::now();
    let mut summary = VideoSummary { frames: 0, boxes: 0, seconds: 0.0 };
    let names = job.detector.class_names();
    let mut failure = None;
    loop {
        // Frame numbers and times beside the images, which go to the detector as they are.
        let mut batch: Vec<(u64, f64)> = Vec::with_capacity(job.batch);
        let mut images: Vec<image::RgbImage> = Vec::with_capacity(job.batch);
        while batch.len() < job.batch {
            match reader.next_frame() {
                Ok(Some(f)) if f.index % job.stride == 0 => {
                    batch.push((f.index, f.time));
                    images.push(f.image);
                }
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if batch.is_empty() {
            break;
        }
        let detections = job.detector.predict(&images, job.side, job.options)?;
        // A batch's lines go out in one write, so the file only ever ends with a whole line,
        // even when the process is killed.
        let mut text = Vec::new();
        for ((&(index, time), image), dets) in batch.iter().zip(&images).zip(&detections) {
            if !job.saving.no_images {
                let picture = drawn(image, dets, names, job.saving);
                if writer.is_none() {
                    let (w, h) = picture.dimensions();
                    writer = Some(VideoWriter::create(&video_path, w, h, fps)?);
                }
                writer.as_mut().expect("created above").write(&picture)?;
            }
            let boxes = dets
                .iter()
                .map(|d| {
                    let (bbox, score) = coco_box(d);
                    LineBox {
                        class: d.class,
                        name: names.get(d.class).map_or("?", String::as_str),
                        score,
                        bbox,
                    }
                })
                .collect();
            let line = Line { frame: index, time: (time * 1e6).round() / 1e6, boxes };
            serde_json::to_writer(&mut text, &line)
                .map_err(|source| PredictError::Json { path: lines_path.clone(), source })?;
            text.push(b'\n');
            summary.frames += 1;
            summary.boxes += dets.len();
        }
        lines.write_all(&text).map_err(FileError::on("writing", &lines_path))?;
        if failure.is_some() {
            break;
        }
    }
    if let Some(w) = writer {
        w.finish()?;
    }
    summary.seconds = started.elapsed().as_secs_f64();
    match failure {
        Some(source_error) => Err(PredictError::VideoStopped {
            frames: summary.frames,
            source_name: source.name(),
            out_dir: out_dir.to_owned(),
            source: source_error,
        }),
        None => Ok(summary),
    }
}
