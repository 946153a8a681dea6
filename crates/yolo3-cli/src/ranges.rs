//! Value parsers of the numeric options: each option's valid range is checked when the command
//! line is parsed, so a bad value stops the command before it reads or writes anything, with
//! clap's message naming the option (`invalid value '-1' for '--lr <LR>': ...`).
//!
//! The ranges are what the computation can use, not what is sensible for training: a learning
//! rate of 10 is allowed (it diverges, and the run says so), a negative one is not. Upper bounds
//! exist where a value sizes an allocation; the memory those values imply is checked again
//! against the machine once the model is known (`yolo3_model::memory`).

use clap::builder::{RangedU64ValueParser, TypedValueParser as _, ValueParser};

/// Largest network input side (8192 x 8192 RGB is 800 MB of float32 input per image before the
/// network's activations); training has the same bound.
pub(crate) const MAX_INPUT: u32 = yolo3_train::config::MAX_INPUT;

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

/// `--threads`: 1 to 1024.
pub(crate) fn threads() -> ValueParser {
    count(1, MAX_THREADS)
}

/// A network input side: a multiple of 32 in `32..=MAX_INPUT`.
pub(crate) fn input_side() -> ValueParser {
    RangedU64ValueParser::<u32>::new().try_map(yolo3_train::config::check_input_side).into()
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

/// `unit` as `f32`.
pub(crate) fn unit_f32(text: &str) -> Result<f32, String> {
    unit(text).map(|v| v as f32)
}

/// `--freeze`: `backbone` or a layer count `N` in `1..=100000` (layers `0..N`).
pub(crate) fn freeze(text: &str) -> Result<yolo3_train::Freeze, String> {
    if text.trim().eq_ignore_ascii_case("backbone") {
        return Ok(yolo3_train::Freeze::Backbone);
    }
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=100_000).contains(&n) => Ok(yolo3_train::Freeze::Layers(n)),
        _ => Err(format!("{text:?} is neither `backbone` nor a layer count in 1..=100000")),
    }
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
    }
}
