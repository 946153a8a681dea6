//! The Rust side of `scripts/bench-jpeg.sh`: decodes every JPEG of a folder to RGB, `REPEATS`
//! passes per decoder, one thread, and prints `RESULT <decoder> <images> <median ms per image>`.
//!
//! * `yolo3`: [`yolo3_data::load_rgb`], what training and `detect` run: the `image` crate's
//!   JPEG decoder (zune-jpeg inside) reading the file, with the EXIF orientation and the pixel
//!   limit checked;
//! * `zune-jpeg`: zune-jpeg called directly on the file's bytes, the floor of that path.
//!
//! `decode_jpeg DIR REPEATS`

#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;

/// A decoder under test: the bytes of RGB output, or why it failed.
type Decode = fn(&Path) -> Result<usize, String>;

fn zune(path: &Path) -> Result<usize, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let options = DecoderOptions::default().jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(&bytes), options);
    decoder.decode().map(|p| p.len()).map_err(|e| format!("{e:?}"))
}

fn yolo3(path: &Path) -> Result<usize, String> {
    yolo3_data::load_rgb(path).map(|i| i.as_raw().len()).map_err(|e| e.to_string())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(dir), Some(Ok(repeats))) = (args.first(), args.get(1).map(|r| r.parse::<usize>()))
    else {
        eprintln!("usage: decode_jpeg DIR REPEATS");
        return ExitCode::FAILURE;
    };
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
            .collect(),
        Err(e) => {
            eprintln!("decode_jpeg: {dir}: {e}");
            return ExitCode::FAILURE;
        }
    };
    files.sort();
    if files.is_empty() || repeats == 0 {
        eprintln!("decode_jpeg: no .jpg files in {dir}, or no repeats");
        return ExitCode::FAILURE;
    }
    let decoders: [(&str, Decode); 2] = [("yolo3", yolo3), ("zune-jpeg", zune)];
    for (name, decode) in decoders {
        let mut per_pass = Vec::with_capacity(repeats);
        for pass in 0..=repeats {
            let start = Instant::now();
            for f in &files {
                if let Err(e) = decode(f) {
                    eprintln!("decode_jpeg: {name}: {}: {e}", f.display());
                    return ExitCode::FAILURE;
                }
            }
            // Pass 0 warms the page cache and the allocator.
            if pass > 0 {
                per_pass.push(start.elapsed().as_secs_f64() * 1000.0 / files.len() as f64);
            }
        }
        per_pass.sort_by(f64::total_cmp);
        println!("RESULT {name} {} {:.3}", files.len(), per_pass[per_pass.len() / 2]);
    }
    ExitCode::SUCCESS
}
