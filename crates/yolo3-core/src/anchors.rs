//! Anchor boxes and the masks that assign them to output layers.
//!
//! Anchors are `(w, h)` in network-input pixels. Layer `l = 0` is the coarsest (stride 32).
//! keras-yolo3 uses the mask `[[6,7,8],[3,4,5],[0,1,2]]` for the nine normal anchors, and for
//! the six tiny anchors `[[3,4,5],[1,2,3]]`: anchor 0 is never used and anchor 3 belongs to
//! both layers. That is the default here, for bit compatibility with keras-yolo3; darknet's
//! corrected tiny mask `[[3,4,5],[0,1,2]]` is [`TinyMask::Darknet`].

use std::fmt::Write as _;
use std::path::Path;

use crate::error::CoreError;

/// keras-yolo3's (and darknet's) nine COCO anchors.
pub const YOLOV3_ANCHORS: [[f32; 2]; 9] = [
    [10.0, 13.0],
    [16.0, 30.0],
    [33.0, 23.0],
    [30.0, 61.0],
    [62.0, 45.0],
    [59.0, 119.0],
    [116.0, 90.0],
    [156.0, 198.0],
    [373.0, 326.0],
];

/// keras-yolo3's six tiny anchors.
pub const TINY_ANCHORS: [[f32; 2]; 6] =
    [[10.0, 14.0], [23.0, 27.0], [37.0, 58.0], [81.0, 82.0], [135.0, 169.0], [344.0, 319.0]];

/// Which two-layer mask to use for six anchors.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum TinyMask {
    /// `[[3,4,5],[1,2,3]]`, as keras-yolo3 has it (anchor 0 unused, anchor 3 on both layers).
    #[default]
    Keras,
    /// `[[3,4,5],[0,1,2]]`, darknet's corrected mask.
    Darknet,
}

/// A set of anchors with the mask that assigns them to layers.
#[derive(Clone, Debug, PartialEq)]
pub struct Anchors {
    sizes: Vec<[f32; 2]>,
    mask: Vec<Vec<usize>>,
}

impl Anchors {
    /// Anchors with an explicit mask. Every mask row must have the same length and name valid
    /// anchors, and every size must be positive and finite.
    pub fn new(sizes: Vec<[f32; 2]>, mask: Vec<Vec<usize>>) -> Result<Self, CoreError> {
        let invalid = |reason: String| Err(CoreError::InvalidAnchors { reason });
        if sizes.is_empty() || mask.is_empty() {
            return invalid("no anchors or an empty mask".into());
        }
        if let Some((n, s)) = sizes
            .iter()
            .enumerate()
            .find(|(_, s)| !(s[0] > 0.0 && s[1] > 0.0 && s[0].is_finite() && s[1].is_finite()))
        {
            return invalid(format!("anchor {n} = {s:?} is not a positive finite size"));
        }
        let per_layer = mask[0].len();
        for (l, row) in mask.iter().enumerate() {
            if row.len() != per_layer || row.is_empty() {
                return invalid(format!(
                    "mask row {l} has {} anchors, row 0 has {per_layer}",
                    row.len()
                ));
            }
            if let Some(&n) = row.iter().find(|&&n| n >= sizes.len()) {
                return invalid(format!(
                    "mask row {l} names anchor {n}, but there are {}",
                    sizes.len()
                ));
            }
        }
        Ok(Self { sizes, mask })
    }

    /// Anchors with keras-yolo3's mask for their count: three layers for nine anchors, two for
    /// six (with the chosen tiny mask).
    pub fn with_default_mask(sizes: Vec<[f32; 2]>, tiny: TinyMask) -> Result<Self, CoreError> {
        let mask = default_mask(sizes.len(), tiny)?;
        Self::new(sizes, mask)
    }

    /// keras-yolo3's nine YOLOv3 anchors and mask.
    #[must_use]
    pub fn yolov3() -> Self {
        Self::with_default_mask(YOLOV3_ANCHORS.to_vec(), TinyMask::Keras).expect("valid constant")
    }

    /// keras-yolo3's six tiny anchors with the chosen mask.
    #[must_use]
    pub fn tiny(mask: TinyMask) -> Self {
        Self::with_default_mask(TINY_ANCHORS.to_vec(), mask).expect("valid constant")
    }

    /// All anchor sizes, `(w, h)` in input pixels.
    #[must_use]
    pub fn sizes(&self) -> &[[f32; 2]] {
        &self.sizes
    }

    /// The mask: row `l` lists the anchors of layer `l`.
    #[must_use]
    pub fn mask(&self) -> &[Vec<usize>] {
        &self.mask
    }

    /// Number of output layers.
    #[must_use]
    pub fn num_layers(&self) -> usize {
        self.mask.len()
    }

    /// Anchor slots per cell.
    #[must_use]
    pub fn per_layer(&self) -> usize {
        self.mask[0].len()
    }

    /// The size of anchor slot `a` of layer `l`.
    #[must_use]
    pub fn slot(&self, layer: usize, slot: usize) -> [f32; 2] {
        self.sizes[self.mask[layer][slot]]
    }

    /// Parses keras-yolo3's `anchors.txt` text: numbers separated by commas and white space,
    /// read as `w,h` pairs (`10,13,  16,30, ...`). The mask is keras' default for the count.
    pub fn parse(text: &str, origin: &str, tiny: TinyMask) -> Result<Self, CoreError> {
        let mut values = Vec::new();
        for (n, field) in text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|f| !f.is_empty())
            .enumerate()
        {
            let v: f32 = field.parse().map_err(|_| CoreError::AnchorsFile {
                path: origin.to_owned(),
                field: n + 1,
                reason: format!("`{field}` is not a number"),
            })?;
            if !(v.is_finite() && v > 0.0) {
                return Err(CoreError::AnchorsFile {
                    path: origin.to_owned(),
                    field: n + 1,
                    reason: format!("`{field}` is not a positive size within the float32 range"),
                });
            }
            values.push(v);
        }
        if values.len() % 2 != 0 || values.is_empty() {
            return Err(CoreError::AnchorsFile {
                path: origin.to_owned(),
                field: values.len(),
                reason: format!("expected w,h pairs, found {} numbers", values.len()),
            });
        }
        let sizes = values.chunks_exact(2).map(|p| [p[0], p[1]]).collect();
        Self::with_default_mask(sizes, tiny).map_err(|e| CoreError::AnchorsFile {
            path: origin.to_owned(),
            field: 0,
            reason: e.to_string(),
        })
    }

    /// Reads an `anchors.txt` file.
    pub fn read(path: &Path, tiny: TinyMask) -> Result<Self, CoreError> {
        let text = yolo3_io::fsio::read_text(path)
            .map_err(|source| CoreError::Io { path: path.display().to_string(), source })?;
        Self::parse(&text, &path.display().to_string(), tiny)
    }

    /// The `anchors.txt` text, as keras-yolo3's `kmeans.py` writes it: `w,h` pairs joined by
    /// `,  `, integers printed without a fraction.
    #[must_use]
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (n, [w, h]) in self.sizes.iter().enumerate() {
            if n > 0 {
                out.push_str(",  ");
            }
            let _ = write!(out, "{w},{h}");
        }
        out.push('\n');
        out
    }

    /// Writes an `anchors.txt` file.
    pub fn write(&self, path: &Path) -> Result<(), CoreError> {
        std::fs::write(path, self.to_text())
            .map_err(|source| CoreError::Io { path: path.display().to_string(), source })
    }
}

/// keras-yolo3's anchor mask for `n` anchors: three layers of three for nine, two for six.
pub fn default_mask(n: usize, tiny: TinyMask) -> Result<Vec<Vec<usize>>, CoreError> {
    match (n, tiny) {
        (9, _) => Ok(vec![vec![6, 7, 8], vec![3, 4, 5], vec![0, 1, 2]]),
        (6, TinyMask::Keras) => Ok(vec![vec![3, 4, 5], vec![1, 2, 3]]),
        (6, TinyMask::Darknet) => Ok(vec![vec![3, 4, 5], vec![0, 1, 2]]),
        _ => Err(CoreError::InvalidAnchors {
            reason: format!("no default mask for {n} anchors (9 or 6 have one; give a mask)"),
        }),
    }
}

/// The stride of layer `l` of `num_layers`: 32 for the coarsest, halving per layer.
#[must_use]
pub fn layer_stride(layer: usize) -> usize {
    32 >> layer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keras_tiny_mask_drops_anchor_zero_and_shares_anchor_three() {
        let a = Anchors::tiny(TinyMask::Keras);
        assert!(!a.mask().iter().flatten().any(|&n| n == 0));
        assert_eq!(a.mask().iter().flatten().filter(|&&n| n == 3).count(), 2);
        let d = Anchors::tiny(TinyMask::Darknet);
        assert_eq!(d.mask()[1], vec![0, 1, 2]);
    }

    #[test]
    fn anchors_text_round_trips() {
        let text = "10,13,  16,30,  33,23,  30,61,  62,45,  59,119,  116,90,  156,198,  373,326\n";
        let a = Anchors::parse(text, "anchors.txt", TinyMask::Keras).unwrap();
        assert_eq!(a, Anchors::yolov3());
        assert_eq!(a.to_text(), text);
    }

    #[test]
    fn malformed_anchors_name_the_field() {
        let err = Anchors::parse("10,13, 16,x", "a.txt", TinyMask::Keras).unwrap_err();
        assert!(err.to_string().contains("a.txt: field 4"), "{err}");
        let err = Anchors::parse("10,13,16", "a.txt", TinyMask::Keras).unwrap_err();
        assert!(err.to_string().contains("pairs"), "{err}");
    }
}
