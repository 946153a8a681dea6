//! Writing a large output once, in memory order, with streaming (non-temporal) stores.
//!
//! The loss gradient is as big as the predictions (58 MB at batch 16, 416 px, 80 classes), is
//! almost all zeros, and is written once and read later by someone else. An ordinary store first
//! fetches the cache line it writes (read-for-ownership) and then evicts something to keep it;
//! a streaming store sends the whole line to memory without either.
//!
//! [`LineWriter`] writes a slice front to back in runs of zeros and runs copied from a source.
//! Whole 64-byte lines go straight from registers to memory, 32 bytes per store with AVX and
//! 16 with SSE2 (measured on the project's 2-core machine, 58 MB of zeros from one thread:
//! `memset` 0.81 ms, 32-byte streaming stores 0.70 ms, 16-byte ones 1.11 ms). A line that two
//! runs share is gathered in a small buffer first. Values before the first aligned line are
//! stored normally, and so is a last, partial line. On targets other than x86-64 every store is
//! an ordinary one; the result is the same.
//!
//! Streaming stores are weakly ordered, so the writer ends with a store fence (`sfence`) when it
//! is dropped: after that, ordinary reads and writes of the slice, from this thread or another
//! one it hands the slice to, see the streamed values.

// The only unsafe code of the crate besides `simd`: the streaming-store intrinsics take raw
// pointers.
#![allow(unsafe_code)]

use crate::real::Real;

/// Bytes per cache line, the unit a streaming store fills.
const LINE_BYTES: usize = 64;

/// One cache line of pending values, aligned like the destination lines: 16 values, of which an
/// `f64` line uses the first 8.
#[repr(C, align(64))]
#[derive(Clone, Copy)]
struct Line<T>([T; 16]);

/// Sequential writer of a slice that streams full cache lines to memory (see the module docs).
pub(crate) struct LineWriter<'a, T: Real> {
    dst: &'a mut [T],
    /// Index of the next value to write.
    pos: usize,
    /// Values before this index are stored one by one (it is where the first aligned line
    /// starts, or `dst.len()` when lines cannot be aligned).
    head: usize,
    /// The values of the line `pos` is in, from its start to `pos`; zero beyond.
    line: Line<T>,
    /// Whether the CPU has AVX and its 32-byte streaming stores.
    avx: bool,
}

impl<'a, T: Real> LineWriter<'a, T> {
    /// Values per line.
    const LANES: usize = LINE_BYTES / std::mem::size_of::<T>();

    /// A writer that starts at `dst[0]`.
    pub(crate) fn new(dst: &'a mut [T]) -> Self {
        let head = match dst.as_ptr().align_offset(LINE_BYTES) {
            off if off <= dst.len() => off,
            _ => dst.len(),
        };
        #[cfg(target_arch = "x86_64")]
        let avx = std::is_x86_feature_detected!("avx");
        #[cfg(not(target_arch = "x86_64"))]
        let avx = false;
        Self { dst, pos: 0, head, line: Line([T::ZERO; 16]), avx }
    }

    /// Writes `n` zeros.
    ///
    /// # Panics
    /// When fewer than `n` values are left.
    pub(crate) fn zeros(&mut self, n: usize) {
        self.write(n, None);
    }

    /// Writes `values` in order.
    ///
    /// # Panics
    /// When fewer than `values.len()` values are left.
    pub(crate) fn extend(&mut self, values: &[T]) {
        self.write(values.len(), Some(values));
    }

    /// Writes `n` values: `src`, or zeros.
    fn write(&mut self, n: usize, src: Option<&[T]>) {
        assert!(n <= self.dst.len() - self.pos, "LineWriter: write past the end of the slice");
        let value = |i: usize| src.map_or(T::ZERO, |s| s[i]);
        let mut done = 0;
        // Before the first aligned line: ordinary stores.
        let k = n.min(self.head.saturating_sub(self.pos));
        for (i, out) in self.dst[self.pos..self.pos + k].iter_mut().enumerate() {
            *out = value(i);
        }
        self.pos += k;
        done += k;
        if done == n {
            return;
        }
        // Into the pending line, until it is full or the run ends.
        let lane = (self.pos - self.head) % Self::LANES;
        if lane != 0 {
            let k = (Self::LANES - lane).min(n - done);
            if let Some(s) = src {
                self.line.0[lane..lane + k].copy_from_slice(&s[done..done + k]);
            }
            self.pos += k;
            done += k;
            if lane + k == Self::LANES {
                let out = &mut self.dst[self.pos - Self::LANES..self.pos];
                stream_lines(out, Some(&self.line.0[..Self::LANES]), self.avx);
                self.line = Line([T::ZERO; 16]);
            }
        }
        // Whole lines, straight from the source (or from a zero register) to memory.
        let lines = (n - done) / Self::LANES;
        if lines > 0 {
            let len = lines * Self::LANES;
            let out = &mut self.dst[self.pos..self.pos + len];
            stream_lines(out, src.map(|s| &s[done..done + len]), self.avx);
            self.pos += len;
            done += len;
        }
        // The start of the next line.
        if let Some(s) = src {
            self.line.0[..n - done].copy_from_slice(&s[done..n]);
        }
        self.pos += n - done;
    }
}

impl<T: Real> Drop for LineWriter<'_, T> {
    /// Stores the values of a last, partial line and fences the streaming stores.
    fn drop(&mut self) {
        if self.pos > self.head {
            let pending = (self.pos - self.head) % Self::LANES;
            let start = self.pos - pending;
            self.dst[start..self.pos].copy_from_slice(&self.line.0[..pending]);
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: SSE is part of x86-64; `sfence` has no other precondition.
        unsafe {
            std::arch::x86_64::_mm_sfence();
        }
    }
}

/// Streams `out`, whole lines starting on a line boundary, from `src` (the same length, any
/// alignment) or zeros, 32 bytes per store with `avx` and 16 without.
fn stream_lines<T: Real>(out: &mut [T], src: Option<&[T]>, avx: bool) {
    let bytes = std::mem::size_of_val(out);
    assert!(bytes.is_multiple_of(LINE_BYTES) && out.as_ptr().align_offset(LINE_BYTES) == 0);
    assert!(src.is_none_or(|s| s.len() == out.len()));
    #[cfg(target_arch = "x86_64")]
    {
        let (dst, src) = (out.as_mut_ptr().cast::<u8>(), src.map(|s| s.as_ptr().cast::<u8>()));
        let lines = bytes / LINE_BYTES;
        // SAFETY: checked above: `dst` is 64-byte aligned and `lines` lines long, and `src`, when
        // given, is as long. AVX is used only when the caller found the CPU to have it; SSE2 is
        // part of x86-64. The writer's `Drop` fences the stores.
        unsafe {
            if avx {
                stream_avx(dst, src, lines);
            } else {
                stream_sse2(dst, src, lines);
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = avx;
        match src {
            Some(s) => out.copy_from_slice(s),
            None => out.fill(T::ZERO),
        }
    }
}

/// Streams `lines` 64-byte lines to `dst` from `src`, or zeros, 32 bytes per store.
///
/// # Safety
/// The CPU has AVX; `dst` is 64-byte aligned and valid for `64 * lines` bytes, and so is `src`
/// (any alignment) when given.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx")]
#[allow(clippy::cast_ptr_alignment)] // `dst` is aligned by contract; `src` is read unaligned
unsafe fn stream_avx(dst: *mut u8, src: Option<*const u8>, lines: usize) {
    use std::arch::x86_64::{
        __m256i, _mm256_loadu_si256, _mm256_setzero_si256, _mm256_stream_si256,
    };
    let dst = dst.cast::<__m256i>();
    for k in 0..2 * lines {
        // SAFETY: see the function's contract.
        unsafe {
            let v = match src {
                Some(s) => _mm256_loadu_si256(s.cast::<__m256i>().add(k)),
                None => _mm256_setzero_si256(),
            };
            _mm256_stream_si256(dst.add(k), v);
        }
    }
}

/// Streams `lines` 64-byte lines to `dst` from `src`, or zeros, 16 bytes per store.
///
/// # Safety
/// `dst` is 64-byte aligned and valid for `64 * lines` bytes, and so is `src` (any alignment)
/// when given.
#[cfg(target_arch = "x86_64")]
#[allow(clippy::cast_ptr_alignment)] // `dst` is aligned by contract; `src` is read unaligned
unsafe fn stream_sse2(dst: *mut u8, src: Option<*const u8>, lines: usize) {
    use std::arch::x86_64::{__m128i, _mm_loadu_si128, _mm_setzero_si128, _mm_stream_si128};
    let dst = dst.cast::<__m128i>();
    for k in 0..4 * lines {
        // SAFETY: see the function's contract; SSE2 is part of x86-64.
        unsafe {
            let v = match src {
                Some(s) => _mm_loadu_si128(s.cast::<__m128i>().add(k)),
                None => _mm_setzero_si128(),
            };
            _mm_stream_si128(dst.add(k), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Writes a pattern of zero runs and copied runs through the writer at every alignment and
    /// length, and compares.
    fn round_trip<T: Real>(to: fn(usize) -> T, avx: bool) {
        let pattern: Vec<T> =
            (0..300).map(|i| if i % 37 < 9 || i % 7 == 3 { to(i) } else { T::ZERO }).collect();
        let sentinel = to(9999);
        let mut backing = [sentinel; 400];
        for offset in 0..20 {
            for len in [0, 1, 5, 17, 64, 299] {
                backing.fill(sentinel);
                {
                    let mut w = LineWriter::new(&mut backing[offset..offset + len]);
                    w.avx &= avx;
                    let mut i = 0;
                    while i < len {
                        let zero = pattern[i] == T::ZERO;
                        let run = pattern[i..len].iter().take_while(|v| (**v == T::ZERO) == zero);
                        let run = run.count();
                        if zero {
                            w.zeros(run);
                        } else {
                            w.extend(&pattern[i..i + run]);
                        }
                        i += run;
                    }
                }
                assert_eq!(&backing[offset..offset + len], &pattern[..len], "offset {offset}");
                assert!(backing[..offset].iter().all(|v| *v == sentinel), "wrote before");
                assert!(backing[offset + len..].iter().all(|v| *v == sentinel), "wrote after");
            }
        }
    }

    #[test]
    fn writes_every_value_at_every_alignment() {
        for avx in [true, false] {
            round_trip::<f32>(|i| i as f32, avx);
            round_trip::<f64>(|i| i as f64, avx);
        }
    }

    #[test]
    fn runs_longer_than_a_line() {
        let src: Vec<f32> = (1..=100).map(|i| i as f32).collect();
        let mut v = vec![-1.0f32; 240];
        {
            let mut w = LineWriter::new(&mut v[3..]);
            w.extend(&src);
            w.zeros(70);
            w.extend(&src[..50]);
        }
        assert_eq!(&v[..3], &[-1.0; 3]);
        assert_eq!(&v[3..103], &src[..]);
        assert!(v[103..173].iter().all(|x| *x == 0.0));
        assert_eq!(&v[173..223], &src[..50]);
        assert!(v[223..].iter().all(|x| *x == -1.0));
    }

    #[test]
    #[should_panic(expected = "past the end")]
    fn writing_past_the_end_panics() {
        let mut v = [0.0f32; 40];
        let mut w = LineWriter::new(&mut v);
        w.zeros(41);
    }
}
