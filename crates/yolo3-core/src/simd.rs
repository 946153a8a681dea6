//! Running a kernel compiled for the vector units the CPU has.
//!
//! The loss's loops over a grid row are written without branches so that the compiler turns
//! them into vector code. With only the x86-64 baseline (SSE2), four lanes wide and without
//! blends, it judges the objectness loop not worth vectorising; with AVX2 it runs eight lanes.
//! [`with_avx2`] compiles its closure a second time with AVX2 enabled and picks that copy when
//! the CPU supports it. Rust never fuses a multiply and an add on its own, so both copies do the
//! same IEEE operations in the same order: the results are bit for bit the same on every CPU.

// The only way to call code compiled for a CPU feature is an `unsafe` call after checking it.
#![allow(unsafe_code)]

/// Runs `f`, compiled with AVX2 when the CPU has it (x86-64), and as it is otherwise. Only code
/// inlined into `f` is compiled twice: mark the closure and the kernel it calls
/// `#[inline(always)]`.
#[allow(clippy::inline_always)] // a thin wrapper: its closure is the kernel
#[inline(always)]
pub(crate) fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2")]
        fn run<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        if std::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU was just checked to support AVX2, the one feature `run` assumes.
            return unsafe { run(f) };
        }
    }
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::real::{bce_with_logits, sigmoid, Real};

    /// The math of the loss's row loops over an array, branch-free like them.
    #[allow(clippy::inline_always)] // compiled into both copies, as the loss kernel is
    #[inline(always)]
    fn kernel(x: &[f32]) -> Vec<[u32; 4]> {
        x.iter()
            .map(|&v| {
                let (bce, sig) = bce_with_logits(0.3, v);
                [Real::exp(v).to_bits(), sigmoid(v).to_bits(), bce.to_bits(), sig.to_bits()]
            })
            .collect()
    }

    #[test]
    fn the_avx2_copy_computes_the_same_bits() {
        let x: Vec<f32> = (0..20_000).map(|i| (i as f32 - 10_000.0) * 0.011).collect();
        let plain = kernel(&x);
        let fast = with_avx2(
            #[inline(always)]
            || kernel(&x),
        );
        assert!(plain == fast);
    }
}
