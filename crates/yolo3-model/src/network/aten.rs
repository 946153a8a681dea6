//! The calls into ATen that tch does not expose, through the C++ shim in `csrc/` (compiled by
//! `build.rs`): `at::leaky_relu` with a chosen slope (`leaky.cpp`), and oneDNN's convolution
//! with bias and activation fused, `mkldnn::_convolution_pointwise` (`conv_pointwise.cpp`), and
//! the input and output transforms of a Winograd F(2x2, 3x3) convolution (`winograd.cpp`), and
//! a one-pass max pooling for inference (`maxpool.cpp`), and a thin first convolution with
//! the max pooling after it in one pass (`conv_pool.cpp`).
//!
//! tch 0.26 binds `leaky_relu` with PyTorch's default slope 0.01 only. Composing darknet's 0.1
//! from elementwise operations cost 30% of a training step, and `prelu` with a fixed weight is
//! 1.6-4x slower than ATen's leaky kernel; this keeps ATen's forward and backward kernels.
#![allow(unsafe_code)]
use std::ffi::{c_char, c_void, CStr};

use tch::{TchError, Tensor};
use torch_sys::C_tensor;

extern "C" {
    fn yolo3_leaky_relu(
        input: *const C_tensor,
        slope: f64,
        error: *mut *mut c_char,
    ) -> *mut C_tensor;
    fn yolo3_has_mkldnn() -> i32;
    fn yolo3_conv_pointwise(
        input: *const C_tensor,
        weight: *const C_tensor,
        bias: *const C_tensor,
        stride: i64,
        padding: i64,
        groups: i64,
        attr: *const c_char,
        slope: f64,
        error: *mut *mut c_char,
    ) -> *mut C_tensor;
    fn yolo3_winograd_input(
        input: *const C_tensor,
        grouped: i32,
        error: *mut *mut c_char,
    ) -> *mut C_tensor;
    fn yolo3_winograd_output(
        parts: *const *const C_tensor,
        count: i32,
        bias: *const C_tensor,
        n: i64,
        h: i64,
        w: i64,
        leaky: i32,
        slope: f64,
        error: *mut *mut c_char,
    ) -> *mut C_tensor;
    fn yolo3_has_packed_gemm() -> i32;
    fn yolo3_winograd_pack(
        planes: *const C_tensor,
        rows: i64,
        error: *mut *mut c_char,
    ) -> *mut C_tensor;
    fn yolo3_winograd_fused(
        input: *const C_tensor,
        packed: *const C_tensor,
        rows: i64,
        bias: *const C_tensor,
        leaky: i32,
        slope: f64,
        error: *mut *mut c_char,
    ) -> *mut C_tensor;
    fn yolo3_conv_pool(
        input: *const C_tensor,
        kernel: *const C_tensor,
        bias: *const C_tensor,
        leaky: i32,
        slope: f64,
        error: *mut *mut c_char,
    ) -> *mut C_tensor;
    fn yolo3_maxpool(
        input: *const C_tensor,
        size: i64,
        stride: i64,
        before: i64,
        out_h: i64,
        out_w: i64,
        error: *mut *mut c_char,
    ) -> *mut C_tensor;
    fn free(ptr: *mut c_void);
}

/// Takes the shim's result: a new tensor handle, or null and a malloc'ed message.
///
/// # Safety
/// `out` and `error` are what one shim call returned.
unsafe fn take_result(
    out: *mut C_tensor,
    error: *mut c_char,
    what: &str,
) -> Result<Tensor, TchError> {
    if out.is_null() {
        let message = if error.is_null() {
            format!("{what} failed")
        } else {
            // SAFETY: a non-null `error` is a NUL-terminated string from strdup.
            let m = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
            // SAFETY: allocated by malloc (strdup) and not used after this.
            unsafe { free(error.cast()) };
            m
        };
        return Err(TchError::Torch(message));
    }
    // SAFETY: a non-null `out` is a new `at::Tensor*` whose ownership passes to the Tensor.
    Ok(unsafe { Tensor::from_ptr(out) })
}

/// Whether this libtorch was built with oneDNN (mkldnn).
pub(super) fn has_mkldnn() -> bool {
    // SAFETY: no arguments; reads a build-time flag.
    unsafe { yolo3_has_mkldnn() != 0 }
}

/// oneDNN's post-op after a fused convolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum PostOp {
    /// Nothing (a linear activation).
    None,
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `x > 0 ? x : slope * x`.
    Leaky(f64),
}

/// The geometry of a convolution: square `stride` and `padding`, no dilation, `groups` as in
/// conv2d.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct ConvShape {
    pub stride: i64,
    pub padding: i64,
    pub groups: i64,
}

/// Convolution + bias + `post`, as one oneDNN primitive. CPU only; `weight` may be a plain
/// NCHW kernel or one reordered by `mkldnn_reorder_conv2d_weight` for this input size. No
/// autograd.
pub(super) fn conv_pointwise(
    xs: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    shape: ConvShape,
    post: PostOp,
) -> Result<Tensor, TchError> {
    let (attr, slope): (&CStr, f64) = match post {
        PostOp::None => (c"none", 0.0),
        PostOp::Relu => (c"relu", 0.0),
        PostOp::Sigmoid => (c"sigmoid", 0.0),
        PostOp::Leaky(slope) => (c"leaky_relu", slope),
    };
    let bias = bias.map_or(std::ptr::null(), Tensor::as_ptr);
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: every tensor handle is live for the duration of the call (null for no bias) and
    // `attr` is a NUL-terminated literal; the result is taken exactly once.
    unsafe {
        let out = yolo3_conv_pointwise(
            xs.as_ptr(),
            weight.as_ptr(),
            bias,
            shape.stride,
            shape.padding,
            shape.groups,
            attr.as_ptr(),
            slope,
            &raw mut error,
        );
        take_result(out, error, "the fused convolution")
    }
}

/// Winograd F(2x2, 3x3) input transform of `xs` (`N x C x H x W` float32, padding 1): the
/// transformed 4x4 patch of each of the `T = N * ceil(H/2) * ceil(W/2)` output tiles, as
/// `16 x T x C` (one plane per product), or `T x 16 x C` when `grouped` (one product of 16
/// groups).
pub(super) fn winograd_input(xs: &Tensor, grouped: bool) -> Result<Tensor, TchError> {
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: `xs.as_ptr()` is a live tensor handle for the duration of the call; the result is
    // taken exactly once.
    unsafe {
        let out = yolo3_winograd_input(xs.as_ptr(), i32::from(grouped), &raw mut error);
        take_result(out, error, "the Winograd input transform")
    }
}

/// Winograd F(2x2, 3x3) output transform: the `N x Cout x H x W` output (channels-last) from the
/// products of [`winograd_input`]'s tiles (16 planes, each `T x Cout` in memory, or one
/// grouped `T x 16 x Cout`), plus `bias`, then `leaky`'s slope if given.
pub(super) fn winograd_output(
    parts: &[Tensor],
    bias: &Tensor,
    (n, h, w): (i64, i64, i64),
    leaky: Option<f64>,
) -> Result<Tensor, TchError> {
    if parts.len() != 1 && parts.len() != 16 {
        return Err(TchError::Torch(format!("{} Winograd products, not 1 or 16", parts.len())));
    }
    let handles: Vec<*const C_tensor> = parts.iter().map(Tensor::as_ptr).collect();
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: the handles (1 or 16, as `count` says) and `bias` are live tensors for the
    // duration of the call; the result is taken exactly once.
    unsafe {
        let out = yolo3_winograd_output(
            handles.as_ptr(),
            handles.len() as i32,
            bias.as_ptr(),
            n,
            h,
            w,
            i32::from(leaky.is_some()),
            leaky.unwrap_or(0.0),
            &raw mut error,
        );
        take_result(out, error, "the Winograd output transform")
    }
}

/// Whether this libtorch carries MKL's packed GEMM, which [`winograd_fused`] runs on.
pub(super) fn has_packed_gemm() -> bool {
    // SAFETY: reads three symbols' addresses; no arguments.
    unsafe { yolo3_has_packed_gemm() != 0 }
}

/// The 16 Winograd planes of a kernel (`16 Cout x Cin`, as the grouped product takes them)
/// packed by MKL for [`winograd_fused`] on blocks of `rows` tiles.
pub(super) fn winograd_pack(planes: &Tensor, rows: i64) -> Result<Tensor, TchError> {
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: `planes` is a live tensor handle for the duration of the call; the result is
    // taken exactly once.
    unsafe {
        let out = yolo3_winograd_pack(planes.as_ptr(), rows, &raw mut error);
        take_result(out, error, "packing Winograd kernels")
    }
}

/// The Winograd F(2x2, 3x3) convolution of `xs` (`N x Cin x H x W` float32, padding 1) in one
/// pass, block by block of `rows` tiles (kernels from [`winograd_pack`] for the same `rows`),
/// plus `bias`, then `leaky`'s slope if given; channels-last out.
pub(super) fn winograd_fused(
    xs: &Tensor,
    packed: &Tensor,
    rows: i64,
    bias: &Tensor,
    leaky: Option<f64>,
) -> Result<Tensor, TchError> {
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: the three tensors are live handles for the duration of the call; the result is
    // taken exactly once.
    unsafe {
        let out = yolo3_winograd_fused(
            xs.as_ptr(),
            packed.as_ptr(),
            rows,
            bias.as_ptr(),
            i32::from(leaky.is_some()),
            leaky.unwrap_or(0.0),
            &raw mut error,
        );
        take_result(out, error, "the Winograd convolution")
    }
}

/// Max pooling of `xs` (`N x C x H x W` float32; channels-last in and out) to `out` = `(H', W')`:
/// output `(y, x)` is the maximum over rows `y * stride - before + [0, size)` and columns
/// likewise, samples outside the input left out, NaN propagated. No autograd.
pub(super) fn maxpool(
    xs: &Tensor,
    size: i64,
    stride: i64,
    before: i64,
    out: (i64, i64),
) -> Result<Tensor, TchError> {
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: `xs.as_ptr()` is a live tensor handle for the duration of the call; the result is
    // taken exactly once.
    unsafe {
        let result = yolo3_maxpool(xs.as_ptr(), size, stride, before, out.0, out.1, &raw mut error);
        take_result(result, error, "max pooling")
    }
}

/// A 3x3 convolution (stride 1, padding 1) of `xs` (`N x Cin x H x W` float32, 1 to 4
/// channels, `H` and `W` even) with `kernel` (`3 x 3 x Cin x Cout`, `Cout` a multiple of 16),
/// plus `bias`, then `leaky`'s slope if given, then 2x2 max pooling of stride 2: the
/// `N x Cout x H/2 x W/2` output in channels-last memory. No autograd.
pub(super) fn conv_pool(
    xs: &Tensor,
    kernel: &Tensor,
    bias: &Tensor,
    leaky: Option<f64>,
) -> Result<Tensor, TchError> {
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: the three tensors are live handles for the duration of the call; the result is
    // taken exactly once.
    unsafe {
        let out = yolo3_conv_pool(
            xs.as_ptr(),
            kernel.as_ptr(),
            bias.as_ptr(),
            i32::from(leaky.is_some()),
            leaky.unwrap_or(0.0),
            &raw mut error,
        );
        take_result(out, error, "a convolution and its pooling")
    }
}

/// `x > 0 ? x : slope * x`, differentiable.
pub(super) fn leaky_relu(xs: &Tensor, slope: f64) -> Result<Tensor, TchError> {
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: `xs.as_ptr()` is a live tensor handle for the duration of the call; the shim
    // returns either a new handle (owned by the returned Tensor) or a malloc'ed message.
    unsafe {
        let out = yolo3_leaky_relu(xs.as_ptr(), slope, &raw mut error);
        take_result(out, error, "leaky_relu")
    }
}
