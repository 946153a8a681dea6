//! Moving darknet `.weights` content into and out of a live [`Darknet`].
//!
//! Loading copies (without recording gradients) into the existing variables, so optimizers
//! built on the network keep working; a partial file leaves the later convs untouched.
//! Exporting reads every conv back into a [`DarknetWeights`] in file order.

use tch::{Device, Tensor};

use super::Darknet;
use crate::error::{ModelError, Result, TorchContext};
use crate::weights::{BatchNormParams, ConvLayout, ConvParams, DarknetWeights, WeightsHeader};

fn copy_into(dst: &Tensor, src: &[f32]) -> std::result::Result<(), tch::TchError> {
    let values = Tensor::f_from_slice(src)?.f_view(dst.size().as_slice())?;
    tch::no_grad(|| dst.shallow_clone().f_copy_(&values))
}

fn read_out(t: &Tensor) -> std::result::Result<Vec<f32>, tch::TchError> {
    Vec::<f32>::try_from(&t.f_detach()?.f_to_device(Device::Cpu)?.f_contiguous()?.f_flatten(0, -1)?)
}

/// A head conv whose shape differs between a weights file and the network; it keeps its
/// initialisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReinitialisedHead {
    /// Darknet layer index of the conv.
    pub layer: usize,
    /// Its filters in the file.
    pub file_filters: usize,
    /// Its filters in the network.
    pub filters: usize,
}

/// What loading initial weights by shape did ([`Darknet::transfer_darknet_weights`],
/// [`Darknet::transfer_checkpoint`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// Convs loaded from the file.
    pub loaded: usize,
    /// Convs of the network.
    pub total: usize,
    /// Heads left at their initialisation because the file's have another shape.
    pub reinitialised: Vec<ReinitialisedHead>,
    /// Anchors per head of the network (to turn filters into classes in messages).
    pub anchors_per_head: usize,
}

impl Transfer {
    /// One line for the user: `11/13 conv layers from <source>; 2 heads re-initialised (80 ->
    /// 4 classes)`.
    #[must_use]
    pub fn describe(&self, source: &str) -> String {
        use std::fmt::Write as _;
        let mut f = format!("{}/{} conv layers from {source}", self.loaded, self.total);
        let classes = |filters: usize| {
            let a = self.anchors_per_head.max(1);
            (filters.is_multiple_of(a) && filters / a >= 5).then(|| filters / a - 5)
        };
        if let Some(h) = self.reinitialised.first() {
            let _ = write!(f, "; {} heads re-initialised", self.reinitialised.len());
            let _ = match (classes(h.file_filters), classes(h.filters)) {
                (Some(from), Some(to)) => write!(f, " ({from} -> {to} classes)"),
                _ => write!(f, " ({} -> {} filters)", h.file_filters, h.filters),
            };
        }
        let rest = self.total - self.loaded - self.reinitialised.len();
        if rest > 0 {
            let _ =
                write!(f, "; the last {rest} are not in the file (a partial file) and start fresh");
        }
        f
    }
}

impl Darknet {
    /// Loads `weights` into the first `weights.convs.len()` convs. Returns how many convs
    /// were loaded.
    pub fn load_darknet_weights(&mut self, weights: &DarknetWeights) -> Result<usize> {
        let layouts = ConvLayout::of_config(&self.cfg);
        Self::check_conv_count(weights, &layouts)?;
        for (k, (params, layout)) in weights.convs.iter().zip(&layouts).enumerate() {
            self.load_conv(k, params, layout)?;
        }
        Ok(weights.convs.len())
    }

    /// Loads weights read with `file_layouts` ([`DarknetWeights::read_transfer`]): every conv
    /// whose layout is the network's, in order; a head whose layout differs (another class or
    /// anchor count) keeps its initialisation. Any other difference is an error naming the conv.
    pub fn transfer_darknet_weights(
        &mut self,
        weights: &DarknetWeights,
        file_layouts: &[ConvLayout],
    ) -> Result<Transfer> {
        let layouts = ConvLayout::of_config(&self.cfg);
        Self::check_conv_count(weights, &layouts)?;
        let heads = self.cfg.head_conv_layers();
        let mut transfer = self.empty_transfer();
        for (k, ((params, layout), file)) in
            weights.convs.iter().zip(&layouts).zip(file_layouts).enumerate()
        {
            if file == layout {
                self.load_conv(k, params, layout)?;
                transfer.loaded += 1;
            } else if heads.contains(&layout.layer) && file.filters != layout.filters {
                transfer.reinitialised.push(ReinitialisedHead {
                    layer: layout.layer,
                    file_filters: file.filters,
                    filters: layout.filters,
                });
            } else {
                return Err(ModelError::WeightsMismatch {
                    conv: k,
                    layer: layout.layer,
                    message: format!("the file's layout {file:?} is not the cfg's {layout:?}"),
                });
            }
        }
        Ok(transfer)
    }

    /// A transfer of nothing yet into this network.
    pub(crate) fn empty_transfer(&self) -> Transfer {
        Transfer {
            loaded: 0,
            total: self.cfg.conv_layers().len(),
            reinitialised: Vec::new(),
            anchors_per_head: self.cfg.heads().first().map_or(0, |h| h.mask.len()),
        }
    }

    fn check_conv_count(weights: &DarknetWeights, layouts: &[ConvLayout]) -> Result<()> {
        if weights.convs.len() > layouts.len() {
            return Err(ModelError::WeightsMismatch {
                conv: layouts.len(),
                layer: 0,
                message: format!(
                    "{} convs given, the cfg has {}",
                    weights.convs.len(),
                    layouts.len()
                ),
            });
        }
        Ok(())
    }

    /// Copies conv `k`'s parameters into its layer.
    fn load_conv(&self, k: usize, params: &ConvParams, layout: &ConvLayout) -> Result<()> {
        let mismatch =
            |message: String| ModelError::WeightsMismatch { conv: k, layer: layout.layer, message };
        let n = layout.filters;
        if params.biases.len() != n || params.kernel.len() != layout.kernel_len() {
            return Err(mismatch(format!(
                "{} biases and {} kernel values, the cfg needs {n} and {}",
                params.biases.len(),
                params.kernel.len(),
                layout.kernel_len()
            )));
        }
        let block = self.convs[layout.layer].as_ref().expect("conv block for conv layer");
        let context = || format!("loading conv layer {}", layout.layer);
        copy_into(&block.weight, &params.kernel).torch(context)?;
        match (&block.bn, &params.batch_norm, &block.bias) {
            (Some(bn), Some(p), _) => {
                if [&p.scales, &p.rolling_mean, &p.rolling_variance].iter().any(|v| v.len() != n) {
                    return Err(mismatch(format!("batch-norm vectors must have {n} values")));
                }
                copy_into(&bn.beta, &params.biases).torch(context)?;
                copy_into(&bn.gamma, &p.scales).torch(context)?;
                copy_into(&bn.running_mean, &p.rolling_mean).torch(context)?;
                copy_into(&bn.running_var, &p.rolling_variance).torch(context)?;
            }
            (None, None, Some(bias)) => copy_into(bias, &params.biases).torch(context)?,
            _ => {
                return Err(mismatch(
                    "batch norm present in only one of the cfg and the weights".into(),
                ))
            }
        }
        Ok(())
    }

    /// Reads every conv of the live network into darknet `.weights` content with `header`.
    pub fn export_darknet_weights(&self, header: WeightsHeader) -> Result<DarknetWeights> {
        let mut convs = Vec::new();
        for (i, block) in self.conv_blocks() {
            let context = || format!("exporting conv layer {i}");
            let kernel = read_out(&block.weight).torch(context)?;
            let params = match (&block.bn, &block.bias) {
                (Some(bn), _) => ConvParams {
                    biases: read_out(&bn.beta).torch(context)?,
                    batch_norm: Some(BatchNormParams {
                        scales: read_out(&bn.gamma).torch(context)?,
                        rolling_mean: read_out(&bn.running_mean).torch(context)?,
                        rolling_variance: read_out(&bn.running_var).torch(context)?,
                    }),
                    kernel,
                },
                (None, Some(bias)) => {
                    ConvParams { biases: read_out(bias).torch(context)?, batch_norm: None, kernel }
                }
                (None, None) => unreachable!("a conv has either batch norm or a bias"),
            };
            convs.push(params);
        }
        Ok(DarknetWeights { header, convs })
    }
}
