//! Darknet `.weights` files, read and written byte-exactly, independent of any tensor engine.
//!
//! Layout (little-endian): `major, minor, revision` as i32, then `seen` as u64 when
//! `major*10 + minor >= 2` (and both are below 1000), else as u32; then for every
//! `[convolutional]` in cfg order: `biases[n]` (BN beta when batch-normalised), with batch
//! norm `scales[n]` (gamma), `rolling_mean[n]`, `rolling_variance[n]`, and finally the kernel
//! `[n][c][k][k]` row-major.
//!
//! Policy for file sizes: a file may stop at a conv boundary before the cfg's last conv (a
//! partial file such as `darknet53.conv.74`: the convs it holds are loaded, the rest keep
//! their initialisation). A file ending inside a conv ([`ModelError::WeightsTruncated`]) or
//! having bytes after the last conv ([`ModelError::WeightsTrailing`]) is rejected with the
//! expected and actual byte counts. Writing what was read reproduces the file exactly.

use std::path::Path;

use yolo3_io::fsio::Existing;

use crate::cfg::{Config, Layer};
use crate::error::{ModelError, Result};

/// The header of a `.weights` file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeightsHeader {
    /// Major version (0).
    pub major: i32,
    /// Minor version (2 for current files, 1 for old ones with a 32-bit `seen`).
    pub minor: i32,
    /// Revision (0).
    pub revision: i32,
    /// Images seen during training.
    pub seen: u64,
}

impl Default for WeightsHeader {
    /// Version 0.2.0, the current darknet format, with `seen = 0`.
    fn default() -> Self {
        Self { major: 0, minor: 2, revision: 0, seen: 0 }
    }
}

impl std::fmt::Display for WeightsHeader {
    /// `major minor revision seen`, the text a checkpoint keeps under
    /// [`WeightsHeader::CHECKPOINT_KEY`].
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {} {}", self.major, self.minor, self.revision, self.seen)
    }
}

impl WeightsHeader {
    /// Metadata key of the header in a checkpoint's `extra`: converting darknet -> checkpoint ->
    /// darknet then reproduces the file byte for byte.
    pub const CHECKPOINT_KEY: &'static str = "darknet_header";

    /// Parses the [`Display`](std::fmt::Display) text back; `None` unless it is four numbers.
    #[must_use]
    pub fn parse_text(text: &str) -> Option<Self> {
        let mut fields = text.split_whitespace();
        let header = Self {
            major: fields.next()?.parse().ok()?,
            minor: fields.next()?.parse().ok()?,
            revision: fields.next()?.parse().ok()?,
            seen: fields.next()?.parse().ok()?,
        };
        fields.next().is_none().then_some(header)
    }

    /// Whether `seen` is stored on 64 bits (darknet's rule).
    #[must_use]
    pub fn has_wide_seen(&self) -> bool {
        i64::from(self.major) * 10 + i64::from(self.minor) >= 2
            && self.major < 1000
            && self.minor < 1000
    }

    /// Header size in bytes: 20, or 16 with a 32-bit `seen`.
    #[must_use]
    pub fn byte_len(&self) -> usize {
        if self.has_wide_seen() {
            20
        } else {
            16
        }
    }
}

/// Batch-norm parameters of one conv, as stored in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchNormParams {
    /// Gamma.
    pub scales: Vec<f32>,
    /// Running mean.
    pub rolling_mean: Vec<f32>,
    /// Running variance.
    pub rolling_variance: Vec<f32>,
}

/// The parameters of one conv, as stored in the file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConvParams {
    /// BN beta when `batch_norm` is present, else the conv bias.
    pub biases: Vec<f32>,
    /// Batch-norm parameters for `batch_normalize=1` convs.
    pub batch_norm: Option<BatchNormParams>,
    /// Kernel, row-major `(out, in, kh, kw)`.
    pub kernel: Vec<f32>,
}

/// Shape of one conv's parameters, derived from the cfg.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvLayout {
    /// Darknet layer index.
    pub layer: usize,
    /// Output channels.
    pub filters: usize,
    /// Input channels.
    pub in_channels: usize,
    /// Kernel size.
    pub size: usize,
    /// Whether it has batch norm.
    pub batch_normalize: bool,
}

impl ConvLayout {
    /// The layouts of every conv of `cfg`, in file order.
    #[must_use]
    pub fn of_config(cfg: &Config) -> Vec<Self> {
        cfg.layers()
            .iter()
            .enumerate()
            .filter_map(|(i, l)| match l {
                Layer::Convolutional(c) => Some(Self {
                    layer: i,
                    filters: c.filters as usize,
                    in_channels: cfg.input_channels(i) as usize,
                    size: c.size as usize,
                    batch_normalize: c.batch_normalize,
                }),
                _ => None,
            })
            .collect()
    }

    /// Kernel element count.
    #[must_use]
    pub fn kernel_len(&self) -> usize {
        self.filters * self.in_channels * self.size * self.size
    }

    /// Floats this conv occupies in the file.
    #[must_use]
    pub fn float_count(&self) -> usize {
        self.filters * if self.batch_normalize { 4 } else { 1 } + self.kernel_len()
    }
}

/// The content of a `.weights` file.
#[derive(Debug, Clone, PartialEq)]
pub struct DarknetWeights {
    /// Version and `seen`.
    pub header: WeightsHeader,
    /// Parameters of the first `convs.len()` convs of the cfg.
    pub convs: Vec<ConvParams>,
}

/// The error of a file operation on `path`, for `map_err`.
pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> ModelError + 'a {
    move |source| ModelError::Io { action, path: path.to_owned(), source }
}

impl DarknetWeights {
    /// Reads a `.weights` file for `cfg`.
    pub fn read(path: impl AsRef<Path>, cfg: &Config) -> Result<Self> {
        let path = path.as_ref();
        let bytes = yolo3_io::fsio::read_bytes(path).map_err(io_err("reading", path))?;
        Self::from_bytes(&bytes, &ConvLayout::of_config(cfg), path)
    }

    /// Reads a `.weights` file for `cfg`, or for the same network with other heads: official
    /// weights have 80 classes (255 filters per YOLOv3 head) while a cfg adapted to a dataset has
    /// its own count. A darknet file does not store shapes, so the file's head width is solved
    /// from its size: every conv but the heads (the convs feeding a `[yolo]`) is as the cfg says,
    /// and all heads have one filter count `F`, so `body floats = non-head floats + F * sum over
    /// heads of (inputs x size^2 + per-filter vectors)`, with `F` a whole number of
    /// `anchors x (5 + classes)`. Returns the content with the layouts it
    /// was read with (the cfg's, or the cfg's with heads of `F` filters).
    pub fn read_transfer(path: impl AsRef<Path>, cfg: &Config) -> Result<(Self, Vec<ConvLayout>)> {
        let path = path.as_ref();
        let bytes = yolo3_io::fsio::read_bytes(path).map_err(io_err("reading", path))?;
        let layouts = ConvLayout::of_config(cfg);
        let error = match Self::from_bytes(&bytes, &layouts, path) {
            Ok(weights) => return Ok((weights, layouts)),
            Err(e @ (ModelError::WeightsTrailing { .. } | ModelError::WeightsTruncated { .. })) => {
                e
            }
            Err(e) => return Err(e),
        };
        let heads = cfg.head_conv_layers();
        let anchors = cfg.heads().first().map_or(0, |h| h.mask.len());
        let Some(relaid) = file_head_layouts(&bytes, &layouts, &heads, anchors) else {
            return Err(error);
        };
        // The solved layout must read the whole file; otherwise the cfg's error says more.
        Self::from_bytes(&bytes, &relaid, path).map(|w| (w, relaid)).map_err(|_| error)
    }

    /// Parses file content for the given convs; `path` only labels errors.
    pub fn from_bytes(bytes: &[u8], layouts: &[ConvLayout], path: &Path) -> Result<Self> {
        let actual_bytes = bytes.len() as u64;
        let header_err = |expected_bytes: u64| ModelError::WeightsHeader {
            path: path.to_owned(),
            expected_bytes,
            actual_bytes,
        };
        let i32_at =
            |o: usize| i32::from_le_bytes([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]]);
        if bytes.len() < 12 {
            return Err(header_err(16));
        }
        let mut header =
            WeightsHeader { major: i32_at(0), minor: i32_at(4), revision: i32_at(8), seen: 0 };
        let header_len = header.byte_len();
        if bytes.len() < header_len {
            return Err(header_err(header_len as u64));
        }
        header.seen = if header.has_wide_seen() {
            u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"))
        } else {
            u64::from(u32::from_le_bytes(bytes[12..16].try_into().expect("4 bytes")))
        };

        let mut offset = header_len;
        let mut convs = Vec::with_capacity(layouts.len());
        for (k, layout) in layouts.iter().enumerate() {
            if offset == bytes.len() {
                tracing::info!(
                    "{}: partial weights: {k} of {} convs",
                    path.display(),
                    layouts.len()
                );
                break;
            }
            let need = layout.float_count() * 4;
            if bytes.len() - offset < need {
                return Err(ModelError::WeightsTruncated {
                    path: path.to_owned(),
                    conv: k,
                    layer: layout.layer,
                    expected_floats: layout.float_count() as u64,
                    expected_bytes: (offset + need) as u64,
                    actual_bytes,
                });
            }
            let mut floats = bytes[offset..offset + need]
                .chunks_exact(4)
                .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]));
            let mut take = |n: usize| floats.by_ref().take(n).collect::<Vec<f32>>();
            let n = layout.filters;
            let biases = take(n);
            let batch_norm = layout.batch_normalize.then(|| BatchNormParams {
                scales: take(n),
                rolling_mean: take(n),
                rolling_variance: take(n),
            });
            let kernel = take(layout.kernel_len());
            convs.push(ConvParams { biases, batch_norm, kernel });
            offset += need;
        }
        if offset != bytes.len() {
            return Err(ModelError::WeightsTrailing {
                path: path.to_owned(),
                convs: layouts.len(),
                expected_bytes: offset as u64,
                actual_bytes,
                extra_bytes: actual_bytes - offset as u64,
            });
        }
        // Values are checked once the sizes are known to fit: a shifted or truncated file is
        // reported as such, not as the odd value the shift happens to produce first.
        for (k, (params, layout)) in convs.iter().zip(layouts).enumerate() {
            check_values(params, path, k, layout.layer)?;
        }
        Ok(Self { header, convs })
    }

    /// The file content. Fails only when a 32-bit header cannot hold `seen`.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let floats: usize = self
            .convs
            .iter()
            .map(|c| {
                c.biases.len()
                    + c.kernel.len()
                    + c.batch_norm.as_ref().map_or(0, |b| 3 * b.scales.len())
            })
            .sum();
        let mut out = Vec::with_capacity(self.header.byte_len() + 4 * floats);
        let h = &self.header;
        for v in [h.major, h.minor, h.revision] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        if h.has_wide_seen() {
            out.extend_from_slice(&h.seen.to_le_bytes());
        } else {
            let seen = u32::try_from(h.seen).map_err(|_| ModelError::WeightsMismatch {
                conv: 0,
                layer: 0,
                message: format!(
                    "seen={} does not fit the 32-bit field of a version {}.{} header",
                    h.seen, h.major, h.minor
                ),
            })?;
            out.extend_from_slice(&seen.to_le_bytes());
        }
        let mut put = |v: &[f32]| v.iter().for_each(|x| out.extend_from_slice(&x.to_le_bytes()));
        for conv in &self.convs {
            put(&conv.biases);
            if let Some(bn) = &conv.batch_norm {
                put(&bn.scales);
                put(&bn.rolling_mean);
                put(&bn.rolling_variance);
            }
            put(&conv.kernel);
        }
        Ok(out)
    }

    /// Writes the file through a temporary file in the same folder, renamed into place
    /// (over an existing file only with [`Existing::Replace`]).
    pub fn write(&self, path: impl AsRef<Path>, existing: Existing) -> Result<()> {
        let path = path.as_ref();
        yolo3_io::fsio::write_atomic(path, &self.to_bytes()?, existing)
            .map_err(io_err("writing", path))
    }
}

/// `layouts` with every conv of `heads` widened or narrowed to the one filter count that makes
/// the file's size add up, when there is one and it is `anchors x (5 + classes)` for some
/// class count (see [`DarknetWeights::read_transfer`]). The second condition keeps a file of
/// another network from being read as this one when its size happens to fit.
fn file_head_layouts(
    bytes: &[u8],
    layouts: &[ConvLayout],
    heads: &[usize],
    anchors: usize,
) -> Option<Vec<ConvLayout>> {
    let minor = i32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let major = i32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?);
    let header = WeightsHeader { major, minor, revision: 0, seen: 0 }.byte_len();
    let body = bytes.len().checked_sub(header)?;
    if body % 4 != 0 || heads.is_empty() {
        return None;
    }
    let (head_layouts, rest): (Vec<&ConvLayout>, Vec<&ConvLayout>) =
        layouts.iter().partition(|l| heads.contains(&l.layer));
    if head_layouts.len() != heads.len() {
        return None;
    }
    let fixed: usize = rest.iter().map(|l| l.float_count()).sum();
    let per_filter: usize = head_layouts
        .iter()
        .map(|l| l.in_channels * l.size * l.size + if l.batch_normalize { 4 } else { 1 })
        .sum();
    let free = (body / 4).checked_sub(fixed)?;
    if free == 0 || free % per_filter != 0 {
        return None;
    }
    let filters = free / per_filter;
    if anchors == 0 || !filters.is_multiple_of(anchors) || filters / anchors <= 5 {
        return None;
    }
    Some(
        layouts
            .iter()
            .map(|l| if heads.contains(&l.layer) { ConvLayout { filters, ..*l } } else { *l })
            .collect(),
    )
}

/// Refuses NaN or infinite values and negative running variances (`sqrt(var + eps)` of a
/// negative variance is NaN): either would make every detection vanish without an error.
fn check_values(params: &ConvParams, path: &Path, conv: usize, layer: usize) -> Result<()> {
    let mut groups: Vec<(&str, &[f32])> = vec![("biases", &params.biases)];
    if let Some(bn) = &params.batch_norm {
        groups.push(("scales", &bn.scales));
        groups.push(("rolling mean", &bn.rolling_mean));
        groups.push(("rolling variance", &bn.rolling_variance));
    }
    groups.push(("kernel", &params.kernel));
    for (what, values) in groups {
        let bad = |i: usize, v: f32, why: &str| ModelError::WeightsValue {
            path: path.to_owned(),
            conv,
            layer,
            message: format!("{what}[{i}] = {v} {why}"),
        };
        if let Some((i, &v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(bad(i, v, "is not finite"));
        }
        if what == "rolling variance" {
            if let Some((i, &v)) = values.iter().enumerate().find(|(_, v)| **v < 0.0) {
                return Err(bad(i, v, "is negative"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_round_trips_and_rejects_other_text() {
        let h = WeightsHeader { major: 0, minor: 2, revision: 5, seen: 32_013_312 };
        assert_eq!(h.to_string(), "0 2 5 32013312");
        assert_eq!(WeightsHeader::parse_text(&h.to_string()), Some(h));
        for bad in ["", "0 2 5", "0 2 5 1 9", "0 2 x 1", "0 2 5 -1"] {
            assert_eq!(WeightsHeader::parse_text(bad), None, "{bad:?}");
        }
    }

    fn layouts() -> Vec<ConvLayout> {
        vec![
            ConvLayout { layer: 0, filters: 2, in_channels: 3, size: 3, batch_normalize: true },
            ConvLayout { layer: 2, filters: 4, in_channels: 2, size: 1, batch_normalize: false },
        ]
    }

    fn file(header: &[u8], floats: usize) -> Vec<u8> {
        let mut b = header.to_vec();
        for i in 0..floats {
            b.extend_from_slice(&(i as f32).to_le_bytes());
        }
        b
    }

    fn v02() -> Vec<u8> {
        let mut h = Vec::new();
        for v in [0i32, 2, 0] {
            h.extend_from_slice(&v.to_le_bytes());
        }
        h.extend_from_slice(&0x1_0203_0405u64.to_le_bytes());
        h
    }

    #[test]
    fn round_trip_and_layout() {
        let l = layouts();
        let total = l[0].float_count() + l[1].float_count();
        assert_eq!(l[0].float_count(), 8 + 54);
        let bytes = file(&v02(), total);
        let w = DarknetWeights::from_bytes(&bytes, &l, Path::new("w")).unwrap();
        assert_eq!(w.header.seen, 0x1_0203_0405);
        assert_eq!(w.convs[0].biases, vec![0.0, 1.0]);
        assert_eq!(w.convs[0].batch_norm.as_ref().unwrap().scales, vec![2.0, 3.0]);
        assert_eq!(w.convs[0].kernel[0], 8.0);
        assert_eq!(w.convs[1].biases[0], 62.0);
        assert_eq!(w.to_bytes().unwrap(), bytes);
    }

    #[test]
    fn sizes() {
        let l = layouts();
        let p = Path::new("w");
        let partial = DarknetWeights::from_bytes(&file(&v02(), l[0].float_count()), &l, p).unwrap();
        assert_eq!(partial.convs.len(), 1);
        let err = DarknetWeights::from_bytes(&file(&v02(), 70), &l, p).unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::WeightsTruncated {
                    conv: 1,
                    layer: 2,
                    expected_bytes: 316,
                    actual_bytes: 300,
                    ..
                }
            ),
            "{err}"
        );
        let err = DarknetWeights::from_bytes(&file(&v02(), 75), &l, p).unwrap_err();
        assert!(
            matches!(
                err,
                ModelError::WeightsTrailing {
                    expected_bytes: 316,
                    actual_bytes: 320,
                    extra_bytes: 4,
                    ..
                }
            ),
            "{err}"
        );
        let err = DarknetWeights::from_bytes(&v02()[..14], &l, p).unwrap_err();
        assert!(
            matches!(err, ModelError::WeightsHeader { expected_bytes: 20, actual_bytes: 14, .. }),
            "{err}"
        );
    }
}
