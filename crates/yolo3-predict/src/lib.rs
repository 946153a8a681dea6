//! Detection as `yolo3 detect` runs it, for a library user: inputs planned into jobs, batches
//! read and letterboxed ahead of the network, and the results written in the formats the
//! command writes.
//!
//! * [`inputs`]: image files, folders (one level, name order) and glob patterns to
//!   [`ImageJob`]s, each with its image id (the file stem when every stem is a distinct
//!   integer, as COCO names its images, else the position) and an output name no other input
//!   shares;
//! * [`images`]: [`detect_images`] runs a [`Detector`](yolo3_model::Detector) over the jobs,
//!   the next batch decoded and letterboxed on reader threads (at the idle scheduling class)
//!   while the network runs on this one, and hands each batch's images and detections to the
//!   caller; it stops between batches on Ctrl-C ([`yolo3_io::interrupt`]);
//! * [`outputs`]: per image the annotated picture, YOLO txt labels and box crops
//!   ([`write_outputs`]), and for the run the COCO results list and image table
//!   ([`Prediction`], [`ImageEntry`], [`write_json`]);
//! * [`tiles`]: large images cut into overlapping tiles at full resolution, their boxes merged
//!   with a pass over the whole image ([`Tiling`]), for small objects in large photos;
//! * [`video`]: video files, cameras and streams through FFmpeg, to an annotated video and
//!   JSON lines ([`detect_video`]).
//!
//! Coordinates are original-image pixels; COCO boxes are `[x, y, w, h]` rounded to 3
//! decimals and scores to 5, in every format.

pub mod error;
pub mod images;
pub mod inputs;
pub mod outputs;
pub mod tiles;
pub mod video;

pub use error::{PredictError, Result};
pub use images::detect_images;
pub use inputs::{collect_inputs, expand_globs, plan_jobs, ImageJob, ReadBatch, Skipped};
pub use outputs::{
    crop_dirs, write_json, write_outputs, ImageEntry, ImageOutputs, ImageResult, Prediction,
};
pub use tiles::{detect_dataset, Tiling};
pub use video::{detect_video, VideoJob, VideoSummary};
