//! Who leads a run and what the leader tells the others.
//!
//! Rank 0 (or the only process) reads and writes the run folder; the other ranks of a
//! distributed run build everything from what it publishes through the store: the [`Plan`]
//! before the first step, and after validating each epoch its [`EpochOutcome`]. Alone,
//! publishing is a no-op and the leader's values are used as they are, so a single process
//! goes through the same calls as a world of one.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::run_state::RunState;
use super::session::Session;
use super::TrainSummary;
use crate::error::{Result, TrainError};
use crate::observer::Observer;
use crate::replicas::Replicas;

/// What rank 0 sends the other ranks of a distributed run before the first step.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct Plan {
    pub(super) run_dir: PathBuf,
    /// `args.toml`'s text.
    pub(super) config: String,
    /// The cfg trained.
    pub(super) model_cfg: String,
    /// Whether the run resumes (the optimizer state follows under its own key).
    pub(super) resumed: bool,
    pub(super) state: RunState,
    /// `results.csv` lines of the epochs done.
    pub(super) rows: Vec<String>,
}

/// What rank 0 sends after validating an epoch.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
pub(super) struct EpochOutcome {
    pub(super) state: RunState,
    pub(super) row: String,
    pub(super) stop: bool,
}

/// The bytes a message travels as.
pub(super) fn encode(message: &impl Serialize) -> Vec<u8> {
    serde_json::to_vec(message).expect("plain data serialises")
}

/// A message from rank 0; `what` names it in the error of one that cannot be read (a
/// different yolo3 on another rank).
pub(super) fn decode<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|e| {
        TrainError::Config(format!("rank 0's {what} is not valid (a different yolo3?): {e}"))
    })
}

/// Rank 0 (or a single process) runs `lead`; the other ranks follow rank 0's plan. An error
/// is also left for the other ranks, so that they name it.
pub(super) fn lead_or_follow(
    replicas: &Replicas,
    observer: &mut dyn Observer,
    lead: impl FnOnce(&mut dyn Observer) -> Result<TrainSummary>,
) -> Result<TrainSummary> {
    let result = if replicas.is_leader() {
        lead(observer)
    } else {
        Session::follow(replicas, observer).and_then(|s| s.run(observer))
    };
    if let Err(e) = &result {
        replicas.report(e);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> Plan {
        let mut state = RunState::fresh();
        state.epochs_done = 3;
        state.best_fitness = 0.25;
        Plan {
            run_dir: PathBuf::from("runs/train/exp"),
            config: crate::TrainConfig::default().to_toml().unwrap(),
            model_cfg: "[net]\nwidth=160\n".into(),
            resumed: true,
            state,
            rows: vec!["1,2,3".into()],
        }
    }

    #[test]
    fn messages_arrive_as_they_were_sent() {
        let sent = plan();
        assert_eq!(decode::<Plan>(&encode(&sent), "plan").unwrap(), sent);
        let outcome = EpochOutcome { state: RunState::fresh(), row: "4,5".into(), stop: true };
        assert_eq!(decode::<EpochOutcome>(&encode(&outcome), "epoch outcome").unwrap(), outcome);
    }

    #[test]
    fn a_message_of_another_version_is_named() {
        let err = decode::<Plan>(br#"{"run_dir": 3}"#, "plan").unwrap_err();
        assert!(err.to_string().contains("rank 0's plan is not valid"), "{err}");
    }

    #[test]
    fn alone_the_leader_runs_and_its_error_is_returned() {
        let replicas = Replicas::default();
        assert!(replicas.is_leader());
        let err = lead_or_follow(&replicas, &mut crate::Silent, |_| {
            Err(TrainError::Config("led".into()))
        })
        .unwrap_err();
        assert_eq!(err.to_string(), "configuration: led");
    }
}
