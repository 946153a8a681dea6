//! `yolo3 anchors`: fit anchor sizes to a dataset, as keras-yolo3's `kmeans.py` and darknet's
//! `calc_anchors` do, and write keras' `anchors.txt`.
//!
//! Every box is first scaled as the letterbox would scale its image into a square `--input`
//! (`min(input / width, input / height)`), so the anchors are in network-input pixels, which
//! is what the cfg and `anchors.txt` hold. The clustering is `yolo3_core::kmeans` (1 - IoU
//! distance, median update, deterministic for `--seed`). The anchors are rounded to integers
//! as keras writes them; the printed average IoU is that of the rounded anchors (what the
//! detector will use), with the unrounded clustering's figure for comparison.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use yolo3_core::kmeans::{cluster_anchors, size_iou, CentroidUpdate, KmeansInit, KmeansOptions};
use yolo3_core::Anchors;
use yolo3_data::OpenOptions;

use crate::args::Global;

/// `yolo3 anchors`.
#[derive(Debug, clap::Args)]
pub(crate) struct AnchorsArgs {
    /// Dataset: keras train.txt, Pascal VOC folder, COCO JSON or YOLO folder.
    #[arg(long, visible_alias = "data")]
    dataset: PathBuf,
    /// Class-name file, where the format needs one and none is found beside the data.
    #[arg(long)]
    classes: Option<PathBuf>,
    /// Number of anchors, 1-100 (9 for YOLOv3, 6 for tiny-YOLOv3).
    #[arg(short = 'n', long = "num", default_value_t = 9, value_parser = crate::ranges::count(1, 100))]
    num: usize,
    /// Square network input side the boxes are letterboxed to (1-8192).
    #[arg(long, default_value_t = 416, value_parser = crate::ranges::count_u32(1, yolo3_model::MAX_INPUT))]
    input: u32,
    /// Seed of the initial centres.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Centre update: the median (keras-yolo3) or the mean (darknet).
    #[arg(long)]
    mean: bool,
    /// k-means++ initial centres instead of random boxes.
    #[arg(long)]
    plus_plus: bool,
    /// Where to write the keras anchors.txt.
    #[arg(long, default_value = "anchors.txt")]
    out: PathBuf,
    /// Replace --out if it exists (an input is never replaced).
    #[arg(long)]
    force: bool,
}

// main.rs hands the parsed arguments over by value.
#[allow(clippy::needless_pass_by_value)]
pub(crate) fn run(args: AnchorsArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let open = OpenOptions { classes: args.classes.clone(), ..OpenOptions::default() };
    let dataset = yolo3_data::read_dataset(&args.dataset, &open)?;
    for u in &dataset.unreadable {
        eprintln!("warning: skipping {}: {}", u.path.display(), u.reason);
    }
    let inputs = crate::guard::dataset_inputs(&args.dataset, args.classes.as_deref(), &dataset);
    crate::guard::check_output("--out", &args.out, inputs.iter().map(AsRef::as_ref), args.force)?;
    let (sizes, unknown_size) = dataset.input_box_sizes(args.input, None);
    if unknown_size > 0 {
        eprintln!(
            "warning: {unknown_size} images have no known size; their boxes are used unscaled"
        );
    }
    let options = KmeansOptions {
        seed: args.seed,
        update: if args.mean { CentroidUpdate::Mean } else { CentroidUpdate::Median },
        init: if args.plus_plus { KmeansInit::PlusPlus } else { KmeansInit::RandomBoxes },
        ..KmeansOptions::default()
    };
    let clusters = cluster_anchors(&sizes, args.num, &options)
        .with_context(|| format!("k-means of {} boxes into {} anchors", sizes.len(), args.num))?;
    let rounded: Vec<[f32; 2]> = clusters
        .anchors
        .iter()
        .map(|[w, h]| [w.round().max(1.0) as f32, h.round().max(1.0) as f32])
        .collect();
    let rounded_iou = mean_best_iou(&sizes, &rounded);
    // One layer holding every anchor: any count is valid, and the text is the same.
    let anchors = Anchors::new(rounded.clone(), vec![(0..rounded.len()).collect()])
        .context("the clustered anchors")?;
    let text = anchors.to_text();
    if let Some(folder) = args.out.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(folder)
            .with_context(|| format!("creating {}", folder.display()))?;
    }
    yolo3_io::fsio::write_atomic(&args.out, text.as_bytes(), crate::guard::existing(args.force))
        .with_context(|| format!("writing {}", args.out.display()))?;

    let mut out = std::io::stdout().lock();
    let written = if global.chatty() {
        writeln!(
            out,
            "{} boxes from {} images, letterboxed to {}x{}\nanchors: {}average IoU: {:.4} (unrounded {:.4}, {} iterations{})\nwritten to {}",
            sizes.len(),
            dataset.samples.len(),
            args.input,
            args.input,
            text,
            rounded_iou,
            clusters.mean_iou,
            clusters.iterations,
            if clusters.converged { "" } else { ", not converged" },
            args.out.display()
        )
    } else {
        write!(out, "{text}")
    };
    written.context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// Mean over boxes of the best `IoU` with any anchor (boxes and anchors sharing a centre).
fn mean_best_iou(sizes: &[[f64; 2]], anchors: &[[f32; 2]]) -> f64 {
    let total: f64 = sizes
        .iter()
        .map(|&s| {
            anchors
                .iter()
                .map(|a| size_iou(s, [f64::from(a[0]), f64::from(a[1])]))
                .fold(0.0, f64::max)
        })
        .sum();
    total / sizes.len().max(1) as f64
}
