//! The inference layer: a network with what decoding it needs, shared by `yolo3 detect`,
//! `yolo3 eval`, training's validation and library users.
//!
//! A [`Detector`] owns a [`Darknet`], its class names, its anchors and the input side it was
//! trained at. [`Detector::predict`] takes decoded RGB images and returns, per image, its
//! [`DetectedBox`]es in image pixels: keras-yolo3's letterbox (bicubic, grey canvas) to a square
//! input, an inference-mode forward in one batch, `yolo3-core`'s decode (keras' `yolo_eval`:
//! letterbox correction, per-class NMS), boxes clipped to the image. Callers that letterbox
//! themselves (the loader of validation) use [`InferenceNet::infer`] and [`Decoder::decode`],
//! the two halves of the same path. The detector prepares its [`InferenceNet`] (batch norm
//! folded, oneDNN's fused convolutions on the CPU) once, when it is made.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use yolo3_model::{DecodeOptions, Detector, ModelFiles};
//! # let models = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/models");
//! # let cfg = format!("{models}/cfg/yolov3-tiny-mini.cfg").into();
//! # let weights = format!("{models}/weights/yolov3-tiny-mini.weights").into();
//! let files = ModelFiles::Darknet { cfg, weights };
//! let detector = Detector::load(&files, None, tch::Device::Cpu)?;
//! let image = image::RgbImage::from_pixel(200, 120, image::Rgb([90, 140, 200]));
//! let options = DecodeOptions { score_threshold: 0.0, ..DecodeOptions::default() };
//! let detections = detector.predict(&[image], detector.default_input(), &options)?;
//! for d in &detections[0] {
//!     assert!(d.bbox.x_max <= 200.0 && d.bbox.y_max <= 120.0, "clipped to the image");
//!     println!("{} {:.2} at {:?}", detector.class_names()[d.class], d.score, d.bbox);
//! }
//! # Ok(()) }
//! ```

mod host;
mod load;

use image::RgbImage;
use rayon::prelude::*;
use tch::Tensor;
use yolo3_core::{decode, Anchors, BoxXyxy, HeadConfig, Layout};
use yolo3_data::{ImageSize, InputSize, Letterbox};

pub use host::HostOutputs;
pub use load::{KerasNetwork, ModelFiles, WeightsFormat};
pub use yolo3_core::metrics::DetectedBox;
pub use yolo3_core::DecodeOptions;

use crate::error::{ModelError, Result};
use crate::{Darknet, InferenceNet};

/// Largest network input side (8192 x 8192 RGB is 800 MB of float32 input per image before
/// the network's activations).
pub const MAX_INPUT: u32 = 8192;

/// Checks a network input side: a multiple of 32 (the coarsest stride) in `32..=MAX_INPUT`.
pub fn check_input_side(side: u32) -> std::result::Result<u32, String> {
    if side == 0 || !side.is_multiple_of(32) || side > MAX_INPUT {
        return Err(format!("{side} is not a multiple of 32 in 32..={MAX_INPUT}"));
    }
    Ok(side)
}

/// A network ready for inference, with its class names and anchors.
#[derive(Debug)]
pub struct Detector {
    net: Darknet,
    inference: InferenceNet,
    decoder: Decoder,
    class_names: Vec<String>,
    names_known: bool,
    default_input: u32,
    name: String,
}

/// Decoding of raw head outputs: the anchors and class count of a network.
#[derive(Clone, Debug)]
pub struct Decoder {
    anchors: Anchors,
    classes: usize,
}

impl Decoder {
    /// The decoder of `cfg`'s heads.
    pub fn of(cfg: &crate::Config) -> Result<Self> {
        Ok(Self { anchors: cfg.anchors()?, classes: cfg.classes() })
    }

    /// Anchors and masks in head order (coarsest first).
    #[must_use]
    pub fn anchors(&self) -> &Anchors {
        &self.anchors
    }

    /// Decodes head outputs of letterboxed images of `sizes` (`(height, width)` of each
    /// original image) at input `side` (`(height, width)`): per image, the finite detections
    /// in image pixels, not clipped (evaluation scores them as they are; an untrained head can
    /// overflow to an infinite box, which is dropped).
    pub fn decode(
        &self,
        outputs: &[Tensor],
        sizes: &[(f64, f64)],
        side: (usize, usize),
        options: &DecodeOptions,
    ) -> Result<Vec<Vec<DetectedBox>>> {
        let config = HeadConfig::new(side.0, side.1, self.classes, self.anchors.clone())
            .map_err(|source| ModelError::Core { context: "head configuration".into(), source })?;
        let host = HostOutputs::copy(outputs)?;
        let dets = decode(&config, Layout::Nchw, &host.heads(), sizes, options)
            .map_err(|source| ModelError::Core { context: "decoding".into(), source })?;
        Ok(dets
            .into_iter()
            .map(|per_image| {
                per_image
                    .iter()
                    .map(|d| DetectedBox { bbox: d.bbox(), score: d.score, class: d.class })
                    .filter(|d| d.bbox.is_finite() && d.score.is_finite())
                    .collect()
            })
            .collect())
    }
}

impl Detector {
    /// A detector for `net`. `class_names` must have one name per class (`None`: `0, 1, ...`);
    /// `trained_input` is the side it was trained at (else the cfg's width is the default).
    pub fn new(
        net: Darknet,
        class_names: Option<Vec<String>>,
        trained_input: Option<u32>,
        name: impl Into<String>,
    ) -> Result<Self> {
        let decoder = Decoder::of(net.config())?;
        let classes = decoder.classes;
        let names_known = class_names.is_some();
        let class_names = match class_names {
            Some(n) if n.len() == classes => n,
            Some(n) => return Err(ModelError::ClassNames { given: n.len(), classes }),
            None => (0..classes).map(|c| c.to_string()).collect(),
        };
        let cfg_width = u32::try_from(net.config().net().width).unwrap_or(416);
        let inference = InferenceNet::new(&net)?;
        Ok(Self {
            net,
            inference,
            class_names,
            names_known,
            decoder,
            default_input: trained_input.unwrap_or(cfg_width),
            name: name.into(),
        })
    }

    /// The network prepared for inference.
    #[must_use]
    pub fn inference(&self) -> &InferenceNet {
        &self.inference
    }

    /// The network.
    #[must_use]
    pub fn net(&self) -> &Darknet {
        &self.net
    }

    /// Class names, index = class id.
    #[must_use]
    pub fn class_names(&self) -> &[String] {
        &self.class_names
    }

    /// Whether the names are real (from a checkpoint or a names file), not `0, 1, ...`.
    #[must_use]
    pub fn names_known(&self) -> bool {
        self.names_known
    }

    /// The decoder of the network's heads.
    #[must_use]
    pub fn decoder(&self) -> &Decoder {
        &self.decoder
    }

    /// The input side it was trained at (checkpoints of `yolo3 train`), else the cfg's width.
    #[must_use]
    pub fn default_input(&self) -> u32 {
        self.default_input
    }

    /// The file the model came from, for messages.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks that a dataset's classes are the model's: the same count, and the same names
    /// where the model knows its names.
    pub fn check_classes(&self, dataset_names: &[String]) -> Result<()> {
        if dataset_names.len() != self.class_names.len() {
            return Err(ModelError::ClassCount {
                model: self.name.clone(),
                dataset: dataset_names.len(),
                model_classes: self.class_names.len(),
            });
        }
        match dataset_names.iter().zip(&self.class_names).position(|(d, m)| d != m) {
            Some(class) if self.names_known => Err(ModelError::ClassMismatch {
                model: self.name.clone(),
                class,
                dataset: dataset_names[class].clone(),
                model_name: self.class_names[class].clone(),
            }),
            _ => Ok(()),
        }
    }

    /// The input side to run at: `given`, else the default (checked), and the memory a batch
    /// of `batch` needs at that side checked against the machine.
    pub fn input_side(&self, given: Option<u32>, batch: usize) -> Result<u32> {
        let side = match given {
            Some(side) => side,
            None => check_input_side(self.default_input).map_err(|_| ModelError::InputSide {
                model: self.name.clone(),
                side: self.default_input,
                max: MAX_INPUT,
            })?,
        };
        crate::memory::check_fits(self.net.config(), side, batch, crate::memory::Pass::Inference)?;
        Ok(side)
    }

    /// Detects objects in `images` at a square input of `side`: per image, its detections in
    /// image pixels, clipped to the image (boxes with no area left are dropped).
    /// [`InputBatch::letterbox`] then [`Detector::predict_batch`]; callers that prepare the
    /// next batch while the network runs call the two themselves.
    pub fn predict(
        &self,
        images: &[RgbImage],
        side: u32,
        options: &DecodeOptions,
    ) -> Result<Vec<Vec<DetectedBox>>> {
        self.predict_batch(&InputBatch::letterbox(images, side), options)
    }

    /// Detects objects in a letterboxed batch (see [`Detector::predict`]).
    pub fn predict_batch(
        &self,
        batch: &InputBatch,
        options: &DecodeOptions,
    ) -> Result<Vec<Vec<DetectedBox>>> {
        if batch.sizes.is_empty() {
            return Ok(Vec::new());
        }
        let outputs = self.inference.infer(&batch.pixels)?;
        let sizes: Vec<(f64, f64)> =
            batch.sizes.iter().map(|i| (f64::from(i.height), f64::from(i.width))).collect();
        let side = batch.side as usize;
        let dets = self.decoder.decode(&outputs, &sizes, (side, side), options)?;
        Ok(dets.into_iter().zip(&batch.sizes).map(|(d, &size)| clip(d, size)).collect())
    }

    /// Runs the network once on a grey batch of `batch` images at `side`, so that what the
    /// first batch of a size costs once (oneDNN generating its kernels, kernels reordered
    /// for the shape, the allocator growing to the activations' size: about 1.5x a batch's
    /// time on the CPU) is paid before the images, and the first frame of a stream or a
    /// timing of the run sees the steady speed.
    pub fn warm_up(&self, side: u32, batch: usize) -> Result<()> {
        let grey = RgbImage::from_pixel(side, side, yolo3_data::letterbox::GREY);
        let input = InputBatch::letterbox(&vec![grey; batch.max(1)], side);
        self.inference.infer(&input.pixels).map(drop)
    }
}

/// Images letterboxed for the network (keras-yolo3's letterbox: bicubic, grey canvas) as one
/// float32 tensor in `[0, 1]`, `N x 3 x side x side` in channels-last memory (the letterboxed
/// bytes in their own order, and the layout oneDNN runs on, so the batch reaches the network
/// without a transpose), with the original sizes for the decode. Made, and copied into
/// libtorch, on the thread that letterboxes (the next batch's, while the network runs), not
/// on the network's.
#[derive(Debug)]
pub struct InputBatch {
    pixels: Tensor,
    sizes: Vec<ImageSize>,
    side: u32,
}

impl InputBatch {
    /// Letterboxes `images` to a square `side`, one image per worker thread (the bicubic
    /// resize costs about as much as the forward).
    #[must_use]
    pub fn letterbox(images: &[RgbImage], side: u32) -> Self {
        let input = InputSize::square(side);
        let plane = 3 * (side * side) as usize;
        let mut data = vec![0f32; images.len() * plane];
        let sizes: Vec<ImageSize> =
            images.iter().map(|i| ImageSize { width: i.width(), height: i.height() }).collect();
        data.par_chunks_mut(plane).zip(images.par_iter().zip(&sizes)).for_each(
            |(out, (image, &size))| Letterbox::new(size, input).write_normalized(image, out),
        );
        // N x H x W x 3 in memory, seen as N x 3 x H x W: channels-last.
        let s = i64::from(side);
        let pixels =
            Tensor::from_slice(&data).view([images.len() as i64, s, s, 3]).permute([0, 3, 1, 2]);
        Self { pixels, sizes, side }
    }

    /// The batch as the network's input: `N x 3 x side x side` float32, channels-last.
    pub fn pixels(&self) -> &Tensor {
        &self.pixels
    }

    /// How many images the batch holds.
    #[must_use]
    pub fn len(&self) -> usize {
        self.sizes.len()
    }

    /// Whether the batch holds no image.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.sizes.is_empty()
    }
}

/// Detections clipped to the image; boxes with no area left are dropped.
fn clip(dets: Vec<DetectedBox>, size: ImageSize) -> Vec<DetectedBox> {
    let (w, h) = (size.width as f32, size.height as f32);
    dets.into_iter()
        .filter_map(|d| {
            let b = d.bbox;
            let c = BoxXyxy::new(
                b.x_min.clamp(0.0, w),
                b.y_min.clamp(0.0, h),
                b.x_max.clamp(0.0, w),
                b.y_max.clamp(0.0, h),
            );
            (c.width() > 0.0 && c.height() > 0.0).then_some(DetectedBox { bbox: c, ..d })
        })
        .collect()
}
