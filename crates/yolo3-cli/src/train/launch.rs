//! Distributed training from the command line. `--nproc-per-node N` makes this process a
//! launcher, like torchrun: it starts N workers of the same command on this machine, each with
//! torchrun's variables (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `LOCAL_WORLD_SIZE`, `MASTER_ADDR`,
//! `MASTER_PORT`), forwards their output line by line with a `[rank R]` prefix, and exits with
//! the first failure's status. A process started with those variables already set (by this
//! launcher, torchrun, or SLURM's `srun`) is a worker and joins the run.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use yolo3_dist::{ProcessGroup, WorldEnv, DEFAULT_PORT};
use yolo3_train::Replicas;

/// The distributed-run flags of `yolo3 train`.
#[derive(Debug, Args)]
pub(crate) struct DistArgs {
    /// Start N training processes on this machine as the ranks of one data-parallel run
    /// (1-1024); --batch stays the global batch and --threads is per process (default: the
    /// cores divided among them).
    #[arg(long, value_parser = crate::ranges::count(1, 1024))]
    pub nproc_per_node: Option<usize>,
    /// Machines of the run, each starting --nproc-per-node processes (1-65536).
    #[arg(long, default_value_t = 1, value_parser = crate::ranges::count(1, 65_536))]
    pub nnodes: usize,
    /// This machine's index in 0..nnodes (rank 0 runs on machine 0).
    #[arg(long, default_value_t = 0)]
    pub node_rank: usize,
    /// Host name or address of machine 0 (default with one machine: 127.0.0.1).
    #[arg(long)]
    pub master_addr: Option<String>,
    /// Port of the rendezvous on machine 0 (default: a free port with one machine, 29500 with
    /// several).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    pub master_port: Option<u16>,
    /// Seconds a rank waits for the others (to join, in each collective) before it stops with
    /// an error that names the rank it lost (1-86400).
    #[arg(long, default_value_t = 300, value_parser = crate::ranges::count(1, 86_400))]
    pub dist_timeout: usize,
}

/// The flags that make a launcher, left out of its workers' command lines.
const LAUNCHER_FLAGS: [&str; 5] =
    ["--nproc-per-node", "--nnodes", "--node-rank", "--master-addr", "--master-port"];

impl DistArgs {
    /// Whether this process launches workers.
    pub(crate) fn launches(&self) -> bool {
        self.nproc_per_node.is_some_and(|n| n > 1) || self.nnodes > 1
    }

    /// This process' part: a rank when the launch variables say so, else alone.
    pub(crate) fn replicas(&self) -> anyhow::Result<Replicas> {
        Ok(match WorldEnv::from_env()? {
            Some(env) => Replicas::of(ProcessGroup::join(&env, self.timeout())?),
            None => Replicas::single(),
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.dist_timeout as u64)
    }
}

/// Starts this machine's workers and waits for them.
pub(super) fn launch(args: &DistArgs, threads: Option<usize>) -> anyhow::Result<ExitCode> {
    let local = args.nproc_per_node.unwrap_or(1);
    anyhow::ensure!(
        args.node_rank < args.nnodes,
        "--node-rank {} is not below --nnodes {}",
        args.node_rank,
        args.nnodes
    );
    let (addr, port) = match (args.nnodes, &args.master_addr, args.master_port) {
        (1, addr, port) => (
            addr.clone().unwrap_or_else(|| "127.0.0.1".into()),
            match port {
                Some(p) => p,
                None => free_port().context("finding a free port for the rendezvous")?,
            },
        ),
        (_, Some(addr), port) => (addr.clone(), port.unwrap_or(DEFAULT_PORT)),
        (n, None, _) => anyhow::bail!("--nnodes {n} needs --master-addr (the host of machine 0)"),
    };
    let exe = std::env::current_exe().context("finding this program to start its workers")?;
    let mut argv = worker_args(std::env::args_os().skip(1));
    if threads.is_none() {
        let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
        argv.push("--threads".into());
        argv.push((cores / local).max(1).to_string().into());
    }
    let world = args.nnodes * local;
    let mut workers = Vec::with_capacity(local);
    for local_rank in 0..local {
        let env = WorldEnv {
            rank: args.node_rank * local + local_rank,
            world,
            local_rank,
            local_world: local,
            master_addr: addr.clone(),
            master_port: port,
        };
        // A process group of their own: a terminal's Ctrl-C reaches them once, passed on by
        // this process (see signals.rs), not also directly (which would be a second signal).
        let mut child = Command::new(&exe)
            .args(&argv)
            .envs(env.vars())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .with_context(|| format!("starting rank {}", env.rank))?;
        crate::signals::forward_to(child.id());
        let prefix = format!("[rank {}] ", env.rank);
        let forwards = [
            forward(child.stdout.take(), prefix.clone(), false),
            forward(child.stderr.take(), prefix, true),
        ];
        workers.push(Worker { rank: env.rank, child, forwards, status: None });
    }
    eprintln!(
        "launched ranks {}..{} of {world} (rendezvous at {addr}:{port})",
        args.node_rank * local,
        args.node_rank * local + local
    );
    wait_all(&mut workers, args.timeout() + Duration::from_secs(30))
}

struct Worker {
    rank: usize,
    child: Child,
    forwards: [Option<std::thread::JoinHandle<()>>; 2],
    status: Option<ExitStatus>,
}

/// Waits for every worker; after the first failure the others get `grace` to stop on their
/// own (they notice the lost rank within the timeout) before they are killed.
fn wait_all(workers: &mut [Worker], grace: Duration) -> anyhow::Result<ExitCode> {
    let mut first_failure: Option<(usize, ExitStatus)> = None;
    let mut deadline: Option<Instant> = None;
    while workers.iter().any(|w| w.status.is_none()) {
        for w in workers.iter_mut().filter(|w| w.status.is_none()) {
            if let Some(status) = w.child.try_wait().context("waiting for a worker")? {
                w.status = Some(status);
                if !status.success() && first_failure.is_none() {
                    first_failure = Some((w.rank, status));
                    deadline = Some(Instant::now() + grace);
                }
            }
        }
        if deadline.is_some_and(|d| Instant::now() > d) {
            for w in workers.iter_mut().filter(|w| w.status.is_none()) {
                eprintln!(
                    "stopping rank {}: it did not exit after rank {} failed",
                    w.rank,
                    first_failure.map_or(0, |f| f.0)
                );
                let _ = w.child.kill();
                w.status = w.child.wait().ok();
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    for w in workers.iter_mut() {
        for f in w.forwards.iter_mut().filter_map(Option::take) {
            let _ = f.join();
        }
    }
    match first_failure {
        None => Ok(ExitCode::SUCCESS),
        // Stopped on Ctrl-C or SIGTERM, passed on to them: each rank said what it kept.
        Some(_) if crate::signals::received().is_some() => Ok(ExitCode::FAILURE),
        Some((rank, status)) => {
            eprintln!("error: rank {rank} {}", describe(status));
            Ok(ExitCode::FAILURE)
        }
    }
}

fn describe(status: ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return format!("was killed by signal {signal}");
        }
    }
    format!("exited with {status}")
}

/// Copies `pipe` line by line to this process' stdout or stderr, each line after `prefix`.
fn forward(
    pipe: Option<impl Read + Send + 'static>,
    prefix: String,
    to_stderr: bool,
) -> Option<std::thread::JoinHandle<()>> {
    let pipe = pipe?;
    std::thread::Builder::new()
        .name("yolo3-forward".into())
        .spawn(move || {
            let mut reader = BufReader::new(pipe);
            let mut line = prefix.into_bytes();
            let start = line.len();
            while reader.read_until(b'\n', &mut line).is_ok_and(|n| n > 0) {
                if !line.ends_with(b"\n") {
                    line.push(b'\n');
                }
                // One write per line, so lines of different ranks do not interleave.
                let _ = if to_stderr {
                    std::io::stderr().lock().write_all(&line)
                } else {
                    std::io::stdout().lock().write_all(&line)
                };
                line.truncate(start);
            }
        })
        .ok()
}

/// The command line of a worker: the launcher's, without the launcher flags.
fn worker_args(args: impl Iterator<Item = OsString>) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut skip_value = false;
    for arg in args {
        if std::mem::take(&mut skip_value) {
            continue;
        }
        let text = arg.to_string_lossy();
        if let Some(flag) = LAUNCHER_FLAGS.iter().find(|f| text.starts_with(**f)) {
            if text.len() == flag.len() {
                skip_value = true; // `--flag value`
                continue;
            }
            if text[flag.len()..].starts_with('=') {
                continue; // `--flag=value`
            }
        }
        out.push(arg);
    }
    out
}

/// A port no one listens on now (the OS picks it; released before the workers bind it).
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_get_the_command_line_without_the_launcher_flags() {
        let args = [
            "train",
            "--epochs",
            "2",
            "--nproc-per-node",
            "2",
            "--master-port=1234",
            "--nnodes",
            "1",
            "--node-rank=0",
            "--dist-timeout",
            "30",
            "--master-addr",
            "h",
        ];
        let out = worker_args(args.iter().map(OsString::from));
        let out: Vec<_> = out.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        assert_eq!(out, ["train", "--epochs", "2", "--dist-timeout", "30"]);
    }
}
