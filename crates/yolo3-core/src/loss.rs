//! The YOLOv3 loss of keras-yolo3 (`yolo_loss`), with its analytic gradient, in one fused pass.
//!
//! For each layer, image, cell and anchor slot, with `t` the raw prediction, `o` the object
//! flag and `B` the batch size (`shared/golden/README.md`, "Loss semantics"):
//! * `xy   = o * (2 - w*h) * (BCE(rx, t0) + BCE(ry, t1)) / B`
//! * `wh   = o * (2 - w*h) * 0.5 * ((rw - t2)^2 + (rh - t3)^2) / B`
//! * `conf = (o * BCE(1, t4) + (1 - o) * ignore * BCE(0, t4)) / B`
//! * `cls  = o * sum_c BCE(y_c, t_{5+c}) / B`
//!
//! where `ignore = 1` iff the predicted box's best IoU with the image's true boxes on this layer
//! (keras) or on every layer (darknet, [`IgnoreScope::Image`]) is below `ignore_thresh`, and is
//! 1 when there are none. The mask is a comparison: no gradient flows through it.
//!
//! The pass works one (layer, image) block at a time, in parallel; a block's gradient is one
//! contiguous slice in both layouts. For each grid row it copies the box and objectness logits
//! of every slot into short arrays, decodes the boxes, takes their best IoU with the true boxes
//! and computes the objectness term, in loops without branches that run in vector registers
//! (AVX2 where the CPU has it, module `simd`). It then writes the block's whole gradient once,
//! in memory order, with streaming stores (module `stream`): nearly all of it is zero, and at
//! 58 MB it is bigger than the cache. Last it visits the few object slots. Sums are accumulated
//! in `f64` and combined in a fixed order, so the result does not depend on the thread count or
//! the CPU.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::CoreError;
use crate::head::{head_box, HeadConfig, HeadInput};
use crate::layout::{HeadShape, Layout, Strides};
use crate::line_writer::LineWriter;
use crate::real::{bce_with_logits, Real};
use crate::simd::with_avx2;
use crate::targets::{ObjectCell, Targets};

/// Which true boxes a prediction's best IoU is taken over, for the ignore mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum IgnoreScope {
    /// The boxes assigned to the same layer of the same image (keras-yolo3).
    #[default]
    SameLayer,
    /// Every valid box of the image, whatever its layer (darknet).
    Image,
}

/// Options of the loss.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossOptions {
    /// A non-object prediction whose best IoU reaches this is not penalised (keras: 0.5).
    pub ignore_thresh: f64,
    /// Which true boxes the ignore mask compares against.
    pub ignore_scope: IgnoreScope,
}

impl Default for LossOptions {
    fn default() -> Self {
        Self { ignore_thresh: 0.5, ignore_scope: IgnoreScope::SameLayer }
    }
}

/// The four terms of the loss, named. Sums and means of terms (an epoch's running mean, a
/// validation pass) are formed with `+=` and `/`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LossTerms {
    /// Centre term.
    pub xy: f64,
    /// Size term.
    pub wh: f64,
    /// Objectness term.
    pub confidence: f64,
    /// Class term.
    pub class: f64,
}

impl LossTerms {
    /// `xy + wh + confidence + class`, added in that order.
    #[must_use]
    pub fn total(&self) -> f64 {
        self.xy + self.wh + self.confidence + self.class
    }

    /// The terms in `xy, wh, confidence, class` order.
    #[must_use]
    pub fn to_array(&self) -> [f64; 4] {
        [self.xy, self.wh, self.confidence, self.class]
    }
}

impl std::ops::AddAssign for LossTerms {
    fn add_assign(&mut self, other: Self) {
        self.xy += other.xy;
        self.wh += other.wh;
        self.confidence += other.confidence;
        self.class += other.class;
    }
}

impl std::ops::Mul<f64> for LossTerms {
    type Output = Self;

    fn mul(self, n: f64) -> Self {
        Self {
            xy: self.xy * n,
            wh: self.wh * n,
            confidence: self.confidence * n,
            class: self.class * n,
        }
    }
}

impl std::ops::Div<f64> for LossTerms {
    type Output = Self;

    fn div(self, n: f64) -> Self {
        Self {
            xy: self.xy / n,
            wh: self.wh / n,
            confidence: self.confidence / n,
            class: self.class / n,
        }
    }
}

/// The loss, its four components and each layer's share. All are divided by the batch size.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LossParts {
    /// `xy + wh + confidence + class`.
    pub total: f64,
    /// Centre term.
    pub xy: f64,
    /// Size term.
    pub wh: f64,
    /// Objectness term.
    pub confidence: f64,
    /// Class term.
    pub class: f64,
    /// Each layer's terms.
    pub layers: Vec<LossTerms>,
}

impl LossParts {
    /// The four terms without the total and the layers.
    #[must_use]
    pub fn terms(&self) -> LossTerms {
        LossTerms { xy: self.xy, wh: self.wh, confidence: self.confidence, class: self.class }
    }
}

/// Computes the loss and writes `d loss / d prediction` into `grads` (one buffer per layer, in
/// the same layout and shape as the predictions).
pub fn yolo_loss<T: Real>(
    config: &HeadConfig,
    layout: Layout,
    batch: usize,
    preds: &[HeadInput<'_, T>],
    targets: &Targets,
    options: &LossOptions,
    grads: &mut [&mut [T]],
) -> Result<LossParts, CoreError> {
    run(config, layout, batch, preds, targets, options, grads, None)
}

/// [`yolo_loss`] that also writes each slot's best IoU (`-inf` where there is no true box) into
/// `best_iou`, one `(B, H, W, A)` buffer per layer. The ignore mask is `best_iou < thresh`.
pub fn yolo_loss_with_best_iou<T: Real>(
    config: &HeadConfig,
    layout: Layout,
    batch: usize,
    preds: &[HeadInput<'_, T>],
    targets: &Targets,
    options: &LossOptions,
    grads: &mut [&mut [T]],
    best_iou: &mut [&mut [T]],
) -> Result<LossParts, CoreError> {
    run(config, layout, batch, preds, targets, options, grads, Some(best_iou))
}

/// One (layer, image) block of work.
struct Block<'g, T> {
    layer: usize,
    image: usize,
    grad: &'g mut [T],
    best_iou: Option<&'g mut [T]>,
}

/// The per-layer constants a block needs.
struct LayerCtx<'a, T> {
    shape: HeadShape,
    strides: Strides,
    pred: &'a [T],
    anchors: Vec<[T; 2]>,
}

fn run<T: Real>(
    config: &HeadConfig,
    layout: Layout,
    batch: usize,
    preds: &[HeadInput<'_, T>],
    targets: &Targets,
    options: &LossOptions,
    grads: &mut [&mut [T]],
    best_iou: Option<&mut [&mut [T]]>,
) -> Result<LossParts, CoreError> {
    let shapes = config.check_inputs(batch, preds, "predictions")?;
    check_buffers("gradient", grads.iter().map(|g| g.len()), shapes.iter().map(HeadShape::len))?;
    if targets.batch != batch || targets.layers.len() != shapes.len() {
        return Err(CoreError::ShapeMismatch {
            what: "targets",
            layer: 0,
            expected: format!("batch {batch}, {} layers", shapes.len()),
            actual: format!("batch {}, {} layers", targets.batch, targets.layers.len()),
        });
    }
    if let Some(bi) = &best_iou {
        let slots = shapes.iter().map(|s| s.batch * s.height * s.width * s.anchors);
        check_buffers("best_iou", bi.iter().map(|b| b.len()), slots)?;
    }
    if !(options.ignore_thresh.is_finite()) {
        return Err(CoreError::InvalidOption {
            name: "ignore_thresh",
            value: options.ignore_thresh.to_string(),
            reason: "must be finite",
        });
    }

    let layers: Vec<LayerCtx<'_, T>> = shapes
        .iter()
        .zip(preds)
        .enumerate()
        .map(|(l, (shape, input))| LayerCtx {
            shape: *shape,
            strides: layout.strides(shape),
            pred: input.data,
            anchors: (0..shape.anchors)
                .map(|a| {
                    let [w, h] = config.anchors.slot(l, a);
                    [T::from_f32(w), T::from_f32(h)]
                })
                .collect(),
        })
        .collect();

    let mut blocks = Vec::with_capacity(batch * layers.len());
    let best_layers: Vec<Option<&mut [T]>> = match best_iou {
        Some(b) => b.iter_mut().map(|x| Some(&mut **x)).collect(),
        None => (0..layers.len()).map(|_| None).collect(),
    };
    for (l, (g, best)) in grads.iter_mut().zip(best_layers).enumerate() {
        let shape = &layers[l].shape;
        let cells = shape.height * shape.width * shape.anchors;
        let mut best_chunks: Vec<Option<&mut [T]>> =
            best.map(|b| b.chunks_mut(cells.max(1)).map(Some).collect()).unwrap_or_default();
        for (image, grad) in g.chunks_mut(shape.image_len().max(1)).enumerate().take(batch) {
            let best_iou = best_chunks.get_mut(image).and_then(Option::take);
            blocks.push(Block { layer: l, image, grad, best_iou });
        }
    }

    let in_hw = [T::from_usize(config.input_h), T::from_usize(config.input_w)];
    let inv_batch = T::ONE / T::from_usize(batch.max(1));
    let results: Vec<Option<[f64; 4]>> = blocks
        .into_par_iter()
        .map_init(Scratch::default, |scratch, block| {
            let ctx = &layers[block.layer];
            let truths = truth_boxes::<T>(targets, block.layer, block.image, options.ignore_scope);
            let thresh = options.ignore_thresh;
            // Inlined into both of `with_avx2`'s copies.
            with_avx2(
                #[inline(always)]
                || block_loss(ctx, block, targets, &truths, in_hw, inv_batch, thresh, scratch),
            )
        })
        .collect();

    let not_finite = || {
        first_non_finite(&layers).unwrap_or(CoreError::InvalidOption {
            name: "targets",
            value: "non-finite loss".into(),
            reason: "the targets make the loss non-finite (a zero-size box?)",
        })
    };
    let mut parts =
        LossParts { layers: vec![LossTerms::default(); layers.len()], ..LossParts::default() };
    for (block, sums) in results.iter().enumerate() {
        let &[xy, wh, confidence, class] = sums.as_ref().ok_or_else(not_finite)?;
        parts.layers[block / batch.max(1)] += LossTerms { xy, wh, confidence, class };
    }
    for layer in &parts.layers {
        parts.xy += layer.xy;
        parts.wh += layer.wh;
        parts.confidence += layer.confidence;
        parts.class += layer.class;
    }
    parts.total = parts.xy + parts.wh + parts.confidence + parts.class;
    if !parts.total.is_finite() {
        return Err(not_finite());
    }
    Ok(parts)
}

/// Checks one buffer per layer, each of the expected length.
fn check_buffers(
    what: &'static str,
    lens: impl ExactSizeIterator<Item = usize>,
    want: impl ExactSizeIterator<Item = usize>,
) -> Result<(), CoreError> {
    if lens.len() != want.len() {
        return Err(CoreError::LayerCount { what, expected: want.len(), actual: lens.len() });
    }
    for (layer, (len, want)) in lens.zip(want).enumerate() {
        if len != want {
            return Err(CoreError::ShapeMismatch {
                what,
                layer,
                expected: format!("{want} values"),
                actual: format!("{len} values"),
            });
        }
    }
    Ok(())
}

/// The true boxes one block compares predictions with, as `[x_min, y_min, x_max, y_max, area]`
/// in normalised coordinates.
fn truth_boxes<T: Real>(
    targets: &Targets,
    layer: usize,
    image: usize,
    scope: IgnoreScope,
) -> Vec<[T; 5]> {
    let corners = |b: &[f32; 4]| {
        let [x, y, w, h] = b.map(T::from_f32);
        let (hw, hh) = (w * T::HALF, h * T::HALF);
        [x - hw, y - hh, x + hw, y + hh, w * h]
    };
    match scope {
        IgnoreScope::SameLayer => {
            targets.cells(layer, image).iter().map(|c| corners(&c.xywh)).collect()
        }
        IgnoreScope::Image => {
            targets.truths.get(image).map_or_else(Vec::new, |t| t.iter().map(corners).collect())
        }
    }
}

/// Per-row working arrays of [`block_loss`]: the five box and objectness logits of every anchor
/// slot along a grid row, and for one slot at a time its predicted corner boxes and areas, their
/// best IoU so far, which columns hold an object and the objectness loss of each column. Every
/// loop over them is branch-free, so the compiler vectorises it.
#[derive(Default)]
struct RowScratch<T> {
    width: usize,
    /// `(A, 5, W)`: `tx, ty, tw, th, objectness` of each slot.
    logits: Vec<T>,
    x0: Vec<T>,
    y0: Vec<T>,
    x1: Vec<T>,
    y1: Vec<T>,
    area: Vec<T>,
    best: Vec<T>,
    bce: Vec<T>,
    is_object: Vec<bool>,
}

// The hot methods are inlined into `with_avx2`'s copies of `block_loss` (see `simd`).
#[allow(clippy::inline_always)]
impl<T: Real> RowScratch<T> {
    fn resize(&mut self, width: usize, anchors: usize) {
        self.width = width;
        self.logits.resize(anchors * 5 * width, T::ZERO);
        for v in [
            &mut self.x0,
            &mut self.y0,
            &mut self.x1,
            &mut self.y1,
            &mut self.area,
            &mut self.best,
            &mut self.bce,
        ] {
            v.resize(width, T::ZERO);
        }
        self.is_object.resize(width, false);
    }

    /// Copies the box and objectness logits of every slot along `row`; returns whether they are
    /// all finite. Channels-last reads visit each cell once, so its cache lines are fetched
    /// together.
    #[inline(always)]
    fn gather(&mut self, pred: &[T], s: &Strides, fields: usize, row: usize) -> bool {
        let width = self.width;
        let slots = self.logits.len() / (5 * width).max(1);
        if s.col == 1 {
            for (k, out) in self.logits.chunks_exact_mut(width).enumerate() {
                let start = s.offset((k / 5) * fields + k % 5, row, 0);
                out.copy_from_slice(&pred[start..start + width]);
            }
        } else {
            for col in 0..width {
                let cell = s.offset(0, row, col);
                for a in 0..slots {
                    for p in 0..5 {
                        self.logits[(a * 5 + p) * width + col] = pred[cell + a * fields + p];
                    }
                }
            }
        }
        self.logits.iter().fold(true, |ok, v| ok & v.is_finite())
    }

    /// Decodes slot `a`'s predicted boxes along `row` ([`head_box`]) into corners and areas.
    /// `grid` is `[cols, rows]`, `anchor` the slot's `[w, h]` and `input` the network's `[w, h]`.
    #[inline(always)]
    fn decode_boxes(&mut self, a: usize, row: usize, grid: [T; 2], anchor: [T; 2], input: [T; 2]) {
        let width = self.width;
        let at = a * 5 * width;
        let t = &self.logits[at..at + 4 * width];
        let (tx, ty, tw, th) =
            (&t[..width], &t[width..2 * width], &t[2 * width..3 * width], &t[3 * width..]);
        let fy = T::from_usize(row);
        // Equal lengths up front, so the loop has no bounds checks and vectorises.
        let (x0, y0) = (&mut self.x0[..width], &mut self.y0[..width]);
        let (x1, y1, area) =
            (&mut self.x1[..width], &mut self.y1[..width], &mut self.area[..width]);
        for col in 0..width {
            let t = [tx[col], ty[col], tw[col], th[col]];
            let [px, py, pw, ph] = head_box(t, [T::from_usize(col), fy], grid, anchor, input);
            let (hw, hh) = (pw * T::HALF, ph * T::HALF);
            x0[col] = px - hw;
            y0[col] = py - hh;
            x1[col] = px + hw;
            y1[col] = py + hh;
            area[col] = pw * ph;
        }
    }

    /// `best = max(best, IoU(row boxes, t))` with keras' `box_iou` formula; `t` is
    /// `[x_min, y_min, x_max, y_max, area]`.
    #[inline(always)]
    fn take_best_iou(&mut self, t: &[T; 5]) {
        let n = self.best.len();
        let (x0, y0, x1, y1) = (&self.x0[..n], &self.y0[..n], &self.x1[..n], &self.y1[..n]);
        let area = &self.area[..n];
        for (col, best) in self.best.iter_mut().enumerate() {
            let iw = (if x1[col] < t[2] { x1[col] } else { t[2] })
                - (if x0[col] > t[0] { x0[col] } else { t[0] });
            let ih = (if y1[col] < t[3] { y1[col] } else { t[3] })
                - (if y0[col] > t[1] { y0[col] } else { t[1] });
            let inter = iw.max0() * ih.max0();
            let iou = inter / (area[col] + t[4] - inter);
            // `max`, not `if iou > best`: the compiler turns that into a masked store, which is
            // slow on AMD CPUs. The same here, as a NaN IoU (a 0/0) is never taken either way.
            *best = Real::max(*best, iou);
        }
    }

    /// The no-object objectness term: writes each column's gradient (zero where the slot holds
    /// an object or is ignored) into `grad` and returns the row's loss (not yet divided by the
    /// batch size).
    #[inline(always)]
    fn objectness(&mut self, a: usize, thresh: T, inv_batch: T, grad: &mut [T]) -> f64 {
        let n = self.width;
        let at = (a * 5 + 4) * n;
        let (tc, grad) = (&self.logits[at..at + n], &mut grad[..n]);
        let (best, is_object, bce_out) =
            (&self.best[..n], &self.is_object[..n], &mut self.bce[..n]);
        for col in 0..n {
            let (bce, sig) = bce_with_logits(T::ZERO, tc[col]);
            #[allow(clippy::needless_bitwise_bool)] // `&`: no branch in the vector loop
            let counted = !is_object[col] & (best[col] < thresh);
            bce_out[col] = if counted { bce } else { T::ZERO };
            grad[col] = if counted { sig * inv_batch } else { T::ZERO };
        }
        // Four running sums, so the additions need not wait on each other; the order is fixed.
        let mut lanes = [0.0f64; 4];
        let chunks = self.bce.chunks_exact(4);
        let tail: f64 = chunks.remainder().iter().map(|v| v.to_f64()).sum();
        for c in chunks {
            for (acc, v) in lanes.iter_mut().zip(c) {
                *acc += v.to_f64();
            }
        }
        (lanes[0] + lanes[1]) + (lanes[2] + lanes[3]) + tail
    }
}

/// A worker's scratch space, reused across the blocks it computes.
#[derive(Default)]
struct Scratch<T> {
    row: RowScratch<T>,
    /// The block's objectness gradients, `(A, H, W)`.
    conf_grad: Vec<T>,
    /// One channels-last grid row of the gradient, zero between uses.
    grad_row: Vec<T>,
}

// Inlined into both copies of [`with_avx2`], so that its loops are compiled for AVX2 there.
#[allow(clippy::inline_always)]
#[inline(always)]
fn block_loss<T: Real>(
    ctx: &LayerCtx<'_, T>,
    block: Block<'_, T>,
    targets: &Targets,
    truths: &[[T; 5]],
    in_hw: [T; 2],
    inv_batch: T,
    ignore_thresh: f64,
    scratch: &mut Scratch<T>,
) -> Option<[f64; 4]> {
    let Block { layer, image, grad, best_iou: mut best_out } = block;
    let shape = &ctx.shape;
    let s = ctx.strides;
    let fields = shape.fields();
    let (height, width, anchors) = (shape.height, shape.width, shape.anchors);
    let plane = height * width;
    let image_len = shape.image_len();
    let pred = &ctx.pred[image * image_len..(image + 1) * image_len];
    let thresh = T::from_f64(ignore_thresh);
    let objects: &[ObjectCell] = targets.cells(layer, image);

    // Pass 1, one grid row and anchor slot at a time: decode the predicted boxes into short
    // arrays, take their IoU with each true box across the whole row, and keep each slot's
    // objectness gradient.
    let Scratch { row: rs, conf_grad, grad_row } = scratch;
    rs.resize(width, anchors);
    conf_grad.resize(anchors * plane, T::ZERO);
    if grad_row.len() < width * shape.channels() {
        grad_row.resize(width * shape.channels(), T::ZERO);
    }
    let grid = [T::from_usize(width), T::from_usize(height)];
    let input = [in_hw[1], in_hw[0]];
    let mut finite = true;
    let mut conf = 0.0f64;
    let mut row_objects = objects;
    for row in 0..height {
        let in_row = row_objects.partition_point(|o| o.row == row);
        let (this_row, rest) = row_objects.split_at(in_row);
        row_objects = rest;
        finite &= rs.gather(pred, &s, fields, row);
        for a in 0..anchors {
            rs.is_object.fill(false);
            for o in this_row.iter().filter(|o| o.slot == a) {
                rs.is_object[o.col] = true;
            }
            rs.best.fill(T::NEG_INFINITY);
            if !truths.is_empty() {
                rs.decode_boxes(a, row, grid, ctx.anchors[a], input);
                for t in truths {
                    rs.take_best_iou(t);
                }
            }
            if let Some(out) = best_out.as_deref_mut() {
                for (col, best) in rs.best.iter().enumerate() {
                    out[(row * width + col) * anchors + a] = *best;
                }
            }
            let at = a * plane + row * width;
            conf += rs.objectness(a, thresh, inv_batch, &mut conf_grad[at..at + width]);
        }
    }

    // Pass 2: write the block's whole gradient once, in memory order, straight to memory.
    {
        let mut out = LineWriter::new(grad);
        if s.col == 1 {
            for a in 0..anchors {
                out.zeros(4 * plane);
                out.extend(&conf_grad[a * plane..(a + 1) * plane]);
                out.zeros((fields - 5) * plane);
            }
        } else {
            // Channels-last: each grid row is one run of memory. Its objectness gradients go
            // into a zero row in the cache, which is streamed out and zeroed again.
            let grad_row = &mut grad_row[..width * shape.channels()];
            for row in 0..height {
                for col in 0..width {
                    for a in 0..anchors {
                        grad_row[(col * anchors + a) * fields + 4] =
                            conf_grad[a * plane + row * width + col];
                    }
                }
                out.extend(grad_row);
                for slot in 0..width * anchors {
                    grad_row[slot * fields + 4] = T::ZERO;
                }
            }
        }
    }

    // Pass 3: the few object slots.
    let mut sums = [0.0f64, 0.0, conf, 0.0];
    for cell in objects {
        let base = cell.slot * fields;
        let at = |p: usize| s.offset(base + p, cell.row, cell.col);
        let [y0, y1, y2, y3] = cell.xywh.map(T::from_f32);
        let [aw, ah] = ctx.anchors[cell.slot];
        let rx = y0 * grid[0] - T::from_usize(cell.col);
        let ry = y1 * grid[1] - T::from_usize(cell.row);
        let rw = (y2 / aw * in_hw[1]).ln();
        let rh = (y3 / ah * in_hw[0]).ln();
        let scale = T::from_f64(2.0) - y2 * y3;

        let (bx, sx) = bce_with_logits(rx, pred[at(0)]);
        let (by, sy) = bce_with_logits(ry, pred[at(1)]);
        sums[0] += (scale * (bx + by)).to_f64();
        grad[at(0)] = scale * (sx - rx) * inv_batch;
        grad[at(1)] = scale * (sy - ry) * inv_batch;

        let (dw, dh) = (rw - pred[at(2)], rh - pred[at(3)]);
        sums[1] += (scale * T::HALF * (dw * dw + dh * dh)).to_f64();
        grad[at(2)] = -scale * dw * inv_batch;
        grad[at(3)] = -scale * dh * inv_batch;

        let (bo, so) = bce_with_logits(T::ONE, pred[at(4)]);
        sums[2] += bo.to_f64();
        grad[at(4)] = (so - T::ONE) * inv_batch;

        let mut class_sum = 0.0f64;
        let mut set = cell.classes.iter().peekable();
        for c in 0..shape.num_classes {
            let z = if set.peek() == Some(&&c) {
                set.next();
                T::ONE
            } else {
                T::ZERO
            };
            let (bc, sc) = bce_with_logits(z, pred[at(5 + c)]);
            class_sum += bc.to_f64();
            grad[at(5 + c)] = (sc - z) * inv_batch;
        }
        sums[3] += class_sum;
    }
    let inv = inv_batch.to_f64();
    let sums = sums.map(|v| v * inv);
    (finite && sums.iter().all(|v| v.is_finite())).then_some(sums)
}

/// Finds the first NaN or infinite prediction, to report where a non-finite loss came from.
fn first_non_finite<T: Real>(layers: &[LayerCtx<'_, T>]) -> Option<CoreError> {
    layers.iter().enumerate().find_map(|(l, ctx)| {
        let pos = ctx.pred.iter().position(|v| !v.is_finite())?;
        let shape = &ctx.shape;
        let image = pos / shape.image_len();
        let within = pos % shape.image_len();
        let s = ctx.strides;
        let (channel, row, col) = if s.col == 1 {
            (within / s.channel, (within % s.channel) / s.row, within % s.row)
        } else {
            (within % s.col, within / s.row, (within % s.row) / s.col)
        };
        Some(CoreError::NonFinite {
            layer: l,
            image,
            row,
            col,
            channel,
            value: ctx.pred[pos].to_f64(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::anchors::Anchors;
    use crate::geometry::{BoxXyxy, LabeledBox};
    use crate::targets::assign_targets;

    struct Case {
        config: HeadConfig,
        preds: Vec<Vec<f32>>,
        targets: Targets,
    }

    fn case() -> Case {
        let config = HeadConfig::new(64, 64, 2, Anchors::yolov3()).unwrap();
        let boxes = [LabeledBox { bbox: BoxXyxy::new(4.0, 4.0, 40.0, 30.0), class: 1 }];
        let targets = assign_targets(&config, &[&boxes]).unwrap();
        let preds = (0..3).map(|l| vec![0.1; config.head_shape(l, 1).len()]).collect();
        Case { config, preds, targets }
    }

    fn run_case(
        c: &Case,
        channels_delta: isize,
        grad_delta: usize,
    ) -> Result<LossParts, CoreError> {
        let inputs: Vec<HeadInput<'_, f32>> = c
            .preds
            .iter()
            .enumerate()
            .map(|(l, p)| {
                let s = c.config.head_shape(l, 1);
                let channels = (s.channels() as isize + channels_delta) as usize;
                HeadInput { data: p, height: s.height, width: s.width, channels }
            })
            .collect();
        let mut grads: Vec<Vec<f32>> =
            c.preds.iter().map(|p| vec![0.0; p.len() + grad_delta]).collect();
        let mut refs: Vec<&mut [f32]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
        yolo_loss(
            &c.config,
            Layout::Nchw,
            1,
            &inputs,
            &c.targets,
            &LossOptions::default(),
            &mut refs,
        )
    }

    #[test]
    fn bad_inputs_are_typed_errors() {
        let mut c = case();
        assert!(run_case(&c, 0, 0).is_ok());
        let err = run_case(&c, 1, 0).unwrap_err();
        assert!(matches!(err, CoreError::ShapeMismatch { what: "predictions", .. }), "{err}");
        assert!(err.to_string().contains("channels"), "{err}");
        let err = run_case(&c, 0, 1).unwrap_err();
        assert!(
            matches!(err, CoreError::ShapeMismatch { what: "gradient", layer: 0, .. }),
            "{err}"
        );
        // A NaN objectness logit at layer 1, channel 4 (slot 0), row 2, column 3.
        let s = c.config.head_shape(1, 1);
        let at = Layout::Nchw.strides(&s).offset(4, 2, 3);
        c.preds[1][at] = f32::NAN;
        let err = run_case(&c, 0, 0).unwrap_err();
        assert!(
            matches!(
                err,
                CoreError::NonFinite { layer: 1, image: 0, row: 2, col: 3, channel: 4, .. }
            ),
            "{err}"
        );
    }
}
