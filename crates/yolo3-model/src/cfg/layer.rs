//! The typed layers of a darknet cfg and how each section is read.
//!
//! Conventions: defaults are pjreddie darknet's (`parse_convolutional`, `parse_maxpool`, ...);
//! `pad=1` means `padding = size/2`; route and shortcut indices are resolved to absolute
//! darknet indices here (negative ones are relative to the layer itself) and must point
//! strictly backwards. Keys that would change a layer's meaning in a way this crate does not
//! implement (groups, dilation, `scale_x_y`, ...) are errors unless they hold their default.

use super::section::SectionReader;
use crate::error::Result;

/// A layer's activation function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Identity.
    Linear,
    /// `x > 0 ? x : 0.1*x`.
    Leaky,
    /// `max(x, 0)`.
    Relu,
    /// `1/(1+exp(-x))`, darknet's default for convolutions.
    Logistic,
}

impl Activation {
    fn read(r: &SectionReader<'_>, default: &str) -> Result<Self> {
        let name = r.text("activation").unwrap_or(default);
        match name {
            "linear" => Ok(Self::Linear),
            "leaky" => Ok(Self::Leaky),
            "relu" => Ok(Self::Relu),
            "logistic" => Ok(Self::Logistic),
            other => Err(r.key_error(
                "activation",
                format!(
                    "unsupported activation `{other}` (supported: linear, leaky, relu, logistic)"
                ),
            )),
        }
    }
}

/// `[convolutional]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Convolutional {
    /// Output channels.
    pub filters: i64,
    /// Square kernel size.
    pub size: i64,
    /// Stride.
    pub stride: i64,
    /// Zero padding on each side (`size/2` when `pad=1`).
    pub padding: i64,
    /// Batch norm after the convolution (then the conv has no bias).
    pub batch_normalize: bool,
    /// Activation after batch norm.
    pub activation: Activation,
}

/// `[maxpool]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Maxpool {
    /// Square window size.
    pub size: i64,
    /// Stride.
    pub stride: i64,
    /// Total padding per axis (darknet default `size-1`); `padding/2` of it goes before the
    /// data, the rest after, and padded samples never win.
    pub padding: i64,
}

/// `[upsample]`: nearest neighbour.
#[derive(Debug, Clone, PartialEq)]
pub struct Upsample {
    /// Integer scale factor.
    pub stride: i64,
}

/// `[route]`: channel concatenation of earlier outputs in the listed order.
#[derive(Debug, Clone, PartialEq)]
pub struct Route {
    /// Absolute darknet indices.
    pub layers: Vec<usize>,
}

/// `[shortcut]`: `alpha*previous + beta*layers[from]`, then the activation.
#[derive(Debug, Clone, PartialEq)]
pub struct Shortcut {
    /// Absolute darknet index of the added layer.
    pub from: usize,
    /// Factor on the previous layer's output.
    pub alpha: f64,
    /// Factor on `from`'s output.
    pub beta: f64,
    /// Activation after the sum.
    pub activation: Activation,
}

/// `[yolo]`: a detection head reading the previous layer's output.
#[derive(Debug, Clone, PartialEq)]
pub struct Yolo {
    /// Indices into `anchors` this head predicts, one per anchor slot.
    pub mask: Vec<usize>,
    /// All anchors of the cfg, (w, h) in input pixels.
    pub anchors: Vec<[f32; 2]>,
    /// Number of classes.
    pub classes: i64,
    /// Number of anchors listed (`num`).
    pub num: usize,
    /// Crop jitter for augmentation.
    pub jitter: f64,
    /// `IoU` above which a non-assigned prediction is not penalised as background.
    pub ignore_thresh: f64,
    /// `IoU` above which darknet also assigns the truth (1 disables it).
    pub truth_thresh: f64,
    /// Random input resizing during training.
    pub random: bool,
}

/// One layer of the network, in darknet index order.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// `[convolutional]`.
    Convolutional(Convolutional),
    /// `[maxpool]`.
    Maxpool(Maxpool),
    /// `[upsample]`.
    Upsample(Upsample),
    /// `[route]`.
    Route(Route),
    /// `[shortcut]`.
    Shortcut(Shortcut),
    /// `[yolo]`.
    Yolo(Yolo),
}

impl Layer {
    /// The cfg section name of this layer.
    #[must_use]
    pub fn section_name(&self) -> &'static str {
        match self {
            Self::Convolutional(_) => "convolutional",
            Self::Maxpool(_) => "maxpool",
            Self::Upsample(_) => "upsample",
            Self::Route(_) => "route",
            Self::Shortcut(_) => "shortcut",
            Self::Yolo(_) => "yolo",
        }
    }

    /// The canonical name of a supported layer section (darknet's aliases included).
    pub(crate) fn kind_of(section: &str) -> Option<&'static str> {
        Some(match section {
            "convolutional" | "conv" => "convolutional",
            "maxpool" | "max" => "maxpool",
            "upsample" => "upsample",
            "route" => "route",
            "shortcut" => "shortcut",
            "yolo" => "yolo",
            _ => return None,
        })
    }

    /// Reads the section of darknet layer `index`. Returns `None` for an unsupported section.
    pub(crate) fn read(r: &SectionReader<'_>, index: usize) -> Result<Option<Self>> {
        let layer = match r.kind {
            "convolutional" => Self::Convolutional(read_conv(r)?),
            "maxpool" => Self::Maxpool(read_maxpool(r)?),
            "upsample" => Self::Upsample(read_upsample(r)?),
            "route" => Self::Route(read_route(r, index)?),
            "shortcut" => Self::Shortcut(read_shortcut(r, index)?),
            "yolo" => Self::Yolo(read_yolo(r)?),
            _ => return Ok(None),
        };
        Ok(Some(layer))
    }
}

fn read_conv(r: &SectionReader<'_>) -> Result<Convolutional> {
    let filters = r.req_int("filters")?;
    if filters < 1 {
        return Err(r.key_error("filters", "must be positive"));
    }
    let size = r.int_at_least("size", 1, 1)?;
    let stride = r.int_at_least("stride", 1, 1)?;
    let pad = r.int("pad", 0)?;
    let mut padding = r.int_at_least("padding", 0, 0)?;
    if pad != 0 {
        padding = size / 2;
    }
    let batch_normalize = r.int("batch_normalize", 0)? != 0;
    let activation = Activation::read(r, "logistic")?;
    r.reject_unless("groups", 1.0, "grouped convolutions")?;
    r.reject_unless("dilation", 1.0, "dilated convolutions")?;
    r.reject_unless("binary", 0.0, "binary weights")?;
    r.reject_unless("xnor", 0.0, "XNOR convolutions")?;
    r.reject_unless("flipped", 0.0, "flipped kernels")?;
    for key in ["stride_x", "stride_y"] {
        r.reject_unless(key, stride as f64, "a stride different per axis")?;
    }
    Ok(Convolutional { filters, size, stride, padding, batch_normalize, activation })
}

fn read_maxpool(r: &SectionReader<'_>) -> Result<Maxpool> {
    let stride = r.int_at_least("stride", 1, 1)?;
    let size = r.int_at_least("size", stride, 1)?;
    let padding = r.int_at_least("padding", size - 1, 0)?;
    for key in ["stride_x", "stride_y"] {
        r.reject_unless(key, stride as f64, "a stride different per axis")?;
    }
    r.reject_unless("maxpool_depth", 0.0, "maxpool over channels")?;
    Ok(Maxpool { size, stride, padding })
}

fn read_upsample(r: &SectionReader<'_>) -> Result<Upsample> {
    let stride = r.int_at_least("stride", 2, 1)?;
    r.reject_unless("scale", 1.0, "scaled upsampling")?;
    Ok(Upsample { stride })
}

/// Resolves a darknet layer reference: negative is relative to `index`, and the result must
/// be an earlier layer.
fn resolve(r: &SectionReader<'_>, key: &'static str, index: usize, raw: i64) -> Result<usize> {
    let abs = if raw < 0 { index as i64 + raw } else { raw };
    if abs < 0 || abs >= index as i64 {
        return Err(r.key_error(
            key,
            format!(
                "index {raw} resolves to layer {abs}, outside the earlier layers 0..={}",
                index as i64 - 1
            ),
        ));
    }
    Ok(abs as usize)
}

fn read_route(r: &SectionReader<'_>, index: usize) -> Result<Route> {
    let raw: Vec<i64> = r.opt_list("layers", "a layer index")?.unwrap_or_default();
    if raw.is_empty() {
        return Err(r.key_error("layers", "needs at least one layer"));
    }
    r.reject_unless("groups", 1.0, "grouped routes")?;
    let layers = raw.iter().map(|&v| resolve(r, "layers", index, v)).collect::<Result<_>>()?;
    Ok(Route { layers })
}

fn read_shortcut(r: &SectionReader<'_>, index: usize) -> Result<Shortcut> {
    let raw: Vec<i64> = r.opt_list("from", "a layer index")?.unwrap_or_default();
    let [from] = raw[..] else {
        return Err(r.key_error("from", "needs exactly one layer"));
    };
    if index == 0 {
        return Err(r.structure_error(index, "a shortcut cannot be the first layer"));
    }
    if let Some(w) = r.text("weights_type") {
        if w != "none" {
            return Err(r.key_error("weights_type", "unsupported: weighted shortcuts"));
        }
    }
    Ok(Shortcut {
        from: resolve(r, "from", index, from)?,
        alpha: r.float("alpha", 1.0)?,
        beta: r.float("beta", 1.0)?,
        activation: Activation::read(r, "linear")?,
    })
}

fn read_yolo(r: &SectionReader<'_>) -> Result<Yolo> {
    let num = r.int_at_least("num", 1, 1)? as usize;
    let explicit_mask: Option<Vec<usize>> = r.opt_list("mask", "an anchor index")?;
    if let Some(mask) = &explicit_mask {
        if mask.is_empty() {
            return Err(r.key_error("mask", "is empty"));
        }
        if let Some(bad) = mask.iter().find(|&&m| m >= num) {
            return Err(r.key_error("mask", format!("index {bad} is not below num={num}")));
        }
    }
    let flat: Vec<f32> = r.opt_list("anchors", "a number")?.ok_or_else(|| r.missing("anchors"))?;
    if flat.len() != 2 * num {
        return Err(r.key_error(
            "anchors",
            format!("{} numbers for num={num} anchors (need {})", flat.len(), 2 * num),
        ));
    }
    if flat.iter().any(|a| !a.is_finite() || *a <= 0.0) {
        return Err(r.key_error("anchors", "anchor sizes must be positive"));
    }
    let anchors = flat.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
    // The default mask (every anchor) is built only now that `anchors` has as many pairs as
    // `num` says: `num=10000000000` without a mask is an error, not a 80 GB allocation.
    let mask = explicit_mask.unwrap_or_else(|| (0..num).collect());
    let classes = r.int_at_least("classes", 20, 1)?;
    r.reject_unless("scale_x_y", 1.0, "scaled xy (YOLOv4)")?;
    r.reject_unless("new_coords", 0.0, "new coordinates (scaled-YOLOv4)")?;
    Ok(Yolo {
        mask,
        anchors,
        classes,
        num,
        jitter: r.float("jitter", 0.2)?,
        ignore_thresh: r.float("ignore_thresh", 0.5)?,
        truth_thresh: r.float("truth_thresh", 1.0)?,
        random: r.int("random", 0)? != 0,
    })
}
