//! Building a [`Detector`] from whatever files the user has, so that darknet and keras-yolo3
//! users start from what they already hold:
//! * a yolo3 checkpoint carries its cfg, class names and (when `yolo3 train` wrote it) its
//!   training input in the `extra.input` metadata;
//! * darknet `.weights` need their cfg; every conv must be filled (a partial file such as
//!   `darknet53.conv.74` only starts training);
//! * keras-yolo3 `.h5` weights need the anchors (the network is the one keras-yolo3 builds)
//!   or a darknet cfg;
//! * a cfg alone gives random weights, for speed measurements only (a warning says so).
//!
//! The default input side is the checkpoint's training input, else the cfg's `[net]` width
//! (darknet's own choice at inference).

use std::path::{Path, PathBuf};

use yolo3_core::{Anchors, TinyMask};

use super::Detector;
use crate::error::{ModelError, Result};
use crate::{Config, Darknet, DarknetWeights, KerasWeights};

/// What a weights file holds, by its extension: the one place that decides it, for
/// `detect`, `eval`, `convert` and training's `--weights`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WeightsFormat {
    /// A yolo3 `.safetensors` checkpoint (carries its cfg and class names).
    Checkpoint,
    /// keras-yolo3 `.h5` / `.hdf5` weights.
    Keras,
    /// Anything else is read as darknet `.weights` (full, or partial like
    /// `darknet53.conv.74`, whose extension is a number).
    Darknet,
}

impl WeightsFormat {
    /// The format of `path`, from its extension (any case).
    #[must_use]
    pub fn of(path: &Path) -> Self {
        let extension = path.extension().map(|e| e.to_string_lossy().to_ascii_lowercase());
        match extension.as_deref() {
            Some("safetensors") => Self::Checkpoint,
            Some("h5" | "hdf5") => Self::Keras,
            _ => Self::Darknet,
        }
    }
}

/// Which network keras-yolo3 weights are for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KerasNetwork {
    /// keras-yolo3's own network (YOLOv3 or tiny, from the file's conv count) with these
    /// anchors (`anchors.txt`).
    Anchors(PathBuf),
    /// The network of a darknet cfg.
    Cfg(PathBuf),
}

/// The files a detector is built from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelFiles {
    /// A yolo3 `.safetensors` checkpoint.
    Checkpoint(PathBuf),
    /// Darknet `.weights` with their cfg.
    Darknet {
        /// The cfg.
        cfg: PathBuf,
        /// The weights.
        weights: PathBuf,
    },
    /// keras-yolo3 `.h5` weights.
    Keras {
        /// The weights.
        weights: PathBuf,
        /// Their network.
        network: KerasNetwork,
    },
    /// A cfg with random weights (benchmarks only).
    Untrained(PathBuf),
}

impl ModelFiles {
    /// The main file, for messages.
    #[must_use]
    pub fn path(&self) -> &Path {
        match self {
            Self::Checkpoint(p) | Self::Untrained(p) => p,
            Self::Darknet { weights, .. } | Self::Keras { weights, .. } => weights,
        }
    }
}

impl Detector {
    /// Loads the model of `files` onto `device`; `classes` (a names file, one per line)
    /// overrides or supplies the class names (default: the checkpoint's, else `0, 1, ...`).
    pub fn load(files: &ModelFiles, classes: Option<&Path>, device: tch::Device) -> Result<Self> {
        let names = classes.map(yolo3_data::read_class_names).transpose()?;
        let name = files.path().display().to_string();
        match files {
            ModelFiles::Checkpoint(path) => {
                let (net, info) = Darknet::from_checkpoint(path, device)?;
                let input = info.extra.get("input").and_then(|s| s.parse::<u32>().ok());
                let names = names.or((!info.class_names.is_empty()).then_some(info.class_names));
                Self::new(net, names, input, name)
            }
            ModelFiles::Darknet { cfg, weights } => {
                let cfg = Config::from_file(cfg)?;
                let file = DarknetWeights::read(weights, &cfg)?;
                let cfg_name = cfg.name().to_owned();
                let mut net = Darknet::new(cfg, device)?;
                let loaded = net.load_darknet_weights(&file)?;
                let total = net.config().conv_layers().len();
                if loaded < total {
                    return Err(ModelError::PartialWeights {
                        path: weights.clone(),
                        loaded,
                        total,
                        cfg: cfg_name,
                    });
                }
                Self::new(net, names, None, name)
            }
            ModelFiles::Keras { weights, network } => {
                let keras = KerasWeights::read(weights)?;
                let cfg = match network {
                    KerasNetwork::Cfg(cfg) => Config::from_file(cfg)?,
                    KerasNetwork::Anchors(path) => {
                        let anchors = Anchors::read(path, TinyMask::Keras).map_err(|source| {
                            ModelError::Core {
                                context: format!("reading anchors {}", path.display()),
                                source,
                            }
                        })?;
                        keras.config(anchors.sizes())?
                    }
                };
                let mut net = Darknet::new(cfg, device)?;
                net.load_keras(&keras)?;
                Self::new(net, names, None, name)
            }
            ModelFiles::Untrained(cfg) => {
                tracing::warn!(
                    "no weights: the network has random weights (useful for benchmarks only)"
                );
                Self::new(Darknet::new(Config::from_file(cfg)?, device)?, names, None, name)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_extension_decides_the_format() {
        for (path, format) in [
            ("a/best.safetensors", WeightsFormat::Checkpoint),
            ("B.SafeTensors", WeightsFormat::Checkpoint),
            ("yolo.h5", WeightsFormat::Keras),
            ("yolo.HDF5", WeightsFormat::Keras),
            ("yolov3.weights", WeightsFormat::Darknet),
            ("darknet53.conv.74", WeightsFormat::Darknet),
            ("weights", WeightsFormat::Darknet),
        ] {
            assert_eq!(WeightsFormat::of(Path::new(path)), format, "{path}");
        }
    }
}
