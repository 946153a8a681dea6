//! What can go wrong in a distributed run, each naming what was being done.

use std::fmt;

/// A distributed-run error.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// A launch variable that is missing or not valid.
    #[error("environment variable {var}={value:?}: {message}")]
    Env {
        /// The variable.
        var: &'static str,
        /// Its value (empty when unset).
        value: String,
        /// What is wrong with it.
        message: String,
    },
    /// Joining the run: the store or the process group could not be set up.
    #[error("rank {rank} of {world} joining through {addr}")]
    Join {
        /// This rank.
        rank: usize,
        /// The world size.
        world: usize,
        /// The store's `host:port`.
        addr: String,
        /// What c10d said.
        #[source]
        source: C10dError,
    },
    /// A collective or store operation failed; `lost` says which ranks caused it.
    #[error("{what}: {lost}")]
    Collective {
        /// The operation.
        what: String,
        /// Which ranks were lost, as far as the heartbeats tell.
        lost: Lost,
        /// What c10d said.
        #[source]
        source: C10dError,
    },
}

/// The text of an exception c10d threw.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct C10dError(pub String);

/// The outcome of the lost-rank diagnosis that follows a failed collective.
#[derive(Debug, Clone, PartialEq)]
pub enum Lost {
    /// These ranks reported an error of their own before stopping.
    Failed(Vec<(usize, String)>),
    /// These ranks' heartbeats stopped (the process died or its machine is unreachable).
    Silent(Vec<usize>),
    /// Rank 0, which hosts the store, can no longer be reached.
    StoreHost {
        /// The store's `host:port`.
        addr: String,
    },
    /// Every rank still beats, but these (rank, step) are behind the furthest rank's step:
    /// alive and stuck.
    Behind {
        /// The ranks behind, with the step each reached.
        ranks: Vec<(usize, u64)>,
        /// The furthest step.
        furthest: u64,
    },
    /// Every rank still beats at the same step: the operation timed out or failed for another
    /// reason.
    NoneLost,
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list =
            |ranks: &[usize]| ranks.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
        match self {
            Self::Failed(failures) => {
                let parts: Vec<String> =
                    failures.iter().map(|(r, m)| format!("rank {r} failed: {m}")).collect();
                f.write_str(&parts.join("; "))
            }
            Self::Silent(ranks) if ranks.len() == 1 => {
                write!(f, "lost rank {} (its process stopped: no heartbeat)", ranks[0])
            }
            Self::Silent(ranks) => {
                write!(f, "lost ranks {} (their processes stopped: no heartbeat)", list(ranks))
            }
            Self::StoreHost { addr } => {
                write!(f, "lost rank 0 (the store it hosts at {addr} no longer answers)")
            }
            Self::Behind { ranks, furthest } => {
                let parts: Vec<String> =
                    ranks.iter().map(|(r, s)| format!("rank {r} at step {s}")).collect();
                write!(
                    f,
                    "stuck: {} alive but behind step {furthest}, where the others wait",
                    parts.join(", ")
                )
            }
            Self::NoneLost => f.write_str("every rank is still alive"),
        }
    }
}

/// Results of this crate.
pub type Result<T, E = DistError> = std::result::Result<T, E>;
