//! The darknet network built from a [`Config`] on libtorch.
//!
//! [`Darknet`] owns its `VarStore` (so checkpoints and optimizers see every variable) and runs
//! the layers in darknet index order on NCHW float tensors. [`Darknet::forward_t`] returns the
//! **raw** outputs of the layers feeding each `[yolo]` (no sigmoid, no exp), in cfg order,
//! matching [`Config::heads`]. `train = false` is darknet's inference (running statistics,
//! epsilon outside the square root); `train = true` uses batch statistics and updates the
//! running ones (see [`ops`] for the exact conventions).
//!
//! Layer outputs are dropped as soon as no later layer needs them. Inference runs on an
//! [`InferenceNet`], the same graph with batch norm folded and fused convolutions.

mod aten;
mod conv;
mod inference;
mod ops;
mod params;
mod transfer;

use tch::{nn, Device, Kind, Tensor};

pub use inference::{
    ConvEngine, InferenceNet, Winograd, WINOGRAD_GROUPED_MAX, WINOGRAD_MIN_CHANNELS,
    WINOGRAD_MIN_PRODUCT,
};
pub(crate) use ops::maxpool_padding;
pub use ops::{ReplicaSum, BN_INFERENCE_EPS, BN_MOMENTUM, BN_TRAIN_EPS, LEAKY_SLOPE};
pub use params::ParamGroups;
pub use transfer::{ReinitialisedHead, Transfer};

use crate::cfg::{Config, HeadSpec, Layer};
use crate::error::{ModelError, Result, TorchContext};
use conv::ConvBlock;

/// A YOLOv3-family network: the cfg, its variables and the runtime layers.
pub struct Darknet {
    cfg: Config,
    vs: nn::VarStore,
    /// One entry per darknet layer; `Some` for convolutions.
    convs: Vec<Option<ConvBlock>>,
    /// For each layer, the last layer that reads its output (itself if none does).
    last_use: Vec<usize>,
    /// Frozen convs (see [`Darknet::freeze`]): no gradient, running batch-norm statistics.
    frozen: Vec<bool>,
    /// Set in a data-parallel run: training batch norm uses the global batch's statistics.
    replicas: Option<ReplicaSum>,
}

impl std::fmt::Debug for Darknet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Darknet")
            .field("cfg", &self.cfg.name())
            .field("layers", &self.cfg.layers().len())
            .field("device", &self.vs.device())
            .finish_non_exhaustive()
    }
}

impl Darknet {
    /// Builds the network for `cfg` on `device` with freshly initialised variables
    /// (He-normal kernels, identity batch norm).
    pub fn new(cfg: Config, device: Device) -> Result<Self> {
        crate::memory::check_parameters(&cfg)?;
        let vs = nn::VarStore::new(device);
        let root = vs.root();
        let mut convs = Vec::with_capacity(cfg.layers().len());
        for (i, layer) in cfg.layers().iter().enumerate() {
            convs.push(match layer {
                Layer::Convolutional(c) => Some(
                    ConvBlock::new(&root, i, c, cfg.input_channels(i))
                        .torch(|| format!("creating the variables of conv layer {i}"))?,
                ),
                _ => None,
            });
        }
        let n = cfg.layers().len();
        let mut last_use: Vec<usize> = (0..n).collect();
        for (i, layer) in cfg.layers().iter().enumerate() {
            let mut reads = match layer {
                Layer::Route(r) => r.layers.clone(),
                Layer::Shortcut(s) => vec![s.from],
                _ => Vec::new(),
            };
            if i > 0 && !matches!(layer, Layer::Route(_)) {
                reads.push(i - 1);
            }
            for j in reads {
                last_use[j] = last_use[j].max(i);
            }
        }
        for head in cfg.heads() {
            last_use[head.source_layer] = n;
        }
        Ok(Self { cfg, vs, convs, last_use, frozen: vec![false; n], replicas: None })
    }

    /// The cfg the network was built from.
    #[must_use]
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Head metadata (anchors by mask, stride, classes), in output order.
    #[must_use]
    pub fn heads(&self) -> &[HeadSpec] {
        self.cfg.heads()
    }

    /// The device holding the variables.
    #[must_use]
    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// The variable store (e.g. to build a `tch::nn::Optimizer`).
    #[must_use]
    pub fn var_store(&self) -> &nn::VarStore {
        &self.vs
    }

    /// Mutable access to the variable store.
    pub fn var_store_mut(&mut self) -> &mut nn::VarStore {
        &mut self.vs
    }

    /// Makes training batch norm use the statistics of the global batch of a data-parallel
    /// run, summed over its ranks by `sum` (`None`: this process' batch).
    pub fn set_replica_sum(&mut self, sum: Option<ReplicaSum>) {
        self.replicas = sum;
    }

    /// Sets the running-statistics update rate of every batch norm (libtorch's convention,
    /// `running = (1 - m) * running + m * batch`; [`BN_MOMENTUM`] by default). Fine-tuning
    /// pretrained weights on other images needs the statistics to follow the new data within
    /// the run's few hundred steps: at 0.01 they keep 0.99^n of the old ones after n steps.
    pub fn set_bn_momentum(&mut self, momentum: f64) {
        for bn in self.convs.iter_mut().flatten().filter_map(|c| c.bn.as_mut()) {
            bn.momentum = momentum;
        }
    }

    pub(crate) fn conv_blocks(&self) -> impl Iterator<Item = (usize, &ConvBlock)> {
        self.convs.iter().enumerate().filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
    }

    /// Runs the network on `xs` (`N x channels x H x W`, float32, on the network's device) and
    /// returns the raw head outputs `N x anchors*(5+classes) x H/stride x W/stride` in cfg
    /// order. `train` selects batch statistics (and running-stat updates) in batch norm, except
    /// in frozen convs, which keep their running statistics.
    pub fn forward_t(&self, xs: &Tensor, train: bool) -> Result<Vec<Tensor>> {
        check_input(&self.cfg, self.device(), xs)?;
        let conv = |i: usize, input: &Tensor| {
            let block = self.convs[i].as_ref().expect("conv block for conv layer");
            block.forward(input, train && !self.frozen[i], self.replicas.as_ref())
        };
        run_layers(&self.cfg, &self.last_use, xs, conv, |_, x, m| ops::maxpool(x, m))
    }
}

/// Checks that `xs` is a float32 `N x channels x H x W` tensor on `device` whose sides the
/// network's strides divide.
fn check_input(cfg: &Config, device: Device, xs: &Tensor) -> Result<()> {
    let size = xs.size();
    let channels = cfg.net().channels;
    if size.len() != 4 || size[1] != channels || xs.kind() != Kind::Float || xs.device() != device {
        return Err(ModelError::InputTensor {
            expected: format!("a float32 N x {channels} x H x W tensor on {device:?}"),
            actual: format!("{:?} {size:?} on {:?}", xs.kind(), xs.device()),
        });
    }
    cfg.output_shapes(size[2], size[3])?;
    Ok(())
}

/// Runs the layers of `cfg` in darknet order on `xs`, convolution `i` through `conv(i, input)`
/// and max pooling `i` through `pool(i, input, window)`, dropping each output after `last_use`; returns the head
/// inputs in cfg order.
fn run_layers(
    cfg: &Config,
    last_use: &[usize],
    xs: &Tensor,
    mut conv: impl FnMut(usize, &Tensor) -> std::result::Result<Tensor, tch::TchError>,
    pool: impl Fn(usize, &Tensor, &crate::cfg::Maxpool) -> std::result::Result<Tensor, tch::TchError>,
) -> Result<Vec<Tensor>> {
    let layers = cfg.layers();
    let mut outputs: Vec<Option<Tensor>> = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let context = || format!("layer {i} [{}]", layer.section_name());
        let input = if i == 0 { Some(xs) } else { outputs[i - 1].as_ref() };
        let get = |j: usize| outputs[j].as_ref().expect("kept until its last use");
        let out = match layer {
            Layer::Convolutional(_) => Some(conv(i, input.expect("conv input")).torch(context)?),
            Layer::Maxpool(m) => Some(pool(i, input.expect("pool input"), m).torch(context)?),
            Layer::Upsample(u) => {
                Some(ops::upsample(input.expect("upsample input"), u.stride).torch(context)?)
            }
            Layer::Route(r) => Some(if let [j] = r.layers[..] {
                get(j).shallow_clone()
            } else {
                let parts: Vec<&Tensor> = r.layers.iter().map(|&j| get(j)).collect();
                Tensor::f_cat(&parts, 1).torch(context)?
            }),
            Layer::Shortcut(s) => {
                let prev = input.expect("shortcut input");
                let from = get(s.from);
                let sum = if s.alpha == 1.0 && s.beta == 1.0 {
                    prev.f_add(from)
                } else {
                    prev.f_mul_scalar(s.alpha).and_then(|p| p.f_add(&from.f_mul_scalar(s.beta)?))
                };
                Some(sum.and_then(|t| ops::activate(t, s.activation)).torch(context)?)
            }
            Layer::Yolo(_) => None,
        };
        outputs.push(out);
        // Free what no later layer reads (heads are kept to the end).
        for (j, slot) in outputs.iter_mut().enumerate() {
            if last_use[j] <= i {
                *slot = None;
            }
        }
    }
    Ok(cfg
        .heads()
        .iter()
        .map(|h| outputs[h.source_layer].take().expect("head output kept"))
        .collect())
}
