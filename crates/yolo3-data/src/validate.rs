//! Box validation shared by the readers (see [`ReadOptions`] for the policy).

use yolo3_core::{BoxXyxy, LabeledBox};

use crate::dataset::{ImageSize, ReadOptions};
use crate::error::{DataError, Location, Result};

/// Parses one number field, rejecting non-numbers, non-finite values and values that do not
/// fit the `f32` boxes are kept in (`1e39` would become infinite).
pub(crate) fn parse_number(text: &str, at: &Location, field: &str) -> Result<f64> {
    let v: f64 = text.trim().parse().map_err(|e: std::num::ParseFloatError| DataError::Number {
        at: at.clone(),
        field: field.to_string(),
        value: text.to_string(),
        source: Box::new(e),
    })?;
    finite(v, at, field)
}

/// Checks that a number is finite and within the `f32` range.
pub(crate) fn finite(v: f64, at: &Location, field: &str) -> Result<f64> {
    if !v.is_finite() {
        return Err(DataError::NonFinite { at: at.clone(), field: field.to_string(), value: v });
    }
    if v.abs() > f64::from(f32::MAX) {
        return Err(DataError::syntax(
            at.clone(),
            field,
            format!("{v:e} is beyond the float32 range"),
        ));
    }
    Ok(v)
}

/// Parses a class index field (an integer; `3.0` is accepted, `3.5` is not).
pub(crate) fn parse_class(
    text: &str,
    num_classes: usize,
    at: &Location,
    field: &str,
) -> Result<usize> {
    let v = parse_number(text, at, field)?;
    class_index(v, num_classes, at, field)
}

/// Validates a class index given as a number.
pub(crate) fn class_index(v: f64, num_classes: usize, at: &Location, field: &str) -> Result<usize> {
    if v.fract() != 0.0 {
        return Err(DataError::syntax(
            at.clone(),
            field,
            format!("class index {v} is not an integer"),
        ));
    }
    if v < 0.0 || v >= num_classes as f64 {
        return Err(DataError::ClassOutOfRange {
            at: at.clone(),
            field: field.to_string(),
            class: v as i64,
            num_classes,
        });
    }
    Ok(v as usize)
}

/// Validates a box in pixels: degenerate boxes are errors; boxes beyond the image (when its
/// size is known) are errors beyond the tolerance unless `options.clip`, and are clipped
/// otherwise. Returns `None` for a box that clipping made degenerate (logged).
pub(crate) fn check_box(
    bbox: BoxXyxy,
    class: usize,
    size: Option<ImageSize>,
    options: &ReadOptions,
    at: &Location,
    field: &str,
) -> Result<Option<LabeledBox>> {
    if !bbox.is_finite() {
        let v = [bbox.x_min, bbox.y_min, bbox.x_max, bbox.y_max]
            .into_iter()
            .find(|v| !v.is_finite())
            .unwrap_or(f32::NAN);
        return Err(DataError::NonFinite {
            at: at.clone(),
            field: field.to_string(),
            value: f64::from(v),
        });
    }
    if bbox.width() <= 0.0 || bbox.height() <= 0.0 {
        return Err(DataError::DegenerateBox { at: at.clone(), field: field.to_string(), bbox });
    }
    let Some(size) = size else {
        return Ok(Some(LabeledBox { bbox, class }));
    };
    let (w, h) = (size.width as f32, size.height as f32);
    let tol = options.bounds_tolerance.max(0.0);
    let outside =
        bbox.x_min < -tol || bbox.y_min < -tol || bbox.x_max > w + tol || bbox.y_max > h + tol;
    if outside && !options.clip {
        return Err(DataError::BoxOutsideImage {
            at: at.clone(),
            field: field.to_string(),
            bbox,
            width: size.width,
            height: size.height,
        });
    }
    let clipped = BoxXyxy::new(
        bbox.x_min.clamp(0.0, w),
        bbox.y_min.clamp(0.0, h),
        bbox.x_max.clamp(0.0, w),
        bbox.y_max.clamp(0.0, h),
    );
    if outside {
        tracing::warn!(location = %at, field, "box {:?} clipped to the {}x{} image", bbox, size.width, size.height);
    }
    if clipped.width() <= 0.0 || clipped.height() <= 0.0 {
        tracing::warn!(location = %at, field, "box {:?} lies entirely outside the image; dropped", bbox);
        return Ok(None);
    }
    Ok(Some(LabeledBox { bbox: clipped, class }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn at() -> Location {
        Location::line(Path::new("a.txt"), 3)
    }

    #[test]
    fn tolerance_clips_silently_and_outside_is_an_error() {
        let size = Some(ImageSize { width: 100, height: 50 });
        let o = ReadOptions::default();
        let b = check_box(BoxXyxy::new(-0.5, 0.0, 100.8, 50.0), 0, size, &o, &at(), "f")
            .unwrap()
            .unwrap();
        assert_eq!(b.bbox, BoxXyxy::new(0.0, 0.0, 100.0, 50.0));
        let e =
            check_box(BoxXyxy::new(0.0, 0.0, 120.0, 50.0), 0, size, &o, &at(), "f").unwrap_err();
        assert!(matches!(e, DataError::BoxOutsideImage { .. }), "{e}");
        let clip = ReadOptions { clip: true, ..o };
        let b = check_box(BoxXyxy::new(0.0, 0.0, 120.0, 50.0), 0, size, &clip, &at(), "f")
            .unwrap()
            .unwrap();
        assert_eq!(b.bbox.x_max, 100.0);
        assert!(check_box(BoxXyxy::new(200.0, 0.0, 220.0, 50.0), 0, size, &clip, &at(), "f")
            .unwrap()
            .is_none());
    }

    #[test]
    fn classes_and_numbers() {
        assert!(matches!(
            parse_class("3", 3, &at(), "c"),
            Err(DataError::ClassOutOfRange { class: 3, .. })
        ));
        assert!(matches!(parse_class("1.5", 3, &at(), "c"), Err(DataError::Syntax { .. })));
        assert_eq!(parse_class("2.0", 3, &at(), "c").unwrap(), 2);
        assert!(matches!(parse_number("nan", &at(), "x"), Err(DataError::NonFinite { .. })));
        assert!(matches!(parse_number("1e", &at(), "x"), Err(DataError::Number { .. })));
        let e = parse_number("1e39", &at(), "x").unwrap_err();
        assert_eq!(e.to_string(), "a.txt:3: field \"x\": 1e39 is beyond the float32 range");
    }
}
