//! Evaluation over a dataset: the loss and COCO-style mAP of a network on letterboxed images,
//! with no augmentation. Training's validation calls it every epoch; `yolo3 eval` calls it on
//! a model file. It sits here, below training, because it needs the network, its decoder and
//! the loss, and nothing of an optimizer.

use std::sync::Arc;

use crate::error::{Result, TorchContext as _};
use crate::loss::YoloLoss;
use crate::{Darknet, Decoder, InferenceNet};
use tch::Tensor;
use yolo3_core::metrics::{evaluate_map, GroundTruthBox, ImageBoxes, MapSummary};
use yolo3_core::{DecodeOptions, LossTerms};
use yolo3_data::tiles::crop_box;
use yolo3_data::{
    Dataset, IgnoreReason, ImageCache, InputSize, Loader, LoaderOptions, TileOptions,
};

/// Progress of an evaluation, for a progress bar. Both methods have empty defaults.
pub trait EvalProgress {
    /// The evaluation starts, with this many batches.
    fn start(&mut self, _batches: usize) {}
    /// A batch is done.
    fn batch(&mut self) {}
}

/// Progress that is not shown.
impl EvalProgress for () {}

/// What validation measured.
#[derive(Debug)]
pub struct Evaluation {
    /// Mean loss terms per batch.
    pub loss: LossTerms,
    /// mAP and per-class figures.
    pub map: MapSummary,
    /// Per image (dataset order), its ground truth and the detections in original-image
    /// pixels.
    pub images: Vec<ImageBoxes>,
}

/// The ground truth of a sample for evaluation: its boxes (difficult ones flagged) and its
/// ignored crowd or difficult boxes.
#[must_use]
pub fn ground_truth(dataset: &Dataset, index: usize) -> Vec<GroundTruthBox> {
    let s = &dataset.samples[index];
    let mut gt: Vec<GroundTruthBox> = s
        .boxes
        .iter()
        .enumerate()
        .map(|(k, b)| GroundTruthBox {
            bbox: b.bbox,
            class: b.class,
            difficult: s.difficult.get(k).copied().unwrap_or(false),
            crowd: false,
        })
        .collect();
    gt.extend(s.ignored.iter().map(|ig| GroundTruthBox {
        bbox: ig.bbox.bbox,
        class: ig.bbox.class,
        difficult: ig.reason == IgnoreReason::Difficult,
        crowd: ig.reason == IgnoreReason::Crowd,
    }));
    gt
}

/// Runs `net` in inference mode (prepared as an [`InferenceNet`]: batch norm folded, fused
/// convolutions) over every image of `dataset`, letterboxed to `input`; with `tile`, over the
/// fixed grid of tiles of each image larger than it, each tile an image of its own with the
/// ground truth inside it ([`yolo3_data::tiles`]). COCO counts up to
/// `decode_options.max_boxes` detections per image and class, at least pycocotools' 100
/// (see [`evaluate_map`]).
pub fn evaluate(
    net: &Darknet,
    loss: &YoloLoss,
    dataset: &Arc<Dataset>,
    input: u32,
    batch_size: usize,
    decode_options: &DecodeOptions,
    tile: Option<u32>,
    cache: &Arc<ImageCache>,
    progress: &mut dyn EvalProgress,
) -> Result<Evaluation> {
    let num_classes = dataset.class_names.len();
    let options = LoaderOptions {
        tiles: tile.map(|side| TileOptions { side, random: false }),
        ..LoaderOptions::validation(batch_size, InputSize::square(input))
    };
    let loader = Loader::all(Arc::clone(dataset), options)?.with_cache(Arc::clone(cache));
    let decoder = Decoder::of(net.config())?;
    let inference = InferenceNet::new(net)?;
    progress.start(loader.batches_per_epoch());
    let mut sums = LossTerms::default();
    let mut batches = 0usize;
    let mut images: Vec<ImageBoxes> = vec![ImageBoxes::default(); loader.len()];
    for batch in loader.prefetch(0, 0, 2) {
        let batch = batch?;
        let b = batch.len();
        let (h, w) = (batch.input.height as i64, batch.input.width as i64);
        let xs = Tensor::f_from_slice(&batch.images)
            .and_then(|t| t.f_view([b as i64, 3, h, w]))
            .torch(|| "building a validation batch".into())?;
        let outputs = inference.infer(&xs)?;
        let out = tch::no_grad(|| loss.compute(&outputs, &batch.boxes, (h as usize, w as usize)))?;
        sums += out.parts.terms();
        batches += 1;
        let sizes: Vec<(f64, f64)> = batch
            .letterboxes
            .iter()
            .map(|lb| {
                lb.map_or((h as f64, w as f64), |lb| {
                    (f64::from(lb.image.height), f64::from(lb.image.width))
                })
            })
            .collect();
        let dets = decoder.decode(&outputs, &sizes, (h as usize, w as usize), decode_options)?;
        for (k, det) in dets.into_iter().enumerate() {
            images[batch.items[k]].detections = det;
        }
        progress.batch();
    }
    for (item, image) in images.iter_mut().enumerate() {
        let (index, tile) = loader.item(item);
        let truth = ground_truth(dataset, index);
        image.ground_truth = match tile {
            None => truth,
            Some(tile) => truth
                .into_iter()
                .filter_map(|g| crop_box(&g.bbox, &tile).map(|bbox| GroundTruthBox { bbox, ..g }))
                .collect(),
        };
    }
    let map = evaluate_map(&images, num_classes, decode_options.max_boxes)?;
    let n = batches.max(1) as f64;
    Ok(Evaluation { loss: sums / n, map, images })
}
