//! The one call into ATen that tch does not expose: `at::leaky_relu` with a chosen slope,
//! through the C++ shim `csrc/leaky.cpp` (compiled by `build.rs`).
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
    fn free(ptr: *mut c_void);
}

/// `x > 0 ? x : slope * x`, differentiable.
pub fn leaky_relu(xs: &Tensor, slope: f64) -> Result<Tensor, TchError> {
    let mut error: *mut c_char = std::ptr::null_mut();
    // SAFETY: `xs.as_ptr()` is a live tensor handle for the duration of the call; the shim
    // returns either a new handle (owned by the returned Tensor) or a malloc'ed message.
    unsafe {
        let out = yolo3_leaky_relu(xs.as_ptr(), slope, &raw mut error);
        if out.is_null() {
            let message = if error.is_null() {
                "leaky_relu failed".to_owned()
            } else {
                let m = CStr::from_ptr(error).to_string_lossy().into_owned();
                free(error.cast());
                m
            };
            return Err(TchError::Torch(message));
        }
        Ok(Tensor::from_ptr(out))
    }
}
