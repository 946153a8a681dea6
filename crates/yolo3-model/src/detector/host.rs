//! Head outputs copied to the host, in the layout `yolo3-core`'s decode and fused loss read.

use tch::{Device, Kind, Tensor};
use yolo3_core::HeadInput;

use crate::error::{ModelError, Result, TorchContext};

/// Per head, its flat `f32` values (NCHW, contiguous) and its shape.
#[derive(Debug, Clone, PartialEq)]
pub struct HostOutputs {
    /// Values of each head.
    pub data: Vec<Vec<f32>>,
    /// `[N, C, H, W]` of each head.
    pub shapes: Vec<[usize; 4]>,
}

impl HostOutputs {
    /// Copies head outputs (NCHW tensors on any device) to the host.
    pub fn copy(outputs: &[Tensor]) -> Result<Self> {
        let mut data = Vec::with_capacity(outputs.len());
        let mut shapes = Vec::with_capacity(outputs.len());
        for (l, out) in outputs.iter().enumerate() {
            let shape: [usize; 4] = out
                .size()
                .iter()
                .map(|&d| usize::try_from(d).unwrap_or(0))
                .collect::<Vec<_>>()
                .try_into()
                .map_err(|_| ModelError::InputTensor {
                    expected: format!("head {l}: an N x C x H x W tensor"),
                    actual: format!("{:?}", out.size()),
                })?;
            let flat = out
                .f_detach()
                .and_then(|t| t.f_to_device(Device::Cpu))
                .and_then(|t| t.f_to_kind(Kind::Float))
                .and_then(|t| t.f_contiguous())
                .and_then(|t| t.f_view([-1]))
                .torch(|| format!("reading head {l}"))?;
            data.push(Vec::<f32>::try_from(&flat).torch(|| format!("copying head {l}"))?);
            shapes.push(shape);
        }
        Ok(Self { data, shapes })
    }

    /// The core's view of the outputs: one [`HeadInput`] per head.
    #[must_use]
    pub fn heads(&self) -> Vec<HeadInput<'_, f32>> {
        self.data
            .iter()
            .zip(&self.shapes)
            .map(|(data, &[_, channels, height, width])| HeadInput {
                data,
                height,
                width,
                channels,
            })
            .collect()
    }
}
