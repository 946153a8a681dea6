//! What detection reads: image files and folders (one level, name order: recursion would
//! silently pick up earlier outputs such as `runs/`) to a list of jobs, each with its image id
//! and an output name no other input shares; and batches of them decoded and letterboxed.
//! Image files are JPEG or PNG, the content deciding, not the extension.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use image::RgbImage;
use rayon::prelude::*;
use yolo3_model::InputBatch;

/// Extensions taken from folders.
const FOLDER_EXTENSIONS: &[&str] = &["jpg", "jpeg", "png"];

/// An input image and where its outputs go.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImageJob {
    /// The image file.
    pub path: PathBuf,
    /// Its image id in `predictions.json` and `images.json`.
    pub id: i64,
    /// Output file name (unique within the run; `.png` added to other extensions).
    pub out_name: String,
    /// The name it would have had, when another input took it first (`c/x.png` and `b/x.png`,
    /// or `a.png` and `a.jpg`, which would share `labels/a.txt`): `out_name` then has a `_2`,
    /// `_3`, ... suffix.
    pub taken: Option<String>,
}

/// An input that is not read, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The path as given.
    pub path: PathBuf,
    /// Why, in one line.
    pub reason: String,
}

/// Expands the inputs that are glob patterns (`*`, `?`, `[...]`) and no existing path, as a
/// shell would (sorted); a pattern that matches nothing stays, to be reported as missing.
#[must_use]
pub fn expand_globs(inputs: &[PathBuf]) -> Vec<PathBuf> {
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

/// Expands folders (non-recursive, sorted, `.jpg`, `.jpeg` and `.png` files) and keeps files;
/// a path that is missing, or not a regular file, is returned as skipped.
#[must_use]
pub fn collect_inputs(inputs: &[PathBuf]) -> (Vec<PathBuf>, Vec<Skipped>) {
    let mut out = Vec::new();
    let mut skipped = Vec::new();
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
                Err(e) => skipped.push(Skipped {
                    path: input.clone(),
                    reason: format!("cannot list the folder: {e}"),
                }),
            }
        } else {
            match yolo3_io::fsio::check_regular(input) {
                Ok(_) => out.push(input.clone()),
                Err(e) => skipped.push(Skipped { path: input.clone(), reason: e.to_string() }),
            }
        }
    }
    (out, skipped)
}

/// Image ids and unique output names (see [`ImageJob`]).
#[must_use]
pub fn plan_jobs(paths: Vec<PathBuf>) -> Vec<ImageJob> {
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
            let taken = (out_name != name).then_some(name);
            ImageJob { path, id, out_name, taken }
        })
        .collect()
}

/// One batch of jobs read and letterboxed for the network.
pub struct ReadBatch {
    /// The jobs whose images were read, in order (indices into the job list).
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
pub(crate) fn read_batch(jobs: &[ImageJob], chunk: &[usize], side: u32) -> ReadBatch {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(names: &[&str]) -> Vec<PathBuf> {
        names.iter().map(PathBuf::from).collect()
    }

    #[test]
    fn ids_are_the_stems_when_all_are_distinct_integers() {
        let jobs = plan_jobs(paths(&["a/000000397133.jpg", "b/12.png"]));
        assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [397_133, 12]);
        let jobs = plan_jobs(paths(&["a/1.jpg", "b/1.png", "c/2.png"]));
        assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [0, 1, 2]);
        let jobs = plan_jobs(paths(&["a/1.jpg", "b/cat.png"]));
        assert_eq!(jobs.iter().map(|j| j.id).collect::<Vec<_>>(), [0, 1]);
    }

    #[test]
    fn output_names_are_unique_and_say_what_they_replace() {
        let jobs = plan_jobs(paths(&["c/x.png", "b/x.png", "d/photo.bmp"]));
        let names: Vec<&str> = jobs.iter().map(|j| j.out_name.as_str()).collect();
        assert_eq!(names, ["x.png", "x_2.png", "photo.bmp.png"]);
        assert_eq!(jobs[0].taken, None);
        assert_eq!(jobs[1].taken.as_deref(), Some("x.png"));
    }

    #[test]
    fn folders_give_their_images_in_name_order_and_missing_paths_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        for name in ["b.png", "a.JPG", "notes.txt", "c.jpeg"] {
            std::fs::write(tmp.path().join(name), b"x").unwrap();
        }
        std::fs::create_dir(tmp.path().join("sub")).unwrap();
        std::fs::write(tmp.path().join("sub/d.png"), b"x").unwrap();
        let missing = tmp.path().join("missing.png");
        let (found, skipped) = collect_inputs(&[tmp.path().to_owned(), missing.clone()]);
        let names: Vec<_> =
            found.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
        assert_eq!(names, ["a.JPG", "b.png", "c.jpeg"]);
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].path, missing);
    }
}
