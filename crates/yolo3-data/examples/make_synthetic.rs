//! Writes the synthetic dataset at a chosen size, for benchmarks that need the same files on
//! disk for two implementations (`scripts/bench-train.sh`): `yolo3 train` generates it only at
//! its own default size inside the run folder.
//!
//! `make_synthetic OUT_DIR TRAIN_IMAGES VAL_IMAGES SIZE [SEED]` prints the `train.txt`,
//! `val.txt` and `classes.txt` paths, one a line.

#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use yolo3_data::synthetic::{generate, SyntheticOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !(4..=5).contains(&args.len()) {
        eprintln!("usage: make_synthetic OUT_DIR TRAIN_IMAGES VAL_IMAGES SIZE [SEED]");
        return ExitCode::FAILURE;
    }
    let number = |i: usize| -> Option<u64> { args.get(i).map_or(Some(0), |s| s.parse().ok()) };
    let (Some(train), Some(val), Some(size), Some(seed)) =
        (number(1), number(2), number(3), number(4))
    else {
        eprintln!("make_synthetic: counts, size and seed are non-negative integers");
        return ExitCode::FAILURE;
    };
    let (Ok(images_train), Ok(images_val), Ok(size)) =
        (usize::try_from(train), usize::try_from(val), u32::try_from(size))
    else {
        eprintln!("make_synthetic: a number is out of range");
        return ExitCode::FAILURE;
    };
    let options =
        SyntheticOptions { images_train, images_val, size, seed, ..SyntheticOptions::default() };
    match generate(&PathBuf::from(&args[0]), &options) {
        Ok(d) => {
            for path in [&d.train, &d.val, &d.classes] {
                println!("{}", path.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("make_synthetic: {e}");
            ExitCode::FAILURE
        }
    }
}
