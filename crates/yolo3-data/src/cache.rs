//! The decoded-image cache: what the loader computes from an image file alone, kept so that
//! epoch 2 onwards does not decode (and resize) again.
//!
//! What can be kept depends on what comes next. Letterboxing (validation, and training
//! without augmentation) is a pure function of the file and the input size, so the cache keeps
//! the letterbox-resized image ([`Stage::Letterboxed`], a few hundred KB). Random augmentation
//! and mosaic start from the whole decoded picture with a new scale every time, so the cache
//! keeps the decoded image ([`Stage::Decoded`]). Both go through [`ImageCache::get`], and the
//! loader takes every image from it (the [`ImageCache::none`] cache computes and forgets), so
//! the pixels are the same with and without a cache by construction.
//!
//! `Ram` holds the images in memory; [`ImageCache::bytes_needed`] says beforehand how much.
//! `Disk` writes one file per image and stage into a cache folder (never beside the user's
//! data): a small header (the source's length and modification time, the stage, the size)
//! and the raw RGB bytes. A file whose source has changed since is recomputed and replaced;
//! only files carrying this format's magic are ever replaced.

use std::collections::HashMap;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use image::RgbImage;

use crate::dataset::{Dataset, ImageSize};
use crate::error::{DataError, Result};
use crate::image_io::{image_size, load_rgb};
use crate::letterbox::{resize_bicubic, InputSize, Letterbox};

/// What is kept of an image.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Stage {
    /// The decoded image, as displayed (augmented training and mosaic start from it).
    Decoded,
    /// The image resized by the letterbox into `input`, before it is pasted on the canvas.
    Letterboxed(InputSize),
}

/// One cached image.
#[derive(Debug)]
pub struct CachedImage {
    /// The pixels of the stage.
    pub image: RgbImage,
    /// The size of the decoded source image.
    pub source: ImageSize,
}

/// Where cached images live.
#[derive(Debug)]
enum Store {
    None,
    Ram(Mutex<HashMap<(PathBuf, Stage), Arc<CachedImage>>>),
    Disk(PathBuf),
}

/// An image cache shared by the loaders of a run (see the module docs).
#[derive(Debug)]
pub struct ImageCache {
    store: Store,
}

/// The first bytes of a disk-cache file.
const MAGIC: &[u8; 8] = b"Y3IMGC01";
/// Magic, source length, source modification time (ns), stage width and height, image
/// width and height, source width and height.
const HEADER_LEN: usize = 8 + 8 + 16 + 4 * 6;

impl ImageCache {
    /// No cache: every request decodes the file.
    #[must_use]
    pub fn none() -> Arc<Self> {
        Arc::new(Self { store: Store::None })
    }

    /// Images kept in memory.
    #[must_use]
    pub fn ram() -> Arc<Self> {
        Arc::new(Self { store: Store::Ram(Mutex::new(HashMap::new())) })
    }

    /// Images kept as files in `dir` (created if missing).
    pub fn disk(dir: &Path) -> Result<Arc<Self>> {
        std::fs::create_dir_all(dir)
            .map_err(|e| DataError::io(dir, "cannot create the image cache folder", e))?;
        Ok(Arc::new(Self { store: Store::Disk(dir.to_path_buf()) }))
    }

    /// Bytes the `stage` images of `dataset` take (RAM, or disk less the headers), from the
    /// image sizes the readers found (the header is read where they did not).
    pub fn bytes_needed(dataset: &Dataset, stage: Stage) -> Result<u64> {
        let mut total = 0u64;
        for sample in &dataset.samples {
            let size = match sample.image_size {
                Some(s) => s,
                None => image_size(&sample.image_path)?,
            };
            let (w, h) = stage_size(size, stage);
            total += 3 * u64::from(w) * u64::from(h);
        }
        Ok(total)
    }

    /// The `stage` image of the file `path`: from the cache, or computed (and kept).
    pub fn get(&self, path: &Path, stage: Stage) -> Result<Arc<CachedImage>> {
        match &self.store {
            Store::None => compute(path, stage).map(Arc::new),
            Store::Ram(map) => {
                let key = (path.to_path_buf(), stage);
                if let Some(hit) = map.lock().unwrap_or_else(PoisonError::into_inner).get(&key) {
                    return Ok(Arc::clone(hit));
                }
                // Computed outside the lock, so that workers decode in parallel.
                let image = Arc::new(compute(path, stage)?);
                let mut map = map.lock().unwrap_or_else(PoisonError::into_inner);
                Ok(Arc::clone(map.entry(key).or_insert(image)))
            }
            Store::Disk(dir) => {
                let source = std::fs::metadata(path)
                    .map_err(|e| DataError::io(path, "cannot read image", e))?;
                let stamp = Stamp::of(&source);
                let file = dir.join(file_name(path, stage));
                if let Some(hit) = read_cached(&file, stamp, stage) {
                    return Ok(Arc::new(hit));
                }
                let image = compute(path, stage)?;
                write_cached(&file, stamp, stage, &image)?;
                Ok(Arc::new(image))
            }
        }
    }
}

/// The size of the `stage` image of a source of `size`.
fn stage_size(size: ImageSize, stage: Stage) -> (u32, u32) {
    match stage {
        Stage::Decoded => (size.width, size.height),
        Stage::Letterboxed(input) => {
            let lb = Letterbox::new(size, input);
            (lb.resized_width, lb.resized_height)
        }
    }
}

fn compute(path: &Path, stage: Stage) -> Result<CachedImage> {
    let decoded = load_rgb(path)?;
    let source = ImageSize { width: decoded.width(), height: decoded.height() };
    let image = match stage {
        Stage::Decoded => decoded,
        Stage::Letterboxed(_) => {
            let (w, h) = stage_size(source, stage);
            resize_bicubic(&decoded, w, h)
        }
    };
    Ok(CachedImage { image, source })
}

/// What identifies the version of a source file.
#[derive(Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified_ns: i128,
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Self {
        let modified_ns = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(-1, |d| d.as_nanos() as i128);
        Self { len: meta.len(), modified_ns }
    }
}

/// The cache file of `path` at `stage`: a stable 64-bit FNV-1a hash of the absolute path and
/// the stage (the same name in every run and build).
fn file_name(path: &Path, stage: Stage) -> String {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let (w, h) = stage_dims(stage);
    let bytes = absolute.as_os_str().as_encoded_bytes();
    for &b in bytes.iter().chain(&w.to_le_bytes()).chain(&h.to_le_bytes()) {
        hash ^= u64::from(b);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}.rgb")
}

/// The stage as two numbers for the header and the name (0 x 0 is `Decoded`).
fn stage_dims(stage: Stage) -> (u32, u32) {
    match stage {
        Stage::Decoded => (0, 0),
        Stage::Letterboxed(input) => (input.width, input.height),
    }
}

/// The header of a cache file of an image of `size` (`w x h`) from a `source`-sized file.
fn header(stamp: Stamp, stage: Stage, size: (u32, u32), source: ImageSize) -> Vec<u8> {
    let (sw, sh) = stage_dims(stage);
    let mut v = Vec::with_capacity(HEADER_LEN);
    v.extend_from_slice(MAGIC);
    v.extend_from_slice(&stamp.len.to_le_bytes());
    v.extend_from_slice(&stamp.modified_ns.to_le_bytes());
    for n in [sw, sh, size.0, size.1, source.width, source.height] {
        v.extend_from_slice(&n.to_le_bytes());
    }
    v
}

/// The cached image in `file` if it is of this source version and stage; anything else
/// (missing, stale, damaged) is a miss. The sizes a header states are checked against each
/// other and the file's length before anything of that size is allocated.
fn read_cached(file: &Path, stamp: Stamp, stage: Stage) -> Option<CachedImage> {
    let mut f = yolo3_io::fsio::open_regular(file).ok()?;
    let mut head = [0u8; HEADER_LEN];
    f.read_exact(&mut head).ok()?;
    let u32_at = |i: usize| u32::from_le_bytes(head[i..i + 4].try_into().expect("4 bytes"));
    let (w, h) = (u32_at(40), u32_at(44));
    let source = ImageSize { width: u32_at(48), height: u32_at(52) };
    if head[..] != header(stamp, stage, (w, h), source)[..]
        || source.width == 0
        || source.height == 0
        || u64::from(source.width) * u64::from(source.height) > crate::MAX_PIXELS
        || stage_size(source, stage) != (w, h)
    {
        return None;
    }
    let bytes = 3 * u64::from(w) * u64::from(h);
    if f.metadata().ok()?.len() != HEADER_LEN as u64 + bytes {
        return None;
    }
    let mut pixels = Vec::with_capacity(bytes as usize);
    f.read_to_end(&mut pixels).ok()?;
    let image = RgbImage::from_raw(w, h, pixels)?;
    Some(CachedImage { image, source })
}

fn write_cached(file: &Path, stamp: Stamp, stage: Stage, image: &CachedImage) -> Result<()> {
    // Replace only what this cache wrote: a foreign file under the name is left alone (and
    // the image is then simply not cached).
    if let Ok(mut f) = std::fs::File::open(file) {
        let mut magic = [0u8; 8];
        if f.read_exact(&mut magic).is_err() || &magic != MAGIC {
            tracing::warn!("{}: not an image-cache file; left as it is", file.display());
            return Ok(());
        }
    }
    let mut bytes = header(stamp, stage, image.image.dimensions(), image.source);
    bytes.extend_from_slice(image.image.as_raw());
    yolo3_io::fsio::write_atomic(file, &bytes, yolo3_io::fsio::Existing::Replace)
        .map_err(|e| DataError::io(file, "cannot write the image cache", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(dir: &Path, name: &str, w: u32, h: u32, seed: u8) -> PathBuf {
        let path = dir.join(name);
        let img = RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7) as u8 ^ seed, (y * 13) as u8, (x + y) as u8 ^ seed])
        });
        img.save(&path).unwrap();
        path
    }

    #[test]
    fn every_store_gives_the_computed_pixels_and_disk_follows_the_source() {
        let tmp = tempfile::tempdir().unwrap();
        let path = png(tmp.path(), "a.png", 90, 60, 0);
        let stages = [Stage::Decoded, Stage::Letterboxed(InputSize::square(64))];
        let disk = ImageCache::disk(&tmp.path().join("cache")).unwrap();
        for stage in stages {
            let want = compute(&path, stage).unwrap();
            for cache in [ImageCache::none(), ImageCache::ram(), Arc::clone(&disk)] {
                for _ in 0..2 {
                    let got = cache.get(&path, stage).unwrap();
                    assert_eq!(got.image, want.image, "{stage:?} {cache:?}");
                    assert_eq!(got.source, ImageSize { width: 90, height: 60 });
                }
            }
        }
        assert_eq!(stage_size(ImageSize { width: 90, height: 60 }, stages[1]), (64, 42));
        let files = || std::fs::read_dir(tmp.path().join("cache")).unwrap().count();
        assert_eq!(files(), 2);

        // The source changes (other pixels, other length): the cached file is replaced.
        std::thread::sleep(std::time::Duration::from_millis(20));
        let changed = png(tmp.path(), "a.png", 80, 60, 0x55);
        let got = disk.get(&changed, Stage::Decoded).unwrap();
        assert_eq!(got.image, load_rgb(&changed).unwrap());
        assert_eq!(files(), 2);
    }

    #[test]
    fn a_foreign_file_under_a_cache_name_is_not_replaced() {
        let tmp = tempfile::tempdir().unwrap();
        let path = png(tmp.path(), "b.png", 20, 10, 3);
        let dir = tmp.path().join("cache");
        let disk = ImageCache::disk(&dir).unwrap();
        let name = dir.join(file_name(&path, Stage::Decoded));
        std::fs::write(&name, b"someone else's file").unwrap();
        let got = disk.get(&path, Stage::Decoded).unwrap();
        assert_eq!(got.image, load_rgb(&path).unwrap());
        assert_eq!(std::fs::read(&name).unwrap(), b"someone else's file");
    }
}
