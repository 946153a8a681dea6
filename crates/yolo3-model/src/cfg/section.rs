//! Typed access to one raw section, with darknet's defaults and error context.
//!
//! Conventions: the first occurrence of a key wins (darknet's `option_find` scans from the
//! top); numbers are parsed strictly (`1.5` is not an int); lists are comma-separated with
//! empty items ignored; keys that no reader consumed are reported with `tracing::warn!` by
//! [`SectionReader::finish`].

use std::str::FromStr;

use super::lexer::{Entry, RawSection};
use crate::error::{ModelError, Result};

/// Reads typed values from a section and remembers which keys were used.
pub(crate) struct SectionReader<'a> {
    pub file: &'a str,
    pub section: &'a RawSection,
    /// The canonical section name (`net`, `convolutional`, ...), used in errors.
    pub kind: &'static str,
}

impl<'a> SectionReader<'a> {
    pub(crate) fn new(file: &'a str, section: &'a RawSection, kind: &'static str) -> Self {
        Self { file, section, kind }
    }

    fn entry(&self, key: &str) -> Option<&'a Entry> {
        let mut found = self.section.entries.iter().filter(|e| e.key == key);
        let first = found.next()?;
        first.used.set(true);
        for dup in found {
            dup.used.set(true);
            tracing::warn!(
                "{}:{}: [{}] duplicate `{key}` ignored (the first, line {}, wins as in darknet)",
                self.file,
                dup.line,
                self.section.name,
                first.line
            );
        }
        Some(first)
    }

    /// An error about the value of `entry`.
    pub(crate) fn value_error(
        &self,
        key: &'static str,
        entry: &Entry,
        reason: impl Into<String>,
    ) -> ModelError {
        ModelError::CfgValue {
            file: self.file.to_owned(),
            line: entry.line,
            section: self.kind,
            key,
            value: entry.value.clone(),
            reason: reason.into(),
        }
    }

    /// An error about `key`'s value, located at the key's line when present, else (a default
    /// value that does not fit) at the section header.
    pub(crate) fn key_error(&self, key: &'static str, reason: impl Into<String>) -> ModelError {
        match self.section.entries.iter().find(|e| e.key == key) {
            Some(entry) => self.value_error(key, entry, reason),
            None => ModelError::CfgValue {
                file: self.file.to_owned(),
                line: self.section.line,
                section: self.kind,
                key,
                value: "(default)".to_owned(),
                reason: reason.into(),
            },
        }
    }

    /// An error about a layer section as a whole; `layer` is its darknet index.
    pub(crate) fn structure_error(&self, layer: usize, message: impl Into<String>) -> ModelError {
        ModelError::CfgStructure {
            file: self.file.to_owned(),
            line: self.section.line,
            layer,
            section: self.kind,
            message: message.into(),
        }
    }

    fn parse<T: FromStr>(&self, key: &'static str, entry: &Entry, what: &str) -> Result<T> {
        entry.value.parse().map_err(|_| self.value_error(key, entry, format!("not {what}")))
    }

    /// The raw string value, if present.
    pub(crate) fn text(&self, key: &'static str) -> Option<&'a str> {
        self.entry(key).map(|e| e.value.as_str())
    }

    /// An integer, if present.
    pub(crate) fn opt_int(&self, key: &'static str) -> Result<Option<i64>> {
        self.entry(key).map(|e| self.parse(key, e, "an integer")).transpose()
    }

    /// An integer with a default.
    pub(crate) fn int(&self, key: &'static str, default: i64) -> Result<i64> {
        Ok(self.opt_int(key)?.unwrap_or(default))
    }

    /// A required integer.
    pub(crate) fn req_int(&self, key: &'static str) -> Result<i64> {
        self.opt_int(key)?.ok_or_else(|| self.missing(key))
    }

    /// An integer that must be at least `min`.
    pub(crate) fn int_at_least(&self, key: &'static str, default: i64, min: i64) -> Result<i64> {
        let v = self.int(key, default)?;
        if v < min {
            return Err(self.key_error(key, format!("must be at least {min}")));
        }
        Ok(v)
    }

    /// A float, if present.
    pub(crate) fn opt_float(&self, key: &'static str) -> Result<Option<f64>> {
        self.entry(key)
            .map(|e| {
                let v: f64 = self.parse(key, e, "a number")?;
                if v.is_finite() {
                    Ok(v)
                } else {
                    Err(self.value_error(key, e, "not a finite number"))
                }
            })
            .transpose()
    }

    /// A float with a default.
    pub(crate) fn float(&self, key: &'static str, default: f64) -> Result<f64> {
        Ok(self.opt_float(key)?.unwrap_or(default))
    }

    /// A comma-separated list, if present.
    pub(crate) fn opt_list<T: FromStr>(
        &self,
        key: &'static str,
        what: &str,
    ) -> Result<Option<Vec<T>>> {
        let Some(entry) = self.entry(key) else { return Ok(None) };
        entry
            .value
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse().map_err(|_| self.value_error(key, entry, format!("`{s}` is not {what}")))
            })
            .collect::<Result<Vec<T>>>()
            .map(Some)
    }

    /// Rejects a key that changes the layer's meaning unless it has its default value.
    pub(crate) fn reject_unless(&self, key: &'static str, default: f64, why: &str) -> Result<()> {
        if let Some(entry) = self.entry(key) {
            let v: f64 = self.parse(key, entry, "a number")?;
            if v != default {
                return Err(self.value_error(key, entry, format!("unsupported: {why}")));
            }
        }
        Ok(())
    }

    /// A required key that is absent.
    pub(crate) fn missing(&self, key: &'static str) -> ModelError {
        ModelError::CfgMissingKey {
            file: self.file.to_owned(),
            line: self.section.line,
            section: self.kind,
            key,
        }
    }

    /// Warns about every key no reader consumed.
    pub(crate) fn finish(&self) {
        for e in self.section.entries.iter().filter(|e| !e.used.get()) {
            tracing::warn!(
                "{}:{}: [{}] unknown key `{}` ignored",
                self.file,
                e.line,
                self.section.name,
                e.key
            );
        }
    }
}
