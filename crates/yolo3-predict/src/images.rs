//! Detection over image files: batches read and letterboxed on a second thread while the
//! network runs on the previous one; each batch's images and detections go to the caller,
//! which can write every image's outputs in parallel ([`BatchDetections::write`]).

use std::path::Path;

use rayon::prelude::*;
use yolo3_model::{DecodeOptions, DetectedBox, Detector};

use crate::error::PredictError;
use crate::inputs::{read_batch, ImageJob, ReadBatch};
use crate::outputs::{write_outputs, ImageOutputs, ImageResult};
use crate::tiles::Tiling;

/// A batch's images and what the detector found in them.
pub struct BatchDetections {
    /// The images read (and those skipped, with why).
    pub read: ReadBatch,
    /// Per image read, its detections in original-image pixels.
    pub detections: Vec<Vec<DetectedBox>>,
}

impl BatchDetections {
    /// Writes the outputs of each image of the batch into `out_dir`, in parallel; a failed
    /// write is in its image's result.
    #[must_use]
    pub fn write(
        &self,
        jobs: &[ImageJob],
        names: &[String],
        out_dir: &Path,
        outputs: &ImageOutputs,
    ) -> Vec<ImageResult> {
        self.read
            .jobs
            .par_iter()
            .zip(&self.read.images)
            .zip(&self.detections)
            .map(|((&j, image), dets)| {
                write_outputs(&jobs[j], image, dets, names, out_dir, outputs)
            })
            .collect()
    }
}

/// The threads that read ahead: as many as rayon's, at the idle scheduling class (Linux), so
/// that they run in the cores' gaps (the network's single-threaded steps, its threads' waits)
/// instead of taking a core from one of the network's threads, which makes the other wait for
/// it at the end of every parallel step. A network waiting for its batch leaves both cores to
/// them. `None` (read on rayon's pool) where the class or the pool is not to be had.
fn reader_pool() -> Option<rayon::ThreadPool> {
    #[cfg(target_os = "linux")]
    {
        rayon::ThreadPoolBuilder::new()
            .num_threads(rayon::current_num_threads())
            .thread_name(|i| format!("yolo3-read-{i}"))
            .start_handler(|_| idle_priority())
            .build()
            .ok()
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Puts the calling thread in Linux's `SCHED_IDLE` class (failure leaves it as it was).
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn idle_priority() {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: `param` is a valid sched_param for the duration of the call; pid 0 is the
    // calling thread.
    let done = unsafe { libc::sched_setscheduler(0, libc::SCHED_IDLE, &raw const param) };
    if done != 0 {
        tracing::debug!(
            "could not lower the reader's priority: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// Runs `detector` over `jobs` at input `side` in batches of `batch_size` (the next batch
/// read while the network runs on this one) and hands each batch to `each`, in order; with
/// `tiling`, each image's boxes are those of its tiles merged with the whole image's. Stops
/// between batches after Ctrl-C ([`yolo3_io::interrupt`]) or at the first error, the
/// detector's or `each`'s.
pub fn detect_images<E: From<PredictError>>(
    jobs: &[ImageJob],
    detector: &Detector,
    side: u32,
    options: &DecodeOptions,
    batch_size: usize,
    tiling: Option<&Tiling>,
    mut each: impl FnMut(BatchDetections) -> Result<(), E>,
) -> Result<(), E> {
    let job_indices: Vec<usize> = (0..jobs.len()).collect();
    std::thread::scope(|scope| -> Result<(), E> {
        // The next batch is read and letterboxed while the network runs on this one.
        let (ahead, batches) = std::sync::mpsc::sync_channel(1);
        scope.spawn(move || {
            let pool = reader_pool();
            for chunk in job_indices.chunks(batch_size) {
                let read = match &pool {
                    Some(pool) => pool.install(|| read_batch(jobs, chunk, side)),
                    None => read_batch(jobs, chunk, side),
                };
                if ahead.send(read).is_err() {
                    break; // the network side stopped on an error
                }
            }
        });
        for read in batches {
            if yolo3_io::interrupt::requested() {
                // Ctrl-C: what was detected so far is the caller's; leaving the loop drops the
                // channel, which stops the reading thread.
                break;
            }
            let mut detections =
                detector.predict_batch(&read.input, options).map_err(PredictError::from)?;
            if let Some(tiling) = tiling {
                for (dets, image) in detections.iter_mut().zip(&read.images) {
                    let whole = std::mem::take(dets);
                    *dets = tiling.detect(detector, image, whole, side, batch_size, options)?;
                }
            }
            each(BatchDetections { read, detections })?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use yolo3_model::ModelFiles;

    use super::*;
    use crate::inputs::plan_jobs;

    fn shared_models() -> PathBuf {
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/models"))
    }

    /// A picture with some structure for the network to respond to.
    fn picture(seed: u32, w: u32, h: u32) -> image::RgbImage {
        image::RgbImage::from_fn(w, h, |x, y| {
            let v = (x * 7 + y * 13 + seed * 31) % 256;
            image::Rgb([v as u8, (255 - v) as u8, ((x ^ y) % 256) as u8])
        })
    }

    #[test]
    fn batches_arrive_in_order_with_the_unreadable_images_named() {
        let models = shared_models();
        let files = ModelFiles::Darknet {
            cfg: models.join("cfg/yolov3-tiny-mini.cfg"),
            weights: models.join("weights/yolov3-tiny-mini.weights"),
        };
        let detector = Detector::load(&files, None, tch::Device::Cpu).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for (i, (w, h)) in [(64, 48), (80, 80), (0, 0), (50, 90), (96, 40)].into_iter().enumerate()
        {
            let path = tmp.path().join(format!("{i}.png"));
            if w == 0 {
                std::fs::write(&path, b"not a picture").unwrap();
            } else {
                picture(i as u32, w, h).save(&path).unwrap();
            }
            paths.push(path);
        }
        let jobs = plan_jobs(paths);
        let options = DecodeOptions { score_threshold: 0.0, ..DecodeOptions::default() };
        let out_dir = tmp.path().join("out");
        std::fs::create_dir(&out_dir).unwrap();
        let mut seen = Vec::new();
        let mut skipped = Vec::new();
        let mut written = Vec::new();
        detect_images(&jobs, &detector, 64, &options, 2, None, |done| {
            skipped.extend(done.read.skipped.iter().map(|(j, _)| *j));
            // What the pipeline found is what the detector finds on the same images.
            let direct = detector.predict(&done.read.images, 64, &options)?;
            assert_eq!(done.detections, direct);
            seen.extend(done.read.jobs.iter().copied());
            let outputs = ImageOutputs::default();
            written.extend(done.write(&jobs, detector.class_names(), &out_dir, &outputs));
            Ok::<_, PredictError>(())
        })
        .unwrap();
        assert_eq!(seen, [0, 1, 3, 4]);
        assert_eq!(skipped, [2]);
        assert_eq!(written.len(), 4);
        for r in &written {
            assert!(r.error.is_none(), "{:?}", r.error);
            assert!(out_dir.join(&r.entry.file_name).is_file());
        }
        assert_eq!((written[2].entry.width, written[2].entry.height), (50, 90));
    }
}
