//! Forward + backward of the fused loss at the size the issue names: batch 16, 416x416,
//! 80 classes, 20 boxes per image, logits ~ N(0, 1.5) as in `shared/peers/loss_bench.py`.
//! Peers (TensorFlow, PyTorch) are timed on the same inputs by `scripts/bench-loss.sh`.

use criterion::{criterion_group, criterion_main, Criterion};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use yolo3_core::{
    assign_targets, yolo_loss, Anchors, BoxXyxy, HeadConfig, LabeledBox, Layout, LossOptions,
};

fn normal(rng: &mut ChaCha8Rng, sigma: f32) -> f32 {
    // Box-Muller; the bench needs plausible logits, not a particular generator.
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    sigma * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

fn bench_loss(c: &mut Criterion) {
    let (batch, size, classes) = (16, 416, 80);
    let config = HeadConfig::new(size, size, classes, Anchors::yolov3()).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(0);
    let boxes: Vec<Vec<LabeledBox>> = (0..batch)
        .map(|_| {
            (0..20)
                .map(|_| {
                    let s = size as f32;
                    let w = (rng.random_range(6f32.ln()..(s * 0.95).ln())).exp().round();
                    let h = (w * normal(&mut rng, 0.5).exp()).round().clamp(6.0, s);
                    let w = w.clamp(6.0, s);
                    let x = rng.random_range(0.0..=s - w).floor();
                    let y = rng.random_range(0.0..=s - h).floor();
                    LabeledBox {
                        bbox: BoxXyxy::new(x, y, x + w, y + h),
                        class: rng.random_range(0..classes),
                    }
                })
                .collect()
        })
        .collect();
    let refs: Vec<&[LabeledBox]> = boxes.iter().map(Vec::as_slice).collect();
    let targets = assign_targets(&config, &refs).unwrap();
    let preds: Vec<Vec<f32>> = (0..3)
        .map(|l| (0..config.head_shape(l, batch).len()).map(|_| normal(&mut rng, 1.5)).collect())
        .collect();
    let mut grads: Vec<Vec<f32>> = preds.iter().map(|p| vec![0.0; p.len()]).collect();
    let inputs = config.inputs(batch, &preds);
    let mut group = c.benchmark_group("loss_fwd_bwd_b16_416_c80");
    for layout in [Layout::Nchw, Layout::Nhwc] {
        group.bench_function(format!("{layout:?}"), |b| {
            b.iter(|| {
                let mut g: Vec<&mut [f32]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
                yolo_loss(
                    &config,
                    layout,
                    batch,
                    &inputs,
                    &targets,
                    &LossOptions::default(),
                    &mut g,
                )
                .unwrap()
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench_loss);
criterion_main!(benches);
