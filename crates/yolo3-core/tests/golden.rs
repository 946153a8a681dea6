//! Golden tests: every case of `shared/golden` (or of the folders in `YOLO3_GOLDEN_DIRS`,
//! colon-separated) against the float64 reference of keras-yolo3 (`shared/golden/README.md`).
//!
//! Tolerances are the README's "Suggested test tolerances": the float32 kernels against the
//! float64 values at float32 tolerances, and the float64 kernels at float64 tolerances. Discrete
//! results (targets, ignore masks, decode selection and order) must match exactly.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use safetensors::{Dtype, SafeTensors};
use yolo3_core::loss::yolo_loss_with_best_iou;
use yolo3_core::targets::best_anchor;
use yolo3_core::{
    assign_targets, decode, Anchors, BoxXyxy, DecodeOptions, HeadConfig, LabeledBox, Layout,
    LossOptions, LossParts, Real, Targets,
};

fn golden_dirs() -> Vec<PathBuf> {
    match std::env::var("YOLO3_GOLDEN_DIRS") {
        Ok(dirs) => dirs.split(':').filter(|d| !d.is_empty()).map(PathBuf::from).collect(),
        Err(_) => vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/golden")],
    }
}

fn golden_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = golden_dirs()
        .iter()
        .flat_map(|dir| {
            std::fs::read_dir(dir)
                .unwrap_or_else(|e| panic!("golden folder {}: {e}", dir.display()))
                .map(|entry| entry.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
                .collect::<Vec<_>>()
        })
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no golden file found in {:?}", golden_dirs());
    files
}

/// One golden file: its tensors as f64 (with shapes) and its metadata.
struct Case {
    name: String,
    meta: HashMap<String, String>,
    tensors: HashMap<String, (Vec<usize>, Vec<f64>)>,
}

impl Case {
    fn load(path: &Path) -> Self {
        let bytes = std::fs::read(path).unwrap();
        let (_, metadata) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = metadata.metadata().clone().unwrap_or_default();
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let tensors = st
            .tensors()
            .into_iter()
            .map(|(name, view)| {
                let data = view.data();
                let values: Vec<f64> = match view.dtype() {
                    Dtype::F32 => data
                        .chunks_exact(4)
                        .map(|b| f64::from(f32::from_le_bytes(b.try_into().unwrap())))
                        .collect(),
                    Dtype::F64 => data
                        .chunks_exact(8)
                        .map(|b| f64::from_le_bytes(b.try_into().unwrap()))
                        .collect(),
                    Dtype::I32 => data
                        .chunks_exact(4)
                        .map(|b| f64::from(i32::from_le_bytes(b.try_into().unwrap())))
                        .collect(),
                    other => panic!("{}: {name}: unexpected dtype {other:?}", path.display()),
                };
                (name, (view.shape().to_vec(), values))
            })
            .collect();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        Self { name, meta, tensors }
    }

    fn meta<T: std::str::FromStr>(&self, key: &str) -> T {
        self.meta[key].parse().unwrap_or_else(|_| panic!("{}: metadata {key}", self.name))
    }

    fn get(&self, name: &str) -> &(Vec<usize>, Vec<f64>) {
        self.tensors.get(name).unwrap_or_else(|| panic!("{}: no tensor {name}", self.name))
    }

    fn f32s(&self, name: &str) -> Vec<f32> {
        self.get(name).1.iter().map(|&v| v as f32).collect()
    }

    fn scalar(&self, name: &str) -> f64 {
        self.get(name).1[0]
    }

    fn num_layers(&self) -> usize {
        self.meta("num_layers")
    }

    fn config(&self) -> HeadConfig {
        let sizes: Vec<[f32; 2]> =
            self.f32s("anchors").chunks_exact(2).map(|p| [p[0], p[1]]).collect();
        let mask: Vec<Vec<usize>> = serde_json::from_str(&self.meta["anchor_mask"]).unwrap();
        let anchors = Anchors::new(sizes, mask).unwrap();
        HeadConfig::new(
            self.meta("input_h"),
            self.meta("input_w"),
            self.meta("num_classes"),
            anchors,
        )
        .unwrap()
    }

    /// `boxes` (B, 20, 5) as per-image lists (padding rows included: the core skips them).
    fn boxes(&self) -> Vec<Vec<LabeledBox>> {
        let (shape, values) = self.get("boxes");
        values
            .chunks_exact(shape[1] * 5)
            .map(|image| {
                image
                    .chunks_exact(5)
                    .map(|r| LabeledBox {
                        bbox: BoxXyxy::new(r[0] as f32, r[1] as f32, r[2] as f32, r[3] as f32),
                        class: r[4] as usize,
                    })
                    .collect()
            })
            .collect()
    }
}

/// NHWC `(B, H, W, C)` to NCHW `(B, C, H, W)`, and back with `inverse`.
fn transpose<T: Copy + Default>(
    data: &[T],
    b: usize,
    h: usize,
    w: usize,
    c: usize,
    inverse: bool,
) -> Vec<T> {
    let mut out = vec![T::default(); data.len()];
    for n in 0..b {
        for y in 0..h {
            for x in 0..w {
                for ch in 0..c {
                    let nhwc = ((n * h + y) * w + x) * c + ch;
                    let nchw = ((n * c + ch) * h + y) * w + x;
                    if inverse {
                        out[nhwc] = data[nchw];
                    } else {
                        out[nchw] = data[nhwc];
                    }
                }
            }
        }
    }
    out
}

fn check_targets(case: &Case, config: &HeadConfig, targets: &Targets) {
    for l in 0..case.num_layers() {
        let want = case.f32s(&format!("y_true_{l}"));
        let got = targets.to_dense(config, l);
        let diff = want.iter().zip(&got).position(|(a, b)| a.to_bits() != b.to_bits());
        assert!(diff.is_none(), "{}: y_true_{l} differs at flat index {diff:?}", case.name);
    }
    let (shape, best) = case.get("best_anchor");
    let boxes = case.boxes();
    for b in 0..shape[0] {
        for r in 0..shape[1] {
            let bb = boxes[b][r].bbox;
            let want = best[b * shape[1] + r] as i64;
            let got = if bb.width() > 0.0 {
                best_anchor(config.anchors.sizes(), bb.width(), bb.height()) as i64
            } else {
                -1
            };
            assert_eq!(got, want, "{}: best anchor of image {b} row {r}", case.name);
        }
    }
}

struct LossRun<T> {
    parts: LossParts,
    grads: Vec<Vec<T>>,
    best_iou: Vec<Vec<T>>,
}

fn run_loss<T: Real>(
    case: &Case,
    config: &HeadConfig,
    targets: &Targets,
    layout: Layout,
) -> LossRun<T> {
    let batch: usize = case.meta("batch");
    let preds: Vec<Vec<T>> = (0..case.num_layers())
        .map(|l| {
            let (shape, v) = case.get(&format!("pred_{l}"));
            let v: Vec<T> = v.iter().map(|&x| T::from_f64(x)).collect();
            match layout {
                Layout::Nhwc => v,
                Layout::Nchw => transpose(&v, shape[0], shape[1], shape[2], shape[3], false),
            }
        })
        .collect();
    let inputs = config.inputs(batch, &preds);
    let mut grads: Vec<Vec<T>> = preds.iter().map(|p| vec![T::default(); p.len()]).collect();
    let mut best_iou: Vec<Vec<T>> = (0..case.num_layers())
        .map(|l| {
            let s = config.head_shape(l, batch);
            vec![T::default(); s.batch * s.height * s.width * s.anchors]
        })
        .collect();
    let options =
        LossOptions { ignore_thresh: case.meta("ignore_thresh"), ..LossOptions::default() };
    let mut grad_refs: Vec<&mut [T]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
    let mut best_refs: Vec<&mut [T]> = best_iou.iter_mut().map(Vec::as_mut_slice).collect();
    let parts = yolo_loss_with_best_iou(
        config,
        layout,
        batch,
        &inputs,
        targets,
        &options,
        &mut grad_refs,
        &mut best_refs,
    )
    .unwrap_or_else(|e| panic!("{}: {e}", case.name));
    let grads = match layout {
        Layout::Nhwc => grads,
        Layout::Nchw => grads
            .iter()
            .enumerate()
            .map(|(l, g)| {
                let shape = &case.get(&format!("pred_{l}")).0;
                transpose(g, shape[0], shape[1], shape[2], shape[3], true)
            })
            .collect(),
    };
    LossRun { parts, grads, best_iou }
}

fn close(got: f64, want: f64, atol: f64, rtol: f64) -> bool {
    (got - want).abs() <= atol + rtol * want.abs()
}

fn check_loss<T: Real>(
    case: &Case,
    run: &LossRun<T>,
    what: &str,
    loss_rtol: f64,
    grad_atol: f64,
    grad_rtol: f64,
) {
    let p = &run.parts;
    for (name, got) in [
        ("loss", p.total),
        ("xy_loss", p.xy),
        ("wh_loss", p.wh),
        ("confidence_loss", p.confidence),
        ("class_loss", p.class),
    ] {
        let want = case.scalar(name);
        assert!(close(got, want, 0.0, loss_rtol), "{} {what}: {name} {got} vs {want}", case.name);
    }
    let layer_losses = &case.get("layer_losses").1;
    for (l, parts) in p.layers.iter().enumerate() {
        for (k, got) in parts.to_array().into_iter().enumerate() {
            let want = layer_losses[l * 4 + k];
            // Relative to the total, since a layer's term can be near zero.
            assert!(
                close(got, want, loss_rtol * case.scalar("loss"), loss_rtol),
                "{} {what}: layer {l} part {k}: {got} vs {want}",
                case.name
            );
        }
    }
    let thresh: f64 = case.meta("ignore_thresh");
    for l in 0..case.num_layers() {
        let want = &case.get(&format!("grad_pred_{l}")).1;
        let got = &run.grads[l];
        let worst = got
            .iter()
            .zip(want)
            .map(|(g, w)| ((g.to_f64() - w).abs() - grad_rtol * w.abs(), g.to_f64(), *w))
            .enumerate()
            .max_by(|a, b| a.1 .0.total_cmp(&b.1 .0))
            .unwrap();
        assert!(
            worst.1 .0 <= grad_atol,
            "{} {what}: grad_pred_{l}[{}] = {} vs {}",
            case.name,
            worst.0,
            worst.1 .1,
            worst.1 .2
        );
        let want_mask = &case.get(&format!("ignore_mask_{l}")).1;
        let want_best = &case.get(&format!("best_iou_{l}")).1;
        for (n, (best, (&m, &wb))) in
            run.best_iou[l].iter().zip(want_mask.iter().zip(want_best)).enumerate()
        {
            let mask = if best.to_f64() < thresh { 1.0 } else { 0.0 };
            assert_eq!(
                mask, m,
                "{} {what}: ignore_mask_{l}[{n}] (best IoU {best:?} vs {wb})",
                case.name
            );
            if wb.is_finite() {
                assert!(
                    close(best.to_f64(), wb, 1e-5, 0.0),
                    "{} {what}: best_iou_{l}[{n}]",
                    case.name
                );
            } else {
                assert_eq!(best.to_f64(), wb, "{} {what}: best_iou_{l}[{n}]", case.name);
            }
        }
    }
}

fn check_decode<T: Real>(
    case: &Case,
    config: &HeadConfig,
    box_atol: f64,
    score_atol: f64,
    rtol: f64,
) {
    let preds: Vec<Vec<T>> = (0..case.num_layers())
        .map(|l| case.get(&format!("pred_{l}")).1.iter().map(|&x| T::from_f64(x)).collect())
        .collect();
    let inputs = config.inputs(1, &preds);
    let image = &case.get("image_shape").1;
    let options = DecodeOptions {
        score_threshold: case.meta("score_threshold"),
        iou_threshold: case.meta("iou_threshold"),
        max_boxes: case.meta("max_boxes"),
        ..DecodeOptions::default()
    };
    let dets = decode(config, Layout::Nhwc, &inputs, &[(image[0], image[1])], &options)
        .unwrap_or_else(|e| panic!("{}: {e}", case.name))
        .remove(0);
    let classes = &case.get("out_classes").1;
    let indices = &case.get("out_indices").1;
    let boxes = &case.get("out_boxes").1;
    let scores = &case.get("out_scores").1;
    assert_eq!(dets.len(), classes.len(), "{}: number of detections", case.name);
    for (n, d) in dets.iter().enumerate() {
        assert_eq!(d.class as f64, classes[n], "{}: class of output {n}", case.name);
        assert_eq!(d.candidate as f64, indices[n], "{}: candidate of output {n}", case.name);
        let got = [d.y_min, d.x_min, d.y_max, d.x_max].map(Real::to_f64);
        for (k, g) in got.iter().enumerate() {
            let w = boxes[n * 4 + k];
            assert!(close(*g, w, box_atol, rtol), "{}: box {n}[{k}] {g} vs {w}", case.name);
        }
        let s = d.score.to_f64();
        assert!(
            close(s, scores[n], score_atol, rtol),
            "{}: score {n} {s} vs {}",
            case.name,
            scores[n]
        );
    }
}

/// Checks one golden file against every kernel it applies to; returns its kind.
fn check_case(path: &Path) -> String {
    let case = Case::load(path);
    let kind = case.meta["kind"].clone();
    let config = case.config();
    match kind.as_str() {
        "loss" | "target" => {
            let boxes = case.boxes();
            let refs: Vec<&[LabeledBox]> = boxes.iter().map(Vec::as_slice).collect();
            let targets = assign_targets(&config, &refs).unwrap();
            check_targets(&case, &config, &targets);
            if kind == "loss" {
                // The float32 kernel at float32 tolerances, in both layouts.
                for layout in [Layout::Nhwc, Layout::Nchw] {
                    let run = run_loss::<f32>(&case, &config, &targets, layout);
                    check_loss(&case, &run, &format!("f32 {layout:?}"), 1e-5, 1e-5, 0.0);
                }
                // The float64 kernel at float64 tolerances.
                let run = run_loss::<f64>(&case, &config, &targets, Layout::Nchw);
                check_loss(&case, &run, "f64 Nchw", 1e-10, 1e-12, 1e-9);
                // keras' own dense y_true gives the same targets.
                let dense: Vec<Vec<f32>> =
                    (0..case.num_layers()).map(|l| case.f32s(&format!("y_true_{l}"))).collect();
                let dense_refs: Vec<&[f32]> = dense.iter().map(Vec::as_slice).collect();
                let from_dense =
                    Targets::from_dense(&config, case.meta("batch"), &dense_refs).unwrap();
                assert_eq!(from_dense.layers, targets.layers, "{}: from_dense", case.name);
            }
        }
        "decode" => {
            check_decode::<f32>(&case, &config, 1e-3, 1e-6, 0.0);
            check_decode::<f64>(&case, &config, 1e-9, 1e-9, 1e-9);
        }
        other => panic!("{}: unknown kind {other}", case.name),
    }
    kind
}

/// Every case runs, even after one fails; the failures are listed by file at the end (each
/// one's own message, printed when it failed, names the case and the check).
#[test]
fn every_golden_case_matches_keras_yolo3() {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut failed = Vec::new();
    let files = golden_files();
    for path in &files {
        match std::panic::catch_unwind(|| check_case(path)) {
            Ok(kind) => *counts.entry(kind).or_default() += 1,
            Err(_) => failed.push(path.display().to_string()),
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} golden cases failed: {failed:?}",
        failed.len(),
        files.len()
    );
    eprintln!("golden cases passed: {counts:?}");
}
