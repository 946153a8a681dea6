//! The C ABI of `csrc/c10d.cpp`, wrapped in owning handles whose methods return `Result`s.
//!
//! Every shim call reports failure through a malloc'ed message in its last argument; [`call`]
//! turns that into the message text exactly once.
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

/// Runs one shim call, given the location of its error out-parameter: every shim function
/// sets it to a malloc'ed message when it fails and leaves it null otherwise, whatever it
/// returns. The message is taken (and freed) exactly once.
fn call<T>(f: impl FnOnce(*mut *mut c_char) -> T) -> Result<T, String> {
    let mut error: *mut c_char = std::ptr::null_mut();
    let value = f(&raw mut error);
    if error.is_null() {
        return Ok(value);
    }
    // SAFETY: a non-null `error` is a NUL-terminated string from strdup, not yet freed.
    let message = unsafe { CStr::from_ptr(error) }.to_string_lossy().into_owned();
    // SAFETY: allocated by malloc (strdup) and not used after this.
    unsafe { free(error.cast()) };
    // c10d appends the C++ stack ("Exception raised from ... frame #0: ..."): not for users.
    Err(match message.find("\nException raised from") {
        Some(end) => message[..end].trim_end().to_owned(),
        None => message,
    })
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
    pub(crate) fn connect(
        host: &str,
        port: u16,
        is_server: bool,
        world: usize,
        timeout_ms: i64,
    ) -> Result<Self, String> {
        let host = c_string(host);
        // SAFETY: `host` lives through the call; a non-null result is a new handle.
        call(|e| unsafe {
            yolo3_store_new(host.as_ptr(), port, i32::from(is_server), world as i32, timeout_ms, e)
        })
        .map(Self)
    }

    pub(crate) fn try_clone(&self) -> Result<Self, String> {
        // SAFETY: `self.0` is a live handle.
        call(|e| unsafe { yolo3_store_clone(self.0, e) }).map(Self)
    }

    pub(crate) fn set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        let key = c_string(key);
        // SAFETY: live handle, key and value for the duration of the call.
        call(|e| unsafe { yolo3_store_set(self.0, key.as_ptr(), value.as_ptr(), value.len(), e) })
            .map(drop)
    }

    /// Waits for `key` up to the store's timeout.
    pub(crate) fn get(&self, key: &str) -> Result<Vec<u8>, String> {
        let key = c_string(key);
        let mut len = 0usize;
        // SAFETY: live handle and key.
        let data = call(|e| unsafe { yolo3_store_get(self.0, key.as_ptr(), &raw mut len, e) })?;
        // SAFETY: on success the result is a malloc'ed buffer of `len` bytes, freed once here.
        unsafe {
            let value = std::slice::from_raw_parts(data, len).to_vec();
            free(data.cast());
            Ok(value)
        }
    }

    pub(crate) fn check(&self, key: &str) -> Result<bool, String> {
        let key = c_string(key);
        // SAFETY: live handle and key.
        call(|e| unsafe { yolo3_store_check(self.0, key.as_ptr(), e) }).map(|rc| rc == 1)
    }

    pub(crate) fn add(&self, key: &str, delta: i64) -> Result<i64, String> {
        let key = c_string(key);
        // SAFETY: live handle and key.
        call(|e| unsafe { yolo3_store_add(self.0, key.as_ptr(), delta, e) })
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
    pub(crate) fn new(
        store: &StoreHandle,
        rank: usize,
        world: usize,
        backend: &str,
        hostname: &str,
        timeout_ms: i64,
    ) -> Result<Self, String> {
        let (backend, hostname) = (c_string(backend), c_string(hostname));
        // SAFETY: live store and strings for the duration of the call.
        call(|e| unsafe {
            yolo3_group_new(
                store.0,
                rank as i32,
                world as i32,
                backend.as_ptr(),
                hostname.as_ptr(),
                timeout_ms,
                e,
            )
        })
        .map(Self)
    }

    /// Starts an in-place sum of the contiguous `tensor` over the ranks; the tensor must stay
    /// alive and untouched until the returned work is waited for.
    pub(crate) fn all_reduce_start(&self, tensor: &Tensor) -> Result<WorkHandle, String> {
        // SAFETY: live group and tensor handles.
        call(|e| unsafe { yolo3_all_reduce_start(self.0, tensor.as_ptr(), e) }).map(WorkHandle)
    }

    pub(crate) fn broadcast(&self, tensor: &Tensor, root: usize) -> Result<(), String> {
        // SAFETY: live group and tensor handles.
        call(|e| unsafe { yolo3_broadcast(self.0, tensor.as_ptr(), root as i32, e) }).map(drop)
    }

    pub(crate) fn replica_sum(&self, input: &Tensor) -> Result<Tensor, String> {
        // SAFETY: live group and tensor handles.
        let out = call(|e| unsafe { yolo3_replica_sum(self.0, input.as_ptr(), e) })?;
        // SAFETY: on success `out` is a new tensor handle whose ownership passes to the Tensor.
        Ok(unsafe { Tensor::from_ptr(out) })
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
    pub(crate) fn wait(self) -> Result<(), String> {
        // SAFETY: live work handle (freed by Drop after this).
        call(|e| unsafe { yolo3_work_wait(self.0, e) }).map(drop)
    }
}

impl Drop for WorkHandle {
    fn drop(&mut self) {
        // SAFETY: the handle was made by the shim and is freed once.
        unsafe { yolo3_work_free(self.0) }
    }
}
