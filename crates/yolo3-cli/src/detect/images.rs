//! `detect` on image files: batches read and letterboxed on a second thread while the network
//! runs on the previous one, then each image's outputs written in parallel.

use std::path::Path;
use std::time::Instant;

use rayon::prelude::*;
use yolo3_model::{DetectOptions, Detector};

use super::inputs::{read_batch, Job};
use super::outputs::{write_outputs, ImageResult, Saving};

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

/// Detection over the image jobs (the next batch read while the network runs on this one):
/// per image what was written, and the seconds it took; after Ctrl-C, of the batches done. Unreadable images and failed writes
/// are warned about and counted in `failures`.
#[allow(clippy::too_many_arguments)]
pub(super) fn detect_images(
    jobs: &[Job],
    detector: &Detector,
    side: u32,
    options: &DetectOptions,
    saving: &Saving,
    out_dir: &Path,
    batch_size: usize,
    quiet: bool,
    failures: &mut usize,
) -> anyhow::Result<(Vec<ImageResult>, f64)> {
    let bar = crate::progress::bar(jobs.len() as u64, quiet);
    bar.set_prefix("detect");
    let started = Instant::now();
    let mut results: Vec<ImageResult> = Vec::with_capacity(jobs.len());
    let job_indices: Vec<usize> = (0..jobs.len()).collect();
    std::thread::scope(|scope| -> anyhow::Result<()> {
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
            if yolo3_core::interrupt::requested() {
                // Ctrl-C: what was detected so far is written by the caller; leaving the loop
                // drops the channel, which stops the reading thread.
                break;
            }
            for (j, message) in &read.skipped {
                bar.suspend(|| {
                    eprintln!("warning: skipping {}: {message}", jobs[*j].path.display());
                });
                *failures += 1;
            }
            let detections = detector.predict_batch(&read.input, options)?;
            let names = detector.class_names();
            let written: Vec<ImageResult> = read
                .jobs
                .par_iter()
                .zip(&read.images)
                .zip(&detections)
                .map(|((&j, image), dets)| {
                    write_outputs(&jobs[j], image, dets, names, out_dir, saving)
                })
                .collect();
            for r in written {
                if let Some(e) = &r.error {
                    bar.suspend(|| eprintln!("warning: {e}"));
                    *failures += 1;
                }
                results.push(r);
            }
            bar.inc((read.jobs.len() + read.skipped.len()) as u64);
        }
        Ok(())
    })?;
    bar.finish_and_clear();
    Ok((results, started.elapsed().as_secs_f64()))
}
