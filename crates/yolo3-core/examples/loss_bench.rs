//! Times the fused loss on the exact inputs `shared/peers/loss_bench.py --dump` wrote, so that
//! Rust, TensorFlow and PyTorch are compared on identical data (`scripts/bench-loss.sh`).
//!
//! ```text
//! cargo run --release -p yolo3-core --example loss_bench -- inputs.safetensors [runs] [warmup]
//! ```
//! Prints one JSON line with the median wall and CPU time, like the peer script.

use std::time::Instant;

use safetensors::SafeTensors;
use yolo3_core::{Anchors, HeadConfig, HeadInput, Layout, LossOptions, Targets};

fn f32s(st: &SafeTensors<'_>, name: &str) -> (Vec<usize>, Vec<f32>) {
    let view = st.tensor(name).unwrap_or_else(|e| panic!("tensor {name}: {e}"));
    let data =
        view.data().chunks_exact(4).map(|b| f32::from_le_bytes(b.try_into().unwrap())).collect();
    (view.shape().to_vec(), data)
}

fn cpu_time() -> f64 {
    // Time on the CPU of every thread of this process (rayon's workers included), in seconds,
    // from each thread's `schedstat` (Linux, nanoseconds; `/proc/self/stat` counts 10 ms ticks).
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return 0.0 };
    let ns: u64 = tasks
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum();
    ns as f64 * 1e-9
}

/// `(B, H, W, C)` to `(B, C, H, W)`.
fn to_nchw(data: &[f32], shape: &[usize]) -> Vec<f32> {
    let (b, h, w, c) = (shape[0], shape[1], shape[2], shape[3]);
    let mut out = vec![0.0; data.len()];
    for n in 0..b {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    out[((n * c + ch) * h + y) * w + x] = data[((n * h + y) * w + x) * c + ch];
                }
            }
        }
    }
    out
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[allow(clippy::print_stdout)] // the JSON line is the example's output
fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: loss_bench INPUTS.safetensors [runs] [warmup]");
    let runs: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(25);
    let warmup: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(5);
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let meta = meta.metadata().clone().unwrap_or_default();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let get = |k: &str| meta[k].parse::<usize>().unwrap();
    let (_, anchors) = f32s(&st, "anchors");
    let anchors = Anchors::with_default_mask(
        anchors.chunks_exact(2).map(|p| [p[0], p[1]]).collect(),
        yolo3_core::TinyMask::Keras,
    )
    .unwrap();
    let config =
        HeadConfig::new(get("input_h"), get("input_w"), get("num_classes"), anchors).unwrap();
    let layers = config.num_layers();
    let preds: Vec<(Vec<usize>, Vec<f32>)> =
        (0..layers).map(|l| f32s(&st, &format!("pred_{l}"))).collect();
    let batch = preds[0].0[0];
    let y_true: Vec<Vec<f32>> = (0..layers).map(|l| f32s(&st, &format!("y_true_{l}")).1).collect();
    let y_refs: Vec<&[f32]> = y_true.iter().map(Vec::as_slice).collect();
    let targets = Targets::from_dense(&config, batch, &y_refs).unwrap();
    let options = LossOptions {
        ignore_thresh: meta.get("ignore_thresh").map_or(0.5, |v| v.parse().unwrap()),
        ..LossOptions::default()
    };
    // The same values in the layout a conv net emits (transposed outside the timed loop).
    let nchw: Vec<Vec<f32>> = preds.iter().map(|(s, p)| to_nchw(p, s)).collect();
    let mut results = Vec::new();
    for layout in [Layout::Nhwc, Layout::Nchw] {
        let inputs: Vec<HeadInput<'_, f32>> = preds
            .iter()
            .zip(&nchw)
            .map(|((s, p), t)| HeadInput {
                data: if layout == Layout::Nhwc { p } else { t },
                height: s[1],
                width: s[2],
                channels: s[3],
            })
            .collect();
        let mut grads: Vec<Vec<f32>> = preds.iter().map(|(_, p)| vec![0.0; p.len()]).collect();
        let (mut wall, mut cpu) = (Vec::new(), Vec::new());
        let mut loss = 0.0;
        for i in 0..warmup + runs {
            let (t0, c0) = (Instant::now(), cpu_time());
            let mut g: Vec<&mut [f32]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
            loss =
                yolo3_core::yolo_loss(&config, layout, batch, &inputs, &targets, &options, &mut g)
                    .unwrap()
                    .total;
            let (dt, dc) = (t0.elapsed().as_secs_f64(), cpu_time() - c0);
            if i >= warmup {
                wall.push(dt * 1e3);
                cpu.push(dc * 1e3);
            }
        }
        let min = wall.iter().copied().fold(f64::INFINITY, f64::min);
        results.push((layout, loss, median(wall), median(cpu), min));
    }
    let (_, loss, wall, cpu, min) = results[0];
    let (_, _, wall_nchw, _, min_nchw) = results[1];
    println!(
        "{{\"framework\": \"rust\", \"threads\": {}, \"runs\": {runs}, \"loss\": {loss}, \"median_ms\": {wall:.3}, \"median_cpu_ms\": {cpu:.3}, \"min_ms\": {min:.3}, \"nchw_median_ms\": {wall_nchw:.3}, \"nchw_min_ms\": {min_nchw:.3}}}",
        rayon::current_num_threads(),
    );
}
