//! What a run saves beside each checkpoint to resume exactly where it stopped.
//!
//! Saving an epoch writes a new state file named after the epoch
//! (`weights/last.state-<epoch>.safetensors`: the optimizer's moments and the [`RunState`] in
//! its metadata), then replaces the checkpoint (atomically; the checkpoint names its epoch),
//! then deletes older state files. A run killed at any point therefore always has a checkpoint
//! and the state file of the same epoch.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use yolo3_io::fsio::FileError;

use crate::error::{Result, TrainError};
use crate::optim::{Optimizer, OptimizerKind};
use crate::schedule::ScheduleState;

/// The mutable position of a run, saved in `last.state-<epoch>.safetensors`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct RunState {
    /// Epochs completed.
    pub(super) epochs_done: usize,
    /// Optimizer steps taken.
    pub(super) optimizer_steps_taken: usize,
    /// Schedule state.
    pub(super) schedule: ScheduleState,
    /// Best validation mAP50-95 so far.
    pub(super) best_fitness: f64,
    /// Per-parameter optimizer step counts.
    pub(super) optimizer_steps: BTreeMap<String, i64>,
}

impl RunState {
    /// The state of a run before its first epoch.
    pub(super) fn fresh() -> Self {
        Self {
            epochs_done: 0,
            optimizer_steps_taken: 0,
            schedule: ScheduleState::default(),
            // Below any mAP (JSON, which carries the state to other ranks, has no infinity).
            best_fitness: -1.0,
            optimizer_steps: BTreeMap::new(),
        }
    }
}

/// The files of a run folder's `weights/`.
#[derive(Clone, Debug)]
pub(super) struct RunFiles {
    weights: PathBuf,
}

impl RunFiles {
    /// The files of the run in `run_dir`.
    pub(super) fn new(run_dir: &Path) -> Self {
        Self { weights: run_dir.join("weights") }
    }

    /// The last epoch's checkpoint.
    pub(super) fn last(&self) -> PathBuf {
        self.weights.join("last.safetensors")
    }

    /// The checkpoint of the best validation mAP50-95.
    pub(super) fn best(&self) -> PathBuf {
        self.weights.join("best.safetensors")
    }

    /// The best checkpoint in darknet's format, written at the end.
    pub(super) fn best_darknet(&self) -> PathBuf {
        self.weights.join("best.weights")
    }

    /// The optimizer and schedule state saved with the checkpoint of `epoch`.
    pub(super) fn state(&self, epoch: usize) -> PathBuf {
        self.weights.join(format!("last.state-{epoch}.safetensors"))
    }

    /// Creates `weights/`.
    pub(super) fn create(&self) -> Result<()> {
        std::fs::create_dir_all(&self.weights).map_err(FileError::on("creating", &self.weights))?;
        Ok(())
    }

    /// Writes the state of `state.epochs_done` with the optimizer's moments; returns its path.
    pub(super) fn save_state(
        &self,
        state: &mut RunState,
        optimizer: &Optimizer,
    ) -> Result<PathBuf> {
        let (tensors, steps) = optimizer.state()?;
        state.optimizer_steps = steps;
        let json = serde_json::to_string(state).expect("plain data serialises");
        let path = self.state(state.epochs_done);
        crate::tensors::save(&path, &tensors, BTreeMap::from([("run_state".to_owned(), json)]))?;
        Ok(path)
    }

    /// Removes every state file but `keep` (once the checkpoint of `keep`'s epoch is in place,
    /// the older ones can no longer be resumed from).
    pub(super) fn remove_other_states(&self, keep: &Path) -> Result<()> {
        for entry in std::fs::read_dir(&self.weights).into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("last.state-") && entry.path() != keep {
                std::fs::remove_file(entry.path())
                    .map_err(FileError::on("removing", &entry.path()))?;
            }
        }
        Ok(())
    }

    /// Reads the state file of `epoch` (the last checkpoint's): the optimizer on `device`,
    /// the run state, and the file's bytes (for the other ranks).
    pub(super) fn read_state(
        &self,
        epoch: usize,
        kind: OptimizerKind,
        device: tch::Device,
    ) -> Result<(Optimizer, RunState, Vec<u8>)> {
        let path = self.state(epoch);
        let bytes = yolo3_io::fsio::read_bytes(&path).map_err(FileError::on("reading", &path))?;
        let (optimizer, state) = restore_state(kind, &bytes, &path, device)?;
        if epoch != state.epochs_done {
            return Err(TrainError::RunFile {
                path,
                message: format!("holds epoch {}, expected {epoch}", state.epochs_done),
            });
        }
        Ok((optimizer, state, bytes))
    }
}

/// The optimizer and run state in the bytes of a state file (`path` names them in errors).
pub(super) fn restore_state(
    kind: OptimizerKind,
    bytes: &[u8],
    path: &Path,
    device: tch::Device,
) -> Result<(Optimizer, RunState)> {
    let (tensors, meta) = crate::tensors::parse(bytes, path)?;
    let state: RunState = meta
        .get("run_state")
        .and_then(|s| serde_json::from_str(s).ok())
        .ok_or_else(|| TrainError::RunFile {
            path: path.to_owned(),
            message: "no valid `run_state` metadata".into(),
        })?;
    let optimizer = Optimizer::restore(kind, &tensors, &state.optimizer_steps, device)?;
    Ok((optimizer, state))
}

#[cfg(test)]
mod tests {
    use tch::{Kind, Tensor};

    use super::*;

    /// An Adam optimizer that has taken `steps` steps on one parameter.
    fn stepped(steps: usize) -> Optimizer {
        let p = Tensor::zeros([3], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let mut params = vec![("p".to_owned(), p.shallow_clone())];
        let mut optimizer = Optimizer::new(OptimizerKind::adam());
        for _ in 0..steps {
            Optimizer::zero_grad(&mut params);
            (&p - 1.0).square().sum(Kind::Float).backward();
            optimizer.step(&params, 0.1).unwrap();
        }
        optimizer
    }

    fn states(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir.join("weights"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_saved_state_reads_back_and_older_ones_are_removed() {
        let tmp = tempfile::tempdir().unwrap();
        let files = RunFiles::new(tmp.path());
        files.create().unwrap();
        let mut state = RunState::fresh();
        for epoch in 1..=2 {
            state.epochs_done = epoch;
            state.optimizer_steps_taken = 5 * epoch;
            state.best_fitness = 0.1 * epoch as f64;
            let path = files.save_state(&mut state, &stepped(epoch)).unwrap();
            assert_eq!(path, files.state(epoch));
        }
        // Until the checkpoint of epoch 2 is in place, epoch 1's state stays.
        assert_eq!(states(tmp.path()), ["last.state-1.safetensors", "last.state-2.safetensors"]);
        files.remove_other_states(&files.state(2)).unwrap();
        assert_eq!(states(tmp.path()), ["last.state-2.safetensors"]);
        let (optimizer, back, bytes) =
            files.read_state(2, OptimizerKind::adam(), tch::Device::Cpu).unwrap();
        assert_eq!(back, state);
        assert_eq!(back.optimizer_steps, BTreeMap::from([("p".to_owned(), 2)]));
        assert_eq!(bytes, std::fs::read(files.state(2)).unwrap());
        let (saved, _) = stepped(2).state().unwrap();
        let (restored, _) = optimizer.state().unwrap();
        assert_eq!(saved.len(), restored.len());
        for ((a, x), (b, y)) in saved.iter().zip(&restored) {
            assert_eq!(a, b);
            assert!(x.equal(y), "{a}");
        }
    }

    #[test]
    fn a_state_of_another_epoch_is_refused() {
        let tmp = tempfile::tempdir().unwrap();
        let files = RunFiles::new(tmp.path());
        files.create().unwrap();
        let mut state = RunState { epochs_done: 4, ..RunState::fresh() };
        let path = files.save_state(&mut state, &stepped(1)).unwrap();
        std::fs::rename(&path, files.state(5)).unwrap();
        let err = files.read_state(5, OptimizerKind::adam(), tch::Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("holds epoch 4, expected 5"), "{err}");
    }

    #[test]
    fn a_state_without_run_state_metadata_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("x.safetensors");
        let tensor = ("t".to_owned(), Tensor::ones([2], (Kind::Float, tch::Device::Cpu)));
        crate::tensors::save(&path, &[tensor], BTreeMap::new()).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let err = restore_state(OptimizerKind::adam(), &bytes, &path, tch::Device::Cpu)
            .map(|_| ())
            .unwrap_err();
        assert!(err.to_string().contains("no valid `run_state` metadata"), "{err}");
    }
}
