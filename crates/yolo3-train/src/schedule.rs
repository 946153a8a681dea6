//! Learning-rate schedules and the stopping rules that go with them.
//!
//! * [`Schedule::KerasTwoStage`]: keras-yolo3's `train.py`: the body frozen for the first
//!   epochs at one rate, then every layer at a lower rate, reduced by `factor` when the
//!   validation loss has not improved for `patience` epochs, and early stopping after
//!   `stop_patience` such epochs.
//! * [`Schedule::Darknet`]: darknet's `policy=steps`: a burn-in of `(step / burn_in)^4 * lr`
//!   over the first optimizer steps, then `lr` multiplied by each `scales[k]` once the fraction
//!   `steps[k]` of the run's optimizer steps is passed (darknet's yolov3.cfg: 0.8 and 0.9).
//! * [`Schedule::Cosine`]: linear warm-up, then a cosine decay to `final_fraction * lr`.
//!
//! Positions are counted in optimizer steps (`step`, 0-based) and epochs (0-based). The
//! mutable part ([`ScheduleState`]) is saved with every checkpoint, so a resumed run continues
//! at the same rate.

use serde::{Deserialize, Serialize};

/// A learning-rate schedule.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Schedule {
    /// keras-yolo3's two stages.
    KerasTwoStage {
        /// Epochs with the body frozen.
        frozen_epochs: usize,
        /// Rate of the frozen stage (keras: 1e-3).
        frozen_lr: f64,
        /// Rate of the unfrozen stage (keras: 1e-4).
        lr: f64,
        /// Plateau reduction factor (keras: 0.1).
        factor: f64,
        /// Epochs without improvement before a reduction (keras: 3).
        patience: usize,
        /// Epochs without improvement before stopping (keras: 10).
        stop_patience: usize,
    },
    /// darknet's burn-in and steps.
    Darknet {
        /// Base rate.
        lr: f64,
        /// Optimizer steps of burn-in.
        burn_in: usize,
        /// Fractions of the run's optimizer steps at which the rate changes.
        steps: Vec<f64>,
        /// The factor applied at each step.
        scales: Vec<f64>,
    },
    /// Warm-up then cosine decay.
    Cosine {
        /// Peak rate.
        lr: f64,
        /// Epochs of linear warm-up.
        warmup_epochs: f64,
        /// Final rate as a fraction of the peak.
        final_fraction: f64,
    },
}

/// The part of a schedule that changes with the validation loss.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScheduleState {
    /// Product of the plateau reductions so far.
    pub lr_scale: f64,
    /// Best validation loss seen in the current stage.
    pub best_loss: Option<f64>,
    /// Epochs since the best loss (for the reduction).
    pub since_reduction: usize,
    /// Epochs since the best loss (for stopping).
    pub since_best: usize,
}

impl Default for ScheduleState {
    fn default() -> Self {
        Self { lr_scale: 1.0, best_loss: None, since_reduction: 0, since_best: 0 }
    }
}

/// Where training is, for the schedule.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Position {
    /// Epoch, 0-based.
    pub epoch: usize,
    /// Optimizer steps taken before this one.
    pub step: usize,
    /// Fraction of the current epoch done, in `[0, 1)`.
    pub epoch_fraction: f64,
    /// Total epochs of the run.
    pub epochs: usize,
    /// Total optimizer steps of the run.
    pub total_steps: usize,
}

impl Schedule {
    /// The learning rates the schedule is built from, named (for range checks).
    #[must_use]
    pub fn learning_rates(&self) -> Vec<(&'static str, f64)> {
        match self {
            Self::KerasTwoStage { frozen_lr, lr, .. } => {
                vec![("frozen-stage learning rate", *frozen_lr), ("learning rate", *lr)]
            }
            Self::Darknet { lr, .. } | Self::Cosine { lr, .. } => vec![("learning rate", *lr)],
        }
    }

    /// keras-yolo3's preset: 50 frozen epochs at 1e-3, then 1e-4 with plateau and early stop.
    #[must_use]
    pub fn keras(frozen_epochs: usize) -> Self {
        Self::KerasTwoStage {
            frozen_epochs,
            frozen_lr: 1e-3,
            lr: 1e-4,
            factor: 0.1,
            patience: 3,
            stop_patience: 10,
        }
    }

    /// darknet's preset at a learning rate: burn-in over 100 steps, then x0.1 at 80% and
    /// x0.1 at 90% of the run.
    #[must_use]
    pub fn darknet(lr: f64) -> Self {
        Self::Darknet { lr, burn_in: 100, steps: vec![0.8, 0.9], scales: vec![0.1, 0.1] }
    }

    /// darknet's preset's learning rate (its cfgs' `learning_rate=0.001`).
    pub const DARKNET_LR: f64 = 1e-3;

    /// The schedule's name as `--schedule` takes it.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::KerasTwoStage { .. } => "keras",
            Self::Darknet { .. } => "darknet",
            Self::Cosine { .. } => "cosine",
        }
    }

    /// Whether the body is frozen in `epoch`.
    #[must_use]
    pub fn body_frozen(&self, epoch: usize) -> bool {
        matches!(self, Self::KerasTwoStage { frozen_epochs, .. } if epoch < *frozen_epochs)
    }

    /// The learning rate at a position.
    #[must_use]
    pub fn lr(&self, at: Position, state: &ScheduleState) -> f64 {
        match self {
            Self::KerasTwoStage { frozen_epochs, frozen_lr, lr, .. } => {
                let base = if at.epoch < *frozen_epochs { *frozen_lr } else { *lr };
                base * state.lr_scale
            }
            Self::Darknet { lr, burn_in, steps, scales } => {
                if at.step < *burn_in {
                    return lr * ((at.step + 1) as f64 / *burn_in as f64).powi(4);
                }
                let mut rate = *lr;
                for (s, k) in steps.iter().zip(scales) {
                    if at.step as f64 >= s * at.total_steps as f64 {
                        rate *= k;
                    }
                }
                rate
            }
            Self::Cosine { lr, warmup_epochs, final_fraction } => {
                let t = at.epoch as f64 + at.epoch_fraction;
                if t < *warmup_epochs {
                    return lr * (t + 1e-3).min(*warmup_epochs) / warmup_epochs;
                }
                let span = (at.epochs as f64 - warmup_epochs).max(1e-9);
                let p = ((t - warmup_epochs) / span).clamp(0.0, 1.0);
                lr * (final_fraction
                    + (1.0 - final_fraction) * 0.5 * (1.0 + (std::f64::consts::PI * p).cos()))
            }
        }
    }

    /// Records the validation loss at the end of `epoch`; returns `true` when training should
    /// stop early.
    pub fn end_epoch(&self, epoch: usize, val_loss: f64, state: &mut ScheduleState) -> bool {
        let Self::KerasTwoStage { frozen_epochs, factor, patience, stop_patience, .. } = self
        else {
            return false;
        };
        if epoch < *frozen_epochs {
            return false;
        }
        if epoch == *frozen_epochs {
            // The unfrozen stage starts its own plateau tracking.
            *state = ScheduleState::default();
        }
        let improved = state.best_loss.is_none_or(|b| val_loss < b);
        if improved {
            state.best_loss = Some(val_loss);
            state.since_reduction = 0;
            state.since_best = 0;
            return false;
        }
        state.since_reduction += 1;
        state.since_best += 1;
        if state.since_reduction >= *patience {
            state.lr_scale *= factor;
            state.since_reduction = 0;
        }
        state.since_best >= *stop_patience
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(epoch: usize, step: usize) -> Position {
        Position { epoch, step, epoch_fraction: 0.0, epochs: 10, total_steps: 500 }
    }

    #[test]
    fn darknet_burns_in_then_steps() {
        let s = Schedule::Darknet {
            lr: 1e-3,
            burn_in: 100,
            steps: vec![0.8, 0.9],
            scales: vec![0.1, 0.1],
        };
        let st = ScheduleState::default();
        assert!((s.lr(at(0, 49), &st) - 1e-3 * 0.5f64.powi(4)).abs() < 1e-15);
        assert_eq!(s.lr(at(0, 100), &st), 1e-3);
        assert!((s.lr(at(0, 420), &st) - 1e-4).abs() < 1e-15);
        assert!((s.lr(at(0, 460), &st) - 1e-5).abs() < 1e-15);
    }

    #[test]
    fn keras_reduces_on_plateau_and_stops() {
        let s = Schedule::keras(2);
        let mut st = ScheduleState::default();
        assert!(s.body_frozen(1) && !s.body_frozen(2));
        assert_eq!(s.lr(at(0, 0), &st), 1e-3);
        assert!(!s.end_epoch(2, 5.0, &mut st));
        for e in 3..6 {
            assert!(!s.end_epoch(e, 6.0, &mut st));
        }
        assert!((s.lr(at(6, 0), &st) - 1e-5).abs() < 1e-18);
        let mut stopped = false;
        for e in 6..13 {
            stopped = s.end_epoch(e, 6.0, &mut st);
        }
        assert!(stopped);
    }

    #[test]
    fn cosine_warms_up_and_decays() {
        let s = Schedule::Cosine { lr: 1.0, warmup_epochs: 1.0, final_fraction: 0.01 };
        let st = ScheduleState::default();
        let mid = Position { epoch: 0, step: 0, epoch_fraction: 0.5, epochs: 10, total_steps: 100 };
        assert!((s.lr(mid, &st) - 0.501).abs() < 1e-9);
        assert!((s.lr(at(1, 0), &st) - 1.0).abs() < 1e-9);
        let end =
            Position { epoch: 10, step: 0, epoch_fraction: 0.0, epochs: 10, total_steps: 100 };
        assert!((s.lr(end, &st) - 0.01).abs() < 1e-9);
    }
}
