//! The lowest layer of yolo3: what every command needs, whatever it computes.
//!
//! * [`fsio`]: reading the user's files safely (no FIFO, no device, no byte-order mark) and
//!   the one atomic writer, which never leaves a half-written file or a temporary one, and
//!   never replaces a file the user did not allow to be replaced;
//! * [`run_folder`]: `runs/<command>/exp`, `exp2`, ... folders, each created by one process;
//! * [`lock`]: one process at a time in a folder (a training run's);
//! * [`interrupt`]: Ctrl-C and SIGTERM turned into a flag that long loops check at safe points.
//!
//! Nothing here knows about boxes, tensors or images, so that every other crate can sit on it.

pub mod fsio;
pub mod interrupt;
pub mod lock;
pub mod run_folder;

/// An error and its causes on one line, `error: cause: cause` (what anyhow's `{:#}` prints),
/// for messages a library hands on as text: a per-image write failure, the reason one rank
/// of a distributed run gives the others.
#[must_use]
pub fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}
