//! The exact keras-yolo3 loss inside libtorch's autograd.
//!
//! The network's raw NCHW head outputs are copied to the CPU, `yolo3-core` computes the loss
//! and its gradient in one fused pass, and the gradient `G` re-enters the graph as the
//! surrogate `sum(raw * G)` (with `G` a constant): its derivative with respect to `raw` is
//! exactly `G`, so `backward()` propagates the core's gradient through the network. The
//! returned tensor's value is the core's loss (the surrogate's value is cancelled out), so
//! what is logged is what is optimised.

use tch::{Kind, Tensor};
use yolo3_core::{
    assign_targets, yolo_loss, Anchors, HeadConfig, LabeledBox, Layout, LossOptions, LossParts,
};
use yolo3_model::HostOutputs;

use crate::error::{Result, TorchResult, TrainError};

/// The loss of a network with fixed anchors and classes, for any input size.
#[derive(Clone, Debug)]
pub struct YoloLoss {
    anchors: Anchors,
    num_classes: usize,
    options: LossOptions,
}

/// The loss tensor (for `backward`) and its parts (for logging).
#[derive(Debug)]
pub struct LossOutput {
    /// A scalar whose value is the loss and whose gradient is the core's.
    pub loss: Tensor,
    /// The loss and its components, computed in `f64`.
    pub parts: LossParts,
}

impl YoloLoss {
    /// A loss for these anchors and classes.
    #[must_use]
    pub fn new(anchors: Anchors, num_classes: usize, options: LossOptions) -> Self {
        Self { anchors, num_classes, options }
    }

    /// The head configuration at an input size.
    pub fn head_config(&self, input_h: usize, input_w: usize) -> Result<HeadConfig> {
        HeadConfig::new(input_h, input_w, self.num_classes, self.anchors.clone())
            .map_err(|source| TrainError::Core { context: "head configuration".into(), source })
    }

    /// The loss of raw NCHW head outputs against boxes in network-input pixels.
    pub fn compute(
        &self,
        outputs: &[Tensor],
        boxes: &[Vec<LabeledBox>],
        input_hw: (usize, usize),
    ) -> Result<LossOutput> {
        let config = self.head_config(input_hw.0, input_hw.1)?;
        let batch = boxes.len();
        let refs: Vec<&[LabeledBox]> = boxes.iter().map(Vec::as_slice).collect();
        let targets = assign_targets(&config, &refs)
            .map_err(|source| TrainError::Core { context: "assigning targets".into(), source })?;
        let host = HostOutputs::copy(outputs)?;
        let inputs = host.heads();
        let shapes: Vec<Vec<i64>> =
            host.shapes.iter().map(|s| s.iter().map(|&d| d as i64).collect()).collect();
        let host = &host.data;
        let mut grads: Vec<Vec<f32>> = host.iter().map(|h| vec![0.0; h.len()]).collect();
        let mut grad_refs: Vec<&mut [f32]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
        let parts = yolo_loss(
            &config,
            Layout::Nchw,
            batch,
            &inputs,
            &targets,
            &self.options,
            &mut grad_refs,
        )
        .map_err(|source| TrainError::Core { context: "loss".into(), source })?;
        let device = outputs[0].device();
        let mut surrogate: Option<Tensor> = None;
        for ((out, g), shape) in outputs.iter().zip(&grads).zip(shapes) {
            let g = Tensor::f_from_slice(g)
                .and_then(|t| t.f_view(shape.as_slice()))
                .and_then(|t| t.f_to_device(device))
                .torch(|| "uploading the loss gradient".into())?;
            let term = out
                .f_mul(&g)
                .and_then(|t| t.f_sum(Kind::Float))
                .torch(|| "loss surrogate".into())?;
            surrogate = Some(match surrogate {
                None => term,
                Some(acc) => acc.f_add(&term).torch(|| "loss surrogate".into())?,
            });
        }
        let surrogate =
            surrogate.ok_or_else(|| TrainError::Config("the network has no head".into()))?;
        // value = parts.total, gradient = d surrogate.
        let loss = surrogate
            .f_sub(&surrogate.detach())
            .and_then(|t| t.f_add_scalar(parts.total))
            .torch(|| "loss value".into())?;
        Ok(LossOutput { loss, parts })
    }
}
