//! `yolo3 detect`: run a detector over images and folders and write what it found.
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

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context as _};
use image::RgbImage;
use rayon::prelude::*;
use serde::Serialize;
use yolo3_data::ImageSize;
use yolo3_model::{DetectOptions, Detection};
use yolo3_viz::{annotate, palette, AnnotateOptions, Annotation};

use crate::args::{DeviceArg, Global};
use crate::model_load::{load_detector, ModelArgs};

/// Extensions taken from folders.
const FOLDER_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

/// `yolo3 detect`.
#[derive(Debug, clap::Args)]
pub struct DetectArgs {
    /// Images (JPEG, PNG) and folders of images (not searched recursively).
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
    /// At most this many boxes per class and image, 1-100000 (keras-yolo3: 20).
    #[arg(long, default_value_t = 100, value_parser = crate::ranges::count(1, 100_000))]
    max_boxes: usize,
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
}

/// One entry of `predictions.json`.
#[derive(Debug, Serialize)]
struct Prediction {
    image_id: i64,
    category_id: usize,
    bbox: [f64; 4],
    score: f64,
}

/// One entry of `images.json`.
#[derive(Debug, Serialize)]
struct ImageEntry {
    id: i64,
    file_name: String,
    width: u32,
    height: u32,
}

/// An input image and where its outputs go.
struct Job {
    path: PathBuf,
    id: i64,
    /// Output file name (unique within the run).
    out_name: String,
}

/// What was written for one image.
struct ImageResult {
    entry: ImageEntry,
    predictions: Vec<Prediction>,
    /// A write error (the image was detected, but its outputs failed).
    error: Option<String>,
}

// main.rs hands the parsed arguments over by value.
#[allow(clippy::needless_pass_by_value)]
pub fn run(args: DetectArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let device = args.device.device()?;
    let (paths, mut failures) = collect_inputs(&args.inputs);
    if paths.is_empty() {
        bail!("no images found in {}", join_paths(&args.inputs));
    }
    let detector = load_detector(&args.model, device)?;
    let side = detector.input_side(args.input, args.batch)?;
    let options = DetectOptions {
        score_threshold: args.score_threshold,
        iou_threshold: args.iou_threshold,
        max_boxes: args.max_boxes,
    };
    let jobs = plan_jobs(paths);
    let out_dir = yolo3_train::run_dir::next_run_dir(&args.project, &args.name)
        .context("creating the run folder")?;
    if args.save_txt {
        let labels = out_dir.join("labels");
        std::fs::create_dir_all(&labels)
            .with_context(|| format!("creating {}", labels.display()))?;
    }
    tracing::info!(images = jobs.len(), input = side, out = %out_dir.display(), "detecting");

    let quiet = !global.chatty();
    let bar = crate::progress::bar(jobs.len() as u64, quiet);
    bar.set_prefix("detect");
    let started = Instant::now();
    let mut results: Vec<ImageResult> = Vec::with_capacity(jobs.len());
    let job_indices: Vec<usize> = (0..jobs.len()).collect();
    for chunk in job_indices.chunks(args.batch) {
        let decoded: Vec<Result<RgbImage, String>> =
            chunk.par_iter().map(|&j| load_image(&jobs[j].path)).collect();
        let mut batch = Vec::with_capacity(decoded.len());
        let mut images = Vec::with_capacity(decoded.len());
        for (r, &j) in decoded.into_iter().zip(chunk) {
            match r {
                Ok(image) => {
                    batch.push(&jobs[j]);
                    images.push(image);
                }
                Err(message) => {
                    bar.suspend(|| {
                        eprintln!("warning: skipping {}: {message}", jobs[j].path.display());
                    });
                    failures += 1;
                }
            }
        }
        let detections = detector.predict(&images, side, &options)?;
        let names = detector.class_names();
        let written: Vec<ImageResult> = batch
            .par_iter()
            .zip(&images)
            .zip(&detections)
            .map(|((job, image), dets)| write_outputs(job, image, dets, names, &out_dir, &args))
            .collect();
        for r in written {
            if let Some(e) = &r.error {
                bar.suspend(|| eprintln!("warning: {e}"));
                failures += 1;
            }
            results.push(r);
        }
        bar.inc(chunk.len() as u64);
    }
    let seconds = started.elapsed().as_secs_f64();
    bar.finish_and_clear();

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

/// Expands folders (non-recursive, sorted) and keeps files; a missing path is reported and
/// counted as a failure.
fn collect_inputs(inputs: &[PathBuf]) -> (Vec<PathBuf>, usize) {
    let mut out = Vec::new();
    let mut failures = 0;
    for input in inputs {
        if input.is_dir() {
            match std::fs::read_dir(input) {
                Ok(rd) => {
                    let mut files: Vec<PathBuf> = rd
                        .filter_map(Result::ok)
                        .map(|e| e.path())
                        .filter(|p| {
                            p.is_file()
                                && p.extension().and_then(|e| e.to_str()).is_some_and(|e| {
                                    FOLDER_EXTENSIONS.iter().any(|x| e.eq_ignore_ascii_case(x))
                                })
                        })
                        .collect();
                    files.sort();
                    out.extend(files);
                }
                Err(e) => {
                    eprintln!("warning: skipping {}: cannot list the folder: {e}", input.display());
                    failures += 1;
                }
            }
        } else {
            match yolo3_core::fsio::check_regular(input) {
                Ok(_) => out.push(input.clone()),
                Err(e) => {
                    eprintln!("warning: skipping {}: {e}", input.display());
                    failures += 1;
                }
            }
        }
    }
    (out, failures)
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Image ids and unique output names (see the module docs).
fn plan_jobs(paths: Vec<PathBuf>) -> Vec<Job> {
    let stems: Vec<Option<i64>> = paths
        .iter()
        .map(|p| p.file_stem().and_then(|s| s.to_str()).and_then(|s| s.parse::<i64>().ok()))
        .collect();
    let distinct: HashSet<i64> = stems.iter().flatten().copied().collect();
    let use_stems = stems.iter().all(Option::is_some) && distinct.len() == stems.len();
    let mut names = yolo3_data::UniqueNames::new();
    paths
        .into_iter()
        .enumerate()
        .map(|(i, path)| {
            let id = if use_stems { stems[i].unwrap_or(i as i64) } else { i as i64 };
            let mut name = path
                .file_name()
                .map_or_else(|| format!("{i}.png"), |n| n.to_string_lossy().into_owned());
            let ext =
                Path::new(&name).extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
            if !matches!(ext.as_deref(), Some("png" | "jpg" | "jpeg")) {
                name.push_str(".png");
            }
            let out_name = names.claim(&name);
            if out_name != name {
                eprintln!(
                    "warning: the outputs of {} are named {out_name} ({name} is taken by another input)",
                    path.display()
                );
            }
            Job { path, id, out_name }
        })
        .collect()
}

/// Decodes one image; the error is a one-line reason.
fn load_image(path: &Path) -> Result<RgbImage, String> {
    let image = yolo3_data::load_rgb(path).map_err(|e| format!("{e:#}"))?;
    if image.width() == 0 || image.height() == 0 {
        return Err("empty image".into());
    }
    Ok(image)
}

/// Writes the annotated image and labels of one image and returns its predictions.
fn write_outputs(
    job: &Job,
    image: &RgbImage,
    dets: &[Detection],
    names: &[String],
    out_dir: &Path,
    args: &DetectArgs,
) -> ImageResult {
    let (w, h) = image.dimensions();
    let round = |v: f64, digits: i32| {
        let f = 10f64.powi(digits);
        (v * f).round() / f
    };
    let predictions = dets
        .iter()
        .map(|d| Prediction {
            image_id: job.id,
            category_id: d.class,
            bbox: [
                round(f64::from(d.bbox.x_min), 3),
                round(f64::from(d.bbox.y_min), 3),
                round(f64::from(d.bbox.width()), 3),
                round(f64::from(d.bbox.height()), 3),
            ],
            score: round(f64::from(d.score), 5),
        })
        .collect();
    let mut errors = Vec::new();
    if !args.no_images {
        let annotations: Vec<Annotation> = dets
            .iter()
            .map(|d| Annotation {
                bbox: d.bbox,
                label: format!("{} {:.2}", names.get(d.class).map_or("?", String::as_str), d.score),
                color: palette::color(d.class),
            })
            .collect();
        let mut drawn = image.clone();
        annotate(&mut drawn, &annotations, &AnnotateOptions::default());
        let path = out_dir.join(&job.out_name);
        if let Err(e) = yolo3_viz::save_image(&drawn, &path) {
            errors.push(format!("writing {}: {e}", path.display()));
        }
    }
    if args.save_txt {
        let mut text = String::new();
        for d in dets {
            yolo3_data::push_yolo_line(
                &mut text,
                d.class,
                &d.bbox,
                ImageSize { width: w, height: h },
            );
            if args.save_conf {
                let _ = write!(text, " {:.5}", d.score);
            }
            text.push('\n');
        }
        let stem = Path::new(&job.out_name)
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let path = out_dir.join("labels").join(format!("{stem}.txt"));
        if let Err(e) = std::fs::write(&path, text) {
            errors.push(format!("writing {}: {e}", path.display()));
        }
    }
    ImageResult {
        entry: ImageEntry { id: job.id, file_name: job.out_name.clone(), width: w, height: h },
        predictions,
        error: (!errors.is_empty()).then(|| errors.join("; ")),
    }
}

/// Writes pretty JSON atomically.
fn write_json<T: Serialize + ?Sized>(path: &Path, value: &T) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value).context("serialising JSON")?;
    yolo3_train::run_dir::write_atomic(path, text.as_bytes())
        .with_context(|| format!("writing {}", path.display()))
}
