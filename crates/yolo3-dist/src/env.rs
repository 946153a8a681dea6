//! Where a process sits in a distributed run, read from the variables launchers set: torchrun's
//! (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`, `MASTER_PORT`),
//! which `yolo3 train --nproc-per-node` also sets for its workers, or SLURM's (`SLURM_PROCID`,
//! `SLURM_NTASKS`, `SLURM_LOCALID`, `SLURM_NTASKS_PER_NODE`) with `MASTER_ADDR` given by the
//! job script. Following these conventions lets torchrun, `srun` and Kubernetes job specs
//! start yolo3 unchanged.

use crate::error::{DistError, Result};

/// The port torchrun uses when `MASTER_PORT` is not set.
pub const DEFAULT_PORT: u16 = 29500;

/// One process' place in the run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorldEnv {
    /// Global rank, `0..world`.
    pub rank: usize,
    /// Number of processes.
    pub world: usize,
    /// Rank among the processes of this machine (the CUDA device index with NCCL).
    pub local_rank: usize,
    /// Processes on this machine.
    pub local_world: usize,
    /// Host of rank 0, which serves the store.
    pub master_addr: String,
    /// Port of the store.
    pub master_port: u16,
}

impl WorldEnv {
    /// Reads the process environment; `None` when no launcher variables say this is one rank
    /// of several (a single process, or a world of one).
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(|name| std::env::var(name).ok())
    }

    /// As [`WorldEnv::from_env`] with the variables given by `var`.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        let number = |name: &'static str, default: Option<usize>| -> Result<usize> {
            match var(name) {
                None if default.is_some() => Ok(default.unwrap_or(0)),
                None => Err(DistError::Env {
                    var: name,
                    value: String::new(),
                    message: "not set".into(),
                }),
                // SLURM writes tasks per node as `2(x3)` for three nodes of two.
                Some(v) => {
                    v.split('(').next().unwrap_or("").trim().parse().map_err(|_| DistError::Env {
                        var: name,
                        value: v.clone(),
                        message: "not a non-negative integer".into(),
                    })
                }
            }
        };
        let (rank, world, local_rank, local_world) = if var("RANK").is_some() {
            (
                number("RANK", None)?,
                number("WORLD_SIZE", None)?,
                number("LOCAL_RANK", Some(0))?,
                number("LOCAL_WORLD_SIZE", Some(1))?,
            )
        } else if var("SLURM_PROCID").is_some() {
            (
                number("SLURM_PROCID", None)?,
                number("SLURM_NTASKS", None)?,
                number("SLURM_LOCALID", Some(0))?,
                number("SLURM_NTASKS_PER_NODE", Some(1))?,
            )
        } else {
            return Ok(None);
        };
        let out_of = |var: &'static str, value: usize, message: String| DistError::Env {
            var,
            value: value.to_string(),
            message,
        };
        if world == 0 {
            let var = if var("RANK").is_some() { "WORLD_SIZE" } else { "SLURM_NTASKS" };
            return Err(out_of(var, 0, "a run has at least one process".into()));
        }
        if world == 1 {
            if rank > 0 {
                return Err(out_of("RANK", rank, "not below the world size 1".into()));
            }
            return Ok(None);
        }
        if rank >= world {
            return Err(out_of("RANK", rank, format!("not below the world size {world}")));
        }
        if local_world == 0 || local_rank >= local_world {
            return Err(out_of(
                "LOCAL_RANK",
                local_rank,
                format!("not below the local world size {local_world}"),
            ));
        }
        let master_addr = var("MASTER_ADDR").filter(|a| !a.is_empty()).ok_or(DistError::Env {
            var: "MASTER_ADDR",
            value: String::new(),
            message: "not set: give the host of rank 0 (under SLURM, e.g. the first name of \
                      `scontrol show hostnames $SLURM_JOB_NODELIST`)"
                .into(),
        })?;
        let master_port = match var("MASTER_PORT") {
            None => DEFAULT_PORT,
            Some(p) => p.parse().ok().filter(|&p| p > 0).ok_or(DistError::Env {
                var: "MASTER_PORT",
                value: p.clone(),
                message: "not a port number (1-65535)".into(),
            })?,
        };
        Ok(Some(Self { rank, world, local_rank, local_world, master_addr, master_port }))
    }

    /// The variables that put a worker at `rank` (what [`WorldEnv::from_env`] reads back).
    #[must_use]
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("RANK", self.rank.to_string()),
            ("WORLD_SIZE", self.world.to_string()),
            ("LOCAL_RANK", self.local_rank.to_string()),
            ("LOCAL_WORLD_SIZE", self.local_world.to_string()),
            ("MASTER_ADDR", self.master_addr.clone()),
            ("MASTER_PORT", self.master_port.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<Option<WorldEnv>> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        WorldEnv::from_vars(|name| map.get(name).cloned())
    }

    #[test]
    fn torchrun_variables_round_trip() {
        let env = WorldEnv {
            rank: 3,
            world: 4,
            local_rank: 1,
            local_world: 2,
            master_addr: "10.0.0.1".into(),
            master_port: 1234,
        };
        let vars: Vec<(&str, String)> = env.vars();
        let pairs: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
        assert_eq!(read(&pairs).unwrap(), Some(env));
    }

    #[test]
    fn slurm_is_the_fallback_and_single_processes_are_none() {
        let env = read(&[
            ("SLURM_PROCID", "2"),
            ("SLURM_NTASKS", "6"),
            ("SLURM_LOCALID", "0"),
            ("SLURM_NTASKS_PER_NODE", "2(x3)"),
            ("MASTER_ADDR", "node1"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!((env.rank, env.world, env.local_rank, env.local_world), (2, 6, 0, 2));
        assert_eq!(env.master_port, DEFAULT_PORT);
        assert_eq!(read(&[]).unwrap(), None);
        assert_eq!(read(&[("RANK", "0"), ("WORLD_SIZE", "1")]).unwrap(), None);
        let e = read(&[("RANK", "0"), ("WORLD_SIZE", "0")]).unwrap_err().to_string();
        assert!(e.contains("WORLD_SIZE") && e.contains("at least one process"), "{e}");
        let e = read(&[("SLURM_PROCID", "0"), ("SLURM_NTASKS", "0")]).unwrap_err().to_string();
        assert!(e.contains("SLURM_NTASKS"), "{e}");
        let e = read(&[("RANK", "1"), ("WORLD_SIZE", "1")]).unwrap_err().to_string();
        assert!(e.contains("RANK") && e.contains("world size 1"), "{e}");
    }

    #[test]
    fn bad_values_name_their_variable() {
        let e = read(&[("RANK", "x"), ("WORLD_SIZE", "2")]).unwrap_err().to_string();
        assert!(e.contains("RANK=\"x\""), "{e}");
        let e = read(&[("RANK", "2"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("world size 2"), "{e}");
        let e = read(&[("RANK", "0"), ("WORLD_SIZE", "2")]).unwrap_err().to_string();
        assert!(e.contains("MASTER_ADDR"), "{e}");
        let e =
            read(&[("RANK", "0"), ("WORLD_SIZE", "2"), ("MASTER_ADDR", "h"), ("MASTER_PORT", "0")])
                .unwrap_err()
                .to_string();
        assert!(e.contains("MASTER_PORT"), "{e}");
    }
}
