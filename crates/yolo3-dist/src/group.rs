//! A joined distributed run: the store, the process group, the heartbeat that lets a failed
//! collective name the rank that was lost, and the collectives training needs.
//!
//! Gloo reports a dead peer as "connection closed by peer <address>", and a hung one as a
//! timeout, neither saying which rank it was. So every rank bumps a counter in the store once
//! a second from a thread of its own; after a failure the survivor reads the counters twice,
//! [`BEAT`] x 3 apart, and names the ranks whose counter stood still (or rank 0, when the store
//! it serves is gone). A rank that stops on an error of its own leaves the message in the store
//! first ([`ProcessGroup::report_failure`]), so the others can say what it was. A rank that
//! is alive but stuck (every counter moves, a collective timed out) is named by its progress:
//! the heartbeat also publishes the step the rank reached ([`ProcessGroup::set_progress`]),
//! and the ranks behind the furthest one are the ones the others wait for.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tch::Tensor;

use crate::env::WorldEnv;
use crate::error::{C10dError, DistError, Lost, Result};
use crate::ffi::{GroupHandle, StoreHandle};

/// Interval of the heartbeat.
pub const BEAT: Duration = Duration::from_millis(500);

/// Largest gradient bucket of one all-reduce, as PyTorch DDP's default `bucket_cap_mb`.
pub const BUCKET_BYTES: usize = 25 << 20;

/// Which c10d backend moves the tensors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Gloo, for CPU tensors.
    Gloo,
    /// NCCL, for CUDA tensors (rank on `cuda:LOCAL_RANK`).
    Nccl,
}

impl Backend {
    /// The backend for tensors on `device`.
    #[must_use]
    pub fn for_device(device: tch::Device) -> Self {
        match device {
            tch::Device::Cuda(_) => Self::Nccl,
            _ => Self::Gloo,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Gloo => "gloo",
            Self::Nccl => "nccl",
        }
    }
}

/// Whether this build has c10d's NCCL backend (libtorch with CUDA).
#[must_use]
pub fn has_nccl() -> bool {
    cfg!(yolo3_nccl)
}

/// One rank's membership of a distributed run.
pub struct ProcessGroup {
    env: WorldEnv,
    timeout: Duration,
    store: StoreHandle,
    /// Set by [`ProcessGroup::start`]; taken down by [`ProcessGroup::report_failure`].
    group: RwLock<Option<(Backend, GroupHandle)>>,
    /// Beats until the group is dropped.
    heartbeat: Heartbeat,
    /// Nanoseconds spent in [`ProcessGroup::all_reduce_mean`].
    reduce_nanos: AtomicU64,
}

impl std::fmt::Debug for ProcessGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessGroup")
            .field("env", &self.env)
            .field("backend", &self.backend())
            .finish_non_exhaustive()
    }
}

impl ProcessGroup {
    /// Joins the run `env` describes: connects to (rank 0: serves) the store and waits up to
    /// `timeout` for every rank. The store carries messages at once; collectives need
    /// [`ProcessGroup::start`], whose backend can depend on what rank 0 sent.
    pub fn join(env: &WorldEnv, timeout: Duration) -> Result<Self> {
        let store = connect_within(env, timeout).map_err(|m| join_error(env, m))?;
        let beat_store = store.try_clone().map_err(|m| join_error(env, m))?;
        Ok(Self {
            env: env.clone(),
            timeout,
            store,
            group: RwLock::new(None),
            heartbeat: Heartbeat::start(beat_store, env.rank),
            reduce_nanos: AtomicU64::new(0),
        })
    }

    /// Sets up the process group on `backend` (every rank calls it); each collective then
    /// times out after the join's timeout.
    pub fn start(&self, backend: Backend) -> Result<()> {
        // Gloo listens on the interface the store's host is reached through when that is this
        // machine, and on the interface of this host's name otherwise (torchrun's default).
        let hostname = if is_loopback(&self.env.master_addr) {
            self.env.master_addr.clone()
        } else {
            local_hostname()
        };
        let group = GroupHandle::new(
            &self.store,
            self.env.rank,
            self.env.world,
            backend.name(),
            &hostname,
            ms(self.timeout),
        )
        .map_err(|m| self.failed("setting up the process group", m))?;
        *self.group.write().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some((backend, group));
        Ok(())
    }

    /// Runs `f` on the started group; `what` names the operation in an error.
    fn with_group<T>(
        &self,
        what: &str,
        f: impl FnOnce(&GroupHandle) -> std::result::Result<T, String>,
    ) -> Result<T> {
        let guard = self.group.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        match guard.as_ref() {
            Some((_, group)) => f(group).map_err(|m| self.failed(what, m)),
            None => Err(self.failed(what, "the process group is not started or was closed".into())),
        }
    }

    /// This rank.
    #[must_use]
    pub fn rank(&self) -> usize {
        self.env.rank
    }

    /// Number of ranks.
    #[must_use]
    pub fn world(&self) -> usize {
        self.env.world
    }

    /// Where this process sits.
    #[must_use]
    pub fn env(&self) -> &WorldEnv {
        &self.env
    }

    /// The backend, once started.
    #[must_use]
    pub fn backend(&self) -> Option<Backend> {
        self.group.read().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref().map(|g| g.0)
    }

    /// Seconds spent in [`ProcessGroup::all_reduce_mean`] so far.
    #[must_use]
    pub fn reduce_seconds(&self) -> f64 {
        self.reduce_nanos.load(Ordering::Relaxed) as f64 * 1e-9
    }

    /// Replaces every tensor by its mean over the ranks. The tensors (float32, one device) are
    /// packed into buckets of at most [`BUCKET_BYTES`] in reverse order, the order backward
    /// produces gradients in; every bucket's all-reduce is started before the first is waited
    /// for, so Gloo's threads move one while the next is packed.
    pub fn all_reduce_mean(&self, tensors: &[Tensor]) -> Result<()> {
        let started = Instant::now();
        let mut buckets: Vec<Vec<&Tensor>> = Vec::new();
        let mut bytes = usize::MAX;
        for t in tensors.iter().rev() {
            let size = t.numel() * 4;
            if bytes.saturating_add(size) > BUCKET_BYTES {
                buckets.push(Vec::new());
                bytes = 0;
            }
            bytes += size;
            buckets.last_mut().expect("a bucket was pushed").push(t);
        }
        let torch = |what: &str, e: tch::TchError| self.failed(what, e.to_string());
        let mut flights = Vec::with_capacity(buckets.len());
        for bucket in &buckets {
            let flat: Vec<Tensor> = bucket.iter().map(|t| t.view([-1])).collect();
            let flat = Tensor::f_cat(&flat, 0).map_err(|e| torch("packing a bucket", e))?;
            let work =
                self.with_group("all-reduce of the gradients", |g| g.all_reduce_start(&flat))?;
            flights.push((flat, work));
        }
        let scale = 1.0 / self.world() as f64;
        for ((flat, work), bucket) in flights.into_iter().zip(&buckets) {
            work.wait().map_err(|m| self.failed("all-reduce of the gradients", m))?;
            let mut offset = 0;
            for t in bucket {
                let n = t.numel() as i64;
                let part = flat.narrow(0, offset, n).view_as(t);
                tch::no_grad(|| t.shallow_clone().f_copy_(&part.f_mul_scalar(scale)?))
                    .map_err(|e| torch("unpacking a bucket", e))?;
                offset += n;
            }
        }
        let nanos = started.elapsed().as_nanos().min(u128::from(u64::MAX)) as u64;
        self.reduce_nanos.fetch_add(nanos, Ordering::Relaxed);
        Ok(())
    }

    /// Sums `tensor` (contiguous) over the ranks in place; `what` names it in an error.
    pub fn all_reduce_sum(&self, tensor: &Tensor, what: &str) -> Result<()> {
        self.with_group(what, |g| g.all_reduce_start(tensor).and_then(crate::ffi::WorkHandle::wait))
    }

    /// Copies rank `root`'s values of every tensor (contiguous) into every rank's.
    pub fn broadcast(&self, tensors: &[Tensor], root: usize, what: &str) -> Result<()> {
        self.with_group(what, |g| tensors.iter().try_for_each(|t| g.broadcast(t, root)))
    }

    /// The sum of `input` over the ranks, differentiable (its gradient is the sum of the
    /// ranks' gradients): what synchronised batch norm builds its statistics from.
    pub fn replica_sum(&self, input: &Tensor) -> std::result::Result<Tensor, tch::TchError> {
        self.with_group("batch-norm statistics", |g| g.replica_sum(input))
            .map_err(|e| tch::TchError::Torch(e.to_string()))
    }

    /// Records how far this rank got (a step counter that every rank advances alike), so
    /// that a rank which is alive but stuck is named by the ranks waiting for it.
    pub fn set_progress(&self, step: u64) {
        self.heartbeat.progress.store(step, Ordering::Relaxed);
    }

    /// Leaves `value` under `key` for the other ranks.
    pub fn publish(&self, key: &str, value: &[u8]) -> Result<()> {
        self.store.set(&format!("yolo3/data/{key}"), value).map_err(|m| self.failed(key, m))
    }

    /// Waits for the value `owner` publishes under `key`, as long as `owner` keeps beating
    /// (however long that takes: validation on rank 0 can outlast any timeout).
    pub fn fetch(&self, key: &str, owner: usize) -> Result<Vec<u8>> {
        let full = format!("yolo3/data/{key}");
        let mut last = (self.beats(owner), Instant::now());
        loop {
            match self.store.check(&full) {
                Ok(true) => return self.store.get(&full).map_err(|m| self.failed(key, m)),
                Ok(false) => {}
                Err(m) => return Err(self.failed(key, m)),
            }
            if self.store.check(&failure_key(owner)).unwrap_or(false) {
                return Err(self.failed(key, format!("rank {owner} stopped while it was awaited")));
            }
            std::thread::sleep(Duration::from_millis(20));
            let now = self.beats(owner);
            if now != last.0 {
                last = (now, Instant::now());
            } else if last.1.elapsed() > BEAT * 6 {
                return Err(self.failed(key, format!("rank {owner} stopped while it was awaited")));
            }
        }
    }

    /// Reports this rank's own error before the process ends, so that the ranks it leaves
    /// behind say what it was instead of only that it went silent: the message goes to the
    /// store and the process group is closed, which makes a peer waiting in a collective fail
    /// at once rather than at its timeout. Rank 0 serves the store, so it then waits (a few
    /// beats at most) until the others have read the message. Best effort.
    pub fn report_failure(&self, message: &str) {
        let _ = self.store.set(&failure_key(self.rank()), message.as_bytes());
        self.group.write().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        if self.rank() == 0 {
            let deadline = Instant::now() + BEAT * 10;
            while Instant::now() < deadline {
                match self.store.add(SEEN_KEY, 0) {
                    Ok(n) if n >= (self.world() - 1) as i64 => break,
                    Ok(_) => std::thread::sleep(Duration::from_millis(20)),
                    Err(_) => break,
                }
            }
        }
    }

    /// A rank's heartbeat counter; `None` when the store does not answer.
    fn beats(&self, rank: usize) -> Option<i64> {
        self.store.add(&beat_key(rank), 0).ok()
    }

    /// The error of a failed `what`, with the diagnosis of who was lost: for failures c10d
    /// raised inside other code (the backward pass of [`ProcessGroup::replica_sum`]).
    pub fn failed(&self, what: &str, message: String) -> DistError {
        DistError::Collective {
            what: format!("rank {}: {what}", self.rank()),
            lost: self.diagnose(),
            source: C10dError(message),
        }
    }

    /// Names the ranks lost: those that reported an error, else those whose heartbeat stood
    /// still over three beats, else rank 0 when its store is gone.
    fn diagnose(&self) -> Lost {
        let addr = format!("{}:{}", self.env.master_addr, self.env.master_port);
        let others: Vec<usize> = (0..self.world()).filter(|&r| r != self.rank()).collect();
        let read = || -> Option<Vec<i64>> { others.iter().map(|&r| self.beats(r)).collect() };
        let Some(before) = read() else { return Lost::StoreHost { addr } };
        std::thread::sleep(BEAT * 3);
        let failures: Vec<(usize, String)> = others
            .iter()
            .filter_map(|&r| {
                let key = failure_key(r);
                match self.store.check(&key) {
                    Ok(true) => self
                        .store
                        .get(&key)
                        .ok()
                        .map(|m| (r, String::from_utf8_lossy(&m).into_owned())),
                    _ => None,
                }
            })
            .collect();
        if !failures.is_empty() {
            let _ = self.store.add(SEEN_KEY, 1);
            return Lost::Failed(failures);
        }
        let Some(after) = read() else { return Lost::StoreHost { addr } };
        let silent: Vec<usize> = others
            .iter()
            .zip(before.iter().zip(&after))
            .filter(|(_, (b, a))| b == a)
            .map(|(&r, _)| r)
            .collect();
        if !silent.is_empty() {
            return Lost::Silent(silent);
        }
        // Everyone beats: those behind the furthest rank are the ones the others wait for.
        let progress: Vec<u64> = (0..self.world())
            .map(|r| {
                self.store
                    .get(&progress_key(r))
                    .ok()
                    .and_then(|b| b.try_into().ok())
                    .map_or(0, u64::from_le_bytes)
            })
            .collect();
        let furthest = progress.iter().copied().max().unwrap_or(0);
        let behind: Vec<(usize, u64)> = progress
            .iter()
            .enumerate()
            .filter(|&(_, &p)| p < furthest)
            .map(|(r, &p)| (r, p))
            .collect();
        if behind.is_empty() {
            Lost::NoneLost
        } else {
            Lost::Behind { ranks: behind, furthest }
        }
    }
}

/// Counts the ranks that have read a failure report.
const SEEN_KEY: &str = "yolo3/failure-seen";

fn failure_key(rank: usize) -> String {
    format!("yolo3/failed/{rank}")
}

fn ms(timeout: Duration) -> i64 {
    timeout.as_millis().min(i64::MAX as u128) as i64
}

/// Connects to (rank 0: serves) the store, giving up after `timeout` whatever c10d does:
/// its client retries its own timeout more than once, and waits without end for the answer of
/// a program that holds the port but never accepts. The connection runs on a thread of its
/// own, left to end by itself when it does not answer in time (the run then ends on the error).
fn connect_within(env: &WorldEnv, timeout: Duration) -> std::result::Result<StoreHandle, String> {
    let (sent, answer) = std::sync::mpsc::channel();
    let (host, port, server, world) =
        (env.master_addr.clone(), env.master_port, env.rank == 0, env.world);
    std::thread::Builder::new()
        .name("yolo3-store-connect".into())
        .spawn(move || {
            let _ = sent.send(StoreHandle::connect(&host, port, server, world, ms(timeout)));
        })
        .map_err(|e| format!("starting the connection thread: {e}"))?;
    // A little beyond the timeout, so that c10d's own error (more precise) wins when it comes.
    match answer.recv_timeout(timeout + Duration::from_millis(500)) {
        Ok(result) => result,
        Err(_) => Err(format!(
            "no answer within {} s (--dist-timeout): something holds the port but does not \
             answer as rank 0's store would",
            timeout.as_secs_f64()
        )),
    }
}

fn join_error(env: &WorldEnv, message: String) -> DistError {
    DistError::Join {
        rank: env.rank,
        world: env.world,
        addr: format!("{}:{}", env.master_addr, env.master_port),
        source: C10dError(message),
    }
}

fn progress_key(rank: usize) -> String {
    format!("yolo3/progress/{rank}")
}

fn beat_key(rank: usize) -> String {
    format!("yolo3/beat/{rank}")
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.starts_with("127.") || host == "::1"
}

/// This machine's host name (what Gloo resolves to pick its interface).
fn local_hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The thread that bumps this rank's counter every [`BEAT`] until dropped.
/// The thread that bumps this rank's counter every [`BEAT`] until dropped, and publishes the
/// rank's progress ([`ProcessGroup::set_progress`]) when it changed.
struct Heartbeat {
    stop: Arc<AtomicBool>,
    progress: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Heartbeat {
    fn start(store: StoreHandle, rank: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(AtomicU64::new(0));
        let (flag, step) = (Arc::clone(&stop), Arc::clone(&progress));
        let thread = std::thread::Builder::new()
            .name("yolo3-heartbeat".into())
            .spawn(move || {
                let key = beat_key(rank);
                let mut published = None;
                while !flag.load(Ordering::Relaxed) {
                    let now = step.load(Ordering::Relaxed);
                    let sent = published == Some(now)
                        || store.set(&progress_key(rank), &now.to_le_bytes()).is_ok();
                    if !sent || store.add(&key, 1).is_err() {
                        // The store is gone (rank 0 ended); the next collective says so.
                        return;
                    }
                    published = Some(now);
                    std::thread::sleep(BEAT);
                }
            })
            .ok();
        Self { stop, progress, thread }
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
