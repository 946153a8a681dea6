//! The network prepared for inference only: what detection, evaluation and validation run.
//!
//! Training needs batch norm as its own operation (its statistics move) and the convolution's
//! autograd; inference needs neither, so [`InferenceNet::new`] takes a snapshot of a
//! [`Darknet`]'s variables and rewrites each convolution once:
//! * **batch norm folded** into the kernel and bias, computed in float64 and rounded once:
//!   with `s = gamma / (sqrt(var) + 1e-6)` (darknet's epsilon, outside the root), the kernel
//!   becomes `s * w` and the bias `beta - s * mean`;
//! * on the CPU with oneDNN ([`ConvEngine::OneDnn`]), activations in **channels-last** memory
//!   (oneDNN's native layout, so no reorder around each convolution), each convolution, its
//!   bias and its activation **one oneDNN primitive** (`mkldnn::_convolution_pointwise`, through
//!   the C++ shim), its kernel **reordered once per input shape** into oneDNN's blocked layout
//!   and kept; the wide 3x3 convolutions of stride 1 as **Winograd F(2x2, 3x3)** where it was
//!   measured faster ([`Winograd`]): 2.25x fewer multiplications, the products as oneDNN 1x1
//!   convolutions (one of 16 groups while they are small, else 16) between two transforms in
//!   the shim (`csrc/winograd.cpp`), the kernel transformed once in float64; max pooling in
//!   **one pass** over the channels-last
//!   activations (`csrc/maxpool.cpp`, no argmax indices, each input read once), and a thin
//!   first convolution (at most [`CONV_POOL_MAX_CHANNELS`] inputs) with the 2x2 pooling after
//!   it **in one pass** (`csrc/conv_pool.cpp`: its output, tiny-YOLOv3's largest activation,
//!   is never written);
//! * elsewhere ([`ConvEngine::Plain`], e.g. CUDA, where cuDNN picks its own algorithms), the
//!   folded convolution then the activation, in NCHW.
//!
//! The rest of the graph (upsampling, route, shortcut) is the same code as
//! [`Darknet::forward_t`]. Outputs equal the unfolded network's to float32 rounding (the
//! shared model cases check every engine, Winograd in both forms wherever it can run included,
//! against the float64 reference at one tolerance; Winograd's rounding uses at most 5% of it).
//! Measured on 2 cores (`benches/infer.rs`, `scripts/bench-infer-peers.sh`): see the README.

use std::collections::HashMap;
use std::sync::Mutex;

use tch::{Device, Kind, Tensor};

use super::aten::{
    conv_pointwise, conv_pool, has_mkldnn, has_packed_gemm, maxpool, winograd_fused,
    winograd_input, winograd_output, winograd_pack, ConvShape, PostOp,
};
use super::ops::{activate, BN_INFERENCE_EPS, LEAKY_SLOPE};
use super::{check_input, maxpool_padding, run_layers, Darknet};
use crate::cfg::{Activation, Config, Layer, Maxpool};
use crate::error::{Result, TorchContext};

/// How the convolutions of an [`InferenceNet`] run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvEngine {
    /// oneDNN's fused convolution + bias + activation on channels-last activations, kernels
    /// reordered per input shape (CPU builds of libtorch with oneDNN); 3x3 convolutions of
    /// stride 1 through Winograd as chosen.
    OneDnn(Winograd),
    /// libtorch's convolution with the folded bias, then the activation, in NCHW.
    Plain,
}

/// Which 3x3 stride-1 convolutions of the oneDNN engine run as Winograd F(2x2, 3x3): oneDNN
/// 1x1 convolutions (the products) between an input and an output transform
/// (`csrc/winograd.cpp`), 2.25x fewer multiplications for 4x the activation memory traffic.
/// The products run as one convolution of 16 groups (fastest while they are small: one call,
/// and each tile's transformed patch in one place) or as 16 convolutions (fastest for large
/// ones), or, for thinner convolutions, the whole convolution in one pass
/// (`yolo3_winograd_fused`): block by block of tiles, both transforms around MKL's packed
/// products in a core's cache, so the 16 planes never go through memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Winograd {
    /// Where it was measured faster (tiny-YOLOv3 and YOLOv3 at 416, batch 1 and 8; see the
    /// README): convolutions of at least [`WINOGRAD_MIN_CHANNELS`] input and output channels
    /// (fewer made the products too thin: 64->128 at 52x52, batch 1, 1.5 ms against 1.0
    /// direct), as grouped products while `tiles x Cout` is at most [`WINOGRAD_GROUPED_MAX`],
    /// beyond that as 16 products of at least [`WINOGRAD_MIN_PRODUCT`] multiply-adds each, else
    /// direct; and in one pass those of at least [`WINOGRAD_FUSED_MIN_CHANNELS`] but fewer than
    /// [`WINOGRAD_MIN_CHANNELS`] input channels, where libtorch has MKL's packed GEMM (the
    /// x86 wheels).
    WhereFaster,
    /// None: every convolution is oneDNN's direct one.
    Never,
    /// Every one whose activation the output transform applies (linear, leaky), as one grouped
    /// product.
    Grouped,
    /// Every one whose activation the output transform applies, as 16 products.
    Separate,
    /// Every one whose activation the output transform applies, in one pass (none without
    /// MKL's packed GEMM).
    Fused,
}

/// Fewest input and output channels of a convolution [`Winograd::WhereFaster`] transforms.
pub const WINOGRAD_MIN_CHANNELS: i64 = 256;

/// Largest `tiles x Cout` for which [`Winograd::WhereFaster`] runs the products as one grouped
/// convolution (2^19: beyond it the grouped product slowed down, e.g. 24.6 ms against 14.0 for
/// 16 products for YOLOv3's 256->512 at 26x26, batch 8).
pub const WINOGRAD_GROUPED_MAX: i64 = 1 << 19;

/// Fewest multiply-adds (`tiles x Cin x Cout`) of each of 16 separate products for
/// [`Winograd::WhereFaster`] (2^26).
pub const WINOGRAD_MIN_PRODUCT: i64 = 1 << 26;

/// Fewest input and output channels of a convolution [`Winograd::WhereFaster`] runs as
/// Winograd in one pass (128: `YOLOv3`'s 128->256 convolutions at 52x52, 11 of its 75, went from
/// direct to 1.15x faster as a whole network at batch 8; in one pass 256->512 and wider ones
/// were no faster than as separate products, whose kernels are read once for all tiles).
pub(super) const WINOGRAD_FUSED_MIN_CHANNELS: i64 = 128;

/// Most input channels of a convolution run with the max pooling after it in one pass (the
/// shim's loops are unrolled for 1 to 4).
pub(super) const CONV_POOL_MAX_CHANNELS: i64 = 4;

/// Floats of one block's transformed tiles and products in the one-pass Winograd (2^18, 1 MB:
/// a core's L2 on the machines measured; 2 and 4 MB ran alike).
const FUSED_BLOCK_FLOATS: i64 = 1 << 18;

/// How one convolution runs on a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ConvPath {
    Direct,
    WinogradGrouped,
    WinogradSeparate,
}

impl ConvEngine {
    /// The fastest engine for `device`: oneDNN on the CPU where libtorch has it, else plain.
    #[must_use]
    pub fn for_device(device: Device) -> Self {
        if device == Device::Cpu && has_mkldnn() {
            Self::OneDnn(Winograd::WhereFaster)
        } else {
            Self::Plain
        }
    }
}

/// A convolution with batch norm folded in.
pub(crate) struct FoldedConv {
    pub weight: Tensor,
    pub bias: Tensor,
    pub stride: i64,
    pub padding: i64,
    pub activation: Activation,
    /// The kernel prepared for Winograd, when it runs as Winograd.
    winograd: Option<WinogradKernel>,
    /// The kernel as `3 x 3 x Cin x Cout` when this convolution runs with the max pooling
    /// after it in one pass (which then passes its input on).
    pooled: Option<Tensor>,
}

/// A convolution's kernel prepared for Winograd F(2x2, 3x3).
enum WinogradKernel {
    /// The 16 planes, `16 Cout x Cin x 1 x 1` (plane p in rows `p Cout..(p + 1) Cout`), for
    /// products as oneDNN 1x1 convolutions.
    Planes(Tensor),
    /// The planes packed by MKL for the one-pass convolution on blocks of `rows` tiles.
    Packed { kernels: Tensor, rows: i64 },
}

/// Kernels in oneDNN's layout kept per (layer, input shape); cleared when this many shapes
/// per convolution have been seen (a caller whose input size keeps changing).
const MAX_SHAPES_PER_CONV: usize = 4;

/// Kernels a convolution can keep per shape: the direct one, the grouped Winograd planes and
/// the 16 planes alone (see [`PackedKey`]).
const KERNELS_PER_CONV: usize = 18;

/// A kernel in oneDNN's layout: (layer, which of its kernels: 0 direct, 1 the grouped
/// Winograd planes, 2 + p Winograd plane p alone, input shape).
type PackedKey = (usize, usize, Vec<i64>);

/// A max pooling of the graph: the one-pass kernel on channels-last activations, or the
/// training path's on NCHW ones.
type Pool = fn(&Tensor, &Maxpool) -> std::result::Result<Tensor, tch::TchError>;

/// An inference-only copy of a network (see the module docs). Later changes to the
/// [`Darknet`]'s variables do not reach it: prepare it again after training steps.
pub struct InferenceNet {
    cfg: Config,
    last_use: Vec<usize>,
    device: Device,
    engine: ConvEngine,
    convs: Vec<Option<FoldedConv>>,
    packed: Mutex<HashMap<PackedKey, Tensor>>,
}

impl std::fmt::Debug for InferenceNet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InferenceNet")
            .field("cfg", &self.cfg.name())
            .field("device", &self.device)
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

impl InferenceNet {
    /// Prepares `net` with the fastest engine for its device.
    pub fn new(net: &Darknet) -> Result<Self> {
        Self::with_engine(net, ConvEngine::for_device(net.device()))
    }

    /// Prepares `net` with `engine` ([`ConvEngine::OneDnn`] falls back to plain off the CPU or
    /// without oneDNN).
    pub fn with_engine(net: &Darknet, engine: ConvEngine) -> Result<Self> {
        let engine = match (engine, ConvEngine::for_device(net.device())) {
            (ConvEngine::OneDnn(w), ConvEngine::OneDnn(_)) => ConvEngine::OneDnn(w),
            _ => ConvEngine::Plain,
        };
        let mut convs = Vec::with_capacity(net.convs.len());
        for (i, block) in net.convs.iter().enumerate() {
            convs.push(match block {
                Some(block) => Some(
                    tch::no_grad(|| {
                        let mut c = fold(block)?;
                        if let ConvEngine::OneDnn(w) = engine {
                            c.winograd = prepare_winograd(&c, w)?;
                            if pooled_after(&net.cfg, &net.last_use, i, &c) {
                                c.pooled = Some(c.weight.f_permute([2, 3, 1, 0])?.f_contiguous()?);
                            }
                        }
                        Ok::<_, tch::TchError>(c)
                    })
                    .torch(|| format!("preparing conv layer {i} for inference"))?,
                ),
                None => None,
            });
        }
        Ok(Self {
            cfg: net.cfg.clone(),
            last_use: net.last_use.clone(),
            device: net.device(),
            engine,
            convs,
            packed: Mutex::new(HashMap::new()),
        })
    }

    /// The folded convolution of layer `i` (`None` for other layers).
    pub(crate) fn folded_conv(&self, i: usize) -> Option<&FoldedConv> {
        self.convs.get(i).and_then(Option::as_ref)
    }

    /// The engine the convolutions run on.
    #[must_use]
    pub fn engine(&self) -> ConvEngine {
        self.engine
    }

    /// The raw head outputs of `xs` (`N x channels x H x W` float32 on any device; moved to
    /// the network's), as [`Darknet::forward_t`] with `train = false` returns them (in
    /// channels-last memory with oneDNN: `contiguous()` gives NCHW order).
    pub fn infer(&self, xs: &Tensor) -> Result<Vec<Tensor>> {
        tch::no_grad(|| {
            let xs = xs.f_to_device(self.device).torch(|| "uploading a batch".into())?;
            check_input(&self.cfg, self.device, &xs)?;
            let (xs, pool): (Tensor, Pool) = match self.engine {
                ConvEngine::OneDnn(_) => {
                    (channels_last(&xs).torch(|| "reordering a batch".into())?, pool)
                }
                ConvEngine::Plain => (xs, super::ops::maxpool),
            };
            let conv = |i: usize, input: &Tensor| self.conv(i, input);
            let pool = |i: usize, input: &Tensor, m: &Maxpool| {
                let absorbed = i.checked_sub(1).and_then(|j| self.folded_conv(j));
                if absorbed.is_some_and(|c| c.pooled.is_some()) {
                    Ok(input.shallow_clone()) // pooled with its convolution
                } else {
                    pool(input, m)
                }
            };
            run_layers(&self.cfg, &self.last_use, &xs, conv, pool)
        })
    }

    fn conv(&self, i: usize, xs: &Tensor) -> std::result::Result<Tensor, tch::TchError> {
        let c = self.convs[i].as_ref().expect("folded conv for conv layer");
        if let Some(kernel) = &c.pooled {
            return self.conv_then_pool(i, c, kernel, xs);
        }
        let ConvEngine::OneDnn(w) = self.engine else {
            let ys = xs.f_conv2d(
                &c.weight,
                Some(&c.bias),
                [c.stride, c.stride],
                [c.padding, c.padding],
                [1, 1],
                1,
            )?;
            return activate(ys, c.activation);
        };
        match (&c.winograd, conv_path(c, xs, w)) {
            (Some(WinogradKernel::Packed { kernels, rows }), _) => {
                winograd_fused(xs, kernels, *rows, &c.bias, leaky_slope(c))
            }
            (Some(WinogradKernel::Planes(planes)), ConvPath::WinogradGrouped) => {
                self.winograd(i, c, planes, xs, true)
            }
            (Some(WinogradKernel::Planes(planes)), ConvPath::WinogradSeparate) => {
                self.winograd(i, c, planes, xs, false)
            }
            _ => {
                let shape = ConvShape { stride: c.stride, padding: c.padding, groups: 1 };
                let weight = self.packed_weight((i, 0), &c.weight, shape, xs)?;
                conv_pointwise(xs, &weight, Some(&c.bias), shape, post_op(c))
            }
        }
    }

    /// Conv `i` and the 2x2 pooling after it: in one pass where the size is even, else
    /// oneDNN's convolution then the pooling kernel.
    fn conv_then_pool(
        &self,
        i: usize,
        c: &FoldedConv,
        kernel: &Tensor,
        xs: &Tensor,
    ) -> std::result::Result<Tensor, tch::TchError> {
        let size = xs.size();
        if size[2] % 2 == 0 && size[3] % 2 == 0 {
            return conv_pool(xs, kernel, &c.bias, leaky_slope(c));
        }
        let shape = ConvShape { stride: c.stride, padding: c.padding, groups: 1 };
        let weight = self.packed_weight((i, 0), &c.weight, shape, xs)?;
        let ys = conv_pointwise(xs, &weight, Some(&c.bias), shape, post_op(c))?;
        let Some(Layer::Maxpool(m)) = self.cfg.layers().get(i + 1) else {
            unreachable!("a pooled convolution is followed by its pooling");
        };
        pool(&ys, m)
    }

    /// Conv `i` as Winograd F(2x2, 3x3): the input transform, the products as oneDNN 1x1
    /// convolutions (one of 16 groups, or 16; kernels reordered once per shape), the output
    /// transform with the bias and the activation.
    fn winograd(
        &self,
        i: usize,
        c: &FoldedConv,
        planes: &Tensor,
        xs: &Tensor,
        grouped: bool,
    ) -> std::result::Result<Tensor, tch::TchError> {
        let size = xs.size();
        let v = winograd_input(xs, grouped)?;
        let (tiles, channels) = match v.size()[..] {
            [t, 16, c] if grouped => (t, c),
            [16, t, c] => (t, c),
            ref other => {
                return Err(tch::TchError::Shape(format!("Winograd input of shape {other:?}")))
            }
        };
        let cout = c.weight.size()[0];
        // T rows of K values in memory: a 1 x K x 1 x T channels-last image.
        let image = |t: &Tensor, k: i64| t.f_view([1, 1, tiles, k])?.f_permute([0, 3, 1, 2]);
        let mut parts = Vec::with_capacity(16);
        if grouped {
            let input = image(&v, 16 * channels)?;
            let shape = ConvShape { stride: 1, padding: 0, groups: 16 };
            let weight = self.packed_weight((i, 1), planes, shape, &input)?;
            parts.push(conv_pointwise(&input, &weight, None, shape, PostOp::None)?);
        } else {
            let shape = ConvShape { stride: 1, padding: 0, groups: 1 };
            for p in 0..16 {
                let input = image(&v.f_select(0, p)?, channels)?;
                let kernel = planes.f_narrow(0, p * cout, cout)?;
                let weight = self.packed_weight((i, 2 + p as usize), &kernel, shape, &input)?;
                parts.push(conv_pointwise(&input, &weight, None, shape, PostOp::None)?);
            }
        }
        winograd_output(&parts, &c.bias, (size[0], size[2], size[3]), leaky_slope(c))
    }

    /// `weight` in oneDNN's layout for inputs shaped like `xs`, kept under `key` (the layer,
    /// and which of its kernels).
    fn packed_weight(
        &self,
        key: (usize, usize),
        weight: &Tensor,
        shape: ConvShape,
        xs: &Tensor,
    ) -> std::result::Result<Tensor, tch::TchError> {
        let key = (key.0, key.1, xs.size());
        let mut packed = self.packed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(w) = packed.get(&key) {
            return Ok(w.shallow_clone());
        }
        let w = weight.f_to_mkldnn(None)?.f_mkldnn_reorder_conv2d_weight(
            [shape.padding, shape.padding],
            [shape.stride, shape.stride],
            [1, 1],
            shape.groups,
            Some(key.2.as_slice()),
        )?;
        if packed.len() >= MAX_SHAPES_PER_CONV * KERNELS_PER_CONV * self.convs.len() {
            packed.clear();
        }
        packed.insert(key, w.shallow_clone());
        Ok(w)
    }
}

/// How `c`, prepared as planes or not at all, runs on `xs` under `w` (see
/// [`Winograd::WhereFaster`]).
fn conv_path(c: &FoldedConv, xs: &Tensor, w: Winograd) -> ConvPath {
    if !matches!(c.winograd, Some(WinogradKernel::Planes(_))) {
        return ConvPath::Direct;
    }
    let (k, x) = (c.weight.size(), xs.size());
    let (cout, cin) = (k[0], k[1]);
    let tiles = x[0] * ((x[2] + 1) / 2) * ((x[3] + 1) / 2);
    match w {
        Winograd::Grouped => ConvPath::WinogradGrouped,
        Winograd::Separate => ConvPath::WinogradSeparate,
        Winograd::WhereFaster if tiles.saturating_mul(cout) <= WINOGRAD_GROUPED_MAX => {
            ConvPath::WinogradGrouped
        }
        Winograd::WhereFaster
            if tiles.saturating_mul(cin).saturating_mul(cout) >= WINOGRAD_MIN_PRODUCT =>
        {
            ConvPath::WinogradSeparate
        }
        Winograd::WhereFaster | Winograd::Never | Winograd::Fused => ConvPath::Direct,
    }
}

/// `c`'s kernel as `w` runs it as Winograd, if it does: a 3x3 kernel, stride 1, padding 1, an
/// activation the output transform applies, and for [`Winograd::WhereFaster`] enough channels
/// (whether the planes run as Winograd then also depends on the batch, [`conv_path`]).
fn prepare_winograd(
    c: &FoldedConv,
    w: Winograd,
) -> std::result::Result<Option<WinogradKernel>, tch::TchError> {
    let size = c.weight.size();
    let (cout, cin) = (size[0], size[1]);
    let shape = size[2] == 3 && size[3] == 3 && c.stride == 1 && c.padding == 1;
    let activation = matches!(c.activation, Activation::Leaky | Activation::Linear);
    if !shape || !activation {
        return Ok(None);
    }
    let fused = cin.min(cout) >= WINOGRAD_FUSED_MIN_CHANNELS && has_packed_gemm();
    let planes = || winograd_kernel(&c.weight);
    let packed = || {
        // Rows of a block: its transformed tiles and their products in FUSED_BLOCK_FLOATS,
        // a multiple of 8.
        let rows = (FUSED_BLOCK_FLOATS / (16 * (cin + cout))).clamp(8, 512) / 8 * 8;
        let kernels = winograd_pack(&planes()?, rows)?;
        Ok::<_, tch::TchError>(WinogradKernel::Packed { kernels, rows })
    };
    Ok(match w {
        Winograd::Never => None,
        Winograd::Grouped | Winograd::Separate => Some(WinogradKernel::Planes(planes()?)),
        Winograd::Fused => has_packed_gemm().then(packed).transpose()?,
        Winograd::WhereFaster if cin >= WINOGRAD_MIN_CHANNELS && cout >= WINOGRAD_MIN_CHANNELS => {
            Some(WinogradKernel::Planes(planes()?))
        }
        Winograd::WhereFaster => fused.then(packed).transpose()?,
    })
}

/// Whether conv `i` (folded as `c`) runs with the max pooling after it in one pass: a 3x3
/// kernel of stride 1 and padding 1 over at most [`CONV_POOL_MAX_CHANNELS`] inputs, a multiple
/// of 16 outputs, a linear or leaky activation, followed by a 2x2 pooling of stride 2 that
/// starts at the first pixel and is the only reader of its output.
fn pooled_after(cfg: &Config, last_use: &[usize], i: usize, c: &FoldedConv) -> bool {
    let size = c.weight.size();
    let conv = size[2] == 3 && size[3] == 3 && c.stride == 1 && c.padding == 1;
    let channels = size[1] <= CONV_POOL_MAX_CHANNELS && size[0] % 16 == 0;
    let activation = matches!(c.activation, Activation::Leaky | Activation::Linear);
    let pool = matches!(cfg.layers().get(i + 1),
        Some(Layer::Maxpool(m)) if m.size == 2 && m.stride == 2 && m.padding / 2 == 0);
    conv && channels && activation && pool && last_use[i] == i + 1
}

/// The slope of `c`'s leaky activation, which the Winograd output transforms apply.
fn leaky_slope(c: &FoldedConv) -> Option<f64> {
    match c.activation {
        Activation::Leaky => Some(LEAKY_SLOPE),
        _ => None,
    }
}

/// The 16 planes `G g G^T` of a `Cout x Cin x 3 x 3` kernel, computed in float64 and rounded
/// once, as `16 Cout x Cin x 1 x 1` (plane `p = 4 i + j`, entry `(i, j)` of the 4x4 tile, in
/// rows `p Cout..(p + 1) Cout`: the kernel of one convolution of 16 groups).
fn winograd_kernel(weight: &Tensor) -> std::result::Result<Tensor, tch::TchError> {
    let g =
        Tensor::f_from_slice(&[1.0f64, 0.0, 0.0, 0.5, 0.5, 0.5, 0.5, -0.5, 0.5, 0.0, 0.0, 1.0])?
            .f_view([4, 3])?
            .f_to_device(weight.device())?;
    let u = g.f_matmul(&weight.f_to_kind(Kind::Double)?)?.f_matmul(&g.f_transpose(0, 1)?)?;
    let (cout, cin) = (weight.size()[0], weight.size()[1]);
    u.f_permute([2, 3, 0, 1])?
        .f_reshape([16 * cout, cin, 1, 1])?
        .f_to_kind(Kind::Float)?
        .f_contiguous()
}

/// Darknet max pooling in one pass over channels-last activations (`csrc/maxpool.cpp`).
fn pool(xs: &Tensor, m: &Maxpool) -> std::result::Result<Tensor, tch::TchError> {
    let size = xs.size();
    let (before, after_h, after_w) = maxpool_padding(m, size[2], size[3]);
    let out = |x: i64, after: i64| (x + before + after - m.size) / m.stride + 1;
    maxpool(xs, m.size, m.stride, before, (out(size[2], after_h), out(size[3], after_w)))
}

/// oneDNN's post-op for the conv's activation.
fn post_op(c: &FoldedConv) -> PostOp {
    match c.activation {
        Activation::Linear => PostOp::None,
        Activation::Leaky => PostOp::Leaky(LEAKY_SLOPE),
        Activation::Relu => PostOp::Relu,
        Activation::Logistic => PostOp::Sigmoid,
    }
}

/// The same NCHW tensor with channels-last strides (what libtorch's
/// `contiguous(ChannelsLast)` gives; tch has no memory-format argument).
fn channels_last(xs: &Tensor) -> std::result::Result<Tensor, tch::TchError> {
    xs.f_permute([0, 2, 3, 1])?.f_contiguous()?.f_permute([0, 3, 1, 2])
}

/// Batch norm folded into the convolution, in float64, rounded to float32 once.
fn fold(block: &super::conv::ConvBlock) -> std::result::Result<FoldedConv, tch::TchError> {
    let weight = block.weight.f_detach()?.f_to_kind(Kind::Double)?;
    let (weight, bias) = if let Some(bn) = &block.bn {
        let double = |t: &Tensor| t.f_detach().and_then(|t| t.f_to_kind(Kind::Double));
        let scale = double(&bn.gamma)?
            .f_div(&double(&bn.running_var)?.f_sqrt()?.f_add_scalar(BN_INFERENCE_EPS)?)?;
        let bias = double(&bn.beta)?.f_sub(&double(&bn.running_mean)?.f_mul(&scale)?)?;
        (weight.f_mul(&scale.f_view([-1, 1, 1, 1])?)?, bias)
    } else {
        let bias = match &block.bias {
            Some(b) => b.f_detach()?.f_to_kind(Kind::Double)?,
            None => weight.f_new_zeros([weight.size()[0]], (Kind::Double, weight.device()))?,
        };
        (weight, bias)
    };
    Ok(FoldedConv {
        weight: weight.f_to_kind(Kind::Float)?.f_contiguous()?,
        bias: bias.f_to_kind(Kind::Float)?,
        stride: block.stride,
        padding: block.padding,
        activation: block.activation,
        winograd: None,
        pooled: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The convolution pooled in one pass equals libtorch's convolution, activation and max
    /// pooling to float32 rounding, for 1 to 4 input channels, both activations, and sides
    /// where the windows reach every edge.
    #[test]
    fn conv_pool_equals_convolution_then_pooling() {
        tch::manual_seed(5);
        for (cin, cout, h, w, leaky) in [
            (1, 16, 6, 8, Some(LEAKY_SLOPE)),
            (2, 32, 4, 10, None),
            (3, 16, 12, 6, Some(0.25)),
            (4, 48, 2, 2, None),
        ] {
            let opts = (Kind::Float, Device::Cpu);
            let xs = Tensor::randn([2, cin, h, w], opts);
            let weight = Tensor::randn([cout, cin, 3, 3], opts);
            let bias = Tensor::randn([cout], opts);
            let ys = xs.conv2d(&weight, Some(&bias), [1, 1], [1, 1], [1, 1], 1);
            let ys = match leaky {
                Some(slope) => ys.maximum(&(&ys * slope)),
                None => ys,
            };
            let expected = ys.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
            let kernel = weight.permute([2, 3, 1, 0]).contiguous();
            let got = conv_pool(&channels_last(&xs).unwrap(), &kernel, &bias, leaky).unwrap();
            assert_eq!(got.size(), expected.size(), "{cin}->{cout} on {h}x{w}");
            let error = f64::try_from((got.contiguous() - &expected).abs().max()).unwrap();
            assert!(error < 1e-5, "{cin}->{cout} on {h}x{w}, leaky {leaky:?}: off by {error}");
        }
    }

    /// The one-pass pooling equals the training path's `ops::maxpool` bit for bit, NaN
    /// included, for darknet's pools (tiny's 2/2 and 2/1, SPP's 5/9/13 stride 1, a 3/2 with
    /// odd sides) on channels-last inputs.
    #[test]
    fn one_pass_pooling_equals_the_training_path() {
        if !has_mkldnn() {
            eprintln!("skipped: this libtorch has no oneDNN, so the inference engine pools with ops::maxpool");
            return;
        }
        tch::manual_seed(3);
        for (size, stride, padding, h, w) in [
            (2, 2, 0, 8, 6),
            (2, 2, 1, 7, 9),
            (2, 1, 1, 5, 7),
            (5, 1, 4, 9, 6),
            (9, 1, 8, 6, 6),
            (13, 1, 12, 7, 5),
            (3, 2, 2, 9, 7),
        ] {
            let m = Maxpool { size, stride, padding };
            let xs = Tensor::randn([2, 5, h, w], (Kind::Float, Device::Cpu));
            // A NaN in one window of every case.
            let _ = xs.get(1).get(3).get(h / 2).get(w / 2).fill_(f64::NAN);
            let expected = super::super::ops::maxpool(&xs, &m).unwrap();
            let got = pool(&channels_last(&xs).unwrap(), &m).unwrap();
            assert_eq!(got.size(), expected.size(), "{m:?} on {h}x{w}");
            let same = got
                .contiguous()
                .isnan()
                .logical_and(&expected.isnan())
                .logical_or(&got.contiguous().eq_tensor(&expected));
            assert!(bool::try_from(same.all()).unwrap(), "{m:?} on {h}x{w}: values differ");
            assert!(bool::try_from(got.isnan().any()).unwrap(), "{m:?}: the NaN was lost");
        }
    }
}
