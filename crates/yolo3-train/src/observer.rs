//! How a run reports progress without printing: the caller passes an [`Observer`] (the CLI's
//! draws progress bars and tables; tests use [`Silent`]).

use yolo3_core::LossTerms;

use crate::results::EpochRow;

/// The state after one training batch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchProgress {
    /// Epoch, 1-based.
    pub epoch: usize,
    /// Epochs of the run.
    pub epochs: usize,
    /// Batches done in this epoch.
    pub batch: usize,
    /// Batches per epoch.
    pub batches: usize,
    /// Running mean of this epoch's loss terms.
    pub parts: LossTerms,
    /// Training images per second over this epoch.
    pub images_per_sec: f64,
    /// Current learning rate.
    pub lr: f64,
    /// Input side of this batch.
    pub input: u32,
}

/// Receives a run's events. Every method has an empty default.
pub trait Observer {
    /// A line of information (dataset summary, model, resumed position).
    fn message(&mut self, _text: &str) {}
    /// An epoch begins.
    fn epoch_start(&mut self, _epoch: usize, _epochs: usize, _batches: usize) {}
    /// A training batch finished.
    fn batch_end(&mut self, _progress: &BatchProgress) {}
    /// Validation begins.
    fn validation_start(&mut self, _batches: usize) {}
    /// A validation batch finished.
    fn validation_batch(&mut self) {}
    /// An epoch finished, with its results row.
    fn epoch_end(&mut self, _row: &EpochRow) {}
}

/// An observer that ignores everything.
#[derive(Clone, Copy, Debug, Default)]
pub struct Silent;

impl Observer for Silent {}
