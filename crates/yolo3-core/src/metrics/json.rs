//! Typed reading of loosely typed JSON with errors that name the file and the exact field.
//!
//! The COCO and VOC inputs are read through [`serde_json::Value`] rather than derived
//! `Deserialize` impls so that every error says where it is (`annotations[17].bbox[2]`), which a
//! derived impl only reports as a line and column.

use std::path::Path;

use serde_json::{Map, Value};

use super::MetricsError;

/// The location of a value: the input's name and the field path inside it.
#[derive(Clone, Copy)]
pub(crate) struct Ctx<'a> {
    pub file: &'a str,
}

impl Ctx<'_> {
    pub(super) fn invalid(self, field: &str, reason: impl Into<String>) -> MetricsError {
        MetricsError::InvalidField {
            file: self.file.to_owned(),
            field: field.to_owned(),
            reason: reason.into(),
        }
    }

    pub(super) fn missing(self, field: &str) -> MetricsError {
        MetricsError::MissingField { file: self.file.to_owned(), field: field.to_owned() }
    }

    /// Parses `text` as JSON.
    pub(super) fn parse(self, text: &str) -> Result<Value, MetricsError> {
        serde_json::from_str(text)
            .map_err(|source| MetricsError::Json { file: self.file.to_owned(), source })
    }

    pub(super) fn object<'v>(
        self,
        value: &'v Value,
        field: &str,
    ) -> Result<&'v Map<String, Value>, MetricsError> {
        value.as_object().ok_or_else(|| {
            self.invalid(field, format!("expected an object, found {}", kind(value)))
        })
    }

    pub(super) fn array<'v>(
        self,
        value: &'v Value,
        field: &str,
    ) -> Result<&'v [Value], MetricsError> {
        value
            .as_array()
            .map(Vec::as_slice)
            .ok_or_else(|| self.invalid(field, format!("expected an array, found {}", kind(value))))
    }

    /// The member `name` of `object`, which lives at `path`.
    pub(super) fn member<'v>(
        self,
        object: &'v Map<String, Value>,
        path: &str,
        name: &str,
    ) -> Result<(&'v Value, String), MetricsError> {
        let field = join(path, name);
        match object.get(name) {
            Some(value) => Ok((value, field)),
            None => Err(self.missing(&field)),
        }
    }

    pub(super) fn f64(self, value: &Value, field: &str) -> Result<f64, MetricsError> {
        match value.as_f64() {
            Some(x) if x.is_finite() => Ok(x),
            Some(_) => Err(self.invalid(field, "expected a finite number")),
            None => Err(self.invalid(field, format!("expected a number, found {}", kind(value)))),
        }
    }

    /// An integer id; a float with an integral value (`5.0`) is accepted too.
    pub(super) fn i64(self, value: &Value, field: &str) -> Result<i64, MetricsError> {
        if let Some(x) = value.as_i64() {
            return Ok(x);
        }
        match value.as_f64() {
            Some(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 9.007_199_254_740_992e15 => {
                Ok(x as i64)
            }
            _ => Err(self.invalid(field, format!("expected an integer, found {}", kind(value)))),
        }
    }

    pub(super) fn string(self, value: &Value, field: &str) -> Result<String, MetricsError> {
        value
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| self.invalid(field, format!("expected a string, found {}", kind(value))))
    }

    /// A flag written as a JSON boolean or as the integers 0 / 1.
    pub(super) fn flag(self, value: &Value, field: &str) -> Result<bool, MetricsError> {
        if let Some(b) = value.as_bool() {
            return Ok(b);
        }
        let number = value.as_f64();
        if number == Some(0.0) {
            Ok(false)
        } else if number == Some(1.0) {
            Ok(true)
        } else {
            Err(self.invalid(field, format!("expected 0, 1, true or false, found {value}")))
        }
    }

    /// Parses each element of the array `value` at `field` (`""` for the document's root) with
    /// `parse(element, "field[i]")`.
    pub(super) fn items<T>(
        self,
        value: &Value,
        field: &str,
        mut parse: impl FnMut(&Value, &str) -> Result<T, MetricsError>,
    ) -> Result<Vec<T>, MetricsError> {
        let name = if field.is_empty() { "<root>" } else { field };
        self.array(value, name)?
            .iter()
            .enumerate()
            .map(|(i, v)| parse(v, &format!("{field}[{i}]")))
            .collect()
    }

    /// [`Ctx::items`] of the member `name` of `object`, which lives at `path`.
    pub(super) fn member_items<T>(
        self,
        object: &Map<String, Value>,
        path: &str,
        name: &str,
        parse: impl FnMut(&Value, &str) -> Result<T, MetricsError>,
    ) -> Result<Vec<T>, MetricsError> {
        let (value, field) = self.member(object, path, name)?;
        self.items(value, &field, parse)
    }

    /// An optional image dimension (`width`, `height`): absent or null is `None`.
    pub(super) fn image_size(
        self,
        object: &Map<String, Value>,
        path: &str,
        name: &str,
    ) -> Result<Option<u32>, MetricsError> {
        let field = join(path, name);
        match object.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(v) => {
                let x = self.i64(v, &field)?;
                u32::try_from(x)
                    .map(Some)
                    .map_err(|_| self.invalid(&field, format!("{x} is not a valid image size")))
            }
        }
    }

    /// An array of exactly four finite numbers.
    pub(super) fn bbox(self, value: &Value, field: &str) -> Result<[f64; 4], MetricsError> {
        let items = self.array(value, field)?;
        if items.len() != 4 {
            return Err(self.invalid(field, format!("expected 4 numbers, found {}", items.len())));
        }
        let mut out = [0.0; 4];
        for (i, (slot, item)) in out.iter_mut().zip(items).enumerate() {
            *slot = self.f64(item, &format!("{field}[{i}]"))?;
        }
        Ok(out)
    }
}

/// Reads a file to a string, naming it in the error.
pub(crate) fn read(path: &Path) -> Result<String, MetricsError> {
    yolo3_io::fsio::read_text(path)
        .map_err(|source| MetricsError::Io { path: path.to_path_buf(), source })
}

/// `path.name`, or `name` at the root.
pub(crate) fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}
