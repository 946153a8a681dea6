//! The built-in tiny-YOLOv3 preset of `yolo3 train` as darknet cfg text (adapting a cfg to a
//! dataset is [`yolo3_model::Config::adapted`]).

use std::fmt::Write as _;

/// yolov3-tiny with every hidden width divided by `divisor` (1 is the official network), for
/// `classes` classes, the given six anchors and a square `input`.
#[must_use]
pub fn tiny_cfg(divisor: u32, input: u32, classes: usize, anchors: &[[f32; 2]]) -> String {
    let f = |n: u32| (n / divisor).max(4);
    let head = 3 * (5 + classes);
    let anchors = yolo3_model::cfg::anchor_list(anchors);
    let mut s = String::new();
    let _ = write!(
        s,
        "# yolov3-tiny, hidden widths / {divisor}: the built-in preset of `yolo3 train`.\n\
         [net]\nbatch=64\nsubdivisions=1\nwidth={input}\nheight={input}\nchannels=3\n\
         momentum=0.9\ndecay=0.0005\nlearning_rate=0.001\nburn_in=100\nmax_batches=10000\n\
         policy=steps\nsteps=8000,9000\nscales=.1,.1\n\n"
    );
    for width in [16, 32, 64, 128, 256] {
        let _ = write!(s, "{}", conv(f(width), 3, true));
        let _ = writeln!(s, "[maxpool]\nsize=2\nstride=2\n");
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
}
