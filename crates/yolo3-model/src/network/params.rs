//! Trainable-variable groups and freezing, for two-stage transfer learning.
//!
//! Convention: the "heads" are the convolutions whose raw output feeds a `[yolo]` layer (the
//! last conv of each branch, as keras-yolo3's `freeze_body=2` keeps trainable); everything
//! else is the "body". Freezing sets `requires_grad = false` on the kernels, biases, gammas
//! and betas; libtorch optimizers skip parameters without a gradient. Freezing does not
//! change batch norm: in `train` mode the frozen layers still normalise with batch
//! statistics and update their running statistics, so a training loop that wants frozen
//! statistics runs the network with `train = false` during that stage.

use std::ops::RangeBounds;

use tch::Tensor;

use super::Darknet;

/// The trainable variables split into body and heads.
#[derive(Debug)]
pub struct ParamGroups {
    /// Variables of every conv that does not feed a `[yolo]` layer.
    pub body: Vec<Tensor>,
    /// Variables of the convs feeding the `[yolo]` layers.
    pub heads: Vec<Tensor>,
}

impl Darknet {
    fn is_head_source(&self, layer: usize) -> bool {
        self.cfg.heads().iter().any(|h| h.source_layer == layer)
    }

    /// The trainable variables (shallow copies sharing storage), split into body and heads.
    #[must_use]
    pub fn param_groups(&self) -> ParamGroups {
        let mut groups = ParamGroups { body: Vec::new(), heads: Vec::new() };
        for (i, block) in self.conv_blocks() {
            let target = if self.is_head_source(i) { &mut groups.heads } else { &mut groups.body };
            target.extend(block.trainable().into_iter().map(Tensor::shallow_clone));
        }
        groups
    }

    /// Sets `requires_grad` on the variables of the convs whose darknet index is in `layers`.
    pub fn set_layers_trainable(&self, layers: impl RangeBounds<usize>, trainable: bool) {
        for (_, block) in self.conv_blocks().filter(|(i, _)| layers.contains(i)) {
            for t in block.trainable() {
                let _ = t.set_requires_grad(trainable);
            }
        }
    }

    /// Freezes (`trainable = false`) or unfreezes every conv except the heads.
    pub fn set_body_trainable(&self, trainable: bool) {
        for (i, block) in self.conv_blocks() {
            if !self.is_head_source(i) {
                for t in block.trainable() {
                    let _ = t.set_requires_grad(trainable);
                }
            }
        }
    }
}
