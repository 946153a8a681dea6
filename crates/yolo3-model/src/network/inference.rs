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
//!   and kept;
//! * elsewhere ([`ConvEngine::Plain`], e.g. CUDA, where cuDNN picks its own algorithms), the
//!   folded convolution then the activation, in NCHW.
//!
//! The rest of the graph (pooling, upsampling, route, shortcut) is the same code as
//! [`Darknet::forward_t`]. Outputs equal the unfolded network's to float32 rounding (the
//! shared model cases check both against the float64 reference at one tolerance).
//! Measured on 2 cores (tiny-YOLOv3, 416, batch 8; `scripts/bench-model.sh`): see the README.

use std::collections::HashMap;
use std::sync::Mutex;

use tch::{Device, Kind, Tensor};

use super::aten::{conv_pointwise, has_mkldnn, PostOp};
use super::ops::{activate, BN_INFERENCE_EPS, LEAKY_SLOPE};
use super::{check_input, run_layers, Darknet};
use crate::cfg::{Activation, Config};
use crate::error::{Result, TorchContext};

/// How the convolutions of an [`InferenceNet`] run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConvEngine {
    /// oneDNN's fused convolution + bias + activation on channels-last activations, kernels
    /// reordered per input shape (CPU builds of libtorch with oneDNN).
    OneDnn,
    /// libtorch's convolution with the folded bias, then the activation, in NCHW.
    Plain,
}

impl ConvEngine {
    /// The fastest engine for `device`: oneDNN on the CPU where libtorch has it, else plain.
    #[must_use]
    pub fn for_device(device: Device) -> Self {
        if device == Device::Cpu && has_mkldnn() {
            Self::OneDnn
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
}

/// Kernels in oneDNN's layout kept per (layer, input shape); cleared when this many shapes
/// per convolution have been seen (a caller whose input size keeps changing).
const MAX_SHAPES_PER_CONV: usize = 4;

/// An inference-only copy of a network (see the module docs). Later changes to the
/// [`Darknet`]'s variables do not reach it: prepare it again after training steps.
pub struct InferenceNet {
    cfg: Config,
    last_use: Vec<usize>,
    device: Device,
    engine: ConvEngine,
    convs: Vec<Option<FoldedConv>>,
    packed: Mutex<HashMap<(usize, Vec<i64>), Tensor>>,
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
        let engine = match engine {
            ConvEngine::OneDnn if ConvEngine::for_device(net.device()) == ConvEngine::OneDnn => {
                ConvEngine::OneDnn
            }
            _ => ConvEngine::Plain,
        };
        let mut convs = Vec::with_capacity(net.convs.len());
        for (i, block) in net.convs.iter().enumerate() {
            convs.push(match block {
                Some(block) => Some(
                    tch::no_grad(|| fold(block))
                        .torch(|| format!("folding batch norm into conv layer {i}"))?,
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
            let xs = match self.engine {
                ConvEngine::OneDnn => channels_last(&xs).torch(|| "reordering a batch".into())?,
                ConvEngine::Plain => xs,
            };
            run_layers(&self.cfg, &self.last_use, &xs, |i, input| self.conv(i, input))
        })
    }

    fn conv(&self, i: usize, xs: &Tensor) -> std::result::Result<Tensor, tch::TchError> {
        let c = self.convs[i].as_ref().expect("folded conv for conv layer");
        match self.engine {
            ConvEngine::OneDnn => {
                let weight = self.packed_weight(i, c, xs)?;
                conv_pointwise(xs, &weight, Some(&c.bias), c.stride, c.padding, post_op(c))
            }
            ConvEngine::Plain => {
                let ys = xs.f_conv2d(
                    &c.weight,
                    Some(&c.bias),
                    [c.stride, c.stride],
                    [c.padding, c.padding],
                    [1, 1],
                    1,
                )?;
                activate(ys, c.activation)
            }
        }
    }

    /// The kernel of conv `i` in oneDNN's layout for inputs shaped like `xs`.
    fn packed_weight(
        &self,
        i: usize,
        c: &FoldedConv,
        xs: &Tensor,
    ) -> std::result::Result<Tensor, tch::TchError> {
        let key = (i, xs.size());
        let mut packed = self.packed.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(w) = packed.get(&key) {
            return Ok(w.shallow_clone());
        }
        let w = c.weight.f_to_mkldnn(None)?.f_mkldnn_reorder_conv2d_weight(
            [c.padding, c.padding],
            [c.stride, c.stride],
            [1, 1],
            1,
            Some(key.1.as_slice()),
        )?;
        if packed.len() >= MAX_SHAPES_PER_CONV * self.convs.len() {
            packed.clear();
        }
        packed.insert(key, w.shallow_clone());
        Ok(w)
    }
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
    })
}
