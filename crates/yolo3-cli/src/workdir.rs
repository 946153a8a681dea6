//! A working folder that no longer exists (deleted, or moved away, under a shell still in it).
//!
//! libtorch's oneMKL asks for the working folder while the library loads, before `main`, and
//! aborts with "Intel oneMKL FATAL ERROR: Cannot load libtorch_cpu.so" when there is none
//! (reproduced with `python -c "import torch"` in such a folder). The executable's
//! `.preinit_array` runs before any shared library's initialiser, so the check below is the
//! one place where this program can say what is wrong. It uses the raw calls only: nothing of
//! Rust's runtime is set up yet.

#![allow(unsafe_code)]

/// Ends the process with a clear message when the working folder is gone.
extern "C" fn check_working_folder() {
    let mut buffer = [0u8; 4096];
    // SAFETY: `buffer` is writable for its length; getcwd writes at most that many bytes.
    let cwd = unsafe { libc::getcwd(buffer.as_mut_ptr().cast(), buffer.len()) };
    // ERANGE (a path over 4 KB) is a folder that exists.
    // SAFETY: reading errno right after the failed call.
    if cwd.is_null() && unsafe { *libc::__errno_location() } == libc::ENOENT {
        const MESSAGE: &[u8] = b"error: the working folder no longer exists (it was deleted or \
moved); change to an existing folder and run yolo3 again\n";
        // SAFETY: writing a static buffer to stderr, then leaving without running anything.
        unsafe {
            libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
            libc::_exit(1);
        }
    }
}

/// Run by the dynamic loader before the libraries' initialisers (ELF executables only).
#[used]
#[link_section = ".preinit_array"]
static PREINIT: extern "C" fn() = check_working_folder;
