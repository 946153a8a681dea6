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

impl Darknet {
    /// Loads `weights` into the first `weights.convs.len()` convs. Returns how many convs
    /// were loaded.
    pub fn load_darknet_weights(&mut self, weights: &DarknetWeights) -> Result<usize> {
        let layouts = ConvLayout::of_config(&self.cfg);
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
        for (k, (params, layout)) in weights.convs.iter().zip(&layouts).enumerate() {
            let mismatch = |message: String| ModelError::WeightsMismatch {
                conv: k,
                layer: layout.layer,
                message,
            };
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
                    if [&p.scales, &p.rolling_mean, &p.rolling_variance]
                        .iter()
                        .any(|v| v.len() != n)
                    {
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
        }
        Ok(weights.convs.len())
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
