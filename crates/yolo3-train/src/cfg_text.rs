//! Darknet cfg text for training: the built-in tiny preset, and adapting any cfg to a dataset's
//! classes and anchors.
//!
//! Darknet users edit `classes=` in every `[yolo]` and `filters=` of the convolution before it
//! by hand; forgetting one is the classic mistake. [`adapt_cfg`] does both (and optionally the
//! anchors) so a cfg written for COCO trains on a 3-class dataset as it is. The checkpoint keeps
//! the adapted text, so detection later uses the same heads and anchors.

use std::fmt::Write as _;

/// yolov3-tiny with every hidden width divided by `divisor` (1 is the official network), for
/// `classes` classes, the given six anchors and a square `input`.
#[must_use]
pub fn tiny_cfg(divisor: u32, input: u32, classes: usize, anchors: &[[f32; 2]]) -> String {
    let f = |n: u32| (n / divisor).max(4);
    let head = 3 * (5 + classes);
    let anchors = anchors_text(anchors);
    let mut s = String::new();
    let _ = write!(
        s,
        "# yolov3-tiny, hidden widths / {divisor}: the built-in preset of `yolo3 train`.\n\
         [net]\nbatch=64\nsubdivisions=1\nwidth={input}\nheight={input}\nchannels=3\n\
         momentum=0.9\ndecay=0.0005\nlearning_rate=0.001\nburn_in=100\nmax_batches=10000\n\
         policy=steps\nsteps=8000,9000\nscales=.1,.1\n\n"
    );
    for (n, width) in [16, 32, 64, 128, 256].into_iter().enumerate() {
        let _ = write!(s, "{}", conv(f(width), 3, true));
        let _ = writeln!(s, "[maxpool]\nsize=2\nstride=2\n");
        let _ = n;
    }
    let _ = write!(s, "{}", conv(f(512), 3, true));
    let _ = writeln!(s, "[maxpool]\nsize=2\nstride=1\n");
    let _ =
        write!(s, "{}{}{}", conv(f(1024), 3, true), conv(f(256), 1, true), conv(f(512), 3, true));
    let _ = write!(s, "{}", conv(head as u32, 1, false));
    let _ = write!(s, "{}", yolo("3,4,5", &anchors, classes));
    let _ = writeln!(s, "[route]\nlayers=-4\n");
    let _ = write!(s, "{}", conv(f(128), 1, true));
    let _ = writeln!(s, "[upsample]\nstride=2\n\n[route]\nlayers=-1,8\n");
    let _ = write!(s, "{}{}", conv(f(256), 3, true), conv(head as u32, 1, false));
    let _ = write!(s, "{}", yolo("0,1,2", &anchors, classes));
    s
}

fn conv(filters: u32, size: u32, bn: bool) -> String {
    if bn {
        format!(
            "[convolutional]\nbatch_normalize=1\nfilters={filters}\nsize={size}\nstride=1\npad=1\nactivation=leaky\n\n"
        )
    } else {
        format!("[convolutional]\nsize={size}\nstride=1\npad=1\nfilters={filters}\nactivation=linear\n\n")
    }
}

fn yolo(mask: &str, anchors: &str, classes: usize) -> String {
    format!(
        "[yolo]\nmask={mask}\nanchors={anchors}\nclasses={classes}\nnum=6\njitter=.3\nignore_thresh=.5\ntruth_thresh=1\nrandom=0\n\n"
    )
}

fn anchors_text(anchors: &[[f32; 2]]) -> String {
    anchors
        .iter()
        .map(|[w, h]| format!("{},{}", w.round(), h.round()))
        .collect::<Vec<_>>()
        .join(",  ")
}

/// Sets `classes=` of every `[yolo]` section, `filters=` of the convolution that feeds it (to
/// `len(mask) * (5 + classes)`) and, when given, `anchors=`. Other lines are kept as they are.
#[must_use]
pub fn adapt_cfg(text: &str, classes: usize, anchors: Option<&[[f32; 2]]>) -> String {
    // Pass 1: split into sections, remembering each section's name.
    let mut sections: Vec<(String, Vec<String>)> = vec![(String::new(), Vec::new())];
    for line in text.lines() {
        let trimmed: String = line.chars().filter(|c| !c.is_whitespace()).collect();
        if trimmed.starts_with('[') && !line.trim_start().starts_with(['#', ';']) {
            sections.push((trimmed.trim_matches(['[', ']']).to_owned(), vec![line.to_owned()]));
        } else {
            sections.last_mut().expect("never empty").1.push(line.to_owned());
        }
    }
    let key_of = |line: &str| -> Option<String> {
        let t: String = line.chars().filter(|c| !c.is_whitespace()).collect();
        if t.starts_with(['#', ';']) {
            return None;
        }
        t.split_once('=').map(|(k, _)| k.to_owned())
    };
    let value_of = |line: &str| -> String {
        let t: String = line.chars().filter(|c| !c.is_whitespace()).collect();
        t.split_once('=').map(|(_, v)| v.to_owned()).unwrap_or_default()
    };
    for n in 0..sections.len() {
        if sections[n].0 != "yolo" {
            continue;
        }
        let mask_len = sections[n]
            .1
            .iter()
            .find(|l| key_of(l).as_deref() == Some("mask"))
            .map_or(3, |l| value_of(l).split(',').filter(|v| !v.is_empty()).count());
        for line in &mut sections[n].1 {
            match key_of(line).as_deref() {
                Some("classes") => *line = format!("classes={classes}"),
                Some("anchors") if anchors.is_some() => {
                    *line = format!("anchors={}", anchors_text(anchors.unwrap_or_default()));
                }
                Some("num") if anchors.is_some() => {
                    *line = format!("num={}", anchors.unwrap_or_default().len());
                }
                _ => {}
            }
        }
        if let Some(prev) = (0..n).rev().find(|&p| sections[p].0 == "convolutional") {
            if prev == n - 1 {
                for line in &mut sections[prev].1 {
                    if key_of(line).as_deref() == Some("filters") {
                        *line = format!("filters={}", mask_len * (5 + classes));
                    }
                }
            }
        }
    }
    let mut out = String::new();
    for (_, lines) in sections {
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use yolo3_model::Config;

    #[test]
    fn tiny_preset_parses_with_the_requested_heads() {
        let text = tiny_cfg(2, 160, 4, &yolo3_core::anchors::TINY_ANCHORS);
        let cfg = Config::parse(&text, "preset").unwrap();
        assert_eq!(cfg.heads().len(), 2);
        assert_eq!(cfg.heads()[0].channels(), 27);
        assert_eq!(cfg.heads()[1].mask, vec![0, 1, 2]);
    }

    #[test]
    fn adapt_sets_classes_filters_and_anchors() {
        let text = tiny_cfg(1, 416, 80, &yolo3_core::anchors::TINY_ANCHORS);
        let anchors = [[1.0, 2.0], [3.0, 4.0], [5.0, 6.0], [7.0, 8.0], [9.0, 10.0], [11.0, 12.0]];
        let adapted = adapt_cfg(&text, 3, Some(&anchors));
        let cfg = Config::parse(&adapted, "adapted").unwrap();
        assert!(cfg.heads().iter().all(|h| h.classes == 3 && h.channels() == 24));
        assert_eq!(cfg.heads()[0].anchors[0], [7.0, 8.0]);
    }
}
