//! Trainable-variable groups and freezing, for transfer learning.
//!
//! Convention: the "heads" are the convolutions whose raw output feeds a `[yolo]` layer (the
//! last conv of each branch, as keras-yolo3's `freeze_body=2` keeps trainable); everything
//! else is the "body". A frozen conv gets no gradient (`requires_grad = false` on its kernel,
//! bias, gamma and beta, which the optimizers skip) and, like darknet's `stopbackward` layers
//! and keras' non-trainable layers, its batch norm runs on the running statistics even in a
//! training pass, so they stay as they were. One mechanism serves `--freeze N`,
//! `--freeze backbone` and the keras two-stage schedule's frozen stage.

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
    /// Whether layer `layer`'s output feeds a `[yolo]` layer.
    #[must_use]
    pub fn is_head_source(&self, layer: usize) -> bool {
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

    /// Freezes every conv whose darknet index satisfies `frozen` and unfreezes the others.
    pub fn freeze(&mut self, frozen: impl Fn(usize) -> bool) {
        for (i, block) in self.convs.iter().enumerate() {
            let Some(block) = block else { continue };
            let f = frozen(i);
            self.frozen[i] = f;
            for t in block.trainable() {
                let _ = t.set_requires_grad(!f);
            }
        }
    }

    /// Whether conv `layer` is frozen.
    #[must_use]
    pub fn is_frozen(&self, layer: usize) -> bool {
        self.frozen.get(layer).copied().unwrap_or(false)
    }
}
