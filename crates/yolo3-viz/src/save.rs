//! Writing pictures without ever leaving a half-written file: the image is encoded in memory,
//! then written through [`yolo3_io::fsio::write_atomic`] (a temporary file in the destination
//! folder, synced and renamed over the destination). On failure the temporary file is removed
//! and the destination is untouched.

use std::io::Cursor;
use std::path::Path;

use image::{ImageFormat, RgbImage};

use crate::error::VizError;

/// Saves `image` as PNG at `path` (whatever its extension), atomically.
pub fn save_png(image: &RgbImage, path: &Path) -> Result<(), VizError> {
    save_as(image, path, ImageFormat::Png)
}

/// Saves `image` atomically in the format named by the extension of `path` (`.png`, `.jpg` or
/// `.jpeg`, any case; JPEG at the encoder's default quality).
pub fn save_image(image: &RgbImage, path: &Path) -> Result<(), VizError> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let format = match ext.as_deref() {
        Some("png") => ImageFormat::Png,
        Some("jpg" | "jpeg") => ImageFormat::Jpeg,
        _ => return Err(VizError::UnknownFormat { path: path.to_path_buf() }),
    };
    save_as(image, path, format)
}

fn save_as(image: &RgbImage, path: &Path, format: ImageFormat) -> Result<(), VizError> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .map_err(|source| VizError::Encode { path: path.to_path_buf(), source })?;
    yolo3_io::fsio::write_atomic(path, &bytes, yolo3_io::fsio::Existing::Replace)
        .map_err(|source| io_error(path, "cannot write", source))
}

fn io_error(path: &Path, action: &'static str, source: std::io::Error) -> VizError {
    VizError::Io { path: path.to_path_buf(), action, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::Rgb;
    use std::error::Error as _;
    use std::fs;

    fn sample() -> RgbImage {
        RgbImage::from_fn(7, 5, |x, y| Rgb([x as u8 * 30, y as u8 * 40, 200]))
    }

    #[test]
    fn png_round_trips_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.png");
        save_png(&sample(), &path).unwrap();
        let back = image::open(&path).unwrap().to_rgb8();
        assert_eq!(back, sample());
        // Overwriting works too.
        save_png(&RgbImage::new(2, 2), &path).unwrap();
        assert_eq!(image::open(&path).unwrap().to_rgb8().dimensions(), (2, 2));
        let names: Vec<_> =
            fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("chart.png")]);
    }

    #[test]
    fn save_image_picks_the_format_from_the_extension() {
        let dir = tempfile::tempdir().unwrap();
        let jpg = dir.path().join("a.JPG");
        save_image(&sample(), &jpg).unwrap();
        assert_eq!(image::ImageFormat::from_path(&jpg).unwrap(), ImageFormat::Jpeg);
        assert_eq!(&fs::read(&jpg).unwrap()[..2], &[0xFF, 0xD8]);
        let png = dir.path().join("b.png");
        save_image(&sample(), &png).unwrap();
        assert_eq!(image::open(&png).unwrap().to_rgb8(), sample());
        let err = save_image(&sample(), &dir.path().join("c.bmp")).unwrap_err();
        assert!(matches!(err, VizError::UnknownFormat { .. }));
    }

    #[test]
    fn errors_name_the_path_and_keep_the_source() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-folder").join("x.png");
        let err = save_png(&sample(), &path).unwrap_err();
        assert!(err.to_string().contains("missing-folder"), "{err}");
        assert!(err.source().is_some());
        assert!(matches!(err, VizError::Io { .. }));
    }

    #[test]
    fn failed_rename_cleans_up_the_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        // The destination is a non-empty folder: encoding succeeds, the rename fails.
        let path = dir.path().join("taken.png");
        fs::create_dir(&path).unwrap();
        fs::write(path.join("inside"), b"x").unwrap();
        let err = save_png(&sample(), &path).unwrap_err();
        assert!(matches!(err, VizError::Io { action: "cannot write", .. }), "{err}");
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(fs::read(path.join("inside")).unwrap(), b"x");
    }
}
