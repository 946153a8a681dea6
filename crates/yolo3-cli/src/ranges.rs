//! Value parsers of the numeric options: each option's valid range is checked when the command
//! line is parsed, so a bad value stops the command before it reads or writes anything, with
//! clap's message naming the option (`invalid value '-1' for '--lr <LR>': ...`).
//!
//! The ranges are what the computation can use, not what is sensible for training: a learning
//! rate of 10 is allowed (it diverges, and the run says so), a negative one is not. Upper bounds
//! exist where a value sizes an allocation; the memory those values imply is checked again
//! against the machine once the model is known (`yolo3_model::memory`).

use std::ops::RangeInclusive;

use clap::builder::{RangedU64ValueParser, TypedValueParser as _, ValueParser};

/// Largest `--threads`.
const MAX_THREADS: u64 = 1024;

/// An unsigned integer option in `min..=max`.
pub(crate) fn count(min: u64, max: u64) -> ValueParser {
    RangedU64ValueParser::<usize>::new().range(min..=max).into()
}

/// A `u32` option in `min..=max`.
pub(crate) fn count_u32(min: u32, max: u32) -> ValueParser {
    RangedU64ValueParser::<u32>::new().range(u64::from(min)..=u64::from(max)).into()
}

/// A `usize` option in a library's range (such as `yolo3_train::config::limits`).
pub(crate) fn within(range: &RangeInclusive<usize>) -> ValueParser {
    count(*range.start() as u64, *range.end() as u64)
}

/// A `u32` option in a library's range.
pub(crate) fn within_u32(range: &RangeInclusive<u32>) -> ValueParser {
    count_u32(*range.start(), *range.end())
}

/// `--threads`: 1 to 1024.
pub(crate) fn threads() -> ValueParser {
    count(1, MAX_THREADS)
}

/// A network input side: a multiple of 32 in `32..=yolo3_model::MAX_INPUT`.
pub(crate) fn input_side() -> ValueParser {
    RangedU64ValueParser::<u32>::new().try_map(yolo3_model::check_input_side).into()
}

/// A finite number `> 0`.
pub(crate) fn positive(text: &str) -> Result<f64, String> {
    let v = finite(text)?;
    if v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not positive"))
    }
}

/// A finite number in `[0, 1]`.
pub(crate) fn unit(text: &str) -> Result<f64, String> {
    let v = finite(text)?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not in [0, 1]"))
    }
}

/// A finite number in `[0, 1)`: a fraction of a set that must leave something over.
pub(crate) fn fraction_below_one(text: &str) -> Result<f64, String> {
    let v = finite(text)?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not in [0, 1)"))
    }
}

/// A tile overlap: a finite number in `[0, 0.95]` (at 1 the tiles would not advance).
pub(crate) fn overlap(text: &str) -> Result<f64, String> {
    let v = finite(text)?;
    if (0.0..=0.95).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{v} is not in [0, 0.95]"))
    }
}

/// A rate in `(0, 1]`: the share of a new value in a running average.
pub(crate) fn rate(text: &str) -> Result<f64, String> {
    let v = finite(text)?;
    if v > 0.0 && v <= 1.0 {
        Ok(v)
    } else {
        Err(format!("{v} is not in (0, 1]"))
    }
}

/// `unit` as `f32`.
pub(crate) fn unit_f32(text: &str) -> Result<f32, String> {
    unit(text).map(|v| v as f32)
}

fn finite(text: &str) -> Result<f64, String> {
    let v: f64 = text.trim().parse().map_err(|_| format!("{text:?} is not a number"))?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{text} is not a finite number"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_are_checked_against_their_ranges() {
        assert_eq!(positive("1e-3"), Ok(1e-3));
        assert!(positive("0").is_err());
        assert!(positive("-1").is_err());
        assert!(positive("nan").is_err());
        assert!(positive("inf").is_err());
        assert_eq!(unit("1"), Ok(1.0));
        assert!(unit("2").is_err());
        assert!(unit("-0.1").is_err());
        assert_eq!(fraction_below_one("0"), Ok(0.0));
        assert!(fraction_below_one("1").is_err());
        assert!(fraction_below_one("5").is_err());
        assert_eq!(rate("1"), Ok(1.0));
        assert!(rate("0").is_err());
        assert_eq!(overlap("0.95"), Ok(0.95));
        assert!(overlap("0.96").is_err());
    }
}
