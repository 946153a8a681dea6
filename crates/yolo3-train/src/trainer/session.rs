//! A run from epoch to epoch: the loader, each epoch's training, rank 0's end of the epoch
//! (validation, the row, the schedule's verdict, the files) shared with the other ranks, and
//! the end of the run (the best checkpoint in darknet's format, its final validation).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use tch::Tensor;
use yolo3_core::DecodeOptions;
use yolo3_data::{
    AugmentOptions, Dataset, ImageCache, InputSize, Loader, LoaderOptions, MosaicOptions,
    MultiScale, TileOptions,
};
use yolo3_io::fsio::Existing;
use yolo3_model::{CheckpointInfo, Darknet, Evaluation, WeightsHeader, YoloLoss};

use super::epoch::EpochStats;
use super::protocol::{decode, encode, EpochOutcome};
use super::run_state::{RunFiles, RunState};
use super::TrainSummary;
use crate::config::TrainConfig;
use crate::error::Result;
use crate::observer::Observer;
use crate::optim::Optimizer;
use crate::replicas::Replicas;
use crate::results::{write_results, EpochRow};

/// Everything a rank holds while it trains.
pub(super) struct Session {
    pub(super) config: TrainConfig,
    pub(super) run_dir: PathBuf,
    pub(super) files: RunFiles,
    pub(super) train: Arc<Dataset>,
    pub(super) val: Arc<Dataset>,
    pub(super) net: Darknet,
    pub(super) loss: YoloLoss,
    pub(super) optimizer: Optimizer,
    pub(super) state: RunState,
    pub(super) rows: Vec<EpochRow>,
    /// Layers `0..freeze_below` are frozen for the whole run.
    pub(super) freeze_below: usize,
    pub(super) replicas: Replicas,
    /// A follower's private copy of generated data (removed with the session).
    pub(super) _scratch: Option<tempfile::TempDir>,
}

/// The run's training time: that of the invocations before this one plus this one's.
#[derive(Clone, Copy)]
struct Clock {
    before: f64,
    started: Instant,
}

impl Clock {
    fn seconds(self) -> f64 {
        self.before + self.started.elapsed().as_secs_f64()
    }
}

/// Passes evaluation progress on to the run's observer.
struct ValidationProgress<'a>(&'a mut dyn Observer);

impl yolo3_model::EvalProgress for ValidationProgress<'_> {
    fn start(&mut self, batches: usize) {
        self.0.validation_start(batches);
    }
    fn batch(&mut self) {
        self.0.validation_batch();
    }
}

impl Session {
    fn loader(&self) -> Result<Loader> {
        let c = &self.config;
        let options = LoaderOptions {
            batch_size: c.batch,
            input: InputSize::square(c.input),
            shuffle: true,
            augment: c.augment.then(AugmentOptions::default),
            mosaic: (c.augment && c.mosaic && c.tile.is_none()).then(MosaicOptions::default),
            multi_scale: c.multi_scale.then(MultiScale::default),
            seed: c.seed,
            drop_last: self.train.samples.len() > c.batch,
            tiles: c.tile.map(|side| TileOptions { side, random: true }),
        };
        Ok(Loader::all(Arc::clone(&self.train), options)?.with_shard(self.replicas.shard()))
    }

    fn decode_options(&self) -> DecodeOptions {
        DecodeOptions {
            score_threshold: self.config.val_score_threshold,
            iou_threshold: 0.5,
            max_boxes: self.config.val_max_boxes,
            ..DecodeOptions::default()
        }
    }

    /// Validation of `net` on rank 0, with the threads of the ranks waiting on this machine.
    fn validate(
        &self,
        net: &Darknet,
        cache: &Arc<ImageCache>,
        observer: &mut dyn Observer,
    ) -> Result<Evaluation> {
        let threads = tch::get_num_threads();
        let local = self.replicas.group().map_or(1, |g| g.env().local_world);
        if local > 1 {
            tch::set_num_threads(threads * local as i32);
        }
        let result = yolo3_model::evaluate(
            net,
            &self.loss,
            &self.val,
            self.config.input,
            self.config.batch.max(8),
            &self.decode_options(),
            self.config.tile,
            cache,
            &mut ValidationProgress(observer),
        );
        tch::set_num_threads(threads);
        Ok(result?)
    }

    /// Trains from the state's epoch to the last, then finishes the run.
    pub(super) fn run(mut self, observer: &mut dyn Observer) -> Result<TrainSummary> {
        let started = Instant::now();
        let clock = Clock { before: self.rows.last().map_or(0.0, |r| r.seconds), started };
        let loader = self.loader()?;
        let cache = self.open_cache(&loader, observer)?;
        let loader = loader.with_cache(Arc::clone(&cache));
        self.replicas.broadcast_variables(&self.net)?;
        let mut params: Vec<(String, Tensor)> =
            self.net.var_store().variables().into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        for epoch in self.state.epochs_done..self.config.epochs {
            let stats = self.train_epoch(epoch, &loader, &mut params, observer)?;
            let replicas = self.replicas.clone();
            let outcome = replicas.share(&format!("epoch-{}", epoch + 1), || {
                Ok(encode(&self.end_epoch(epoch, stats, clock, &cache, observer)?))
            })?;
            let outcome: EpochOutcome = decode(&outcome, "epoch outcome")?;
            if !self.replicas.is_leader() {
                let results = self.run_dir.join("results.csv");
                self.state = outcome.state;
                self.rows.push(EpochRow::parse(&outcome.row, &results, epoch + 2)?);
            }
            observer.epoch_end(self.rows.last().expect("this epoch's row"));
            if outcome.stop {
                break;
            }
        }
        self.finish(&cache, started, observer)
    }

    /// Rank 0's end of an epoch: validation, the row, the schedule's verdict, the files.
    fn end_epoch(
        &mut self,
        epoch: usize,
        stats: EpochStats,
        clock: Clock,
        cache: &Arc<ImageCache>,
        observer: &mut dyn Observer,
    ) -> Result<EpochOutcome> {
        let eval = self.validate(&self.net, cache, observer)?;
        let (precision, recall) = eval.map.mean_precision_recall();
        let row = EpochRow {
            epoch: epoch + 1,
            train: stats.train,
            val: eval.loss,
            precision,
            recall,
            map50: eval.map.map50.unwrap_or(0.0),
            map50_95: eval.map.map50_95.unwrap_or(0.0),
            lr: stats.lr,
            seconds: clock.seconds(),
        };
        self.rows.push(row.clone());
        let stop =
            self.config.schedule.end_epoch(epoch, eval.loss.total(), &mut self.state.schedule);
        self.state.epochs_done = epoch + 1;
        let fitness = row.map50_95;
        if fitness > self.state.best_fitness {
            self.state.best_fitness = fitness;
            self.save_checkpoint(&self.files.best())?;
        }
        // The table first: a run killed before the checkpoint below resumes at the previous
        // epoch and drops this row, so no row is ever missing or doubled.
        write_results(&self.run_dir.join("results.csv"), &self.rows)?;
        crate::plots::write_results_png(&self.run_dir.join("results.png"), &self.rows)?;
        let state = self.files.save_state(&mut self.state, &self.optimizer)?;
        self.save_checkpoint(&self.files.last())?;
        // Only now is the previous epoch's state unreachable.
        self.files.remove_other_states(&state)?;
        Ok(EpochOutcome { state: self.state.clone(), row: row.to_csv(), stop })
    }

    /// The end of the run: rank 0 writes the best checkpoint as darknet weights and validates
    /// it once more.
    fn finish(
        self,
        cache: &Arc<ImageCache>,
        started: Instant,
        observer: &mut dyn Observer,
    ) -> Result<TrainSummary> {
        let best_checkpoint = self.files.best();
        let best = if self.replicas.is_leader() {
            let (best_net, _) = Darknet::from_checkpoint(&best_checkpoint, self.net.device())?;
            let weights = best_net.export_darknet_weights(WeightsHeader {
                seen: (self.state.optimizer_steps_taken * self.config.nominal_batch) as u64,
                ..WeightsHeader::default()
            })?;
            weights.write(self.files.best_darknet(), Existing::Replace)?;
            Some(self.validate(&best_net, cache, observer)?.map)
        } else {
            None
        };
        Ok(TrainSummary {
            run_dir: self.run_dir.clone(),
            class_names: self.train.class_names.clone(),
            rows: self.rows,
            best,
            best_checkpoint,
            seconds: started.elapsed().as_secs_f64(),
        })
    }

    fn save_checkpoint(&self, path: &Path) -> Result<()> {
        let info = CheckpointInfo {
            class_names: self.train.class_names.clone(),
            extra: BTreeMap::from([
                ("epoch".to_owned(), self.state.epochs_done.to_string()),
                ("input".to_owned(), self.config.input.to_string()),
            ]),
        };
        Ok(self.net.save_checkpoint(path, &info, Existing::Replace)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{DataSource, ModelSource};
    use crate::Silent;

    fn tiny(project: &Path) -> TrainConfig {
        TrainConfig {
            data: DataSource::Synthetic { train_images: 8, val_images: 4, size: 64, seed: 0 },
            model: ModelSource::TinyPreset { width_divisor: 16 },
            input: 64,
            batch: 4,
            nominal_batch: 8,
            epochs: 2,
            project: project.to_owned(),
            ..TrainConfig::default()
        }
    }

    fn sorted_variables(net: &Darknet) -> Vec<(String, Tensor)> {
        let mut params: Vec<(String, Tensor)> = net.var_store().variables().into_iter().collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        params
    }

    #[test]
    fn an_epoch_steps_per_nominal_batch_and_its_end_leaves_a_resumable_run() {
        let tmp = tempfile::tempdir().unwrap();
        let run_dir = tmp.path().join("exp");
        std::fs::create_dir(&run_dir).unwrap();
        let replicas = Replicas::default();
        let config = tiny(tmp.path());
        let mut session =
            Session::open(config.clone(), run_dir.clone(), false, &replicas, &mut Silent).unwrap();
        let loader = session.loader().unwrap();
        let mut params = sorted_variables(&session.net);
        let before: Vec<Tensor> = params.iter().map(|(_, t)| t.detach().copy()).collect();
        let stats = session.train_epoch(0, &loader, &mut params, &mut Silent).unwrap();
        // 8 images in batches of 4, gradients accumulated to 8: one step.
        assert_eq!(session.state.optimizer_steps_taken, 1);
        assert!(stats.train.total().is_finite() && stats.train.total() > 0.0, "{stats:?}");
        assert!(stats.lr > 0.0);
        let moved = params.iter().zip(&before).filter(|((_, now), then)| !now.equal(then)).count();
        assert!(moved > 0, "the step changed no variable");

        let clock = Clock { before: 0.0, started: Instant::now() };
        let outcome = session.end_epoch(0, stats, clock, &ImageCache::none(), &mut Silent).unwrap();
        assert_eq!(outcome.state.epochs_done, 1);
        assert!(!outcome.stop);
        let files = RunFiles::new(&run_dir);
        for path in [files.last(), files.best(), files.state(1), run_dir.join("results.csv")] {
            assert!(path.is_file(), "{} missing", path.display());
        }

        let resumed = Session::open(config, run_dir, true, &replicas, &mut Silent).unwrap();
        assert_eq!(resumed.state, session.state);
        assert_eq!(resumed.rows.len(), 1);
        assert_eq!(resumed.rows[0].epoch, 1);
        for ((name, a), (_, b)) in sorted_variables(&resumed.net).iter().zip(&params) {
            assert!(a.equal(b), "{name} differs after resuming");
        }
    }

    #[test]
    fn a_tiled_run_trains_on_tiles_and_validates_on_their_grid() {
        let tmp = tempfile::tempdir().unwrap();
        let run_dir = tmp.path().join("exp");
        std::fs::create_dir(&run_dir).unwrap();
        let config = TrainConfig {
            data: DataSource::Synthetic { train_images: 4, val_images: 2, size: 128, seed: 0 },
            tile: Some(64),
            ..tiny(tmp.path())
        };
        let replicas = Replicas::default();
        let mut session = Session::open(config, run_dir, false, &replicas, &mut Silent).unwrap();
        let loader = session.loader().unwrap();
        // 128-pixel images in 64-pixel tiles at 20% overlap: a grid of 3 x 3 each.
        assert_eq!(loader.len(), 4 * 9);
        let mut params = sorted_variables(&session.net);
        let stats = session.train_epoch(0, &loader, &mut params, &mut Silent).unwrap();
        // 36 tiles in batches of 4, accumulated to 8: 9 batches, 5 steps (the last one short).
        assert_eq!(session.state.optimizer_steps_taken, 5);
        assert!(stats.train.total().is_finite());
        let eval = session.validate(&session.net, &ImageCache::none(), &mut Silent).unwrap();
        assert_eq!(eval.images.len(), 2 * 9);
        assert!(eval.loss.total().is_finite());
    }
}
