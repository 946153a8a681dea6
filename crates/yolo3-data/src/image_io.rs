//! Image decoding and the network-input tensor layout.
//!
//! Images are decoded (JPEG or PNG, format guessed from the content) to 8-bit **RGB**
//! ([`image::RgbImage`], row-major, interleaved). The network input is `f32` **CHW, RGB,
//! values in `[0, 1]`** (`x / 255`, keras-yolo3's `np.array(image) / 255.`).

use std::path::{Path, PathBuf};

use std::io::{Read as _, Seek as _, SeekFrom};

use image::metadata::Orientation;
use image::{ImageDecoder, RgbImage};
use rayon::prelude::*;

use crate::dataset::{ImageSize, UnreadableImage};
use crate::error::{DataError, Result};

/// Largest image accepted, in pixels: PIL's decompression-bomb error threshold
/// (2 x `Image.MAX_IMAGE_PIXELS`, about 179 megapixels, e.g. 16384 x 10922). Larger files are
/// refused from their header, before any pixel is decoded.
pub const MAX_PIXELS: u64 = 178_956_970;

/// Decodes an image file to RGB u8, as it is meant to be displayed. The error names the file.
///
/// * The format is taken from the content, never from the extension (a PNG named `.jpg` is
///   read as the PNG it is), and only regular files are opened (a FIFO would block).
/// * The EXIF orientation (JPEG APP1, PNG `eXIf`) is applied: phone photos are stored sideways
///   with a tag, and boxes are annotated on the rotated image (labelImg, ultralytics and
///   browsers all show it rotated).
/// * Every colour type becomes 8-bit RGB: grey is replicated, alpha dropped (as OpenCV's
///   `imread` does), palettes expanded, 16-bit samples rounded to 8 bits, CMYK JPEGs converted
///   by the decoder.
/// * Images above [`MAX_PIXELS`] are refused before decoding. The pixels are decoded straight
///   into one buffer of the file's colour type, which becomes the RGB image itself when it is
///   already RGB (the common case); flips and 180-degree turns happen in place.
/// * A JPEG whose data stops before its end marker is decoded (the decoder fills the rest
///   with grey) and logged once as truncated.
pub fn load_rgb(path: &Path) -> Result<RgbImage> {
    let (decoder, orientation, format) = open_decoder(path)?;
    if format == Some(image::ImageFormat::Jpeg) && !jpeg_has_end_marker(path)? {
        warn_truncated(path);
    }
    let image_error = |source| DataError::Image { path: path.to_path_buf(), source };
    let mut image = image::DynamicImage::from_decoder(decoder).map_err(image_error)?;
    image.apply_orientation(orientation);
    Ok(image.into_rgb8())
}

/// Reads an image's displayed size (after its EXIF orientation) from its header without
/// decoding the pixels (format from the content, regular files only).
pub fn image_size(path: &Path) -> Result<ImageSize> {
    let (decoder, orientation, _) = open_decoder(path)?;
    let (width, height) = displayed(decoder.dimensions(), orientation);
    Ok(ImageSize { width, height })
}

/// Opens `path`'s decoder and reads its orientation and format; refuses images above
/// [`MAX_PIXELS`].
fn open_decoder(
    path: &Path,
) -> Result<(impl ImageDecoder, Orientation, Option<image::ImageFormat>)> {
    let file = yolo3_io::fsio::open_regular(path)
        .map_err(|e| DataError::io(path, "cannot read image", e))?;
    let mut reader = image::ImageReader::new(std::io::BufReader::new(file))
        .with_guessed_format()
        .map_err(|e| DataError::io(path, "cannot read image", e))?;
    // The pixel count is checked below, on every image; the decoder's own allocation cap
    // (512 MB by default) would refuse a legitimate 16-bit RGBA photo of 70 megapixels.
    reader.no_limits();
    let format = reader.format();
    if !matches!(format, Some(image::ImageFormat::Png | image::ImageFormat::Jpeg)) {
        if let Some(name) = other_format(path) {
            return Err(DataError::UnsupportedImageFormat {
                path: path.to_path_buf(),
                format: name,
            });
        }
    }
    let image_error = |source| DataError::Image { path: path.to_path_buf(), source };
    let mut decoder = reader.into_decoder().map_err(image_error)?;
    // A broken EXIF block is not worth losing the image for: it is shown as stored.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let (width, height) = displayed(decoder.dimensions(), orientation);
    if u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(DataError::ImageTooLarge { path: path.to_path_buf(), width, height });
    }
    Ok((decoder, orientation, format))
}

/// The name of an image format other than JPEG and PNG that `path`'s first bytes show (their
/// magic numbers), for the message that it is not supported.
fn other_format(path: &Path) -> Option<&'static str> {
    let mut head = [0u8; 12];
    let mut file = yolo3_io::fsio::open_regular(path).ok()?;
    let n = file.read(&mut head).ok()?;
    let head = &head[..n];
    let formats: [(&[u8], usize, &'static str); 9] = [
        (b"WEBP", 8, "WebP"),
        (b"II*\0", 0, "TIFF"),
        (b"MM\0*", 0, "TIFF"),
        (b"BM", 0, "BMP"),
        (b"GIF8", 0, "GIF"),
        (b"\0\0\0\x0cjP  ", 0, "JPEG 2000"),
        (b"ftypavif", 4, "AVIF"),
        (b"ftypheic", 4, "HEIC"),
        (b"8BPS", 0, "Photoshop"),
    ];
    formats
        .iter()
        .find(|(magic, at, _)| head.get(*at..at + magic.len()) == Some(magic))
        .map(|&(_, _, name)| name)
}

/// The size of a `stored` image once `orientation` is applied.
fn displayed(stored: (u32, u32), orientation: Orientation) -> (u32, u32) {
    let (w, h) = stored;
    match orientation {
        Orientation::Rotate90
        | Orientation::Rotate270
        | Orientation::Rotate90FlipH
        | Orientation::Rotate270FlipH => (h, w),
        _ => (w, h),
    }
}

/// Whether a JPEG file ends with its end-of-image marker `FF D9`. Cameras and editors may pad
/// the file after it, so the marker is looked for in the last 4 KB rather than at the very end.
fn jpeg_has_end_marker(path: &Path) -> Result<bool> {
    let io_error = |e| DataError::io(path, "cannot read image", e);
    let mut file = yolo3_io::fsio::open_regular(path).map_err(io_error)?;
    let len = file.seek(SeekFrom::End(0)).map_err(io_error)?;
    file.seek(SeekFrom::Start(len.saturating_sub(4096))).map_err(io_error)?;
    let mut tail = Vec::with_capacity(4096);
    file.read_to_end(&mut tail).map_err(io_error)?;
    Ok(tail.windows(2).any(|w| w == [0xFF, 0xD9]))
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
    let start = out.len();
    out.resize(start + image.as_raw().len(), 0.0);
    write_chw(image, &mut out[start..]);
}

/// Writes an RGB image into `dst` (exactly `3 x width x height` long) as CHW `f32` in `[0, 1]`.
///
/// # Panics
/// If `dst` has another length.
pub fn write_chw(image: &RgbImage, dst: &mut [f32]) {
    let (w, h) = image.dimensions();
    let plane = (w * h) as usize;
    assert_eq!(dst.len(), 3 * plane, "CHW buffer does not match {w}x{h}");
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

    #[test]
    fn other_formats_are_named_as_unsupported() {
        let dir = tempfile::tempdir().unwrap();
        let cases: [(&str, &[u8], &str); 4] = [
            ("a.webp", b"RIFF\x24\0\0\0WEBPVP8 ", "WebP"),
            ("b.tif", b"II*\0\x08\0\0\0\0\0\0\0", "TIFF"),
            ("c.bmp", b"BM\x36\0\0\0\0\0\0\0\x36\0", "BMP"),
            ("d.jpg", b"GIF89a\x01\0\x01\0\0\0", "GIF"),
        ];
        for (name, bytes, format) in cases {
            let p = dir.path().join(name);
            std::fs::write(&p, bytes).unwrap();
            let e = load_rgb(&p).unwrap_err().to_string();
            assert!(e.contains(name), "{e}");
            assert!(e.contains(&format!("{format} images are not supported")), "{e}");
            let e = image_size(&p).unwrap_err().to_string();
            assert!(e.contains("not supported"), "{e}");
        }
    }
}
