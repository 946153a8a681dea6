//! One epoch of training steps: each batch's forward pass and exact loss, the step totals
//! agreed by every rank before any backward pass (a non-finite loss or Ctrl-C on one rank stops
//! them all at the same batch), gradient accumulation to the nominal batch, and the optimizer
//! step at the schedule's learning rate.

use std::fmt::Write as _;
use std::time::Instant;

use tch::Tensor;
use yolo3_core::LossTerms;
use yolo3_data::Loader;
use yolo3_model::{ModelError, TorchContext as _};

use super::session::Session;
use crate::error::{Result, TrainError};
use crate::observer::{BatchProgress, Observer};
use crate::optim::Optimizer;
use crate::schedule::Position;

/// What an epoch of training measured.
#[derive(Clone, Copy, Debug)]
pub(super) struct EpochStats {
    /// Mean loss terms per image over the epoch's batches.
    pub(super) train: LossTerms,
    /// The learning rate of the epoch's last step.
    pub(super) lr: f64,
}

impl Session {
    /// Trains epoch `epoch` (0-based) over `loader`'s batches; `params` are the network's
    /// variables sorted by name (the optimizer's and the all-reduce's order).
    pub(super) fn train_epoch(
        &mut self,
        epoch: usize,
        loader: &Loader,
        params: &mut [(String, Tensor)],
        observer: &mut dyn Observer,
    ) -> Result<EpochStats> {
        let batches = loader.batches_per_epoch();
        let accumulate = (self.config.nominal_batch / self.config.batch).max(1);
        let world = self.replicas.world();
        let body_frozen = self.config.schedule.body_frozen(epoch);
        let heads = self.net.config().head_conv_layers();
        let below = self.freeze_below;
        self.net.freeze(|i| i < below || (body_frozen && !heads.contains(&i)));
        observer.epoch_start(epoch + 1, self.config.epochs, batches);
        let epoch_start = Instant::now();
        let reduce_before = self.replicas.reduce_seconds();
        let steps_before = self.state.optimizer_steps_taken;
        let mut sums = LossTerms::default();
        let mut images = 0usize;
        let mut lr = 0.0;
        Optimizer::zero_grad(params);
        for (b, batch) in loader.prefetch(epoch as u64, 0, 2).enumerate() {
            let batch = batch?;
            let n = batch.len();
            let (h, w) = (batch.input.height, batch.input.width);
            let xs = Tensor::f_from_slice(&batch.images)
                .and_then(|t| t.f_view([n as i64, 3, i64::from(h), i64::from(w)]))
                .and_then(|t| t.f_to_device(self.net.device()))
                .torch(|| "uploading a batch".into())?;
            let outputs = self.net.forward_t(&xs, true)?;
            let computed =
                self.loss.compute(&outputs, &batch.boxes, (h as usize, w as usize)).map_err(|e| {
                    let images = batch
                        .indices
                        .iter()
                        .map(|&i| self.train.samples[i].image_path.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ");
                    match e {
                        ModelError::Core { source, .. } => TrainError::NonFiniteLoss {
                            epoch: epoch + 1,
                            batch: b,
                            images,
                            source: Some(source),
                        },
                        other => other.into(),
                    }
                });
            // Every rank learns of a non-finite loss on any of them before any backward.
            let out = match computed {
                Ok(out) => Ok(out),
                Err(e @ TrainError::NonFiniteLoss { .. }) => Err(e),
                Err(other) => return Err(other),
            };
            let terms = out.as_ref().map_or(LossTerms::default(), |o| o.parts.terms());
            self.replicas.set_progress((epoch * batches + b + 1) as u64);
            // Ctrl-C on any rank stops every rank before this batch's backward pass.
            let totals = self.replicas.step_totals(out.is_ok(), terms, n)?;
            if totals.interrupted > 0 {
                return Err(TrainError::Interrupted {
                    run_dir: self.run_dir.clone(),
                    epochs_done: self.state.epochs_done,
                });
            }
            let out = out?;
            if totals.non_finite > 0 {
                return Err(TrainError::PeerNonFiniteLoss {
                    epoch: epoch + 1,
                    batch: b,
                    ranks: totals.non_finite,
                });
            }
            // This rank's share of the global batch's loss (see replicas.rs).
            let share = (n * world) as f64 / totals.images as f64;
            let scaled = out
                .loss
                .f_mul_scalar(share / accumulate as f64)
                .torch(|| "scaling the loss".into())?;
            scaled.f_backward().map_err(|e| self.replicas.torch_error("backward pass", e))?;
            sums += totals.terms / totals.images as f64;
            images += totals.images;
            if (b + 1) % accumulate == 0 || b + 1 == batches {
                let at = Position {
                    epoch,
                    step: self.state.optimizer_steps_taken,
                    epoch_fraction: b as f64 / batches as f64,
                    epochs: self.config.epochs,
                    total_steps: self.config.epochs * batches.div_ceil(accumulate),
                };
                lr = self.config.schedule.lr(at, &self.state.schedule);
                self.replicas.mean_gradients(params)?;
                self.optimizer.step(params, lr)?;
                Optimizer::zero_grad(params);
                self.state.optimizer_steps_taken += 1;
            }
            let done = (b + 1) as f64;
            observer.batch_end(&BatchProgress {
                epoch: epoch + 1,
                epochs: self.config.epochs,
                batch: b + 1,
                batches,
                parts: sums / done,
                images_per_sec: images as f64 / epoch_start.elapsed().as_secs_f64().max(1e-9),
                lr,
                input: h,
            });
        }
        let seconds = epoch_start.elapsed().as_secs_f64().max(1e-9);
        let mut speed = format!("epoch {}: {:.1} images/s", epoch + 1, images as f64 / seconds);
        if world > 1 {
            let steps = (self.state.optimizer_steps_taken - steps_before).max(1);
            let reduce = self.replicas.reduce_seconds() - reduce_before;
            let _ = write!(
                speed,
                " over {world} ranks; gradient all-reduce {:.1} ms per step ({:.1}% of the \
                 epoch's training time)",
                reduce * 1e3 / steps as f64,
                100.0 * reduce / seconds
            );
        }
        observer.message(&speed);
        Ok(EpochStats { train: sums / batches.max(1) as f64, lr })
    }
}
