//! The C ABI of `csrc/c10d.cpp`, wrapped in owning handles whose methods return `Result`s.
//!
//! Every shim call reports failure as null or -1 plus a malloc'ed message; [`take_error`] turns
//! that into the message text exactly once.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_void, CStr, CString};

use tch::Tensor;
use torch_sys::C_tensor;

#[repr(C)]
pub(crate) struct RawStore {
    _private: [u8; 0],
}
#[repr(C)]
pub(crate) struct RawGroup {
    _private: [u8; 0],
}
#[repr(C)]
pub(crate) struct RawWork {
    _private: [u8; 0],
}

extern "C" {
    fn yolo3_store_new(
        host: *const c_char,
        port: u16,
        is_server: i32,
        world: i32,
        timeout_ms: i64,
        error: *mut *mut c_char,
    ) -> *mut RawStore;
    fn yolo3_store_clone(store: *const RawStore, error: *mut *mut c_char) -> *mut RawStore;
    fn yolo3_store_free(store: *mut RawStore);
    fn yolo3_store_set(
        store: *const RawStore,
        key: *const c_char,
        data: *const u8,
        len: usize,
        error: *mut *mut c_char,
    ) -> i32;
    fn yolo3_store_get(
        store: *const RawStore,
        key: *const c_char,
        len: *mut usize,
        error: *mut *mut c_char,
    ) -> *mut u8;
    fn yolo3_store_check(
        store: *const RawStore,
        key: *const c_char,
        error: *mut *mut c_char,
    ) -> i32;
    fn yolo3_store_add(
        store: *const RawStore,
        key: *const c_char,
        delta: i64,
        error: *mut *mut c_char,
    ) -> i64;
    fn yolo3_group_new(
        store: *const RawStore,
        rank: i32,
        world: i32,
        backend: *const c_char,
        hostname: *const c_char,
        timeout_ms: i64,
        error: *mut *mut c_char,
    ) -> *mut RawGroup;
    fn yolo3_group_free(group: *mut RawGroup);
    fn yolo3_all_reduce_start(
        group: *const RawGroup,
        tensor: *const C_tensor,
        error: *mut *mut c_char,
    ) -> *mut RawWork;
    fn yolo3_work_wait(work: *mut RawWork, error: *mut *mut c_char) -> i32;
    fn yolo3_work_free(work: *mut RawWork);
    fn yolo3_broadcast(
        group: *const RawGroup,
        tensor: *const C_tensor,
        root: i32,
        error: *mut *mut c_char,
    ) -> i32;
    fn yolo3_replica_sum(
        group: *const RawGroup,
        input: *const C_tensor,
        error: *mut *mut c_char,
    ) -> *mut C_tensor;
    fn free(ptr: *mut c_void);
}

/// The message of a failed shim call.
///
/// # Safety
/// `error` is null or what the shim set: a NUL-terminated string from `strdup`, not yet freed.
unsafe fn take_error(error: *mut c_char) -> String {
    if error.is_null() {
        return "failed without a message".to_owned();
    }
    // SAFETY: per the contract above.
    let message = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
    // SAFETY: allocated by malloc (strdup) and not used after this.
    unsafe { free(error.cast()) };
    // c10d appends the C++ stack ("Exception raised from ... frame #0: ..."): not for users.
    match message.find("\nException raised from") {
        Some(end) => message[..end].trim_end().to_owned(),
        None => message,
    }
}

/// A key or host name as a C string (they never hold NUL: they are built by this crate or
/// come from an environment variable, which cannot hold one).
fn c_string(text: &str) -> CString {
    CString::new(text).expect("no NUL inside keys and host names")
}

/// A connection to a c10d `TCPStore`.
pub(crate) struct StoreHandle(*mut RawStore);

// SAFETY: c10d's TCPStore client serialises its requests with its own lock.
unsafe impl Send for StoreHandle {}
// SAFETY: as above.
unsafe impl Sync for StoreHandle {}

impl StoreHandle {
    pub fn connect(
        host: &str,
        port: u16,
        is_server: bool,
        world: usize,
        timeout_ms: i64,
    ) -> Result<Self, String> {
        let host = c_string(host);
        let mut error = std::ptr::null_mut();
        // SAFETY: `host` lives through the call; the handle or the message is taken once.
        let raw = unsafe {
            yolo3_store_new(
                host.as_ptr(),
                port,
                i32::from(is_server),
                world as i32,
                timeout_ms,
                &raw mut error,
            )
        };
        if raw.is_null() {
            // SAFETY: the call failed and set `error`.
            return Err(unsafe { take_error(error) });
        }
        Ok(Self(raw))
    }

    pub fn try_clone(&self) -> Result<Self, String> {
        let mut error = std::ptr::null_mut();
        // SAFETY: `self.0` is a live handle.
        let raw = unsafe { yolo3_store_clone(self.0, &raw mut error) };
        if raw.is_null() {
            // SAFETY: the call failed and set `error`.
            return Err(unsafe { take_error(error) });
        }
        Ok(Self(raw))
    }

    pub fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        let key = c_string(key);
        let mut error = std::ptr::null_mut();
        // SAFETY: live handle, key and value for the duration of the call.
        let rc = unsafe {
            yolo3_store_set(self.0, key.as_ptr(), value.as_ptr(), value.len(), &raw mut error)
        };
        if rc != 0 {
            // SAFETY: the call failed and set `error`.
            return Err(unsafe { take_error(error) });
        }
        Ok(())
    }

    /// Waits for `key` up to the store's timeout.
    pub fn get(&self, key: &str) -> Result<Vec<u8>, String> {
        let key = c_string(key);
        let mut error = std::ptr::null_mut();
        let mut len = 0usize;
        // SAFETY: live handle and key; a non-null result is a malloc'ed buffer of `len` bytes.
        unsafe {
            let data = yolo3_store_get(self.0, key.as_ptr(), &raw mut len, &raw mut error);
            if data.is_null() {
                return Err(take_error(error));
            }
            let value = std::slice::from_raw_parts(data, len).to_vec();
            free(data.cast());
            Ok(value)
        }
    }

    pub fn check(&self, key: &str) -> Result<bool, String> {
        let key = c_string(key);
        let mut error = std::ptr::null_mut();
        // SAFETY: live handle and key.
        let rc = unsafe { yolo3_store_check(self.0, key.as_ptr(), &raw mut error) };
        if rc < 0 {
            // SAFETY: the call failed and set `error`.
            return Err(unsafe { take_error(error) });
        }
        Ok(rc == 1)
    }

    pub fn add(&self, key: &str, delta: i64) -> Result<i64, String> {
        let key = c_string(key);
        let mut error = std::ptr::null_mut();
        // SAFETY: live handle and key.
        let value = unsafe { yolo3_store_add(self.0, key.as_ptr(), delta, &raw mut error) };
        if !error.is_null() {
            // SAFETY: the call failed and set `error`.
            return Err(unsafe { take_error(error) });
        }
        Ok(value)
    }
}

impl Drop for StoreHandle {
    fn drop(&mut self) {
        // SAFETY: the handle was made by the shim and is freed once.
        unsafe { yolo3_store_free(self.0) }
    }
}

/// A c10d process group (a `Backend`: Gloo or NCCL).
pub(crate) struct GroupHandle(*mut RawGroup);

// SAFETY: c10d backends are called from several threads by PyTorch itself (DDP's reducer).
unsafe impl Send for GroupHandle {}
// SAFETY: as above.
unsafe impl Sync for GroupHandle {}

impl GroupHandle {
    pub fn new(
        store: &StoreHandle,
        rank: usize,
        world: usize,
        backend: &str,
        hostname: &str,
        timeout_ms: i64,
    ) -> Result<Self, String> {
        let (backend, hostname) = (c_string(backend), c_string(hostname));
        let mut error = std::ptr::null_mut();
        // SAFETY: live store and strings for the duration of the call.
        let raw = unsafe {
            yolo3_group_new(
                store.0,
                rank as i32,
                world as i32,
                backend.as_ptr(),
                hostname.as_ptr(),
                timeout_ms,
                &raw mut error,
            )
        };
        if raw.is_null() {
            // SAFETY: the call failed and set `error`.
            return Err(unsafe { take_error(error) });
        }
        Ok(Self(raw))
    }

    /// Starts an in-place sum of the contiguous `tensor` over the ranks; the tensor must stay
    /// alive and untouched until the returned work is waited for.
    pub fn all_reduce_start(&self, tensor: &Tensor) -> Result<WorkHandle, String> {
        let mut error = std::ptr::null_mut();
        // SAFETY: live group and tensor handles.
        let raw = unsafe { yolo3_all_reduce_start(self.0, tensor.as_ptr(), &raw mut error) };
        if raw.is_null() {
            // SAFETY: the call failed and set `error`.
            return Err(unsafe { take_error(error) });
        }
        Ok(WorkHandle(raw))
    }

    pub fn broadcast(&self, tensor: &Tensor, root: usize) -> Result<(), String> {
        let mut error = std::ptr::null_mut();
        // SAFETY: live group and tensor handles.
        let rc = unsafe { yolo3_broadcast(self.0, tensor.as_ptr(), root as i32, &raw mut error) };
        if rc != 0 {
            // SAFETY: the call failed and set `error`.
            return Err(unsafe { take_error(error) });
        }
        Ok(())
    }

    pub fn replica_sum(&self, input: &Tensor) -> Result<Tensor, String> {
        let mut error = std::ptr::null_mut();
        // SAFETY: live group and tensor handles; a non-null result is a new tensor handle
        // whose ownership passes to the returned Tensor.
        unsafe {
            let out = yolo3_replica_sum(self.0, input.as_ptr(), &raw mut error);
            if out.is_null() {
                return Err(take_error(error));
            }
            Ok(Tensor::from_ptr(out))
        }
    }
}

impl Drop for GroupHandle {
    fn drop(&mut self) {
        // SAFETY: the handle was made by the shim and is freed once.
        unsafe { yolo3_group_free(self.0) }
    }
}

/// An all-reduce in flight.
pub(crate) struct WorkHandle(*mut RawWork);

impl WorkHandle {
    pub fn wait(self) -> Result<(), String> {
        let mut error = std::ptr::null_mut();
        // SAFETY: live work handle (freed by Drop after this).
        let rc = unsafe { yolo3_work_wait(self.0, &raw mut error) };
        if rc != 0 {
            // SAFETY: the call failed and set `error`.
            return Err(unsafe { take_error(error) });
        }
        Ok(())
    }
}

impl Drop for WorkHandle {
    fn drop(&mut self) {
        // SAFETY: the handle was made by the shim and is freed once.
        unsafe { yolo3_work_free(self.0) }
    }
}
