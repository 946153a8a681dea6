//! Batching: decoding and augmentation in parallel, deterministic, with a prefetch thread.
//!
//! Determinism: each sample draws its random numbers from its own `ChaCha8` generator keyed by
//! `(seed, epoch, dataset index)` ([`sample_rng`]), so a batch's bytes do not depend on the
//! number of threads, on scheduling, or on the batch size. The epoch's order is a
//! Fisher-Yates shuffle keyed by `(seed, epoch)`; the multi-scale input size of a batch is
//! keyed by `(seed, epoch, batch / every)`. Resuming at `(epoch, batch)` therefore reproduces
//! exactly the batches an uninterrupted run would have seen.
//!
//! Layout: [`Batch::images`] is `(B, 3, H, W)` RGB `f32` in `[0, 1]`, boxes are in
//! network-input pixels. Training samples use keras' random augmentation (optionally mosaic);
//! without augmentation samples are letterboxed (validation). With tiles ([`crate::tiles`]) a
//! large image gives several items, each a tile at full resolution (mosaic is not used then);
//! an item's randomness is keyed by its position in the item list instead of its dataset index.

use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use yolo3_core::LabeledBox;

use crate::augment::{random_data, AugmentOptions};
use crate::cache::{ImageCache, Stage};
use crate::dataset::{Dataset, ImageSize};
use crate::error::{DataError, Result};
use crate::image_io::extend_chw;
use crate::letterbox::letterbox;
use crate::letterbox::{InputSize, Letterbox};
use crate::mosaic::{mosaic, MosaicOptions};
use crate::tiles::{crop_boxes, entries, random_tile, Crop, Entry, TileOptions};

/// Multi-scale training: a square input size from `min..=max` in steps of `step`, drawn anew
/// every `every` batches (darknet / `YOLOv3` paper: 320..608 by 32 every 10 batches).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MultiScale {
    /// Smallest side.
    pub min: u32,
    /// Largest side.
    pub max: u32,
    /// Step between sides (a multiple of 32 for `YOLOv3`).
    pub step: u32,
    /// Batches between changes.
    pub every: usize,
}

impl Default for MultiScale {
    fn default() -> Self {
        Self { min: 320, max: 608, step: 32, every: 10 }
    }
}

/// Loader options; `Default` is a keras-style training loader at 416.
#[derive(Clone, Debug, PartialEq)]
pub struct LoaderOptions {
    /// Images per batch.
    pub batch_size: usize,
    /// Input size when `multi_scale` is off.
    pub input: InputSize,
    /// Shuffle the order every epoch.
    pub shuffle: bool,
    /// Random augmentation; `None` letterboxes (validation).
    pub augment: Option<AugmentOptions>,
    /// Mosaic (only with `augment`).
    pub mosaic: Option<MosaicOptions>,
    /// Multi-scale input sizes.
    pub multi_scale: Option<MultiScale>,
    /// Seed of all randomness.
    pub seed: u64,
    /// Drop a last incomplete batch.
    pub drop_last: bool,
    /// Large images in tiles (`None`: every image whole).
    pub tiles: Option<TileOptions>,
}

impl Default for LoaderOptions {
    fn default() -> Self {
        Self {
            batch_size: 8,
            input: InputSize::square(416),
            shuffle: true,
            augment: Some(AugmentOptions::default()),
            mosaic: None,
            multi_scale: None,
            seed: 0,
            drop_last: false,
            tiles: None,
        }
    }
}

impl LoaderOptions {
    /// A validation loader: fixed order, letterbox only.
    #[must_use]
    pub fn validation(batch_size: usize, input: InputSize) -> Self {
        Self {
            batch_size,
            input,
            shuffle: false,
            augment: None,
            mosaic: None,
            multi_scale: None,
            seed: 0,
            drop_last: false,
            tiles: None,
        }
    }
}

/// One batch.
#[derive(Clone, Debug, PartialEq)]
pub struct Batch {
    /// `(B, 3, H, W)` RGB `f32` in `[0, 1]`.
    pub images: Vec<f32>,
    /// Per image, boxes in network-input pixels.
    pub boxes: Vec<Vec<LabeledBox>>,
    /// Per image, its index in the dataset.
    pub indices: Vec<usize>,
    /// Per image, its position in the loader's items (its dataset index without tiles).
    pub items: Vec<usize>,
    /// Per image, the letterbox transform (validation) or `None` (augmented).
    pub letterboxes: Vec<Option<Letterbox>>,
    /// The input size of every image of the batch.
    pub input: InputSize,
    /// The epoch and batch number this batch is for.
    pub epoch: u64,
    /// Position of the batch in its epoch.
    pub batch: usize,
}

impl Batch {
    /// Number of images.
    #[must_use]
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch has no images.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}

/// The generator of sample `index` in `epoch`.
#[must_use]
pub fn sample_rng(seed: u64, epoch: u64, index: u64) -> ChaCha8Rng {
    keyed_rng(seed, epoch, index, *b"yolo3smp")
}

fn keyed_rng(seed: u64, epoch: u64, index: u64, tag: [u8; 8]) -> ChaCha8Rng {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&epoch.to_le_bytes());
    key[16..24].copy_from_slice(&index.to_le_bytes());
    key[24..].copy_from_slice(&tag);
    ChaCha8Rng::from_seed(key)
}

/// Produces batches of a dataset (cheap to clone; shares the dataset).
#[derive(Clone, Debug)]
pub struct Loader {
    dataset: Arc<Dataset>,
    /// The items of an epoch: dataset indices, or with tiles positions in `entries`.
    indices: Arc<[usize]>,
    /// With tiles, each item's sample and crop.
    entries: Option<Arc<[Entry]>>,
    options: LoaderOptions,
    cache: Arc<ImageCache>,
    shard: Shard,
}

/// This process' part of every batch in a data-parallel run: batch `k` of the epoch is the
/// same `batch_size` images whatever the number of ranks, and rank `r` of `world` loads the
/// `r`-th of `world` contiguous, balanced slices of it (`[r*n/world, (r+1)*n/world)` of its `n`
/// images). Concatenated in rank order the slices are the whole batch, so `world` ranks see
/// exactly the images, augmentation and input sizes of one process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This rank.
    pub rank: usize,
    /// Number of ranks.
    pub world: usize,
}

impl Shard {
    /// A single process: the whole batch.
    pub const WHOLE: Self = Self { rank: 0, world: 1 };

    /// The range of a batch of `n` images this rank loads.
    #[must_use]
    pub fn range(self, n: usize) -> std::ops::Range<usize> {
        self.rank * n / self.world..(self.rank + 1) * n / self.world
    }
}

impl Loader {
    /// A loader over the samples `indices` of `dataset`.
    pub fn new(dataset: Arc<Dataset>, indices: Vec<usize>, options: LoaderOptions) -> Result<Self> {
        if options.batch_size == 0 {
            return Err(DataError::InvalidOption {
                option: "batch_size",
                message: "must be at least 1".into(),
            });
        }
        if let Some(&bad) = indices.iter().find(|&&i| i >= dataset.samples.len()) {
            return Err(DataError::InvalidOption {
                option: "indices",
                message: format!("index {bad} is beyond the {} samples", dataset.samples.len()),
            });
        }
        if let Some(ms) = &options.multi_scale {
            if ms.step == 0 || ms.min == 0 || ms.min > ms.max || ms.every == 0 {
                return Err(DataError::InvalidOption {
                    option: "multi_scale",
                    message: format!("{ms:?} is not a valid range"),
                });
            }
        }
        if options.input.width == 0 || options.input.height == 0 {
            return Err(DataError::InvalidOption {
                option: "input",
                message: "input size must be positive".into(),
            });
        }
        let (indices, entries) = match options.tiles {
            None => (indices, None),
            Some(tiles) => {
                let entries = entries(&dataset, &indices, tiles);
                ((0..entries.len()).collect(), Some(entries.into()))
            }
        };
        Ok(Self {
            dataset,
            indices: indices.into(),
            entries,
            options,
            cache: ImageCache::none(),
            shard: Shard::WHOLE,
        })
    }

    /// The same loader taking its images from `cache` (see [`crate::cache`]).
    #[must_use]
    pub fn with_cache(mut self, cache: Arc<ImageCache>) -> Self {
        self.cache = cache;
        self
    }

    /// The same loader giving each batch's slice of `shard` only (see [`Shard`]).
    #[must_use]
    pub fn with_shard(mut self, shard: Shard) -> Self {
        self.shard = shard;
        self
    }

    /// What the cache keeps of each image for this loader: the letterboxed image when
    /// nothing random follows (no augmentation, one input size), else the decoded one.
    #[must_use]
    pub fn cache_stage(&self) -> Stage {
        let whole = self.options.tiles.is_none();
        if whole && self.options.augment.is_none() && self.options.multi_scale.is_none() {
            Stage::Letterboxed(self.options.input)
        } else {
            Stage::Decoded
        }
    }

    /// A loader over all samples.
    pub fn all(dataset: Arc<Dataset>, options: LoaderOptions) -> Result<Self> {
        let n = dataset.samples.len();
        Self::new(dataset, (0..n).collect(), options)
    }

    /// The dataset.
    #[must_use]
    pub fn dataset(&self) -> &Arc<Dataset> {
        &self.dataset
    }

    /// The options.
    #[must_use]
    pub fn options(&self) -> &LoaderOptions {
        &self.options
    }

    /// The dataset index and, for a validation tile, the tile of item `item` (a dataset index
    /// without tiles).
    #[must_use]
    pub fn item(&self, item: usize) -> (usize, Option<yolo3_core::tiles::Tile>) {
        match &self.entries {
            None => (item, None),
            Some(entries) => {
                let e = entries[item];
                (e.sample, e.crop.and_then(|c| if let Crop::At(t) = c { Some(t) } else { None }))
            }
        }
    }

    /// Number of items per epoch (samples, or with tiles their tiles).
    #[must_use]
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the loader has no samples.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// Batches per epoch.
    #[must_use]
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.indices.len(), self.options.batch_size);
        if self.options.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }

    /// The dataset indices in the order of `epoch`.
    #[must_use]
    pub fn epoch_order(&self, epoch: u64) -> Vec<usize> {
        let mut order = self.indices.to_vec();
        if self.options.shuffle {
            order.shuffle(&mut keyed_rng(self.options.seed, epoch, u64::MAX, *b"yolo3shf"));
        }
        order
    }

    /// The input size of batch `batch` of `epoch`.
    #[must_use]
    pub fn input_size(&self, epoch: u64, batch: usize) -> InputSize {
        match &self.options.multi_scale {
            None => self.options.input,
            Some(ms) => {
                let choices = (ms.max - ms.min) / ms.step + 1;
                let mut rng =
                    keyed_rng(self.options.seed, epoch, (batch / ms.every) as u64, *b"yolo3msc");
                InputSize::square(ms.min + ms.step * rng.random_range(0..choices))
            }
        }
    }

    /// Loads batch `batch` of `epoch` (recomputes the epoch order; the prefetcher does not).
    pub fn load_batch(&self, epoch: u64, batch: usize) -> Result<Batch> {
        let order = self.epoch_order(epoch);
        self.load_from_order(&order, epoch, batch)
    }

    fn load_from_order(&self, order: &[usize], epoch: u64, batch: usize) -> Result<Batch> {
        let b = self.options.batch_size;
        let start = batch * b;
        if start >= order.len() {
            return Err(DataError::InvalidOption {
                option: "batch",
                message: format!(
                    "batch {batch} is beyond the {} batches of the epoch",
                    self.batches_per_epoch()
                ),
            });
        }
        let indices = &order[start..(start + b).min(order.len())];
        let indices = &indices[self.shard.range(indices.len())];
        self.load_indices(indices, epoch, batch, self.input_size(epoch, batch))
    }

    /// Loads the given dataset indices as one batch at `input` (the per-sample randomness
    /// still depends only on `(seed, epoch, index)`).
    pub fn load_indices(
        &self,
        indices: &[usize],
        epoch: u64,
        batch: usize,
        input: InputSize,
    ) -> Result<Batch> {
        let plane = 3 * input.width as usize * input.height as usize;
        let mut images = vec![0f32; plane * indices.len()];
        let results: Vec<Result<(Vec<LabeledBox>, Option<Letterbox>)>> = images
            .par_chunks_mut(plane)
            .zip(indices.par_iter())
            .map(|(out, &index)| {
                let (chw, boxes, lb) = self.load_sample(epoch, index, input)?;
                out.copy_from_slice(&chw);
                Ok((boxes, lb))
            })
            .collect();
        let mut boxes = Vec::with_capacity(indices.len());
        let mut letterboxes = Vec::with_capacity(indices.len());
        for r in results {
            let (b, l) = r?;
            boxes.push(b);
            letterboxes.push(l);
        }
        let items = indices.to_vec();
        let indices = items.iter().map(|&i| self.item(i).0).collect();
        Ok(Batch { images, boxes, indices, items, letterboxes, input, epoch, batch })
    }

    /// Loads one item (a dataset index without tiles): CHW image, boxes in input pixels,
    /// letterbox when not augmented.
    pub fn load_sample(
        &self,
        epoch: u64,
        index: usize,
        input: InputSize,
    ) -> Result<(Vec<f32>, Vec<LabeledBox>, Option<Letterbox>)> {
        if let Some(entries) = &self.entries {
            return self.load_tile(epoch, index, entries[index], input);
        }
        let sample = &self.dataset.samples[index];
        let path = &sample.image_path;
        let Some(aug) = &self.options.augment else {
            let cached = self.cache.get(path, Stage::Letterboxed(input))?;
            check_size(path, sample.image_size, cached.source);
            let lb = Letterbox::new(cached.source, input);
            let mut chw = Vec::with_capacity(3 * (input.width * input.height) as usize);
            extend_chw(&lb.paste_resized(&cached.image), &mut chw);
            return Ok((chw, lb.forward_boxes(&sample.boxes), Some(lb)));
        };
        let decoded = self.cache.get(path, Stage::Decoded)?;
        check_size(path, sample.image_size, decoded.source);
        let image = &decoded.image;
        let mut rng = sample_rng(self.options.seed, epoch, index as u64);
        if let Some(m) = &self.options.mosaic {
            if rng.random::<f64>() < m.probability && !self.indices.is_empty() {
                let others: Vec<usize> =
                    (0..3).map(|_| self.indices[rng.random_range(0..self.indices.len())]).collect();
                let imgs = others
                    .iter()
                    .map(|&i| self.cache.get(&self.dataset.samples[i].image_path, Stage::Decoded))
                    .collect::<Result<Vec<_>>>()?;
                let s = |i: usize| self.dataset.samples[i].boxes.as_slice();
                let tiles = [
                    (image, sample.boxes.as_slice()),
                    (&imgs[0].image, s(others[0])),
                    (&imgs[1].image, s(others[1])),
                    (&imgs[2].image, s(others[2])),
                ];
                let out = mosaic(tiles, input, m, aug, &mut rng);
                return Ok((out.image, out.boxes, None));
            }
        }
        let out = random_data(image, &sample.boxes, input, aug, &mut rng);
        Ok((out.image, out.boxes, None))
    }

    /// Loads item `item` of a tiled loader: its tile (or whole image), then augmentation or a
    /// letterbox.
    fn load_tile(
        &self,
        epoch: u64,
        item: usize,
        entry: Entry,
        input: InputSize,
    ) -> Result<(Vec<f32>, Vec<LabeledBox>, Option<Letterbox>)> {
        let sample = &self.dataset.samples[entry.sample];
        let decoded = self.cache.get(&sample.image_path, Stage::Decoded)?;
        check_size(&sample.image_path, sample.image_size, decoded.source);
        let side = self.options.tiles.map_or(u32::MAX, |t| t.side);
        let tile = match entry.crop {
            None => None,
            Some(Crop::At(tile)) => Some(tile),
            Some(Crop::Random) => {
                let mut rng = keyed_rng(self.options.seed, epoch, item as u64, *b"yolo3til");
                Some(random_tile(decoded.source, side, &mut rng))
            }
        };
        let cropped;
        let (image, boxes) = match tile {
            None => (&decoded.image, sample.boxes.clone()),
            Some(t) => {
                cropped = image::imageops::crop_imm(&decoded.image, t.x, t.y, t.width, t.height)
                    .to_image();
                (&cropped, crop_boxes(&sample.boxes, &t))
            }
        };
        if let Some(aug) = &self.options.augment {
            let mut rng = sample_rng(self.options.seed, epoch, item as u64);
            let out = random_data(image, &boxes, input, aug, &mut rng);
            return Ok((out.image, out.boxes, None));
        }
        let (pasted, boxes, lb) = letterbox(image, &boxes, input);
        let mut chw = Vec::with_capacity(3 * (input.width * input.height) as usize);
        extend_chw(&pasted, &mut chw);
        Ok((chw, boxes, Some(lb)))
    }

    /// Batches of `epoch` from `start_batch` on, each prepared on a background thread while the
    /// previous one is used (at most `depth` batches wait; 1 or 2 is enough). Decoding within a
    /// batch runs on the rayon pool.
    #[must_use]
    pub fn prefetch(&self, epoch: u64, start_batch: usize, depth: usize) -> Prefetch {
        let (tx, rx) = sync_channel(depth.max(1));
        let loader = self.clone();
        let handle = std::thread::Builder::new()
            .name(format!("yolo3-prefetch-{epoch}"))
            .spawn(move || {
                let order = loader.epoch_order(epoch);
                for batch in start_batch..loader.batches_per_epoch() {
                    let result = loader.load_from_order(&order, epoch, batch);
                    let failed = result.is_err();
                    if tx.send(result).is_err() || failed {
                        break;
                    }
                }
            })
            .expect("spawning the prefetch thread");
        Prefetch { rx: Some(rx), handle: Some(handle) }
    }
}

fn check_size(path: &Path, expected: Option<ImageSize>, decoded: ImageSize) {
    if let Some(s) = expected {
        if s != decoded {
            tracing::warn!(image = %path.display(), "decoded size {decoded:?} differs from the annotated {s:?}");
        }
    }
}

/// An iterator over prefetched batches (see [`Loader::prefetch`]). It stops after the first
/// error. Dropping it stops the background thread.
#[derive(Debug)]
pub struct Prefetch {
    rx: Option<Receiver<Result<Batch>>>,
    handle: Option<JoinHandle<()>>,
}

impl Iterator for Prefetch {
    type Item = Result<Batch>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for Prefetch {
    fn drop(&mut self) {
        // Closing the receiver makes the producer's next send fail, so it exits.
        self.rx.take();
        if let Some(h) = self.handle.take() {
            if h.join().is_err() {
                tracing::error!("the prefetch thread panicked");
            }
        }
    }
}
