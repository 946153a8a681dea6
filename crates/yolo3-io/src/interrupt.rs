//! Stopping on Ctrl-C (SIGINT) or SIGTERM at a safe point.
//!
//! The binary turns the first signal into [`request`]; long loops (training batches, detection
//! batches, video frames, a stream's blocking reads) call [`requested`] or [`check`] where
//! stopping leaves whole outputs: the last complete epoch stays the resume point, a video gets
//! its trailer, JSON lines end whole. Kept here, below every crate, so that each loop can ask
//! without depending on the binary. A second signal ends the process at once (the binary does
//! that, after [`crate::fsio::remove_temporaries`]).

use std::sync::atomic::{AtomicBool, Ordering};

static REQUESTED: AtomicBool = AtomicBool::new(false);

/// The run was asked to stop (Ctrl-C or SIGTERM).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("interrupted (Ctrl-C or SIGTERM)")]
pub struct Interrupted;

/// Asks every loop of the process to stop at its next safe point.
pub fn request() {
    REQUESTED.store(true, Ordering::SeqCst);
}

/// Whether a stop was asked for.
#[must_use]
pub fn requested() -> bool {
    REQUESTED.load(Ordering::SeqCst)
}

/// `Err(Interrupted)` once a stop was asked for.
pub fn check() -> Result<(), Interrupted> {
    if requested() {
        Err(Interrupted)
    } else {
        Ok(())
    }
}
