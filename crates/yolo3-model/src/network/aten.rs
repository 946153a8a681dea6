//! The calls into ATen that tch does not expose, through the C++ shim in `csrc/` (compiled by
//! `build.rs`): `at::leaky_relu` with a chosen slope (`leaky.cpp`), and oneDNN's convolution
//! with bias and activation fused, `mkldnn::_convolution_pointwise` (`conv_pointwise.cpp`).
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
        attr: *const c_char,
        slope: f64,
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
pub fn has_mkldnn() -> bool {
    // SAFETY: no arguments; reads a build-time flag.
    unsafe { yolo3_has_mkldnn() != 0 }
}

/// oneDNN's post-op after a fused convolution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PostOp {
    /// Nothing (a linear activation).
    None,
    /// `max(x, 0)`.
    Relu,
    /// `1 / (1 + exp(-x))`.
    Sigmoid,
    /// `x > 0 ? x : slope * x`.
    Leaky(f64),
}

/// Convolution (square `stride` and `padding`, no dilation, one group) + bias + `post`, as one
/// oneDNN primitive. CPU only; `weight` may be a plain NCHW kernel or one reordered by
/// `mkldnn_reorder_conv2d_weight` for this input size. No autograd.
pub fn conv_pointwise(
    xs: &Tensor,
    weight: &Tensor,
    bias: Option<&Tensor>,
    stride: i64,
    padding: i64,
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
            stride,
            padding,
            attr.as_ptr(),
            slope,
            &raw mut error,
        );
        take_result(out, error, "the fused convolution")
    }
}

/// `x > 0 ? x : slope * x`, differentiable.
pub fn leaky_relu(xs: &Tensor, slope: f64) -> Result<Tensor, TchError> {
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: `xs.as_ptr()` is a live tensor handle for the duration of the call; the shim
    // returns either a new handle (owned by the returned Tensor) or a malloc'ed message.
    unsafe {
        let out = yolo3_leaky_relu(xs.as_ptr(), slope, &raw mut error);
        take_result(out, error, "leaky_relu")
    }
}
