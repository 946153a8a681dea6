//! Image decoding and the network-input tensor layout.
//!
//! Images are decoded (JPEG or PNG, format guessed from the content) to 8-bit **RGB**
//! ([`image::RgbImage`], row-major, interleaved). The network input is `f32` **CHW, RGB,
//! values in `[0, 1]`** (`x / 255`, keras-yolo3's `np.array(image) / 255.`).

use std::path::{Path, PathBuf};

use image::RgbImage;
use rayon::prelude::*;

use crate::dataset::{ImageSize, UnreadableImage};
use crate::error::{DataError, Result};

/// Decodes an image file to RGB u8. The error names the file.
///
/// The format is taken from the content, never from the extension (a PNG named `.jpg` is read
/// as the PNG it is), and only regular files are opened (a FIFO would block). A JPEG whose
/// data stops before its end marker is decoded (the decoder fills the rest with grey) and
/// logged once as truncated.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let bytes = yolo3_core::fsio::read_bytes(path)
        .map_err(|e| DataError::io(path, "cannot read image", e))?;
    let reader = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| DataError::io(path, "cannot read image", e))?;
    if reader.format() == Some(image::ImageFormat::Jpeg) && !jpeg_has_end_marker(&bytes) {
        warn_truncated(path);
    }
    let img =
        reader.decode().map_err(|source| DataError::Image { path: path.to_path_buf(), source })?;
    Ok(img.into_rgb8())
}

/// Reads an image's size from its header without decoding the pixels (format from the
/// content, regular files only).
pub fn image_size(path: &Path) -> Result<ImageSize> {
    let file = yolo3_core::fsio::open_regular(path)
        .map_err(|e| DataError::io(path, "cannot read image", e))?;
    let (width, height) = image::ImageReader::new(std::io::BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| DataError::io(path, "cannot read image", e))?
        .into_dimensions()
        .map_err(|source| DataError::Image { path: path.to_path_buf(), source })?;
    Ok(ImageSize { width, height })
}

/// Whether JPEG data ends with its end-of-image marker `FF D9`. Cameras and editors may pad
/// the file after it, so the marker is looked for in the last 4 KB rather than at the very end.
fn jpeg_has_end_marker(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(4096)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Logs a truncated image once per path (the loader decodes every image once an epoch).
fn warn_truncated(path: &Path) {
    static WARNED: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !warned.iter().any(|p| p == path) {
        warned.push(path.to_path_buf());
        tracing::warn!(
            "{}: the JPEG data ends before its end marker (truncated file?); the missing part \
             decodes as grey",
            path.display()
        );
    }
}

/// Reads the headers of many images in parallel; `Err` entries name the unreadable files.
pub(crate) fn image_sizes(paths: &[PathBuf]) -> Vec<Result<ImageSize, UnreadableImage>> {
    paths
        .par_iter()
        .map(|p| {
            image_size(p)
                .map_err(|e| UnreadableImage { path: p.clone(), reason: source_message(&e) })
        })
        .collect()
}

/// The causes of an error joined with `: ` (the decoder's or the OS's words), for one-line
/// summaries of unreadable images.
pub(crate) fn source_message(e: &DataError) -> String {
    let mut parts = Vec::new();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        parts.push(c.to_string());
        cause = c.source();
    }
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

/// Writes an RGB image as PNG (fast compression).
pub fn save_png(image: &RgbImage, path: &Path) -> Result<()> {
    image
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|source| DataError::Image { path: path.to_path_buf(), source })
}

/// Appends an RGB image to `out` as CHW `f32` in `[0, 1]`.
pub fn extend_chw(image: &RgbImage, out: &mut Vec<f32>) {
    let (w, h) = image.dimensions();
    let plane = (w * h) as usize;
    let start = out.len();
    out.resize(start + 3 * plane, 0.0);
    let dst = &mut out[start..];
    for (i, px) in image.as_raw().chunks_exact(3).enumerate() {
        dst[i] = f32::from(px[0]) / 255.0;
        dst[plane + i] = f32::from(px[1]) / 255.0;
        dst[2 * plane + i] = f32::from(px[2]) / 255.0;
    }
}

/// An RGB image as CHW `f32` in `[0, 1]`.
#[must_use]
pub fn to_chw(image: &RgbImage) -> Vec<f32> {
    let mut out = Vec::new();
    extend_chw(image, &mut out);
    out
}

/// CHW `f32` in `[0, 1]` back to an RGB image (rounded, clamped); for inspection and tests.
#[must_use]
pub fn from_chw(chw: &[f32], width: u32, height: u32) -> RgbImage {
    let plane = (width * height) as usize;
    assert_eq!(chw.len(), 3 * plane, "CHW buffer does not match {width}x{height}");
    let to_u8 = |v: f32| (v * 255.0).round().clamp(0.0, 255.0) as u8;
    RgbImage::from_fn(width, height, |x, y| {
        let i = (y * width + x) as usize;
        image::Rgb([to_u8(chw[i]), to_u8(chw[plane + i]), to_u8(chw[2 * plane + i])])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chw_round_trip_and_layout() {
        let img = RgbImage::from_fn(3, 2, |x, y| image::Rgb([x as u8 * 10, y as u8 * 20, 255]));
        let chw = to_chw(&img);
        assert_eq!(chw.len(), 18);
        assert_eq!(chw[1], 10.0 / 255.0); // R plane, (x=1, y=0)
        assert_eq!(chw[6 + 3], 20.0 / 255.0); // G plane, (x=0, y=1)
        assert_eq!(chw[12], 1.0); // B plane
        assert_eq!(from_chw(&chw, 3, 2), img);
    }

    #[test]
    fn unreadable_image_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("broken.jpg");
        std::fs::write(&p, b"not an image").unwrap();
        let e = load_rgb(&p).unwrap_err();
        assert!(e.to_string().contains("broken.jpg"), "{e}");
        let e = load_rgb(&dir.path().join("missing.png")).unwrap_err();
        assert!(e.to_string().contains("missing.png"), "{e}");
    }
}
