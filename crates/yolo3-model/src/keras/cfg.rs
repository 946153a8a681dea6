//! The darknet cfg of the network keras-yolo3 builds, for a `.h5` file given without one.
//!
//! `yolo_body` and `tiny_yolo_body` fix everything but the widths, the anchors and the class
//! count: the layer plans below are theirs (and the official `yolov3.cfg` /
//! `yolov3-tiny.cfg`'s, layer for layer), the widths are the file's kernels, and the masks are
//! keras-yolo3's (`6,7,8 / 3,4,5 / 0,1,2`; for tiny `3,4,5 / 1,2,3`, which differs from
//! darknet's `0,1,2` for the second head). The input is keras-yolo3's default 416x416.

use std::fmt::Write as _;

use yolo3_core::anchors::{default_mask, TinyMask};

use super::KerasWeights;
use crate::cfg::Config;
use crate::error::{ModelError, Result};

/// Convolutions of keras-yolo3's `yolo_body`.
pub const YOLOV3_CONVS: usize = 75;
/// Convolutions of keras-yolo3's `tiny_yolo_body`.
pub const TINY_CONVS: usize = 13;

/// One darknet section of a plan.
#[derive(Clone, Copy)]
enum Step {
    /// A leaky, batch-normalised conv of this size and stride.
    Conv(u32, u32),
    /// A linear 1x1 conv with a bias, feeding the `[yolo]` after it.
    Head,
    Yolo,
    Shortcut,
    Upsample,
    /// A max pool of size 2 with this stride.
    Maxpool(u32),
    /// A route to these layers (relative when negative).
    Route(&'static str),
}

fn yolov3_plan() -> Vec<Step> {
    use Step::{Conv, Head, Route, Shortcut, Upsample, Yolo};
    let mut plan = vec![Conv(3, 1)];
    for blocks in [1, 2, 8, 8, 4] {
        plan.push(Conv(3, 2));
        for _ in 0..blocks {
            plan.extend([Conv(1, 1), Conv(3, 1), Shortcut]);
        }
    }
    for skip in [None, Some("-1,61"), Some("-1,36")] {
        if let Some(skip) = skip {
            plan.extend([Route("-4"), Conv(1, 1), Upsample, Route(skip)]);
        }
        for _ in 0..3 {
            plan.extend([Conv(1, 1), Conv(3, 1)]);
        }
        plan.extend([Head, Yolo]);
    }
    plan
}

fn tiny_plan() -> Vec<Step> {
    use Step::{Conv, Head, Maxpool, Route, Upsample, Yolo};
    let mut plan = Vec::new();
    for _ in 0..5 {
        plan.extend([Conv(3, 1), Maxpool(2)]);
    }
    plan.extend([Conv(3, 1), Maxpool(1), Conv(3, 1), Conv(1, 1), Conv(3, 1), Head, Yolo]);
    plan.extend([Route("-4"), Conv(1, 1), Upsample, Route("-1,8"), Conv(3, 1), Head, Yolo]);
    plan
}

/// See [`KerasWeights::config`].
pub(super) fn keras_config(keras: &KerasWeights, anchors: &[[f32; 2]]) -> Result<Config> {
    let file_err = |message: String| ModelError::KerasFile {
        path: keras.path().to_owned(),
        message,
        source: None,
    };
    let convs = keras.convs();
    let (plan, kind) = match convs.len() {
        YOLOV3_CONVS => (yolov3_plan(), "YOLOv3"),
        TINY_CONVS => (tiny_plan(), "tiny-YOLOv3"),
        n => {
            return Err(file_err(format!(
                "{n} convolutions: keras-yolo3 builds {YOLOV3_CONVS} (YOLOv3) or {TINY_CONVS} \
                 (tiny-YOLOv3); give the network's darknet cfg"
            )))
        }
    };
    let heads = plan.iter().filter(|s| matches!(s, Step::Yolo)).count();
    let tiny = TinyMask::Keras;
    let mask =
        default_mask(anchors.len(), tiny).ok().filter(|m| m.len() == heads).ok_or_else(|| {
            file_err(format!(
                "a {kind} file has {heads} output layers, so it needs {} anchors; {} were given",
                3 * heads,
                anchors.len()
            ))
        })?;
    let mut filters = convs.iter().map(|c| c.filters);
    let head_filters = convs.iter().filter(|c| c.batch_norm.is_none()).map(|c| c.filters);
    let width = head_filters.clone().next().unwrap_or(0);
    let per_head = mask[0].len();
    if head_filters.clone().any(|f| f != width) || width % per_head != 0 || width / per_head < 5 {
        return Err(file_err(format!(
            "head widths {:?} are not {per_head} anchors x (5 + classes)",
            head_filters.collect::<Vec<_>>()
        )));
    }
    let classes = width / per_head - 5;
    let anchor_text: Vec<String> = anchors.iter().map(|[w, h]| format!("{w},{h}")).collect();
    let mut text = format!(
        "# {kind} as keras-yolo3 builds it, widths from {}\n[net]\nbatch=1\nsubdivisions=1\n\
         width=416\nheight=416\nchannels=3\n\n",
        keras.path().display()
    );
    let mut yolo = 0;
    for step in plan {
        let _ = match step {
            Step::Conv(size, stride) => writeln!(
                text,
                "[convolutional]\nbatch_normalize=1\nfilters={}\nsize={size}\nstride={stride}\n\
                 pad=1\nactivation=leaky\n",
                filters.next().unwrap_or(0)
            ),
            Step::Head => writeln!(
                text,
                "[convolutional]\nfilters={}\nsize=1\nstride=1\npad=1\nactivation=linear\n",
                filters.next().unwrap_or(0)
            ),
            Step::Yolo => {
                let m: Vec<String> = mask[yolo].iter().map(ToString::to_string).collect();
                yolo += 1;
                writeln!(
                    text,
                    "[yolo]\nmask={}\nanchors={}\nclasses={classes}\nnum={}\n",
                    m.join(","),
                    anchor_text.join(", "),
                    anchors.len()
                )
            }
            Step::Shortcut => writeln!(text, "[shortcut]\nfrom=-3\nactivation=linear\n"),
            Step::Upsample => writeln!(text, "[upsample]\nstride=2\n"),
            Step::Maxpool(stride) => writeln!(text, "[maxpool]\nsize=2\nstride={stride}\n"),
            Step::Route(layers) => writeln!(text, "[route]\nlayers={layers}\n"),
        };
    }
    Config::parse(&text, &format!("{}#cfg", keras.path().display()))
}
