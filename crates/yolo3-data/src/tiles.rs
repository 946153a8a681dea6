//! Training and validation on tiles of large images. A photo of 2300 x 2500 pixels letterboxed
//! to a 416-pixel input shrinks 15-pixel objects to 3 pixels; cut into tiles at full
//! resolution, each object keeps its size.
//!
//! With [`TileOptions`], each image larger than the tile side contributes as many items per
//! epoch as the overlapping grid of `yolo3_core::tiles::grid` has tiles (at its
//! `DEFAULT_OVERLAP`),
//! so an epoch covers about the whole image:
//! * training (`random`): each item is a tile at a random position drawn anew every epoch
//!   (keyed by `(seed, epoch, item)`), followed by the usual augmentation;
//! * validation: each item is one tile of the grid, letterboxed, the same every epoch.
//!
//! Images no larger than the tile are used whole. A box is kept in a tile when at least
//! [`MIN_VISIBLE`] of its area lies inside, clipped to the tile; an object cut further is left
//! out of the tile's boxes (and its visible sliver is not a positive example).

use rand::Rng;
use yolo3_core::tiles::{grid, Tile, DEFAULT_OVERLAP};
use yolo3_core::{BoxXyxy, LabeledBox};

use crate::dataset::{Dataset, ImageSize};

/// A box is kept in a tile when this fraction of its area is inside the tile.
pub const MIN_VISIBLE: f32 = 0.5;

/// Large images in tiles of `side` pixels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileOptions {
    /// Tile side in image pixels.
    pub side: u32,
    /// Random positions every epoch (training) instead of the fixed grid (validation).
    pub random: bool,
}

/// Where an item's pixels come from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Crop {
    /// A tile at a random position, drawn when the item is loaded.
    Random,
    /// This tile.
    At(Tile),
}

/// One item of a tiled loader: a sample and the part of it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Entry {
    /// Dataset index.
    pub(crate) sample: usize,
    /// `None`: the whole image.
    pub(crate) crop: Option<Crop>,
}

/// The items of `indices` (dataset indices) cut by `options`. An image whose size neither the
/// annotations nor its header give is used whole.
pub(crate) fn entries(dataset: &Dataset, indices: &[usize], options: TileOptions) -> Vec<Entry> {
    let mut out = Vec::with_capacity(indices.len());
    for &sample in indices {
        let s = &dataset.samples[sample];
        let size = s.image_size.or_else(|| crate::image_io::image_size(&s.image_path).ok());
        let Some(size) = size.filter(|z| z.width > options.side || z.height > options.side) else {
            out.push(Entry { sample, crop: None });
            continue;
        };
        for tile in grid(size.width, size.height, options.side, DEFAULT_OVERLAP) {
            let crop = if options.random { Crop::Random } else { Crop::At(tile) };
            out.push(Entry { sample, crop: Some(crop) });
        }
    }
    out
}

/// A tile of `side` (clamped to the image) at a uniformly random position in `size`.
pub(crate) fn random_tile<R: Rng + ?Sized>(size: ImageSize, side: u32, rng: &mut R) -> Tile {
    let (width, height) = (side.min(size.width), side.min(size.height));
    Tile {
        x: rng.random_range(0..=size.width - width),
        y: rng.random_range(0..=size.height - height),
        width,
        height,
    }
}

/// `b` clipped to `tile`, in tile pixels, when at least [`MIN_VISIBLE`] of it is inside.
#[must_use]
pub fn crop_box(b: &BoxXyxy, tile: &Tile) -> Option<BoxXyxy> {
    let (x0, y0) = (tile.x as f32, tile.y as f32);
    let (x1, y1) = (x0 + tile.width as f32, y0 + tile.height as f32);
    let clipped = BoxXyxy::new(b.x_min.max(x0), b.y_min.max(y0), b.x_max.min(x1), b.y_max.min(y1));
    let (area, inside) = (b.area(), clipped.area());
    (area > 0.0 && inside >= MIN_VISIBLE * area).then(|| {
        BoxXyxy::new(clipped.x_min - x0, clipped.y_min - y0, clipped.x_max - x0, clipped.y_max - y0)
    })
}

/// The labelled boxes of a tile (see [`crop_box`]).
#[must_use]
pub fn crop_boxes(boxes: &[LabeledBox], tile: &Tile) -> Vec<LabeledBox> {
    boxes
        .iter()
        .filter_map(|b| crop_box(&b.bbox, tile).map(|bbox| LabeledBox { bbox, class: b.class }))
        .collect()
}

#[cfg(test)]
mod tests {
    use rand::SeedableRng;

    use super::*;

    #[test]
    fn boxes_are_kept_when_half_is_inside_and_move_to_the_tile() {
        let tile = Tile { x: 100, y: 50, width: 100, height: 100 };
        let inside = BoxXyxy::new(110.0, 60.0, 130.0, 80.0);
        assert_eq!(crop_box(&inside, &tile), Some(BoxXyxy::new(10.0, 10.0, 30.0, 30.0)));
        // 60% inside (x 80..130 against a tile from 100): kept, clipped.
        let most = BoxXyxy::new(80.0, 60.0, 130.0, 80.0);
        assert_eq!(crop_box(&most, &tile), Some(BoxXyxy::new(0.0, 10.0, 30.0, 30.0)));
        // 40% inside: left out.
        let little = BoxXyxy::new(70.0, 60.0, 120.0, 80.0);
        assert_eq!(crop_box(&little, &tile), None);
        assert_eq!(crop_box(&BoxXyxy::new(0.0, 0.0, 10.0, 10.0), &tile), None);
        let labelled =
            [LabeledBox { bbox: inside, class: 2 }, LabeledBox { bbox: little, class: 1 }];
        assert_eq!(
            crop_boxes(&labelled, &tile),
            [LabeledBox { bbox: BoxXyxy::new(10.0, 10.0, 30.0, 30.0), class: 2 }]
        );
    }

    #[test]
    fn random_tiles_stay_inside_the_image() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let size = ImageSize { width: 500, height: 130 };
        for _ in 0..200 {
            let t = random_tile(size, 128, &mut rng);
            assert_eq!((t.width, t.height), (128, 128));
            assert!(t.x + t.width <= 500 && t.y + t.height <= 130, "{t:?}");
        }
        let small = random_tile(ImageSize { width: 100, height: 90 }, 128, &mut rng);
        assert_eq!(small, Tile { x: 0, y: 0, width: 100, height: 90 });
    }
}
