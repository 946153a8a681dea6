//! How this process takes part in a run: alone, or as one rank of a data-parallel group.
//!
//! A data-parallel step is the single-process step of the same global batch, split:
//! * every rank loads its slice of each global batch ([`yolo3_data::Shard`]), so the images,
//!   augmentation and input sizes are those of one process whatever the world size;
//! * batch norm normalises with the global batch's statistics (synchronised, see
//!   `yolo3_model`'s ops), so each rank's forward is that of the whole batch restricted to its
//!   images (`local_bn` trades this for speed: two collectives per batch-norm layer and step
//!   fewer, each rank's own statistics);
//! * each rank's loss (keras' per-image sum over its `n_r` images divided by `n_r`) is scaled
//!   by `n_r * world / n` before backward, so the mean over ranks of the gradients, which the
//!   all-reduce forms, is the gradient of the global batch's loss;
//! * the loss terms and a non-finite flag are summed over the ranks after every forward, so
//!   every rank logs the same numbers and a non-finite loss on one rank stops them all at the
//!   same batch, before any backward.
//!
//! Rank 0 alone reads and writes the run folder and validates; it sends the others what they
//! need through the store (the plan: folder, settings, model, run state; the optimizer state
//! when resuming; after each epoch the state and its row) and the weights by broadcast.

use std::sync::Arc;

use tch::Tensor;
use yolo3_core::LossTerms;
use yolo3_data::Shard;
use yolo3_dist::ProcessGroup;
use yolo3_model::{Darknet, ReplicaSum, TorchContext as _};

use crate::error::{Result, TrainError};

/// This process' part in a run.
#[derive(Clone, Debug, Default)]
pub struct Replicas {
    group: Option<Arc<ProcessGroup>>,
}

/// A step's loss figures summed over the ranks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StepTotals {
    /// Ranks whose loss was not finite.
    pub non_finite: usize,
    /// Ranks that were asked to stop ([`yolo3_io::interrupt`]).
    pub interrupted: usize,
    /// Loss terms, each rank's means weighted by its images.
    pub terms: LossTerms,
    /// Images of the global batch.
    pub images: usize,
}

impl Replicas {
    /// A single process.
    #[must_use]
    pub fn single() -> Self {
        Self::default()
    }

    /// One rank of `group` (joined; the trainer starts its backend).
    #[must_use]
    pub fn of(group: ProcessGroup) -> Self {
        Self { group: Some(Arc::new(group)) }
    }

    /// The group, in a distributed run.
    #[must_use]
    pub fn group(&self) -> Option<&Arc<ProcessGroup>> {
        self.group.as_ref()
    }

    /// This rank (0 alone).
    #[must_use]
    pub fn rank(&self) -> usize {
        self.group.as_ref().map_or(0, |g| g.rank())
    }

    /// Number of ranks (1 alone).
    #[must_use]
    pub fn world(&self) -> usize {
        self.group.as_ref().map_or(1, |g| g.world())
    }

    /// Whether this process reads and writes the run folder (rank 0, or alone).
    #[must_use]
    pub fn is_leader(&self) -> bool {
        self.rank() == 0
    }

    pub(crate) fn shard(&self) -> Shard {
        Shard { rank: self.rank(), world: self.world() }
    }

    /// Checks that every rank gets images from every batch of `batch` images.
    pub(crate) fn check_batch(&self, batch: usize, train_images: usize) -> Result<()> {
        let world = self.world();
        if world > batch.min(train_images) {
            return Err(TrainError::Config(format!(
                "{world} ranks need at least {world} images per batch and in the training set \
                 (batch {batch}, {train_images} training images); --batch is the global batch"
            )));
        }
        Ok(())
    }

    /// The differentiable sum over ranks for synchronised batch norm.
    pub(crate) fn replica_sum(&self) -> Option<ReplicaSum> {
        let group = Arc::clone(self.group.as_ref()?);
        Some(Arc::new(move |t: &Tensor| group.replica_sum(t)))
    }

    /// Gives every rank rank 0's values of every variable of `net` (weights and batch-norm
    /// statistics), in name order.
    pub(crate) fn broadcast_variables(&self, net: &Darknet) -> Result<()> {
        let Some(group) = &self.group else { return Ok(()) };
        let mut vars: Vec<(String, Tensor)> = net.var_store().variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        let tensors: Vec<Tensor> = vars.into_iter().map(|(_, t)| t.detach()).collect();
        Ok(group.broadcast(&tensors, 0, "broadcast of rank 0's weights")?)
    }

    /// Replaces the gradients of `params` by their mean over the ranks.
    pub(crate) fn mean_gradients(&self, params: &[(String, Tensor)]) -> Result<()> {
        let Some(group) = &self.group else { return Ok(()) };
        let grads: Vec<Tensor> = params
            .iter()
            .filter(|(_, p)| p.requires_grad())
            .map(|(_, p)| p.grad())
            .filter(Tensor::defined)
            .collect();
        Ok(group.all_reduce_mean(&grads)?)
    }

    /// Sums this rank's step figures over the ranks: `terms` are the means over its `images`.
    pub(crate) fn step_totals(
        &self,
        finite: bool,
        terms: LossTerms,
        images: usize,
    ) -> Result<StepTotals> {
        let n = images as f64;
        let local = StepTotals {
            non_finite: usize::from(!finite),
            interrupted: usize::from(yolo3_io::interrupt::requested()),
            terms: terms * n,
            images,
        };
        let Some(group) = &self.group else { return Ok(local) };
        let t = &local.terms;
        let packed = Tensor::from_slice(&[
            local.non_finite as f64,
            local.interrupted as f64,
            local.images as f64,
            t.xy,
            t.wh,
            t.confidence,
            t.class,
        ]);
        group.all_reduce_sum(&packed, "sum of the step's loss")?;
        let v: Vec<f64> = Vec::try_from(&packed).torch(|| "reading the step's loss".into())?;
        Ok(StepTotals {
            non_finite: v[0].round() as usize,
            interrupted: v[1].round() as usize,
            images: v[2].round() as usize,
            terms: LossTerms { xy: v[3], wh: v[4], confidence: v[5], class: v[6] },
        })
    }

    /// Rank 0 publishes `value` under `key`; every other rank waits for it. Alone: `value`.
    pub(crate) fn share(
        &self,
        key: &str,
        value: impl FnOnce() -> Result<Vec<u8>>,
    ) -> Result<Vec<u8>> {
        match &self.group {
            None => value(),
            Some(group) if group.rank() == 0 => {
                let bytes = value()?;
                group.publish(key, &bytes)?;
                Ok(bytes)
            }
            Some(group) => Ok(group.fetch(key, 0)?),
        }
    }

    /// Tells the other ranks why this one stops (see [`ProcessGroup::report_failure`]).
    pub(crate) fn report(&self, error: &TrainError) {
        if let Some(group) = &self.group {
            group.report_failure(&yolo3_io::one_line(error));
        }
    }

    /// The error of a libtorch call that ran collectives (the backward pass through
    /// synchronised batch norm): in a distributed run with the diagnosis of the lost ranks.
    pub(crate) fn torch_error(&self, what: &str, source: tch::TchError) -> TrainError {
        match &self.group {
            Some(group) => group.failed(what, source.to_string()).into(),
            None => yolo3_model::ModelError::Torch { context: what.to_owned(), source }.into(),
        }
    }

    /// Records the batch this rank has reached (counted over the run), for the diagnosis of
    /// a rank that is alive but stuck.
    pub(crate) fn set_progress(&self, batch: u64) {
        if let Some(group) = &self.group {
            group.set_progress(batch);
        }
    }

    /// Seconds spent averaging gradients so far.
    pub(crate) fn reduce_seconds(&self) -> f64 {
        self.group.as_ref().map_or(0.0, |g| g.reduce_seconds())
    }
}
