//! Two ranks as two threads of this test, joined through a real TCPStore and Gloo on
//! 127.0.0.1: the collectives against sums computed here, and the lost-rank diagnosis.

use std::time::{Duration, Instant};

use tch::{Kind, Tensor};
use yolo3_dist::{Backend, DistError, Lost, ProcessGroup, WorldEnv};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn env(rank: usize, world: usize, port: u16) -> WorldEnv {
    WorldEnv {
        rank,
        world,
        local_rank: rank,
        local_world: world,
        master_addr: "127.0.0.1".into(),
        master_port: port,
    }
}

/// Runs `f(rank, group)` on every rank of a fresh Gloo world of `world` threads.
/// The collectives' timeout where a failure must be found out by other means (the heartbeat,
/// a closed connection, a message), and the bound the tests put on that: half of it, so a
/// loaded machine (seconds instead of milliseconds) still passes, and a diagnosis that
/// waited for the timeout still fails.
const SLOW: Duration = Duration::from_secs(120);

fn with_world<T: Send + 'static>(
    world: usize,
    f: impl Fn(usize, ProcessGroup) -> T + Send + Sync + Clone + 'static,
) -> Vec<T> {
    with_world_on(world, Backend::Gloo, SLOW, f)
}

/// As [`with_world`] on `backend`, every collective timing out after `timeout`.
fn with_world_on<T: Send + 'static>(
    world: usize,
    backend: Backend,
    timeout: Duration,
    f: impl Fn(usize, ProcessGroup) -> T + Send + Sync + Clone + 'static,
) -> Vec<T> {
    let port = free_port();
    let handles: Vec<_> = (0..world)
        .map(|rank| {
            let f = f.clone();
            std::thread::spawn(move || {
                let group = ProcessGroup::join(&env(rank, world, port), timeout).unwrap();
                group.start(backend).unwrap();
                f(rank, group)
            })
        })
        .collect();
    handles.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn mean_all_reduce_broadcast_and_store_messages() {
    let results = with_world(2, |rank, group| {
        // Bucketed mean: several tensors of different shapes, values depending on the rank.
        let r = rank as f64;
        let tensors = vec![
            Tensor::from_slice(&[1.0f32 + r as f32, 2.0, 3.0]),
            Tensor::ones([2, 2], (Kind::Float, tch::Device::Cpu)) * (10.0 * (r + 1.0)),
        ];
        group.all_reduce_mean(&tensors).unwrap();
        let mean: Vec<Vec<f32>> =
            tensors.iter().map(|t| Vec::<f32>::try_from(t.view([-1])).unwrap()).collect();
        let weights = Tensor::from_slice(&[r as f32 + 5.0, -1.0]);
        group.broadcast(&[weights.shallow_clone()], 0, "weights").unwrap();
        let broadcast = Vec::<f32>::try_from(&weights).unwrap();
        if rank == 0 {
            group.publish("run-dir", b"runs/train/exp3").unwrap();
        }
        let fetched = group.fetch("run-dir", 0).unwrap();
        assert!(group.reduce_seconds() > 0.0);
        (mean, broadcast, fetched)
    });
    for (mean, broadcast, fetched) in results {
        assert_eq!(mean[0], vec![1.5, 2.0, 3.0]);
        assert_eq!(mean[1], vec![15.0; 4]);
        assert_eq!(broadcast, vec![5.0, -1.0]);
        assert_eq!(fetched, b"runs/train/exp3");
    }
}

#[test]
fn replica_sum_is_differentiable() {
    // y = sum over ranks of (w_r * x_r); loss_r = 3 * y on each rank. d loss_r / d x_r = 3 w_r
    // per rank's own loss, and through the sum every rank's loss reaches every x: the
    // gradient of x_r is the sum over ranks of 3 * w_r = 3 * world * w_r.
    let grads = with_world(2, |rank, group| {
        let x = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let w = (rank + 1) as f64;
        let y = group.replica_sum(&(&x * w)).unwrap();
        assert_eq!(Vec::<f32>::try_from(&y.detach()).unwrap(), vec![3.0, 6.0]);
        (y * 3.0).sum(Kind::Float).backward();
        (rank, Vec::<f32>::try_from(&x.grad()).unwrap())
    });
    for (rank, g) in grads {
        let expected = 3.0 * 2.0 * (rank + 1) as f32;
        assert_eq!(g, vec![expected; 2]);
    }
}

#[test]
fn a_lost_rank_is_named_by_the_survivor() {
    let results = with_world(2, |rank, group| {
        let t = Tensor::from_slice(&[1.0f32]);
        group.all_reduce_sum(&t, "warm-up").unwrap();
        if rank == 1 {
            drop(group); // its heartbeat stops and its connections close
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
        let started = Instant::now();
        let error = group.all_reduce_sum(&t, "the step").unwrap_err();
        Some((error, started.elapsed()))
    });
    let (error, took) = results.into_iter().flatten().next().unwrap();
    match &error {
        DistError::Collective { lost, .. } => assert_eq!(*lost, Lost::Silent(vec![1]), "{error}"),
        other => panic!("{other}"),
    }
    assert!(error.to_string().contains("lost rank 1"), "{error}");
    assert!(took < SLOW / 2, "{took:?}");
}

#[test]
fn a_rank_that_fails_on_its_own_is_reported_with_its_message() {
    let results = with_world(3, |rank, group| {
        let t = Tensor::from_slice(&[1.0f32]);
        group.all_reduce_sum(&t, "warm-up").unwrap();
        if rank == 2 {
            group.report_failure("reading data/7.jpg: truncated file");
            return None;
        }
        let started = Instant::now();
        let error = group.all_reduce_sum(&t, "the step").unwrap_err();
        Some((error.to_string(), started.elapsed()))
    });
    for (error, took) in results.into_iter().flatten() {
        assert!(error.contains("rank 2 failed: reading data/7.jpg: truncated file"), "{error}");
        assert!(took < SLOW / 2, "{took:?}");
    }
}

#[test]
fn nccl_backend_is_built() {
    // The wheel's libtorch has CUDA, so the shim must have been built with c10d's NCCL.
    assert!(yolo3_dist::has_nccl(), "libtorch has CUDA but the NCCL backend was not built");
    assert_eq!(Backend::for_device(tch::Device::Cuda(1)), Backend::Nccl);
    assert_eq!(Backend::for_device(tch::Device::Cpu), Backend::Gloo);
}

/// Where the build found fewer than two GPUs this test is ignored, and the summary says so
/// with the reason (`cfg(yolo3_two_gpus)`, see build.rs).
#[test]
#[cfg_attr(not(yolo3_two_gpus), ignore = "needs two NVIDIA GPUs (one per NCCL rank)")]
fn nccl_all_reduce_on_two_gpus() {
    let gpus = tch::Cuda::device_count();
    assert!(gpus >= 2, "the build saw two GPUs, libtorch sees {gpus}");
    let results = with_world_on(2, Backend::Nccl, Duration::from_secs(60), |rank, group| {
        let device = tch::Device::Cuda(rank);
        let t = Tensor::from_slice(&[rank as f32 + 1.0, 4.0]).to_device(device);
        group.all_reduce_mean(&[t.shallow_clone()]).unwrap();
        Vec::<f32>::try_from(&t.to_device(tch::Device::Cpu)).unwrap()
    });
    for r in results {
        assert_eq!(r, vec![1.5, 4.0]);
    }
}

#[test]
fn a_stuck_rank_is_named_at_the_timeout() {
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let results = with_world_on(2, Backend::Gloo, Duration::from_secs(3), move |rank, group| {
        let t = Tensor::from_slice(&[1.0f32]);
        group.set_progress(1);
        group.all_reduce_sum(&t, "step 1").unwrap();
        if rank == 1 {
            // Alive (beating) but never reaching step 2's collective, until rank 0 has its
            // diagnosis (however slow the machine is).
            let started = Instant::now();
            while !done.load(std::sync::atomic::Ordering::SeqCst)
                && started.elapsed() < Duration::from_secs(300)
            {
                std::thread::sleep(Duration::from_millis(20));
            }
            return None;
        }
        group.set_progress(2);
        let error = group.all_reduce_sum(&t, "step 2").unwrap_err();
        done.store(true, std::sync::atomic::Ordering::SeqCst);
        Some(error)
    });
    let error = results.into_iter().flatten().next().unwrap();
    match &error {
        DistError::Collective { lost, .. } => {
            assert_eq!(*lost, Lost::Behind { ranks: vec![(1, 1)], furthest: 2 }, "{error}");
        }
        other => panic!("{other}"),
    }
    assert!(error.to_string().contains("rank 1 at step 1"), "{error}");
}
