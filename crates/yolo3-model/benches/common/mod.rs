//! What the model benchmarks share: their environment knobs, the shared cfg folder and the
//! timing loop that prints `RESULT <label> <median ms> <iterations> <min ms>` lines.

use std::path::PathBuf;
use std::time::Instant;

/// A numeric environment variable, or `default`.
pub(crate) fn env_number(name: &str, default: f64) -> f64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `../shared/models/cfg` beside the checkout.
pub(crate) fn cfg_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/models/cfg"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        f64::midpoint(v[n / 2 - 1], v[n / 2])
    }
}

/// Runs `f` once untimed, then `iterations` times; prints the `RESULT` line and returns the
/// median in ms.
pub(crate) fn time(label: &str, iterations: usize, mut f: impl FnMut()) -> f64 {
    f();
    let mut times = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let start = Instant::now();
        f();
        times.push(start.elapsed().as_secs_f64() * 1e3);
    }
    let min = times.iter().copied().fold(f64::INFINITY, f64::min);
    let m = median(times);
    println!("RESULT {label} {m:.2} {iterations} {min:.2}");
    m
}
