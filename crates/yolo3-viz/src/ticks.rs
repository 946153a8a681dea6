//! Axis arithmetic for charts: the shown range of some data, "nice" tick steps (1, 2 or 5 times a
//! power of ten) and tick labels with just enough decimals to tell neighbours apart.
//!
//! Non-finite values are ignored everywhere; an empty or single-valued range is widened so that
//! every axis has a positive length.

/// The `(min, max)` of the finite values, or `None` if there is none.
#[must_use]
pub fn finite_range(values: impl IntoIterator<Item = f64>) -> Option<(f64, f64)> {
    values.into_iter().filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// The axis range shown for data spanning `range` (`None` for no data, giving `[0, 1]`): a
/// single value is widened by 10% of its magnitude (or by 1 around zero); a real range gets
/// `margin` (a fraction of its length) on both sides.
#[must_use]
pub fn padded_range(range: Option<(f64, f64)>, margin: f64) -> (f64, f64) {
    let Some((lo, hi)) = range else {
        return (0.0, 1.0);
    };
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        let mid = if span.is_finite() { lo } else { 0.0 };
        let half = if mid == 0.0 { 1.0 } else { mid.abs() * 0.1 };
        return (mid - half, mid + half);
    }
    let pad = span * margin.max(0.0);
    (lo - pad, hi + pad)
}

/// A step of 1, 2 or 5 times a power of ten giving about `target` intervals over `[lo, hi]`.
#[must_use]
pub fn nice_step(lo: f64, hi: f64, target: usize) -> f64 {
    let span = hi - lo;
    if !(span.is_finite() && span > 0.0) {
        return 1.0;
    }
    let raw = span / target.max(1) as f64;
    let magnitude = 10_f64.powf(raw.log10().floor());
    let normalized = raw / magnitude;
    let factor = if normalized < 1.5 {
        1.0
    } else if normalized < 3.0 {
        2.0
    } else if normalized < 7.0 {
        5.0
    } else {
        10.0
    };
    factor * magnitude
}

/// The multiples of a nice step (see [`nice_step`]) inside `[lo, hi]`.
#[must_use]
pub fn ticks(lo: f64, hi: f64, target: usize) -> (Vec<f64>, f64) {
    let step = nice_step(lo, hi, target);
    if !(lo.is_finite() && hi.is_finite() && hi > lo) {
        return (Vec::new(), step);
    }
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let values = (first..=last.min(first + 1000)).map(|k| k as f64 * step).collect();
    (values, step)
}

/// A tick label for `value` on an axis whose ticks are `step` apart: as many decimals as the
/// step needs, scientific notation for very large or very small magnitudes, never `-0`.
#[must_use]
pub fn format_tick(value: f64, step: f64) -> String {
    if !value.is_finite() {
        return format!("{value}");
    }
    let magnitude = value.abs().max(step.abs());
    if value != 0.0 && !(1e-4..1e6).contains(&magnitude) {
        return format!("{value:.1e}");
    }
    let decimals = if step > 0.0 { (-step.log10().floor()).clamp(0.0, 10.0) as usize } else { 2 };
    let text = format!("{value:.decimals$}");
    if text.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') {
        text.trim_start_matches('-').to_string()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_two_or_five_times_a_power_of_ten() {
        assert_eq!(nice_step(0.0, 1.0, 5), 0.2);
        assert_eq!(nice_step(0.0, 100.0, 5), 20.0);
        assert_eq!(nice_step(0.0, 7.0, 5), 1.0);
        assert_eq!(nice_step(0.0, 0.03, 5), 0.005);
        assert_eq!(nice_step(3.0, 3.0, 5), 1.0);
    }

    #[test]
    fn ticks_are_inside_the_range() {
        let (values, step) = ticks(-0.05, 1.05, 5);
        assert_eq!(step, 0.2);
        assert_eq!(values.len(), 6);
        assert!((values[5] - 1.0).abs() < 1e-12);
        assert_eq!(ticks(0.0, 10.0, 5).0, vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        assert!(ticks(1.0, 1.0, 5).0.is_empty());
        assert!(ticks(f64::NAN, 1.0, 5).0.is_empty());
    }

    #[test]
    fn ranges_ignore_non_finite_values_and_never_collapse() {
        assert_eq!(finite_range([f64::NAN, 2.0, f64::INFINITY, -1.0]), Some((-1.0, 2.0)));
        assert_eq!(finite_range([f64::NAN]), None);
        assert_eq!(padded_range(None, 0.05), (0.0, 1.0));
        assert_eq!(padded_range(Some((0.0, 0.0)), 0.05), (-1.0, 1.0));
        assert_eq!(padded_range(Some((5.0, 5.0)), 0.05), (4.5, 5.5));
        assert_eq!(padded_range(Some((0.0, 10.0)), 0.1), (-1.0, 11.0));
    }

    #[test]
    fn tick_labels_have_the_decimals_the_step_needs() {
        assert_eq!(format_tick(0.4, 0.2), "0.4");
        assert_eq!(format_tick(20.0, 20.0), "20");
        assert_eq!(format_tick(0.005, 0.005), "0.005");
        assert_eq!(format_tick(-0.0, 0.1), "0.0");
        assert_eq!(format_tick(-1e-17, 0.1), "0.0");
        assert_eq!(format_tick(2_000_000.0, 1e6), "2.0e6");
        assert_eq!(format_tick(-0.3, 0.1), "-0.3");
    }
}
