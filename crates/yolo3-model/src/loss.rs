//! The exact keras-yolo3 loss inside libtorch's autograd (training) and on a network's heads
//! (evaluation, where the same call under `no_grad` gives the loss without a graph).
//!
//! The network's raw NCHW head outputs are copied to the CPU, `yolo3-core` computes the loss
//! and its gradient in one fused pass, and the gradient `G` re-enters the graph as the
//! surrogate `sum(raw * G)` (with `G` a constant): its derivative with respect to `raw` is
//! exactly `G`, so `backward()` propagates the core's gradient through the network. The
//! returned tensor's value is the core's loss (the surrogate's value is cancelled out), so
//! what is logged is what is optimised.

use crate::error::{ModelError, Result, TorchContext as _};
use crate::HostOutputs;
use tch::{Kind, Tensor};
use yolo3_core::{
    assign_targets, yolo_loss, Anchors, HeadConfig, LabeledBox, Layout, LossOptions, LossParts,
};

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
            .map_err(|source| ModelError::Core { context: "head configuration".into(), source })
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
            .map_err(|source| ModelError::Core { context: "assigning targets".into(), source })?;
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
        .map_err(|source| ModelError::Core { context: "loss".into(), source })?;
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
        let surrogate = surrogate.ok_or_else(|| ModelError::Heads {
            cfg: "the network".into(),
            message: "has no [yolo] head to compute a loss on".into(),
        })?;
        // value = parts.total, gradient = d surrogate.
        let loss = surrogate
            .f_sub(&surrogate.detach())
            .and_then(|t| t.f_add_scalar(parts.total))
            .torch(|| "loss value".into())?;
        Ok(LossOutput { loss, parts })
    }
}

#[cfg(test)]
mod tests {
    use tch::{Device, Kind, Tensor};
    use yolo3_core::{BoxXyxy, HeadInput, TinyMask};

    use super::*;

    fn boxes() -> Vec<Vec<LabeledBox>> {
        let lb = |x0, y0, x1, y1, class| LabeledBox { bbox: BoxXyxy::new(x0, y0, x1, y1), class };
        vec![
            vec![lb(4.0, 6.0, 30.0, 40.0, 1), lb(33.0, 30.0, 60.0, 58.0, 2)],
            vec![lb(10.0, 10.0, 50.0, 44.0, 0)],
        ]
    }

    #[test]
    fn backward_gives_the_core_gradient() {
        let anchors = Anchors::tiny(TinyMask::Darknet);
        let loss = YoloLoss::new(anchors.clone(), 3, LossOptions::default());
        tch::manual_seed(1);
        let outputs: Vec<Tensor> = [(2, 2), (4, 4)]
            .iter()
            .map(|&(h, w)| {
                (Tensor::randn([2, 24, h, w], (Kind::Float, Device::Cpu)) * 1.5)
                    .set_requires_grad(true)
            })
            .collect();
        let out = loss.compute(&outputs, &boxes(), (64, 64)).unwrap();
        assert!((out.loss.double_value(&[]) - out.parts.total).abs() < 1e-3 * out.parts.total);
        out.loss.backward();

        let config = loss.head_config(64, 64).unwrap();
        let host: Vec<Vec<f32>> =
            outputs.iter().map(|t| Vec::<f32>::try_from(t.detach().view([-1])).unwrap()).collect();
        let inputs: Vec<HeadInput<'_, f32>> = host
            .iter()
            .zip([(2, 2), (4, 4)])
            .map(|(d, (h, w))| HeadInput { data: d, height: h, width: w, channels: 24 })
            .collect();
        let mut grads: Vec<Vec<f32>> = host.iter().map(|h| vec![0.0; h.len()]).collect();
        let mut refs: Vec<&mut [f32]> = grads.iter_mut().map(Vec::as_mut_slice).collect();
        let b = boxes();
        let box_refs: Vec<&[LabeledBox]> = b.iter().map(Vec::as_slice).collect();
        let targets = assign_targets(&config, &box_refs).unwrap();
        let parts = yolo_loss(
            &config,
            Layout::Nchw,
            2,
            &inputs,
            &targets,
            &LossOptions::default(),
            &mut refs,
        )
        .unwrap();
        assert_eq!(parts.total, out.parts.total);
        for (t, g) in outputs.iter().zip(&grads) {
            let autograd = Vec::<f32>::try_from(t.grad().view([-1])).unwrap();
            let worst = autograd.iter().zip(g).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(worst < 1e-6, "autograd differs from the core gradient by {worst}");
        }
    }
}
