//! The float type the kernels are generic over, and the numerically stable logistic helpers.
//!
//! The loss and the decode run in `f32` for speed and in `f64` for the golden comparison at
//! tight tolerances and for finite-difference checks. Both go through [`Real`], so there is one
//! implementation of each formula.

/// `f32` or `f64`, with the few transcendental functions the kernels need.
pub trait Real:
    Copy
    + Send
    + Sync
    + PartialOrd
    + Default
    + std::fmt::Debug
    + std::ops::Add<Output = Self>
    + std::ops::Sub<Output = Self>
    + std::ops::Mul<Output = Self>
    + std::ops::Div<Output = Self>
    + std::ops::Neg<Output = Self>
    + crate::geometry::Float
{
    /// 1.
    const ONE: Self;
    /// 0.5.
    const HALF: Self;
    /// Negative infinity.
    const NEG_INFINITY: Self;
    /// Widens or rounds an `f32`.
    fn from_f32(v: f32) -> Self;
    /// Widens or rounds an `f64`.
    fn from_f64(v: f64) -> Self;
    /// Converts an index or count.
    fn from_usize(v: usize) -> Self;
    /// Widens to `f64`.
    fn to_f64(self) -> f64;
    /// `e^self`.
    #[must_use]
    fn exp(self) -> Self;
    /// Natural logarithm.
    #[must_use]
    fn ln(self) -> Self;
    /// `ln(1 + self)` for `self` in `[0, 1]` (the tail of the stable BCE); see the `f32`
    /// implementation for its accuracy.
    #[must_use]
    fn ln_1p_unit(self) -> Self;
    /// Absolute value.
    #[must_use]
    fn abs(self) -> Self;
    /// Whether the value is neither NaN nor infinite.
    fn is_finite(self) -> bool;
    /// Rounds to the nearest integer, ties to even (numpy's and TensorFlow's `round`).
    #[must_use]
    fn round_ties_even(self) -> Self;
}

macro_rules! impl_real {
    ($t:ty, $ln_1p_unit:expr) => {
        impl Real for $t {
            const ONE: Self = 1.0;
            const HALF: Self = 0.5;
            const NEG_INFINITY: Self = <$t>::NEG_INFINITY;
            #[inline]
            fn from_f32(v: f32) -> Self {
                v as $t
            }
            #[inline]
            fn from_f64(v: f64) -> Self {
                v as $t
            }
            #[inline]
            fn from_usize(v: usize) -> Self {
                v as $t
            }
            #[inline]
            fn to_f64(self) -> f64 {
                self as f64
            }
            #[inline]
            fn exp(self) -> Self {
                <$t>::exp(self)
            }
            #[inline]
            fn ln(self) -> Self {
                <$t>::ln(self)
            }
            #[inline]
            fn ln_1p_unit(self) -> Self {
                $ln_1p_unit(self)
            }
            #[inline]
            fn abs(self) -> Self {
                <$t>::abs(self)
            }
            #[inline]
            fn is_finite(self) -> bool {
                <$t>::is_finite(self)
            }
            #[inline]
            fn round_ties_even(self) -> Self {
                <$t>::round_ties_even(self)
            }
        }
    };
}

// f32: `ln(1 + v)` in f32. For small v the sum rounds (absolute error below 6e-8 per term, far
// inside the float32 tolerance of the summed loss: the golden cases pass at 1e-6 relative), and
// glibc's `logf` is several times faster than `log1pf` or an f64 `log`.
impl_real!(f32, |v: f32| (1.0f32 + v).ln());
impl_real!(f64, f64::ln_1p);

/// The logistic function, stable for large `|x|`.
#[inline]
pub fn sigmoid<T: Real>(x: T) -> T {
    let e = (-x.abs()).exp();
    if x >= T::ZERO {
        T::ONE / (T::ONE + e)
    } else {
        e / (T::ONE + e)
    }
}

/// Sigmoid cross-entropy with logits, `max(x,0) - x*z + ln(1 + e^-|x|)`, together with
/// `sigmoid(x)` (its derivative is `sigmoid(x) - z`). One `exp` and one `ln_1p` serve both.
#[inline]
pub fn bce_with_logits<T: Real>(z: T, x: T) -> (T, T) {
    let e = (-x.abs()).exp();
    let relu = if x > T::ZERO { x } else { T::ZERO };
    let loss = relu - x * z + e.ln_1p_unit();
    let sig = if x >= T::ZERO { T::ONE / (T::ONE + e) } else { e / (T::ONE + e) };
    (loss, sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bce_is_stable_at_large_logits() {
        let (l, s) = bce_with_logits(1.0f64, 50.0);
        assert!(l > 0.0 && l < 1e-20);
        assert_eq!(s, 1.0);
        let (l, s) = bce_with_logits(1.0f64, -50.0);
        assert!((l - 50.0).abs() < 1e-12);
        assert!(s > 0.0 && s < 1e-20);
        let (l, _) = bce_with_logits(0.0f32, 30.0);
        assert!((l - 30.0).abs() < 1e-5);
    }

    #[test]
    fn bce_matches_naive_form_in_range() {
        for &x in &[-3.0f64, -0.5, 0.0, 0.7, 2.5] {
            for &z in &[0.0f64, 0.25, 0.999_999_76, 1.0] {
                let s = 1.0 / (1.0 + (-x).exp());
                let naive = -z * s.ln() - (1.0 - z) * (1.0 - s).ln();
                let (l, sig) = bce_with_logits(z, x);
                assert!((l - naive).abs() < 1e-12, "x={x} z={z}");
                assert!((sig - s).abs() < 1e-15);
                assert!((sigmoid(x) - s).abs() < 1e-15);
            }
        }
    }
}
