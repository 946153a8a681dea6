//! Training-step benchmark: forward in training mode + backward of tiny-`YOLOv3`, and of its
//! max-pooling layers alone in several formulations, on the CPU.
//!
//! Why: a profile of `yolo3 train` put libtorch's `cpu_max_pool` kernel at ~12 % of all samples,
//! so the pooling formulation in `network::ops` is chosen by measuring these medians (not a
//! timed test). Nets: the built-in preset (official cfg with hidden widths / 4) at 160 batch 16
//! (the default `yolo3 train` run), and the official widths at 160 batch 16 and 416 batch 8.
//! The loss stand-in is the mean square of the heads, so only the network is timed.
//! Prints `RESULT <what> <median ms> <iterations> <min ms>` lines. Threads: 2
//! (`YOLO3_BENCH_THREADS`); `YOLO3_BENCH_SCALE` scales the iterations.

#![allow(clippy::print_stdout, missing_docs)]

mod common;

use common::{cfg_dir, env_number, time};
use tch::{Device, Kind, Tensor};
use yolo3_model::{Config, Darknet};

/// The official tiny cfg with every hidden width divided by `divisor` (heads keep 255).
fn tiny_text(divisor: i64) -> Result<String, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(cfg_dir().join("yolov3-tiny.cfg"))?;
    Ok(text
        .lines()
        .map(|line| match line.trim().strip_prefix("filters=").map(str::parse::<i64>) {
            Some(Ok(n)) if n != 255 => format!("filters={}", n / divisor),
            _ => line.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\n"))
}

fn net_step(
    label: &str,
    divisor: i64,
    side: i64,
    batch: i64,
    iterations: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let net = Darknet::new(Config::parse(&tiny_text(divisor)?, label)?, Device::Cpu)?;
    let x = Tensor::rand([batch, 3, side, side], (Kind::Float, Device::Cpu));
    let mut variables: Vec<Tensor> = net.var_store().trainable_variables();
    time(&format!("step:{label}@{side}x{batch}"), iterations, || {
        let heads = net.forward_t(&x, true).expect("forward");
        let loss = heads.iter().map(|h| h.square().mean(Kind::Float)).sum::<Tensor>();
        loss.backward();
        for v in &mut variables {
            v.zero_grad();
        }
    });
    Ok(())
}

type Pool = fn(&Tensor) -> Tensor;

/// 2x2 stride-2 pooling formulations, forward + backward through a sum.
fn pools() -> [(&'static str, Pool); 3] {
    [
        ("max_pool2d", |x| x.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false)),
        ("view_amax", |x| {
            let s = x.size();
            x.view([s[0], s[1], s[2] / 2, 2, s[3] / 2, 2]).amax([3, 5], false)
        }),
        ("strided_maximum", |x| {
            let s = x.size();
            let cols = x.slice(3, 0, s[3], 2).maximum(&x.slice(3, 1, s[3], 2));
            cols.slice(2, 0, s[2], 2).maximum(&cols.slice(2, 1, s[2], 2))
        }),
    ]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let threads = env_number("YOLO3_BENCH_THREADS", 2.0) as i32;
    let scale = env_number("YOLO3_BENCH_SCALE", 1.0);
    let n = |k: f64| ((k * scale).round() as usize).max(1);
    tch::set_num_threads(threads);
    tch::manual_seed(0);
    println!("# libtorch threads = {}", tch::get_num_threads());
    // (channel divisor, side, batch) of the two nets; the first pooling input is the largest.
    for (divisor, side, batch) in [(4, 160, 16), (1, 416, 8)] {
        for (c, hw) in [(16 / divisor, side), (32 / divisor, side / 2), (256 / divisor, side / 16)]
        {
            let x = Tensor::randn([batch, c, hw, hw], (Kind::Float, Device::Cpu))
                .set_requires_grad(true);
            for (name, pool) in pools() {
                time(&format!("pool:{name}:{batch}x{c}x{hw}"), n(20.0), || {
                    pool(&x).sum(Kind::Float).backward();
                    let mut g = x.grad();
                    let _ = g.zero_();
                });
            }
        }
    }
    net_step("tiny/4", 4, 160, 16, n(10.0))?;
    net_step("tiny", 1, 160, 16, n(5.0))?;
    net_step("tiny", 1, 416, 8, n(3.0))?;
    Ok(())
}
