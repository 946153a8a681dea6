//! `yolo3 detect`: run a detector over images, folders, videos, cameras and streams and write
//! what it found.
//!
//! Video files (by extension), `/dev/videoN` and `rtsp://` / `http://` ... URLs go through
//! FFmpeg (`yolo3-video`; see `yolo3_predict::video` for their outputs, `<stem>.mp4` and
//! `<stem>.jsonl`); quoted glob patterns (`'photos/*.jpg'`) are expanded as a shell would.
//! The work is `yolo3_predict`'s; this command parses the flags, shows progress and prints
//! what was skipped.
//!
//! Inputs are image files (JPEG, PNG; the content decides, not the extension) and folders,
//! whose `.jpg`/`.jpeg`/`.png` files are taken in name order **without** descending into
//! sub-folders (a folder of images is the common case; recursion would silently pick up
//! earlier outputs such as `runs/`).
//!
//! Images go through the validation path of training: keras-yolo3's letterbox (bicubic, grey
//! canvas) to a square `--input`, `[0, 1]` CHW, inference-mode forward in batches, then
//! `yolo3-core`'s `decode` (keras' `yolo_eval`: letterbox correction, per-class NMS). Boxes are
//! clipped to the image. Outputs, in `runs/detect/exp{,2,...}`:
//! * the annotated images, under their own file names; an image whose stem is already taken
//!   (`c/x.png` and `b/x.png`, or `a.png` and `a.jpg`, which would share `labels/a.txt`) gets a
//!   `_2`, `_3`, ... suffix and a warning;
//! * `predictions.json`: a COCO results list `{image_id, category_id, bbox: [x, y, w, h],
//!   score}` in original-image pixels. `category_id` is the **0-based class index**;
//!   `image_id` is the file stem when every stem is a distinct integer (COCO's
//!   `000000397133.jpg`), otherwise the image's position in the input list;
//! * `images.json`: `{id, file_name, width, height}` of every image read, to join the two;
//! * with `--save-txt`, `labels/<stem>.txt`: `class cx cy w h` normalised to the image
//!   (`--save-conf` appends the score), the YOLO label format.
//!
//! An image that cannot be read is reported and skipped; the rest are processed and the exit
//! code is non-zero at the end.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context as _};
use yolo3_model::{DecodeOptions, Detector};
use yolo3_predict::{
    collect_inputs, crop_dirs, detect_images, detect_video, expand_globs, plan_jobs, write_json,
    ImageEntry, ImageJob, ImageOutputs, ImageResult, Prediction, Tiling, VideoJob,
};
use yolo3_video::Source;

use crate::args::{DeviceArg, Global};
use crate::model_load::{load_detector, ModelArgs};

/// Runs of more batches than this warm the network up before the first (see
/// `Detector::warm_up`); a single image is not made to pay for two forward passes.
const WARM_UP_AFTER: usize = 2;

/// `yolo3 detect`.
// Independent on/off flags of the command line.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, clap::Args)]
pub(crate) struct DetectArgs {
    /// Images (JPEG, PNG), folders of images (not searched recursively), glob patterns, video
    /// files, /dev/videoN cameras and rtsp:// or http:// streams.
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
    #[command(flatten)]
    model: ModelArgs,
    /// Network input side in pixels, a multiple of 32 up to 8192 (default: the checkpoint's training
    /// input, else the cfg's width).
    #[arg(long, value_parser = crate::ranges::input_side())]
    input: Option<u32>,
    /// Images per forward pass (1-1024).
    #[arg(long, default_value_t = 8, value_parser = crate::ranges::count(1, 1024))]
    batch: usize,
    /// Keep boxes whose objectness x class probability is at least this, in [0, 1] (keras-yolo3: 0.6).
    #[arg(long, visible_alias = "conf", default_value_t = 0.25, value_parser = crate::ranges::unit)]
    score_threshold: f64,
    /// NMS: drop a box whose IoU with a kept box of its class exceeds this, in [0, 1] (keras-yolo3: 0.5).
    #[arg(long, visible_alias = "iou", default_value_t = 0.45, value_parser = crate::ranges::unit)]
    iou_threshold: f64,
    /// At most this many boxes per class and image (per image with --agnostic-nms), 1-100000
    /// (keras-yolo3: 20).
    #[arg(long, default_value_t = 100, value_parser = crate::ranges::count(1, 100_000))]
    max_boxes: usize,
    /// Keep only these classes: comma-separated class names or 0-based indices (ultralytics'
    /// --classes; here --classes names the class-name file).
    #[arg(long, value_delimiter = ',', value_name = "CLASS,...")]
    class_filter: Vec<String>,
    /// One NMS over all classes: overlapping boxes of different classes suppress each other.
    #[arg(long)]
    agnostic_nms: bool,
    #[command(flatten)]
    device: DeviceArg,
    /// Parent folder of the run folders.
    #[arg(long, default_value = "runs/detect")]
    project: PathBuf,
    /// Run folder name (exp, exp2, ... when it exists).
    #[arg(long, default_value = "exp")]
    name: String,
    /// Also write YOLO txt labels (labels/<stem>.txt, `class cx cy w h`, normalised).
    #[arg(long)]
    save_txt: bool,
    /// With --save-txt, append each box's score to its line.
    #[arg(long)]
    save_conf: bool,
    /// Do not write annotated images (predictions and labels only).
    #[arg(long)]
    no_images: bool,
    /// Also write each box's pixels, crops/<class>/<stem>_<k>.<ext>.
    #[arg(long)]
    save_crop: bool,
    /// Box outline width in pixels, 1-100 (default: from the image size).
    #[arg(long, value_parser = crate::ranges::count(1, 100))]
    line_width: Option<usize>,
    /// Videos: detect on every N-th frame (1-1000); the output video has the source's frame
    /// rate divided by N.
    #[arg(long, default_value_t = 1, value_parser = crate::ranges::count(1, 1000))]
    vid_stride: usize,
    #[command(flatten)]
    tile: crate::args::TileArgs,
}

#[allow(clippy::needless_pass_by_value)]
pub(crate) fn run(args: DetectArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let device = args.device.device()?;
    let inputs = expand_globs(&args.inputs);
    let (videos, image_inputs): (Vec<Option<Source>>, Vec<&PathBuf>) =
        inputs.iter().map(|p| (p.to_str().and_then(Source::classify), p)).unzip();
    let image_inputs: Vec<PathBuf> = videos
        .iter()
        .zip(image_inputs)
        .filter(|(v, _)| v.is_none())
        .map(|(_, p)| p.clone())
        .collect();
    let videos: Vec<Source> = videos.into_iter().flatten().collect();
    let (paths, skipped) = collect_inputs(&image_inputs);
    for s in &skipped {
        eprintln!("warning: skipping {}: {}", s.path.display(), s.reason);
    }
    let mut failures = skipped.len();
    if paths.is_empty() && videos.is_empty() {
        let given: Vec<String> = args.inputs.iter().map(|p| p.display().to_string()).collect();
        bail!("no images or videos found in {}", given.join(", "));
    }
    let detector = load_detector(&args.model, device)?;
    let side = detector.input_side(args.input, args.batch)?;
    let options = DecodeOptions {
        score_threshold: args.score_threshold,
        iou_threshold: args.iou_threshold,
        max_boxes: args.max_boxes,
        agnostic: args.agnostic_nms,
        classes: class_filter(&args.class_filter, detector.class_names())?,
    };
    let saving = ImageOutputs {
        no_images: args.no_images,
        save_txt: args.save_txt,
        save_conf: args.save_conf,
        line_width: args.line_width.map(|w| w as u32),
        crop_dirs: args.save_crop.then(|| crop_dirs(detector.class_names())),
    };
    let jobs = plan_jobs(paths);
    for job in &jobs {
        if let Some(taken) = &job.taken {
            eprintln!(
                "warning: the outputs of {} are named {} ({taken} is taken by another input)",
                job.path.display(),
                job.out_name
            );
        }
    }
    if !videos.is_empty() || jobs.len() > WARM_UP_AFTER * args.batch {
        // What the first batch pays once is paid here, before the frames or the timing.
        detector.warm_up(side, args.batch).context("warming the network up")?;
    }
    let out_dir = yolo3_io::run_folder::create(&args.project, &args.name)
        .context("creating the run folder")?;
    if args.save_txt {
        let labels = out_dir.join("labels");
        std::fs::create_dir_all(&labels)
            .with_context(|| format!("creating {}", labels.display()))?;
    }
    tracing::info!(images = jobs.len(), input = side, out = %out_dir.display(), "detecting");

    let quiet = !global.chatty();
    let (results, seconds) = if jobs.is_empty() {
        (Vec::new(), 0.0)
    } else {
        let tiling = args.tile.tiling();
        let run = ImageRun {
            jobs: &jobs,
            detector: &detector,
            side,
            options: &options,
            tiling: tiling.as_ref(),
        };
        run.detect(&saving, &out_dir, args.batch, quiet, &mut failures)?
    };
    let video_job = VideoJob {
        detector: &detector,
        side,
        options: &options,
        saving: &saving,
        batch: args.batch,
        stride: args.vid_stride as u64,
    };
    let mut stems = yolo3_data::UniqueNames::new();
    for source in &videos {
        if yolo3_io::interrupt::requested() {
            break;
        }
        let stem = stems.claim(&source.stem());
        match detect_video(source, &stem, &out_dir, &video_job) {
            Ok(v) if global.chatty() => eprintln!(
                "{}: {} frames (every {}), {} boxes in {:.2} s ({:.1} frames/s); {stem}.jsonl{}",
                source.name(),
                v.frames,
                args.vid_stride,
                v.boxes,
                v.seconds,
                v.frames as f64 / v.seconds.max(1e-9),
                if args.no_images { String::new() } else { format!(", {stem}.mp4") }
            ),
            Ok(_) => {}
            Err(e) => {
                eprintln!("warning: {e:#}");
                failures += 1;
            }
        }
    }
    if jobs.is_empty() {
        remove_if_empty(&out_dir);
        if failures > 0 {
            eprintln!("error: {failures} input(s) could not be processed (see the warnings above)");
            return Ok(ExitCode::FAILURE);
        }
        return Ok(ExitCode::SUCCESS);
    }

    let predictions: Vec<&Prediction> = results.iter().flat_map(|r| &r.predictions).collect();
    let images: Vec<&ImageEntry> = results.iter().map(|r| &r.entry).collect();
    write_json(&out_dir.join("predictions.json"), &predictions)?;
    write_json(&out_dir.join("images.json"), &images)?;

    if global.chatty() {
        let mut err = std::io::stderr().lock();
        let _ = writeln!(
            err,
            "{} images, {} boxes in {seconds:.2} s ({:.1} images/s at {side}x{side}); results in {}",
            results.len(),
            predictions.len(),
            results.len() as f64 / seconds.max(1e-9),
            out_dir.display()
        );
    }
    if failures > 0 {
        eprintln!("error: {failures} input(s) could not be processed (see the warnings above)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// The image part of a `detect` run.
struct ImageRun<'a> {
    jobs: &'a [ImageJob],
    detector: &'a Detector,
    side: u32,
    options: &'a DecodeOptions,
    tiling: Option<&'a Tiling>,
}

impl ImageRun<'_> {
    /// Detects on every job with a progress bar, writing each image's outputs: what was
    /// written per image and the seconds it took (after Ctrl-C, of the batches done).
    /// Unreadable images and failed writes are warned about and counted in `failures`.
    fn detect(
        &self,
        saving: &ImageOutputs,
        out_dir: &Path,
        batch: usize,
        quiet: bool,
        failures: &mut usize,
    ) -> anyhow::Result<(Vec<ImageResult>, f64)> {
        let bar = crate::progress::bar(self.jobs.len() as u64, quiet);
        bar.set_prefix("detect");
        let started = Instant::now();
        let mut results: Vec<ImageResult> = Vec::with_capacity(self.jobs.len());
        let names = self.detector.class_names();
        let (jobs, detector, side, options) = (self.jobs, self.detector, self.side, self.options);
        detect_images(jobs, detector, side, options, batch, self.tiling, |done| {
            for (j, message) in &done.read.skipped {
                bar.suspend(|| {
                    eprintln!("warning: skipping {}: {message}", self.jobs[*j].path.display());
                });
                *failures += 1;
            }
            for r in done.write(self.jobs, names, out_dir, saving) {
                if let Some(e) = &r.error {
                    bar.suspend(|| eprintln!("warning: {e}"));
                    *failures += 1;
                }
                results.push(r);
            }
            bar.inc((done.read.jobs.len() + done.read.skipped.len()) as u64);
            Ok::<_, anyhow::Error>(())
        })?;
        bar.finish_and_clear();
        Ok((results, started.elapsed().as_secs_f64()))
    }
}

/// Removes the run folder when nothing was written into it (every video failed to open), so
/// that a failed run leaves no empty `expN` behind.
fn remove_if_empty(out_dir: &std::path::Path) {
    let empty = std::fs::read_dir(out_dir).is_ok_and(|mut d| d.next().is_none());
    if empty && std::fs::remove_dir(out_dir).is_ok() {
        tracing::debug!("removed {}: nothing was written into it", out_dir.display());
    }
}

/// The class indices of `--class-filter`: each entry a class name or a 0-based index
/// (`None` when the flag is not given).
fn class_filter(entries: &[String], names: &[String]) -> anyhow::Result<Option<Vec<usize>>> {
    if entries.is_empty() {
        return Ok(None);
    }
    let classes = entries
        .iter()
        .map(|e| {
            let e = e.trim();
            names
                .iter()
                .position(|n| n == e)
                .or_else(|| e.parse::<usize>().ok().filter(|&i| i < names.len()))
                .with_context(|| {
                    format!(
                        "--class-filter {e:?}: not a class name or an index below {} (the model's classes: {})",
                        names.len(),
                        names.join(", ")
                    )
                })
        })
        .collect::<anyhow::Result<Vec<usize>>>()?;
    Ok(Some(classes))
}
