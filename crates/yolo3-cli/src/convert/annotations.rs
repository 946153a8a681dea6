//! `convert annotations`: any supported dataset to keras-yolo3's `train.txt` (+
//! `classes.txt`) or to a YOLO txt folder.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::ValueEnum;
use yolo3_data::{DatasetFormat, DifficultPolicy, ImagePlacement, OpenOptions};

use super::say;
use crate::args::Global;
use crate::guard::check_output;

/// Target annotation formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Target {
    /// keras-yolo3 train.txt (`path x1,y1,x2,y2,c ...`) with classes.txt beside it.
    Keras,
    /// YOLO txt: OUT/images, OUT/labels (`c cx cy w h`, normalised), OUT/classes.txt.
    Yolo,
}

/// `yolo3 convert annotations`.
#[derive(Debug, clap::Args)]
pub(super) struct AnnotationsArgs {
    /// Input dataset: keras train.txt, Pascal VOC folder, COCO JSON or YOLO folder.
    #[arg(long, short = 'd')]
    data: PathBuf,
    /// Input format (default: detected from the path).
    #[arg(long)]
    format: Option<DatasetFormat>,
    /// Class-name file of the input, where its format needs one (for VOC: fixes the order).
    #[arg(long)]
    classes: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum)]
    to: Target,
    /// Output: the train.txt path (keras) or a folder (yolo).
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// YOLO output: copy the images instead of hard-linking them.
    #[arg(long)]
    copy_images: bool,
    /// Keep Pascal VOC boxes marked difficult (by default they are left out, as keras-yolo3's
    /// voc_annotation.py does, and counted in a warning).
    #[arg(long)]
    keep_difficult: bool,
    /// keras output: replace an existing train.txt, and a classes.txt beside it that lists other
    /// classes (an input is never replaced).
    #[arg(long)]
    force: bool,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Self::Keras => "keras",
            Self::Yolo => "YOLO",
        }
    }
}

pub(super) fn annotations(args: &AnnotationsArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let mut open = OpenOptions {
        format: args.format,
        classes: args.classes.clone(),
        ..OpenOptions::default()
    };
    if args.keep_difficult {
        open.read.difficult = DifficultPolicy::Keep;
    }
    let mut dataset = yolo3_data::read_dataset(&args.data, &open)?;
    let unreadable = std::mem::take(&mut dataset.unreadable);
    for u in &unreadable {
        eprintln!("warning: {} is unreadable ({}); it is left out", u.path.display(), u.reason);
    }
    let summary = dataset.summary();
    if summary.ignored_difficult > 0 {
        eprintln!(
            "warning: {} boxes marked difficult are left out (as keras-yolo3's voc_annotation.py \
             does); --keep-difficult writes them",
            summary.ignored_difficult
        );
    }
    if summary.ignored_crowd > 0 {
        eprintln!(
            "warning: {} COCO crowd boxes are left out (the {} format has no crowd flag)",
            summary.ignored_crowd,
            args.to.name()
        );
    }
    let boxes = summary.boxes;
    let inputs = crate::guard::dataset_inputs(&args.data, args.classes.as_deref(), &dataset);
    match args.to {
        Target::Keras => {
            check_output("--out", &args.out, inputs.iter().map(AsRef::as_ref), args.force)?;
            let classes = classes_path_beside(&args.out);
            let same_classes =
                || yolo3_data::read_class_names(&classes).is_ok_and(|n| n == dataset.class_names);
            let write_classes = if !classes.exists() {
                true
            } else if same_classes() {
                false
            } else if args.force {
                check_output(
                    "--out's classes.txt",
                    &classes,
                    inputs.iter().map(AsRef::as_ref),
                    true,
                )?;
                true
            } else {
                bail!(
                    "{} exists and does not list this dataset's classes; pass --force to replace \
                     it, or write the output to another folder",
                    classes.display()
                );
            };
            if let Some(dir) = args.out.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("creating {}", dir.display()))?;
            }
            yolo3_data::write_train_txt(&dataset, &args.out, crate::guard::existing(args.force))
                .with_context(|| format!("writing {}", args.out.display()))?;
            if write_classes {
                yolo3_data::write_class_names(
                    &classes,
                    &dataset.class_names,
                    crate::guard::existing(args.force),
                )
                .with_context(|| format!("writing {}", classes.display()))?;
            }
            say(
                global,
                &format!(
                    "{} images, {boxes} boxes written to {} (classes: {})",
                    dataset.samples.len(),
                    args.out.display(),
                    classes.display()
                ),
            );
        }
        Target::Yolo => {
            let placement =
                if args.copy_images { ImagePlacement::Copy } else { ImagePlacement::LinkOrCopy };
            let written = yolo3_data::write_yolo(&dataset, &args.out, placement)
                .with_context(|| format!("writing {}", args.out.display()))?;
            for (source, name) in &written.renamed {
                eprintln!(
                    "warning: {} is written as images/{name} (its name is taken by another image)",
                    source.display()
                );
            }
            say(
                global,
                &format!(
                    "{} images, {boxes} boxes written to {}",
                    written.images.len(),
                    args.out.display()
                ),
            );
        }
    }
    Ok(if unreadable.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// `classes.txt` in the folder of `annotation` (where the readers look for it).
fn classes_path_beside(annotation: &Path) -> PathBuf {
    annotation.parent().unwrap_or(Path::new("")).join("classes.txt")
}
