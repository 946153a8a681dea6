//! What `detect` reads: image files and folders (one level, name order) to a list of jobs,
//! each with its image id and an output name no other input shares.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use image::RgbImage;
use rayon::prelude::*;
use yolo3_model::InputBatch;

/// Extensions taken from folders.
const FOLDER_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

/// An input image and where its outputs go.
pub(super) struct Job {
    pub path: PathBuf,
    pub id: i64,
    /// Output file name (unique within the run).
    pub out_name: String,
}

/// Expands the inputs that are glob patterns (`*`, `?`, `[...]`) and no existing path, as a
/// shell would (sorted); a pattern that matches nothing stays, to be reported as missing.
pub(super) fn expand_globs(inputs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::with_capacity(inputs.len());
    for input in inputs {
        let text = input.to_string_lossy();
        let pattern = !input.exists() && text.contains(['*', '?', '[']);
        let matches: Vec<PathBuf> = if pattern {
            glob::glob(&text).map_or_else(|_| Vec::new(), |m| m.filter_map(Result::ok).collect())
        } else {
            Vec::new()
        };
        if matches.is_empty() {
            out.push(input.clone());
        } else {
            let mut matches = matches;
            matches.sort();
            out.extend(matches);
        }
    }
    out
}

/// Expands folders (non-recursive, sorted) and keeps files; a missing path is reported and
/// counted as a failure.
pub(super) fn collect_inputs(inputs: &[PathBuf]) -> (Vec<PathBuf>, usize) {
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

pub(super) fn join_paths(paths: &[PathBuf]) -> String {
    paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
}

/// Image ids and unique output names (see the module docs).
pub(super) fn plan_jobs(paths: Vec<PathBuf>) -> Vec<Job> {
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

/// One batch of jobs read and letterboxed for the network.
pub(super) struct ReadBatch {
    /// The jobs whose images were read, in order.
    pub jobs: Vec<usize>,
    /// Their images.
    pub images: Vec<RgbImage>,
    /// The images letterboxed.
    pub input: InputBatch,
    /// The jobs whose image could not be read, and why.
    pub skipped: Vec<(usize, String)>,
}

/// Decodes the images of `chunk` (indices into `jobs`, one image per worker thread) and
/// letterboxes those that could be read to `side`.
pub(super) fn read_batch(jobs: &[Job], chunk: &[usize], side: u32) -> ReadBatch {
    let decoded: Vec<Result<RgbImage, String>> =
        chunk.par_iter().map(|&j| load_image(&jobs[j].path)).collect();
    let mut read = Vec::with_capacity(chunk.len());
    let mut images = Vec::with_capacity(chunk.len());
    let mut skipped = Vec::new();
    for (r, &j) in decoded.into_iter().zip(chunk) {
        match r {
            Ok(image) => {
                read.push(j);
                images.push(image);
            }
            Err(message) => skipped.push((j, message)),
        }
    }
    let input = InputBatch::letterbox(&images, side);
    ReadBatch { jobs: read, images, input, skipped }
}

/// Decodes one image; the error is a one-line reason.
fn load_image(path: &Path) -> Result<RgbImage, String> {
    let image = yolo3_data::load_rgb(path).map_err(|e| format!("{e:#}"))?;
    if image.width() == 0 || image.height() == 0 {
        return Err("empty image".into());
    }
    Ok(image)
}
