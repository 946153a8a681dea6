//! The run's datasets: the synthetic set generated into the run folder, or annotation files in
//! any supported format, with a deterministic validation split when none is given.

use std::path::Path;

use yolo3_data::{generate, read_dataset, Dataset, OpenOptions, SyntheticOptions};

use crate::config::DataSource;
use crate::error::{Result, TrainError};

/// Training and validation datasets with the same classes.
#[derive(Debug)]
pub struct Splits {
    /// Training images.
    pub train: Dataset,
    /// Validation images.
    pub val: Dataset,
}

/// Reads (or generates) the datasets of a run whose folder is `run_dir`.
pub fn load_splits(source: &DataSource, run_dir: &Path, seed: u64) -> Result<Splits> {
    match source {
        DataSource::Synthetic { train_images, val_images, size, seed: data_seed } => {
            let dir = run_dir.join("data");
            let options = SyntheticOptions {
                images_train: *train_images,
                images_val: *val_images,
                size: *size,
                seed: *data_seed,
                ..SyntheticOptions::default()
            };
            // Generation is deterministic, so a resumed run regenerates the same files if they
            // were removed.
            let generated = if dir.join("train.txt").is_file() && dir.join("val.txt").is_file() {
                None
            } else {
                Some(generate(&dir, &options)?)
            };
            let classes = generated.map_or_else(|| dir.join("classes.txt"), |g| g.classes);
            let open = OpenOptions { classes: Some(classes), ..OpenOptions::default() };
            Ok(Splits {
                train: read_dataset(&dir.join("train.txt"), &open)?,
                val: read_dataset(&dir.join("val.txt"), &open)?,
            })
        }
        DataSource::Files { train, val, classes, val_fraction } => {
            let open = OpenOptions { classes: classes.clone(), ..OpenOptions::default() };
            let train_set = read_dataset(train, &open)?;
            if let Some(val) = val {
                let val_set = read_dataset(val, &open)?;
                if val_set.class_names != train_set.class_names {
                    return Err(TrainError::Config(format!(
                        "{} and {} name different classes ({:?} vs {:?})",
                        train.display(),
                        val.display(),
                        train_set.class_names,
                        val_set.class_names
                    )));
                }
                return Ok(Splits { train: train_set, val: val_set });
            }
            Ok(split(&train_set, *val_fraction, seed))
        }
    }
}

/// Holds out `fraction` of the images (at least one, when there are two or more), chosen by a
/// seeded shuffle.
#[must_use]
pub fn split(dataset: &Dataset, fraction: f64, seed: u64) -> Splits {
    let n = dataset.samples.len();
    let mut order: Vec<usize> = (0..n).collect();
    // A small splitmix64 Fisher-Yates: the split must not depend on a library's generator.
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    for i in (1..n).rev() {
        let j = (next() % (i as u64 + 1)) as usize;
        order.swap(i, j);
    }
    let held = if n >= 2 { ((n as f64 * fraction).round() as usize).clamp(1, n - 1) } else { 0 };
    let mut val_idx: Vec<usize> = order[..held].to_vec();
    let mut train_idx: Vec<usize> = order[held..].to_vec();
    val_idx.sort_unstable();
    train_idx.sort_unstable();
    Splits { train: dataset.subset(&train_idx), val: dataset.subset(&val_idx) }
}
