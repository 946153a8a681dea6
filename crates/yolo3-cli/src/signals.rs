//! The binary's one handler of Ctrl-C (SIGINT) and SIGTERM.
//!
//! A thread of its own waits for the signals (signal-hook's self-pipe: nothing runs inside the
//! handler but a write), so what follows a signal is ordinary code:
//! * the first asks every loop to stop at its next safe point ([`yolo3_io::interrupt`]):
//!   training after the last complete epoch, `detect` with the video's trailer, whole JSON
//!   lines and `predictions.json` of what was done; the command then exits with 128 + the
//!   signal's number, as a shell reports a process stopped by it;
//! * the second removes this process' temporary files ([`yolo3_io::fsio::remove_temporaries`])
//!   and ends the process at once, without running destructors (libtorch's threads may be
//!   mid-computation).
//!
//! A launcher of distributed workers starts them in a process group of their own (so a
//! terminal's Ctrl-C reaches them once, through it) and registers them with [`forward_to`]:
//! each signal is passed on to them, the first to stop them at the same batch, the second to
//! end them with it.

use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Mutex, PoisonError};

use signal_hook::consts::{SIGINT, SIGTERM};

/// The first signal received (0: none).
static RECEIVED: AtomicI32 = AtomicI32::new(0);
/// Processes each signal is passed on to.
static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());

/// Passes every signal this process receives on to process `pid` as well.
pub(crate) fn forward_to(pid: u32) {
    CHILDREN.lock().unwrap_or_else(PoisonError::into_inner).push(pid);
}

fn pass_on(signal: i32) {
    for &pid in CHILDREN.lock().unwrap_or_else(PoisonError::into_inner).iter() {
        // A child that has ended (its pid not yet reused: the launcher has not waited for it
        // while this runs) just makes kill fail.
        #[allow(unsafe_code)]
        // SAFETY: kill has no memory effects; pid is a child this process started.
        unsafe {
            libc::kill(pid as libc::pid_t, signal);
        }
    }
}

/// Starts the signal thread. Without it (the thread cannot start) signals keep their default
/// action, which is said once.
pub(crate) fn install() {
    let mut signals = match signal_hook::iterator::Signals::new([SIGINT, SIGTERM]) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warning: Ctrl-C will stop yolo3 at once, outputs unfinished: {e}");
            return;
        }
    };
    let started = std::thread::Builder::new().name("yolo3-signals".into()).spawn(move || {
        for signal in signals.forever() {
            pass_on(signal);
            if RECEIVED.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                yolo3_io::interrupt::request();
                eprintln!(
                    "\n{}: stopping at the next safe point and closing the outputs (again to stop \
                     at once)",
                    name(signal)
                );
            } else {
                yolo3_io::fsio::remove_temporaries();
                eprintln!("\n{}: stopped at once", name(signal));
                signal_hook::low_level::exit(128 + signal);
            }
        }
    });
    if let Err(e) = started {
        eprintln!("warning: Ctrl-C will stop yolo3 at once, outputs unfinished: {e}");
    }
}

/// The signal that asked the process to stop, if one did.
pub(crate) fn received() -> Option<i32> {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => None,
        s => Some(s),
    }
}

/// `SIGINT (Ctrl-C)` or `SIGTERM`.
pub(crate) fn name(signal: i32) -> &'static str {
    match signal {
        SIGINT => "SIGINT (Ctrl-C)",
        SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}
