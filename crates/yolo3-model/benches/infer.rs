//! Inference benchmark of `YOLOv3` and tiny-`YOLOv3` at 416x416, batch 1 and 8, on the CPU.
//!
//! Not a timed test: it prints one `RESULT <net> <batch> <median ms> <iterations> <min ms>`
//! line per configuration for `scripts/bench-model.sh`, which runs the `PyTorch` twin
//! (`benches/torch_infer.py`) in the same go and prints the ratios. Variables are randomly
//! initialised (the full `YOLOv3` weights are not shipped); timing does not depend on them.
//! Each configuration is timed four ways: `<net>` is the network as trained
//! (`Darknet::forward_t`, batch norm its own operation), `<net>+folded` the [`InferenceNet`]
//! with batch norm folded on the plain engine (NCHW, libtorch's convolution), `<net>+fused` the
//! [`InferenceNet`] with oneDNN's fused convolutions on channels-last activations (kernels
//! reordered once) and `<net>+winograd` the one `detect`, `eval` and validation run (the same,
//! with Winograd F(2x2, 3x3) for the wide 3x3 convolutions), so each step's gain shows.
//! Threads: 2 (`YOLO3_BENCH_THREADS`). Iterations per configuration can be scaled with
//! `YOLO3_BENCH_SCALE` (default 1); `YOLO3_BENCH_ONLY=<net>:<batch>` runs one configuration,
//! `<net>:<batch>:<way>` one row of it (`plain`, `folded`, `fused`, `winograd`; the scripts
//! interleave the two sides per configuration so load drift hits both alike).

#![allow(clippy::print_stdout, missing_docs)]

mod common;

use common::{cfg_dir, env_number, time};
use tch::{Device, Kind, Tensor};
use yolo3_model::{Config, ConvEngine, Darknet, InferenceNet, Winograd};

/// (cfg file, label, batch, timed iterations).
const RUNS: [(&str, &str, i64, usize); 4] = [
    ("yolov3-tiny.cfg", "tiny-yolov3", 1, 20),
    ("yolov3-tiny.cfg", "tiny-yolov3", 8, 6),
    ("yolov3.cfg", "yolov3", 1, 5),
    ("yolov3.cfg", "yolov3", 8, 3),
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let threads = env_number("YOLO3_BENCH_THREADS", 2.0) as i32;
    let scale = env_number("YOLO3_BENCH_SCALE", 1.0);
    tch::set_num_threads(threads);
    tch::manual_seed(0);
    println!("# tch, libtorch threads = {}", tch::get_num_threads());
    // `<net>:<batch>` or `<net>:<batch>:<way>` (way: plain, folded, fused, winograd).
    let only = std::env::var("YOLO3_BENCH_ONLY").ok();
    let only: Vec<&str> = only.as_deref().map(|o| o.split(':').collect()).unwrap_or_default();
    for (cfg_name, label, batch, iterations) in RUNS {
        if only.len() >= 2 && only[..2] != [label, batch.to_string().as_str()] {
            continue;
        }
        let runs = |way: &str| only.get(2).is_none_or(|w| *w == way);
        let net = Darknet::new(Config::from_file(cfg_dir().join(cfg_name))?, Device::Cpu)?;
        let x = Tensor::rand([batch, 3, 416, 416], (Kind::Float, Device::Cpu));
        let iterations = ((iterations as f64 * scale).round() as usize).max(1);
        let _guard = tch::no_grad_guard();
        if runs("plain") {
            time(&format!("{label} {batch}"), iterations, || {
                drop(net.forward_t(&x, false).expect("forward"));
            });
        }
        let engines = [
            ("folded", ConvEngine::Plain),
            ("fused", ConvEngine::OneDnn(Winograd::Never)),
            ("winograd", ConvEngine::OneDnn(Winograd::WhereFaster)),
        ];
        for (way, engine) in engines {
            if !runs(way) {
                continue;
            }
            // One prepared network at a time, as `detect` has.
            let prepared = InferenceNet::with_engine(&net, engine)?;
            if engine != ConvEngine::Plain && prepared.engine() == ConvEngine::Plain {
                println!("# this libtorch has no oneDNN: no {way} row");
                continue;
            }
            time(&format!("{label}+{way} {batch}"), iterations, || {
                drop(prepared.infer(&x).expect("forward"));
            });
        }
    }
    Ok(())
}
