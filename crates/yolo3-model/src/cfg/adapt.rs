//! A cfg adapted to a dataset: its classes and, optionally, its anchors.
//!
//! Darknet users edit `classes=` in every `[yolo]` and `filters=` of the convolution before it
//! by hand; forgetting one is the classic mistake. [`Config::adapted`] does both (and the
//! anchors when given) so a cfg written for COCO trains on a 3-class dataset as it is. It
//! edits the text the lexer read, line by line, so comments and every other line stay as they
//! were; the checkpoint keeps the adapted text, so detection later uses the same heads.

use super::lexer::{lex, RawSection};
use super::{Config, Layer};
use crate::error::Result;

/// Anchors as a cfg's `anchors=` value: `w,h` pairs rounded to whole pixels.
#[must_use]
pub fn anchor_list(anchors: &[[f32; 2]]) -> String {
    anchors
        .iter()
        .map(|[w, h]| format!("{},{}", w.round(), h.round()))
        .collect::<Vec<_>>()
        .join(",  ")
}

/// Sets `key=value` in `section`: the line that holds the key is replaced, else a line is
/// inserted after the section header.
fn set(edits: &mut Vec<(usize, bool, String)>, section: &RawSection, key: &str, value: &str) {
    let line = format!("{key}={value}");
    match section.entries.iter().rev().find(|e| e.key == key) {
        Some(entry) => edits.push((entry.line, true, line)),
        None => edits.push((section.line, false, line)),
    }
}

impl Config {
    /// This cfg with `classes` classes in every `[yolo]`, `filters = len(mask) * (5 +
    /// classes)` in the convolution that feeds each one and, when given, the anchors (and
    /// `num`) replaced; parsed and validated again.
    pub fn adapted(&self, classes: usize, anchors: Option<&[[f32; 2]]>) -> Result<Self> {
        let sections = lex(&self.text, &self.name)?;
        // (line, replaces that line, text): a line replaced, or inserted after a header.
        let mut edits: Vec<(usize, bool, String)> = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            let Layer::Yolo(yolo) = layer else { continue };
            // Section 0 is [net]; layer i is section i + 1.
            let section = &sections[i + 1];
            set(&mut edits, section, "classes", &classes.to_string());
            if let Some(anchors) = anchors {
                set(&mut edits, section, "anchors", &anchor_list(anchors));
                set(&mut edits, section, "num", &anchors.len().to_string());
            }
            if i > 0 && matches!(self.layers[i - 1], Layer::Convolutional(_)) {
                let filters = yolo.mask.len() * (5 + classes);
                set(&mut edits, &sections[i], "filters", &filters.to_string());
            }
        }
        let mut out = String::with_capacity(self.text.len() + 64);
        for (n, line) in self.text.lines().enumerate() {
            let n = n + 1;
            match edits.iter().find(|(l, replaces, _)| *l == n && *replaces) {
                Some((_, _, new)) => out.push_str(new),
                None => out.push_str(line),
            }
            out.push('\n');
            for (_, _, new) in edits.iter().filter(|(l, replaces, _)| *l == n && !replaces) {
                out.push_str(new);
                out.push('\n');
            }
        }
        Self::parse(&out, &self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_HEAD: &str = "[net]\nwidth=64\nheight=64\nchannels=3\n\n[convolutional]\n\
        batch_normalize=1\nfilters=8\nsize=3\nstride=2\npad=1\nactivation=leaky\n\n\
        # the head\n[convolutional]\nsize=1\nstride=1\npad=1\nfilters=24\nactivation=linear\n\n\
        [yolo]\nmask = 0,1,2\nanchors = 10,14,  23,27,  37,58\nclasses=3\nnum=3\n";

    #[test]
    fn classes_filters_and_anchors_follow_the_dataset() {
        let cfg = Config::parse(ONE_HEAD, "one").unwrap();
        let anchors = [[1.0, 2.0], [3.0, 4.0], [5.4, 6.6]];
        let adapted = cfg.adapted(5, Some(&anchors)).unwrap();
        let head = &adapted.heads()[0];
        assert_eq!((head.classes, head.channels()), (5, 30));
        assert_eq!(head.anchors[2], [5.0, 7.0]);
        // Only the edited lines change; the same classes change nothing.
        assert_eq!(ONE_HEAD.lines().count(), adapted.text().lines().count());
        let changed = ONE_HEAD.lines().zip(adapted.text().lines()).filter(|(a, b)| a != b);
        assert_eq!(changed.count(), 3);
        assert_eq!(cfg.adapted(3, None).unwrap().text(), ONE_HEAD);
    }

    #[test]
    fn a_missing_classes_line_is_inserted() {
        // Darknet's default is 20 classes, 3 * (5 + 20) = 75 filters.
        let text: String = ONE_HEAD
            .lines()
            .filter(|l| !l.starts_with("classes"))
            .map(|l| if l == "filters=24" { "filters=75".to_owned() } else { l.to_owned() } + "\n")
            .collect();
        let cfg = Config::parse(&text, "default classes").unwrap();
        assert_eq!(cfg.heads()[0].classes, 20);
        let adapted = cfg.adapted(2, None).unwrap();
        assert_eq!((adapted.heads()[0].classes, adapted.heads()[0].channels()), (2, 21));
        assert!(adapted.text().contains("[yolo]\nclasses=2\n"), "{}", adapted.text());
    }
}
