//! Opening a file or a network stream with FFmpeg options and an interrupt callback, which
//! `ffmpeg-next` offers only one at a time (`input_with_dictionary`, `input_with_interrupt`).
//!
//! The callback, which FFmpeg polls during every blocking call on the context (opening,
//! probing, each read), ends the call when:
//! * the process was asked to stop ([`yolo3_io::interrupt`]: Ctrl-C while a stream waits
//!   for data);
//! * a stream has sent [`BYTE_BUDGET`] bytes, or [`TIME_BUDGET`] has passed, without a decoded
//!   frame. A server that streams endless garbage under a `.mp4` name otherwise keeps FFmpeg's
//!   mov demuxer looking for its `moov` box forever (14 GB in 30 s, measured); `probesize` and
//!   `analyzeduration` only bound the stream analysis after the header.
//!
//! The path goes to FFmpeg as bytes, so a file name that is not UTF-8 opens as any other.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ffmpeg_next::ffi;
use ffmpeg_next::format::context::Input;

/// Bytes a stream may send before its first frame.
pub(crate) const BYTE_BUDGET: i64 = 64 << 20;
/// Time a stream may take to its first frame.
pub(crate) const TIME_BUDGET: Duration = Duration::from_secs(60);

/// What ended a blocking call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Cut {
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// [`BYTE_BUDGET`] bytes without a frame.
    Bytes,
    /// [`TIME_BUDGET`] without a frame.
    Time,
}

/// Shared between the reader and the callback of one opened context.
#[derive(Debug)]
pub(crate) struct Watch {
    budgets: bool,
    since: Instant,
    first_frame: AtomicBool,
    cut: AtomicU8,
}

impl Watch {
    /// A watch whose budgets apply (streams) or not (files).
    pub(crate) fn new(budgets: bool) -> Arc<Self> {
        Arc::new(Self {
            budgets,
            since: Instant::now(),
            first_frame: AtomicBool::new(false),
            cut: AtomicU8::new(0),
        })
    }

    /// A frame was decoded: the budgets no longer apply.
    pub(crate) fn frame_decoded(&self) {
        self.first_frame.store(true, Ordering::Relaxed);
    }

    /// Why the last blocking call was ended, if the callback ended it.
    pub(crate) fn cut(&self) -> Option<Cut> {
        match self.cut.load(Ordering::Relaxed) {
            1 => Some(Cut::Interrupted),
            2 => Some(Cut::Bytes),
            3 => Some(Cut::Time),
            _ => None,
        }
    }

    fn decide(&self, bytes_read: i64) -> Option<Cut> {
        if yolo3_io::interrupt::requested() {
            return Some(Cut::Interrupted);
        }
        if !self.budgets || self.first_frame.load(Ordering::Relaxed) {
            return None;
        }
        if bytes_read > BYTE_BUDGET {
            return Some(Cut::Bytes);
        }
        (self.since.elapsed() > TIME_BUDGET).then_some(Cut::Time)
    }
}

/// State the callback reads: the context (for its byte count) and the watch.
struct Callback {
    context: *mut ffi::AVFormatContext,
    watch: Arc<Watch>,
}

extern "C" fn interrupt(opaque: *mut libc::c_void) -> libc::c_int {
    // SAFETY: `opaque` is the `Callback` leaked in `open`, never freed; FFmpeg calls this only
    // while an operation on `context` runs, so the context is alive.
    let state = unsafe { &*opaque.cast::<Callback>() };
    let bytes = unsafe {
        let pb = (*state.context).pb;
        if pb.is_null() {
            0
        } else {
            (*pb).bytes_read
        }
    };
    match state.watch.decide(bytes) {
        None => 0,
        Some(cut) => {
            state.watch.cut.store(cut as u8 + 1, Ordering::Relaxed);
            1
        }
    }
}

/// Opens `location` (a path or URL) with `options` and `watch`'s callback, and reads its stream
/// information.
pub(crate) fn open(
    location: &[u8],
    options: ffmpeg_next::Dictionary,
    watch: &Arc<Watch>,
) -> Result<Input, ffmpeg_next::Error> {
    let location = CString::new(location).map_err(|_| ffmpeg_next::Error::InvalidData)?;
    // SAFETY: FFI calls in FFmpeg's documented order. `avformat_open_input` frees the context
    // on failure; on success it is wrapped (and freed) by `Input`. The callback's state is
    // leaked on purpose: protocol contexts keep copies of the callback pointer as long as
    // they live, and it is a few bytes per opened source.
    unsafe {
        let mut ps = ffi::avformat_alloc_context();
        if ps.is_null() {
            return Err(ffmpeg_next::Error::Other { errno: libc::ENOMEM });
        }
        let state = Box::new(Callback { context: ps, watch: Arc::clone(watch) });
        (*ps).interrupt_callback =
            ffi::AVIOInterruptCB { callback: Some(interrupt), opaque: Box::into_raw(state).cast() };
        let mut opts = options.disown();
        let res = ffi::avformat_open_input(
            &raw mut ps,
            location.as_ptr(),
            std::ptr::null(),
            &raw mut opts,
        );
        drop(ffmpeg_next::Dictionary::own(opts));
        if res != 0 {
            return Err(ffmpeg_next::Error::from(res));
        }
        let res = ffi::avformat_find_stream_info(ps, std::ptr::null_mut());
        if res < 0 {
            ffi::avformat_close_input(&raw mut ps);
            return Err(ffmpeg_next::Error::from(res));
        }
        Ok(Input::wrap(ps))
    }
}
