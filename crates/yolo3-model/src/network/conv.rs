//! One darknet convolutional layer: its variables in the `VarStore` and its forward pass.
//!
//! Variable names (also the checkpoint tensor names) are `layers.<i>.conv.weight`,
//! `layers.<i>.conv.bias` (convs without batch norm only), and `layers.<i>.bn.weight` (gamma),
//! `layers.<i>.bn.bias` (beta), `layers.<i>.bn.running_mean`, `layers.<i>.bn.running_var`.
//! Fresh variables use He-normal kernels, zero biases and the identity batch norm.

use tch::{nn, Tensor};

use super::ops::{activate, BatchNorm, ReplicaSum};
use crate::cfg::{Activation, Convolutional};

/// A convolution with optional batch norm and an activation.
pub(crate) struct ConvBlock {
    pub weight: Tensor,
    pub bias: Option<Tensor>,
    pub bn: Option<BatchNorm>,
    pub stride: i64,
    pub padding: i64,
    pub activation: Activation,
}

impl ConvBlock {
    /// Creates the variables of conv `index` under `root`.
    pub(crate) fn new(
        root: &nn::Path<'_>,
        index: usize,
        conv: &Convolutional,
        in_channels: i64,
    ) -> Result<Self, tch::TchError> {
        let layer = root.sub("layers").sub(index);
        let fan_in = (in_channels * conv.size * conv.size) as f64;
        let c = layer.sub("conv");
        let weight = c.f_var(
            "weight",
            &[conv.filters, in_channels, conv.size, conv.size],
            nn::Init::Randn { mean: 0.0, stdev: (2.0 / fan_in).sqrt() },
        )?;
        let n = [conv.filters];
        let (bias, bn) = if conv.batch_normalize {
            let b = layer.sub("bn");
            let bn = BatchNorm {
                gamma: b.f_ones("weight", &n)?,
                beta: b.f_zeros("bias", &n)?,
                running_mean: b.f_zeros_no_train("running_mean", &n)?,
                running_var: b.f_ones_no_train("running_var", &n)?,
                momentum: super::ops::BN_MOMENTUM,
            };
            (None, Some(bn))
        } else {
            (Some(c.f_zeros("bias", &n)?), None)
        };
        Ok(Self {
            weight,
            bias,
            bn,
            stride: conv.stride,
            padding: conv.padding,
            activation: conv.activation,
        })
    }

    /// Convolution, batch norm (batch statistics when `train`, global ones with `replicas`),
    /// activation.
    pub(crate) fn forward(
        &self,
        xs: &Tensor,
        train: bool,
        replicas: Option<&ReplicaSum>,
    ) -> Result<Tensor, tch::TchError> {
        let ys = xs.f_conv2d(
            &self.weight,
            self.bias.as_ref(),
            [self.stride, self.stride],
            [self.padding, self.padding],
            [1, 1],
            1,
        )?;
        let ys = match &self.bn {
            Some(bn) => bn.forward(&ys, train, replicas)?,
            None => ys,
        };
        activate(ys, self.activation)
    }

    /// The trainable tensors: kernel, then bias or gamma and beta.
    pub(crate) fn trainable(&self) -> Vec<&Tensor> {
        let mut out = vec![&self.weight];
        out.extend(self.bias.as_ref());
        if let Some(bn) = &self.bn {
            out.push(&bn.gamma);
            out.push(&bn.beta);
        }
        out
    }
}
