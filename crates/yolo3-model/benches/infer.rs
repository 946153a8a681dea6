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
//! `YOLO3_BENCH_SCALE` (default 1); `YOLO3_BENCH_ONLY=<net>:<batch>` runs one configuration
//! (the script interleaves the two sides per configuration so load drift hits both alike).

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
    let only = std::env::var("YOLO3_BENCH_ONLY").ok();
    for (cfg_name, label, batch, iterations) in RUNS {
        if only.as_ref().is_some_and(|o| *o != format!("{label}:{batch}")) {
            continue;
        }
        let net = Darknet::new(Config::from_file(cfg_dir().join(cfg_name))?, Device::Cpu)?;
        let x = Tensor::rand([batch, 3, 416, 416], (Kind::Float, Device::Cpu));
        let iterations = ((iterations as f64 * scale).round() as usize).max(1);
        let _guard = tch::no_grad_guard();
        time(&format!("{label} {batch}"), iterations, || {
            drop(net.forward_t(&x, false).expect("forward"));
        });
        let folded = InferenceNet::with_engine(&net, ConvEngine::Plain)?;
        time(&format!("{label}+folded {batch}"), iterations, || {
            drop(folded.infer(&x).expect("folded forward"));
        });
        let fused = InferenceNet::with_engine(&net, ConvEngine::OneDnn(Winograd::Never))?;
        if fused.engine() == ConvEngine::Plain {
            println!("# this libtorch has no oneDNN: no fused or winograd rows");
            continue;
        }
        time(&format!("{label}+fused {batch}"), iterations, || {
            drop(fused.infer(&x).expect("fused forward"));
        });
        let winograd = InferenceNet::new(&net)?;
        time(&format!("{label}+winograd {batch}"), iterations, || {
            drop(winograd.infer(&x).expect("winograd forward"));
        });
    }
    Ok(())
}
