//! Finite-difference check of the fused loss gradient, in `f64`, on small random shapes and both
//! layouts, for the keras and darknet ignore rules.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use yolo3_core::loss::yolo_loss_with_best_iou;
use yolo3_core::{
    assign_targets, Anchors, BoxXyxy, HeadConfig, IgnoreScope, LabeledBox, Layout, LossOptions,
    TinyMask,
};

fn random_boxes(rng: &mut ChaCha8Rng, config: &HeadConfig, n: usize) -> Vec<LabeledBox> {
    (0..n)
        .map(|_| {
            let (iw, ih) = (config.input_w as f32, config.input_h as f32);
            let w = rng.random_range(4.0..iw * 0.8);
            let h = rng.random_range(4.0..ih * 0.8);
            let x = rng.random_range(0.0..iw - w);
            let y = rng.random_range(0.0..ih - h);
            LabeledBox {
                bbox: BoxXyxy::new(x.floor(), y.floor(), (x + w).floor(), (y + h).floor()),
                class: rng.random_range(0..config.num_classes),
            }
        })
        .collect()
}

fn check(config: &HeadConfig, layout: Layout, scope: IgnoreScope, seed: u64) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let batch = 2;
    let boxes: Vec<Vec<LabeledBox>> =
        (0..batch).map(|b| random_boxes(&mut rng, config, 2 + b)).collect();
    let refs: Vec<&[LabeledBox]> = boxes.iter().map(Vec::as_slice).collect();
    let targets = assign_targets(config, &refs).unwrap();
    let layers = config.num_layers();
    let mut preds: Vec<Vec<f64>> = (0..layers)
        .map(|l| {
            (0..config.head_shape(l, batch).len()).map(|_| rng.random_range(-2.0..2.0)).collect()
        })
        .collect();
    let options = LossOptions { ignore_thresh: 0.3, ignore_scope: scope };

    let eval = |preds: &[Vec<f64>], grads: &mut Vec<Vec<f64>>, best: &mut Vec<Vec<f64>>| {
        let inputs = config.inputs(batch, preds);
        let mut g: Vec<&mut [f64]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
        let mut b: Vec<&mut [f64]> = best.iter_mut().map(Vec::as_mut_slice).collect();
        yolo_loss_with_best_iou(config, layout, batch, &inputs, &targets, &options, &mut g, &mut b)
            .unwrap()
            .total
    };
    let mut grads: Vec<Vec<f64>> = preds.iter().map(|p| vec![0.0; p.len()]).collect();
    let mut best: Vec<Vec<f64>> = (0..layers)
        .map(|l| {
            let s = config.head_shape(l, batch);
            vec![0.0; s.batch * s.height * s.width * s.anchors]
        })
        .collect();
    eval(&preds, &mut grads, &mut best);
    let analytic = grads.clone();
    let base_best = best.clone();
    let mut scratch_g = grads.clone();
    let mut scratch_b = best.clone();

    let h = 1e-6;
    let mut checked = 0;
    for l in 0..layers {
        let shape = config.head_shape(l, batch);
        let strides = layout.strides(&shape);
        for _ in 0..150 {
            let idx = rng.random_range(0..preds[l].len());
            // Skip slots whose ignore decision sits near the threshold: the loss is not
            // differentiable across it.
            let image = idx / shape.image_len();
            let within = idx % shape.image_len();
            let (channel, row, col) = match layout {
                Layout::Nchw => (
                    within / strides.channel,
                    (within % strides.channel) / strides.row,
                    within % strides.row,
                ),
                Layout::Nhwc => (
                    within % strides.col,
                    within / strides.row,
                    (within % strides.row) / strides.col,
                ),
            };
            let slot = channel / shape.fields();
            let b = base_best[l]
                [((image * shape.height + row) * shape.width + col) * shape.anchors + slot];
            if b.is_finite() && (b - options.ignore_thresh).abs() < 1e-3 {
                continue;
            }
            let orig = preds[l][idx];
            preds[l][idx] = orig + h;
            let up = eval(&preds, &mut scratch_g, &mut scratch_b);
            preds[l][idx] = orig - h;
            let down = eval(&preds, &mut scratch_g, &mut scratch_b);
            preds[l][idx] = orig;
            let numeric = (up - down) / (2.0 * h);
            let a = analytic[l][idx];
            assert!(
                (numeric - a).abs() <= 1e-6 + 1e-5 * a.abs(),
                "layer {l} index {idx} (channel {channel}): analytic {a} vs numeric {numeric}"
            );
            checked += 1;
        }
    }
    assert!(checked > 200, "only {checked} elements checked");
}

#[test]
fn gradient_matches_finite_differences_three_layers() {
    let config = HeadConfig::new(64, 96, 3, Anchors::yolov3()).unwrap();
    for (seed, layout) in [(1, Layout::Nchw), (2, Layout::Nhwc)] {
        check(&config, layout, IgnoreScope::SameLayer, seed);
        check(&config, layout, IgnoreScope::Image, seed + 10);
    }
}

#[test]
fn gradient_matches_finite_differences_tiny() {
    let config = HeadConfig::new(96, 64, 2, Anchors::tiny(TinyMask::Darknet)).unwrap();
    check(&config, Layout::Nchw, IgnoreScope::SameLayer, 3);
}
