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
    /// The larger of two values, or the one that is not NaN (IEEE `maxNum`).
    #[must_use]
    fn max(self, other: Self) -> Self;
    /// Whether the value is neither NaN nor infinite.
    fn is_finite(self) -> bool;
    /// Rounds to the nearest integer, ties to even (numpy's and TensorFlow's `round`).
    #[must_use]
    fn round_ties_even(self) -> Self;
}

macro_rules! impl_real {
    ($t:ty, $exp:expr, $ln_1p_unit:expr) => {
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
                $exp(self)
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
            fn max(self, other: Self) -> Self {
                <$t>::max(self, other)
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

// f32 evaluates `exp` and `ln(1 + v)` with the polynomials below instead of calling libm: they
// have no branches and no calls, so the loops of the loss over a grid row run in vector
// registers. Both stay within 2 ulp of the exact value (tests below), the float32 tolerances of
// the golden files are 50 times wider. f64 keeps the library functions, for the tight
// comparisons.
impl_real!(f32, exp_f32, ln_1p_unit_f32);
impl_real!(f64, f64::exp, f64::ln_1p);

/// `e^x` in f32: `x = n ln 2 + r` with `|r| <= ln 2 / 2`, Cephes' `expf` polynomial for `e^r`,
/// and `2^n` applied in two halves so that results down to the subnormals and up to overflow
/// come out right. NaN stays NaN.
#[inline]
fn exp_f32(x: f32) -> f32 {
    // Beyond these `e^x` is 0 or infinite in f32; clamping keeps `n` in `[-150, 129]`.
    let x = x.clamp(-104.0, 89.0);
    // Round `x / ln 2` to an integer by adding 1.5 * 2^23: the sum's last mantissa bits are `n`.
    let shifted = x * std::f32::consts::LOG2_E + 12_582_912.0;
    let n = shifted - 12_582_912.0;
    let r = (x - n * 0.693_359_4) - n * -2.121_944_4e-4;
    let p = (((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2)
        * r
        + 1.666_666_5e-1)
        * r
        + 0.5)
        * (r * r)
        + r
        + 1.0;
    let n = shifted.to_bits() as i32 - 0x4B40_0000;
    let half = n >> 1;
    let pow2 = |k: i32| f32::from_bits(((k + 127) as u32) << 23);
    p * pow2(half) * pow2(n - half)
}

/// `ln(1 + v)` in f32 for `v` in `[0, 1]`, as `2 atanh(s)` with `s = v / (2 + v)` in
/// `[0, 1/3]`: the odd series up to `s^13` leaves a relative error below 2e-8.
#[inline]
fn ln_1p_unit_f32(v: f32) -> f32 {
    let s = v / (2.0 + v);
    let z = s * s;
    let tail = 1.0 / 3.0
        + z * (1.0 / 5.0 + z * (1.0 / 7.0 + z * (1.0 / 9.0 + z * (1.0 / 11.0 + z * (1.0 / 13.0)))));
    let two_s = 2.0 * s;
    two_s + two_s * z * tail
}

/// The logistic function, stable for large `|x|`.
#[inline]
pub fn sigmoid<T: Real>(x: T) -> T {
    let e = (-x.abs()).exp();
    (if x >= T::ZERO { T::ONE } else { e }) / (T::ONE + e)
}

/// Sigmoid cross-entropy with logits, `max(x,0) - x*z + ln(1 + e^-|x|)`, together with
/// `sigmoid(x)` (its derivative is `sigmoid(x) - z`). One `exp` and one `ln_1p` serve both.
#[inline]
pub fn bce_with_logits<T: Real>(z: T, x: T) -> (T, T) {
    let e = (-x.abs()).exp();
    let relu = if x > T::ZERO { x } else { T::ZERO };
    let loss = relu - x * z + e.ln_1p_unit();
    let sig = (if x >= T::ZERO { T::ONE } else { e }) / (T::ONE + e);
    (loss, sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between an f32 and the exact (f64) value.
    fn ulps(got: f32, exact: f64) -> f64 {
        let rounded = exact as f32;
        let ulp = (f32::from_bits(rounded.abs().to_bits() + 1) - rounded.abs()) as f64;
        (got as f64 - exact).abs() / ulp
    }

    #[test]
    fn f32_exp_is_within_two_ulp() {
        let mut worst = 0.0f64;
        let mut x = -103.0f32;
        while x < 88.7 {
            let exact = (x as f64).exp();
            if exact >= f32::MIN_POSITIVE as f64 {
                worst = worst.max(ulps(Real::exp(x), exact));
            }
            x += 0.000_37;
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(Real::exp(0.0f32), 1.0);
        assert_eq!(Real::exp(-200.0f32), 0.0);
        assert_eq!(Real::exp(89.0f32), f32::INFINITY);
        assert!(Real::exp(88.72f32).is_finite());
        assert!(Real::exp(f32::NAN).is_nan());
        assert_eq!(Real::exp(f32::INFINITY), f32::INFINITY);
        assert_eq!(Real::exp(f32::NEG_INFINITY), 0.0);
        // Subnormal results: within one subnormal step.
        let tiny = Real::exp(-100.0f32) as f64;
        assert!((tiny - (-100.0f64).exp()).abs() <= f32::from_bits(1) as f64);
    }

    #[test]
    fn f32_ln_1p_is_within_two_ulp() {
        let mut worst = 0.0f64;
        for i in 0..=1_000_000 {
            let v = i as f32 / 1_000_000.0;
            if v > 0.0 {
                worst = worst.max(ulps(v.ln_1p_unit(), (v as f64).ln_1p()));
            }
        }
        for k in 1..140 {
            let v = 2f32.powi(-k);
            worst = worst.max(ulps(v.ln_1p_unit(), (v as f64).ln_1p()));
        }
        assert!(worst <= 2.0, "worst error {worst} ulp");
        assert_eq!(0.0f32.ln_1p_unit(), 0.0);
    }

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
