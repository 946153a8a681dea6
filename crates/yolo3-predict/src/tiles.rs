//! Detection on large images in tiles (see `yolo3_core::tiles` for the grid and the merge): each
//! image is cut into overlapping tiles at full resolution, the tiles go through the network in
//! batches, and their boxes are merged with those of the pass over the whole image
//! letterboxed, so one object gives one box whether it is small, large, or cut by a tile edge.

use image::RgbImage;
use yolo3_core::metrics::ImageBoxes;
use yolo3_core::tiles::{grid, merge, place, Placed};
use yolo3_data::Dataset;
use yolo3_model::{DecodeOptions, DetectedBox, Detector, EvalProgress};

use crate::error::Result;

/// How images are tiled.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tiling {
    /// Tile side in image pixels.
    pub side: u32,
    /// Overlap of neighbouring tiles, a fraction of `side` in `[0, 0.95]`.
    pub overlap: f64,
}

impl Tiling {
    /// The boxes of `image` from its tiles (each letterboxed to `input`, `batch` at a time)
    /// merged with `whole`, the boxes of the pass over the whole image, in image pixels.
    pub fn detect(
        &self,
        detector: &Detector,
        image: &RgbImage,
        whole: Vec<DetectedBox>,
        input: u32,
        batch: usize,
        options: &DecodeOptions,
    ) -> Result<Vec<DetectedBox>> {
        let (width, height) = image.dimensions();
        let tiles = grid(width, height, self.side, self.overlap);
        if tiles.len() <= 1 {
            // An image no larger than a tile is used whole.
            return Ok(whole);
        }
        let mut placed: Vec<Placed> = whole.into_iter().map(Placed::whole).collect();
        for chunk in tiles.chunks(batch.max(1)) {
            let crops: Vec<RgbImage> = chunk
                .iter()
                .map(|t| image::imageops::crop_imm(image, t.x, t.y, t.width, t.height).to_image())
                .collect();
            let found = detector.predict(&crops, input, options)?;
            for (tile, dets) in chunk.iter().zip(&found) {
                placed.extend(place(tile, width, height, dets));
            }
        }
        Ok(merge(placed, options.iou_threshold as f32, options.max_boxes, options.agnostic))
    }
}

/// The detections of `detector` on every image of `dataset` in tiles (each image read whole,
/// its tiles and itself letterboxed to `input`), with the ground truth beside them, for
/// [`yolo3_core::metrics::evaluate_map`]. There is no loss: tiles are not what the loss of one
/// letterboxed pass is defined on.
pub fn detect_dataset(
    detector: &Detector,
    dataset: &Dataset,
    tiling: &Tiling,
    input: u32,
    batch: usize,
    options: &DecodeOptions,
    progress: &mut dyn EvalProgress,
) -> Result<Vec<ImageBoxes>> {
    progress.start(dataset.samples.len());
    let mut images = Vec::with_capacity(dataset.samples.len());
    for (index, sample) in dataset.samples.iter().enumerate() {
        let image = yolo3_data::load_rgb(&sample.image_path)?;
        let whole = detector.predict(std::slice::from_ref(&image), input, options)?;
        let whole = whole.into_iter().next().unwrap_or_default();
        images.push(ImageBoxes {
            ground_truth: yolo3_model::evaluate::ground_truth(dataset, index),
            detections: tiling.detect(detector, &image, whole, input, batch, options)?,
        });
        progress.batch();
    }
    Ok(images)
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use yolo3_model::ModelFiles;

    use super::*;

    fn detector() -> Detector {
        let models = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/models"));
        let files = ModelFiles::Darknet {
            cfg: models.join("cfg/yolov3-tiny-mini.cfg"),
            weights: models.join("weights/yolov3-tiny-mini.weights"),
        };
        Detector::load(&files, None, tch::Device::Cpu).unwrap()
    }

    fn picture(w: u32, h: u32) -> RgbImage {
        RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 5 % 256) as u8, (y * 3 % 256) as u8, ((x * y) % 256) as u8])
        })
    }

    #[test]
    fn an_image_no_larger_than_a_tile_keeps_the_whole_pass() {
        let detector = detector();
        let options = DecodeOptions { score_threshold: 0.05, ..DecodeOptions::default() };
        let image = picture(100, 80);
        let whole = detector.predict(std::slice::from_ref(&image), 64, &options).unwrap();
        let whole = whole.into_iter().next().unwrap();
        assert!(!whole.is_empty());
        let tiling = Tiling { side: 128, overlap: 0.2 };
        let tiled = tiling.detect(&detector, &image, whole.clone(), 64, 4, &options).unwrap();
        assert_eq!(tiled, whole);
    }

    #[test]
    fn the_boxes_of_a_tiled_image_lie_inside_it() {
        let detector = detector();
        let options = DecodeOptions { score_threshold: 0.05, ..DecodeOptions::default() };
        let image = picture(300, 200);
        let tiling = Tiling { side: 96, overlap: 0.25 };
        let tiled = tiling.detect(&detector, &image, Vec::new(), 64, 4, &options).unwrap();
        assert!(!tiled.is_empty());
        for d in &tiled {
            let b = d.bbox;
            assert!(
                b.x_min >= 0.0 && b.y_min >= 0.0 && b.x_max <= 300.0 && b.y_max <= 200.0,
                "{d:?}"
            );
        }
        // Boxes from tiles beyond the first: found across the whole image, not its corner.
        assert!(tiled.iter().any(|d| d.bbox.x_min > 150.0), "{tiled:?}");
    }
}
