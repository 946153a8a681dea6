//! The run's image cache, shared by training and validation. For RAM, the memory it will take
//! is printed first and refused above half of what is available (a cache that swaps is slower
//! than none).

use std::sync::Arc;

use yolo3_data::{ImageCache, InputSize, Loader, Stage};

use super::session::Session;
use crate::config::CacheConfig;
use crate::error::{Result, TrainError};
use crate::observer::Observer;

/// How a cache stage is described in the run's message.
fn describe(stage: Stage) -> String {
    match stage {
        Stage::Decoded => "decoded: augmentation rescales every epoch".to_owned(),
        Stage::Letterboxed(i) => format!("letterboxed to {}x{}", i.width, i.height),
    }
}

impl Session {
    /// The cache of `--cache` for `loader`'s training images and the validation images.
    pub(super) fn open_cache(
        &self,
        loader: &Loader,
        observer: &mut dyn Observer,
    ) -> Result<Arc<ImageCache>> {
        let val_stage = match self.config.tile {
            None => Stage::Letterboxed(InputSize::square(self.config.input)),
            Some(_) => Stage::Decoded,
        };
        let (train_stage, where_) = match &self.config.cache {
            CacheConfig::None => return Ok(ImageCache::none()),
            CacheConfig::Ram => (loader.cache_stage(), "in memory".to_owned()),
            CacheConfig::Disk { dir } => (loader.cache_stage(), format!("in {}", dir.display())),
        };
        let train = ImageCache::bytes_needed(&self.train, train_stage)?;
        let val = ImageCache::bytes_needed(&self.val, val_stage)?;
        let mb = |b: u64| b as f64 / 1e6;
        observer.message(&format!(
            "cache: {:.0} MB {where_} ({} training images {}; {} validation images {})",
            mb(train + val),
            self.train.samples.len(),
            describe(train_stage),
            self.val.samples.len(),
            describe(val_stage),
        ));
        match &self.config.cache {
            CacheConfig::None => unreachable!("returned above"),
            CacheConfig::Disk { dir } => Ok(ImageCache::disk(dir)?),
            CacheConfig::Ram => {
                let available = yolo3_model::memory::available_bytes().unwrap_or(u64::MAX);
                if train + val > available / 2 {
                    return Err(TrainError::Config(format!(
                        "--cache ram needs {:.0} MB, more than half of the {:.0} MB available; \
                         use --cache disk{}",
                        mb(train + val),
                        mb(available),
                        if train_stage == Stage::Decoded {
                            " (or train without augmentation, which caches letterboxed images)"
                        } else {
                            ""
                        }
                    )));
                }
                Ok(ImageCache::ram())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_are_described_as_the_run_prints_them() {
        assert_eq!(describe(Stage::Decoded), "decoded: augmentation rescales every epoch");
        assert_eq!(describe(Stage::Letterboxed(InputSize::square(160))), "letterboxed to 160x160");
    }
}
