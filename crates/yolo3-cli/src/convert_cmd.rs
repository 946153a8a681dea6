//! `yolo3 convert`: move weights and annotations between darknet, keras-yolo3, YOLO txt and
//! yolo3's own checkpoints, so nobody has to redo work to switch tools.
//!
//! * `convert weights`: darknet `.weights` + cfg to a safetensors checkpoint, or a checkpoint
//!   back to `.weights`; the direction follows the input's extension. The darknet header
//!   (version and `seen`) is kept in the checkpoint's `extra` metadata (`darknet_header`), so
//!   darknet -> checkpoint -> darknet reproduces the file byte for byte.
//! * `convert keras`: keras-yolo3 `.h5` weights (`yolo.h5`, `trained_weights_*.h5`) with
//!   their `anchors.txt` (or the network's darknet cfg) and `classes.txt` to a checkpoint.
//! * `convert annotations`: any supported dataset to keras-yolo3's `train.txt` (+
//!   `classes.txt` beside it; the job of keras' `voc_annotation.py`) or to a YOLO txt folder
//!   (`images/`, `labels/`, `classes.txt`).
//!
//! Neither ever writes over one of its inputs or deletes anything. An existing output file is
//! replaced only with `--force`; a YOLO output folder must be new or empty; a `classes.txt`
//! that exists beside a keras output is kept when it lists the same classes and refused (or,
//! with `--force`, replaced) when it does not.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Subcommand, ValueEnum};
use yolo3_data::{DatasetFormat, DifficultPolicy, ImagePlacement, OpenOptions};
use yolo3_model::{CheckpointInfo, Darknet, DarknetWeights, Detector, ModelFiles, WeightsHeader};

use crate::args::Global;
use crate::guard::{check_extension, check_output};
use crate::model_load::{is_checkpoint, keras_network, read_cfg, read_names};

/// Metadata key of the darknet header in a checkpoint's `extra`.
const HEADER_KEY: &str = "darknet_header";

/// `yolo3 convert`.
#[derive(Debug, clap::Args)]
pub struct ConvertArgs {
    #[command(subcommand)]
    what: ConvertCommand,
}

#[derive(Debug, Subcommand)]
enum ConvertCommand {
    /// Darknet .weights (+ --cfg) to a .safetensors checkpoint, or a checkpoint to .weights.
    Weights(WeightsArgs),
    /// The first layers of darknet .weights (+ --cfg) or of a checkpoint as a partial
    /// .weights file (darknet's `partial`, e.g. darknet53.conv.74), to initialise training.
    Partial(PartialArgs),
    /// keras-yolo3 .h5 weights (+ --anchors, or --cfg) to a .safetensors checkpoint.
    Keras(KerasArgs),
    /// Any supported dataset to keras train.txt or YOLO txt labels.
    Annotations(AnnotationsArgs),
}

/// `yolo3 convert keras`.
#[derive(Debug, clap::Args)]
struct KerasArgs {
    /// Input: keras-yolo3 weights (`model.save_weights` or `model.save` .h5, Keras 2 or
    /// tf.keras).
    #[arg(long, short = 'w')]
    weights: PathBuf,
    /// keras-yolo3 anchors.txt: the network is keras-yolo3's YOLOv3 or tiny-YOLOv3 (chosen by
    /// the file's convolution count) with these anchors.
    #[arg(long, conflicts_with = "cfg", required_unless_present = "cfg")]
    anchors: Option<PathBuf>,
    /// The network's darknet cfg instead of --anchors (its anchors and masks are used).
    #[arg(long)]
    cfg: Option<PathBuf>,
    /// keras-yolo3 classes.txt, stored in the checkpoint (default: 0, 1, 2, ...).
    #[arg(long)]
    classes: Option<PathBuf>,
    /// Output: a .safetensors checkpoint.
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Replace the output file if it exists (an input is never replaced).
    #[arg(long)]
    force: bool,
}

/// `yolo3 convert weights`.
#[derive(Debug, clap::Args)]
struct WeightsArgs {
    /// Input: darknet .weights (needs --cfg) or a .safetensors checkpoint.
    #[arg(long, short = 'w')]
    weights: PathBuf,
    /// Darknet cfg of the .weights file.
    #[arg(long)]
    cfg: Option<PathBuf>,
    /// Class names stored in the checkpoint (default: 0, 1, 2, ...).
    #[arg(long)]
    classes: Option<PathBuf>,
    /// Output: a .safetensors checkpoint (from .weights) or a .weights file (from a checkpoint).
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Replace the output file if it exists (an input is never replaced).
    #[arg(long)]
    force: bool,
}

/// `yolo3 convert partial`.
#[derive(Debug, clap::Args)]
struct PartialArgs {
    /// Input: darknet .weights (needs --cfg) or a .safetensors checkpoint.
    #[arg(long, short = 'w')]
    weights: PathBuf,
    /// Darknet cfg of the .weights file.
    #[arg(long)]
    cfg: Option<PathBuf>,
    /// Keep the convolutions of layers 0 to N-1 (darknet's layer numbering; 74 for
    /// darknet53.conv.74 from yolov3.cfg).
    #[arg(long, value_parser = crate::ranges::count(1, 100_000))]
    layers: usize,
    /// Output: the partial darknet weights file (darknet names it like `darknet53.conv.74`).
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Replace the output file if it exists (an input is never replaced).
    #[arg(long)]
    force: bool,
}

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
struct AnnotationsArgs {
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

pub fn run(args: ConvertArgs, global: &Global) -> anyhow::Result<ExitCode> {
    match args.what {
        ConvertCommand::Weights(a) => weights(&a, global),
        ConvertCommand::Partial(a) => partial(&a, global),
        ConvertCommand::Keras(a) => keras(&a, global),
        ConvertCommand::Annotations(a) => annotations(&a, global),
    }
}

fn say(global: &Global, text: &str) {
    if global.chatty() {
        let _ = writeln!(std::io::stderr().lock(), "{text}");
    }
}

fn header_text(h: &WeightsHeader) -> String {
    format!("{} {} {} {}", h.major, h.minor, h.revision, h.seen)
}

fn parse_header(text: &str) -> Option<WeightsHeader> {
    let v: Vec<&str> = text.split_whitespace().collect();
    if v.len() != 4 {
        return None;
    }
    Some(WeightsHeader {
        major: v[0].parse().ok()?,
        minor: v[1].parse().ok()?,
        revision: v[2].parse().ok()?,
        seen: v[3].parse().ok()?,
    })
}

fn weights(args: &WeightsArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let inputs = [Some(&args.weights), args.cfg.as_ref(), args.classes.as_ref()];
    let inputs = inputs.into_iter().flatten().map(PathBuf::as_path);
    if is_checkpoint(&args.weights) {
        check_extension("--out", &args.out, &["weights"], "a checkpoint converted to darknet")?;
    } else {
        check_extension("--out", &args.out, &["safetensors"], "darknet weights converted")?;
    }
    check_output("--out", &args.out, inputs, args.force)?;
    if is_checkpoint(&args.weights) {
        if args.cfg.is_some() || args.classes.is_some() {
            tracing::warn!("--cfg and --classes are ignored: the checkpoint carries its own");
        }
        let (_, weights) = read_darknet(&args.weights, None)?;
        weights.write(&args.out).with_context(|| format!("writing {}", args.out.display()))?;
        say(
            global,
            &format!(
                "{} convolutions (darknet {}) written to {}",
                weights.convs.len(),
                header_text(&weights.header),
                args.out.display()
            ),
        );
    } else {
        let Some(cfg_path) = &args.cfg else {
            bail!("{} is read as darknet weights, which needs --cfg", args.weights.display());
        };
        let cfg = read_cfg(cfg_path)?;
        let weights = DarknetWeights::read(&args.weights, &cfg)
            .with_context(|| format!("reading darknet weights {}", args.weights.display()))?;
        let mut net = Darknet::new(cfg, tch::Device::Cpu).context("building the network")?;
        let loaded = net
            .load_darknet_weights(&weights)
            .with_context(|| format!("loading {}", args.weights.display()))?;
        let total = net.config().conv_layers().len();
        if loaded == 0 {
            bail!(
                "{} holds no convolution weights (only a header); there is nothing to convert",
                args.weights.display()
            );
        }
        if loaded < total {
            eprintln!(
                "warning: {} holds {loaded} of {total} convolutions; the rest are random in the checkpoint",
                args.weights.display()
            );
        }
        let info = CheckpointInfo {
            class_names: class_names(args.classes.as_deref(), &net)?,
            extra: BTreeMap::from([(HEADER_KEY.to_owned(), header_text(&weights.header))]),
        };
        net.save_checkpoint(&args.out, &info)
            .with_context(|| format!("writing {}", args.out.display()))?;
        say(global, &format!("{loaded} convolutions written to {}", args.out.display()));
    }
    Ok(ExitCode::SUCCESS)
}

/// The class names for a checkpoint of `net`: those of `classes` (as many as the network has),
/// else `0, 1, 2, ...`.
fn class_names(classes: Option<&Path>, net: &Darknet) -> anyhow::Result<Vec<String>> {
    let count = net.heads().first().map_or(0, |h| h.classes.max(0) as usize);
    let Some(path) = classes else {
        return Ok((0..count).map(|c| c.to_string()).collect());
    };
    let names = read_names(path)?;
    if names.len() != count {
        bail!("{}: {} names, the network has {count} classes", path.display(), names.len());
    }
    Ok(names)
}

fn keras(args: &KerasArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let inputs =
        [Some(&args.weights), args.anchors.as_ref(), args.cfg.as_ref(), args.classes.as_ref()];
    check_extension("--out", &args.out, &["safetensors"], "keras weights converted")?;
    check_output(
        "--out",
        &args.out,
        inputs.into_iter().flatten().map(PathBuf::as_path),
        args.force,
    )?;
    let network = keras_network(&args.weights, args.cfg.as_deref(), args.anchors.as_deref())?;
    let files = ModelFiles::Keras { weights: args.weights.clone(), network };
    let detector = Detector::load(&files, args.classes.as_deref(), tch::Device::Cpu)
        .with_context(|| format!("loading keras weights {}", args.weights.display()))?;
    let net = detector.net();
    let info =
        CheckpointInfo { class_names: detector.class_names().to_vec(), extra: BTreeMap::new() };
    net.save_checkpoint(&args.out, &info)
        .with_context(|| format!("writing {}", args.out.display()))?;
    say(
        global,
        &format!(
            "{} convolutions of {} ({} classes) written to {}",
            net.config().conv_layers().len(),
            args.weights.display(),
            info.class_names.len(),
            args.out.display()
        ),
    );
    Ok(ExitCode::SUCCESS)
}

/// The network and darknet content of a `.weights` + cfg pair or of a checkpoint.
fn read_darknet(weights: &Path, cfg: Option<&Path>) -> anyhow::Result<(Darknet, DarknetWeights)> {
    if is_checkpoint(weights) {
        let (net, info) = Darknet::from_checkpoint(weights, tch::Device::Cpu)
            .with_context(|| format!("loading checkpoint {}", weights.display()))?;
        let header = match info.extra.get(HEADER_KEY) {
            Some(t) => parse_header(t).with_context(|| {
                format!(
                    "{}: metadata {HEADER_KEY} = {t:?} is not `major minor revision seen`",
                    weights.display()
                )
            })?,
            None => WeightsHeader::default(),
        };
        let content = net.export_darknet_weights(header).context("exporting the convolutions")?;
        Ok((net, content))
    } else {
        let Some(cfg_path) = cfg else {
            bail!("{} is read as darknet weights, which needs --cfg", weights.display());
        };
        let cfg = read_cfg(cfg_path)?;
        let content = DarknetWeights::read(weights, &cfg)
            .with_context(|| format!("reading darknet weights {}", weights.display()))?;
        let net = Darknet::new(cfg, tch::Device::Cpu).context("building the network")?;
        Ok((net, content))
    }
}

fn partial(args: &PartialArgs, global: &Global) -> anyhow::Result<ExitCode> {
    let inputs = [Some(&args.weights), args.cfg.as_ref()];
    check_output(
        "--out",
        &args.out,
        inputs.into_iter().flatten().map(PathBuf::as_path),
        args.force,
    )?;
    let (net, mut content) = read_darknet(&args.weights, args.cfg.as_deref())?;
    let layers = net.config().layers().len();
    if args.layers > layers {
        bail!("--layers {}: {} has only {layers} layers", args.layers, net.config().name());
    }
    let keep = net.config().conv_layers().iter().filter(|&&l| l < args.layers).count();
    if keep > content.convs.len() {
        bail!(
            "{} holds {} convolutions; layers 0-{} have {keep}",
            args.weights.display(),
            content.convs.len(),
            args.layers - 1
        );
    }
    content.convs.truncate(keep);
    // darknet's `partial` loads the network with `seen` cleared: training starts anew.
    content.header.seen = 0;
    content.write(&args.out).with_context(|| format!("writing {}", args.out.display()))?;
    say(
        global,
        &format!(
            "{keep} convolutions (layers 0-{}) written to {}",
            args.layers - 1,
            args.out.display()
        ),
    );
    Ok(ExitCode::SUCCESS)
}

fn annotations(args: &AnnotationsArgs, global: &Global) -> anyhow::Result<ExitCode> {
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
            yolo3_data::write_keras(&dataset, &args.out)
                .with_context(|| format!("writing {}", args.out.display()))?;
            if write_classes {
                yolo3_data::write_class_names(&classes, &dataset.class_names)
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
