//! Adam and SGD with momentum over the network's variables, with state that can be saved and
//! restored exactly, so that `--resume` continues a run where it stopped.
//!
//! libtorch's optimizers through tch keep their moments out of reach; these are written here
//! with tensor operations (under `no_grad`), per parameter, as PyTorch defines them:
//! * Adam: `m = b1 m + (1-b1) g`, `v = b2 v + (1-b2) g^2`,
//!   `p -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)`, with `t` counted per parameter
//!   (a layer unfrozen later starts its own count);
//! * SGD: `buf = momentum * buf + g`, `p -= lr * buf` (no dampening, not Nesterov).
//!
//! Weight decay (`g += decay * p`) applies to convolution kernels only (4-D variables), never
//! to batch-norm scales or biases, as darknet does.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

use yolo3_model::TorchContext as _;

use crate::error::Result;

/// Which optimizer, with its hyper-parameters (the learning rate comes from the schedule).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum OptimizerKind {
    /// Adam (keras-yolo3's choice).
    Adam {
        /// First-moment decay.
        beta1: f64,
        /// Second-moment decay.
        beta2: f64,
        /// Denominator guard.
        eps: f64,
        /// L2 decay of conv kernels.
        weight_decay: f64,
    },
    /// SGD with momentum (darknet's choice).
    Sgd {
        /// Momentum.
        momentum: f64,
        /// L2 decay of conv kernels.
        weight_decay: f64,
    },
}

impl OptimizerKind {
    /// Adam with PyTorch's defaults (`1e-8` guard, keras uses `1e-7`; the difference is
    /// immaterial) and no weight decay.
    #[must_use]
    pub fn adam() -> Self {
        Self::Adam { beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 }
    }

    /// SGD with darknet's momentum 0.9 and decay 5e-4.
    #[must_use]
    pub fn sgd() -> Self {
        Self::Sgd { momentum: 0.9, weight_decay: 5e-4 }
    }

    /// The optimizer's name as `--optimizer` takes it.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Adam { .. } => "adam",
            Self::Sgd { .. } => "sgd",
        }
    }
}

/// An optimizer's saved state: named moment tensors and per-parameter step counts.
pub type OptimizerState = (Vec<(String, Tensor)>, BTreeMap<String, i64>);

/// The per-parameter state.
#[derive(Debug)]
struct Slot {
    /// Adam's first moment or SGD's momentum buffer.
    first: Tensor,
    /// Adam's second moment (undefined for SGD).
    second: Option<Tensor>,
    /// Updates applied to this parameter.
    steps: i64,
}

/// An optimizer over named variables.
#[derive(Debug)]
pub struct Optimizer {
    kind: OptimizerKind,
    slots: HashMap<String, Slot>,
}

impl Optimizer {
    /// A fresh optimizer.
    #[must_use]
    pub fn new(kind: OptimizerKind) -> Self {
        Self { kind, slots: HashMap::new() }
    }

    /// The optimizer's kind.
    #[must_use]
    pub fn kind(&self) -> OptimizerKind {
        self.kind
    }

    /// Clears the gradients of `params`.
    pub fn zero_grad(params: &mut [(String, Tensor)]) {
        for (_, p) in params.iter_mut() {
            p.zero_grad();
        }
    }

    /// Applies one update with learning rate `lr` to every parameter that requires a gradient
    /// and has one.
    pub fn step(&mut self, params: &[(String, Tensor)], lr: f64) -> Result<()> {
        tch::no_grad(|| {
            for (name, p) in params {
                if !p.requires_grad() {
                    continue;
                }
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                self.update(name, p, &g, lr).torch(|| format!("optimizer step on `{name}`"))?;
            }
            Ok(())
        })
    }

    fn update(&mut self, name: &str, p: &Tensor, g: &Tensor, lr: f64) -> Result<(), tch::TchError> {
        let mut p = p.shallow_clone();
        let decay = match self.kind {
            OptimizerKind::Adam { weight_decay, .. } | OptimizerKind::Sgd { weight_decay, .. } => {
                weight_decay
            }
        };
        let g = if decay > 0.0 && p.dim() == 4 {
            g.f_add(&p.f_mul_scalar(decay)?)?
        } else {
            g.shallow_clone()
        };
        let second = matches!(self.kind, OptimizerKind::Adam { .. });
        let slot = match self.slots.entry(name.to_owned()) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => e.insert(Slot {
                first: p.f_zeros_like()?,
                second: if second { Some(p.f_zeros_like()?) } else { None },
                steps: 0,
            }),
        };
        slot.steps += 1;
        match (self.kind, slot.second.as_mut()) {
            (OptimizerKind::Adam { beta1, beta2, eps, .. }, Some(v)) => {
                let _ = slot.first.f_mul_scalar_(beta1)?;
                let _ = slot.first.f_add_(&g.f_mul_scalar(1.0 - beta1)?)?;
                let _ = v.f_mul_scalar_(beta2)?;
                let _ = v.f_addcmul_(&g, &g.f_mul_scalar(1.0 - beta2)?)?;
                let t = slot.steps as i32;
                let bc1 = 1.0 - beta1.powi(t);
                let bc2 = 1.0 - beta2.powi(t);
                let denom = v.f_div_scalar(bc2)?.f_sqrt()?.f_add_scalar(eps)?;
                let update = slot.first.f_div(&denom)?.f_mul_scalar(lr / bc1)?;
                let _ = p.f_sub_(&update)?;
            }
            (OptimizerKind::Sgd { momentum, .. }, _) => {
                if slot.steps == 1 {
                    slot.first.f_copy_(&g)?;
                } else {
                    let _ = slot.first.f_mul_scalar_(momentum)?;
                    let _ = slot.first.f_add_(&g)?;
                }
                let _ = p.f_sub_(&slot.first.f_mul_scalar(lr)?)?;
            }
            (OptimizerKind::Adam { .. }, None) => {
                unreachable!("Adam slots always have a second moment")
            }
        }
        Ok(())
    }

    /// The state as named CPU tensors plus per-parameter step counts.
    pub fn state(&self) -> Result<OptimizerState> {
        let mut tensors = Vec::new();
        let mut steps = BTreeMap::new();
        for (name, slot) in &self.slots {
            let cpu =
                |t: &Tensor| t.f_to_device(tch::Device::Cpu).and_then(|t| t.f_to_kind(Kind::Float));
            tensors.push((
                format!("first/{name}"),
                cpu(&slot.first).torch(|| format!("saving `{name}`"))?,
            ));
            if let Some(v) = &slot.second {
                tensors
                    .push((format!("second/{name}"), cpu(v).torch(|| format!("saving `{name}`"))?));
            }
            steps.insert(name.clone(), slot.steps);
        }
        tensors.sort_by(|a, b| a.0.cmp(&b.0));
        Ok((tensors, steps))
    }

    /// Restores a state saved by [`Optimizer::state`] onto `device`.
    pub fn restore(
        kind: OptimizerKind,
        tensors: &HashMap<String, Tensor>,
        steps: &BTreeMap<String, i64>,
        device: tch::Device,
    ) -> Result<Self> {
        let mut slots = HashMap::new();
        for (name, &n) in steps {
            let get = |prefix: &str| -> Result<Option<Tensor>> {
                tensors
                    .get(&format!("{prefix}/{name}"))
                    .map(|t| {
                        let t = t.f_to_device(device).torch(|| format!("restoring `{name}`"))?;
                        Ok(t)
                    })
                    .transpose()
            };
            let first = get("first")?.ok_or_else(|| {
                crate::error::TrainError::Config(format!(
                    "optimizer state has no moment for `{name}`"
                ))
            })?;
            let second = get("second")?;
            if matches!(kind, OptimizerKind::Adam { .. }) && second.is_none() {
                return Err(crate::error::TrainError::Config(format!(
                    "optimizer state for `{name}` has no second moment: saved by SGD, resumed as Adam?"
                )));
            }
            slots.insert(name.clone(), Slot { first, second, steps: n });
        }
        Ok(Self { kind, slots })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quadratic_descends(kind: OptimizerKind, lr: f64) {
        // minimise sum((p - 3)^2) from p = 0
        let p = Tensor::zeros([4], (Kind::Float, tch::Device::Cpu)).set_requires_grad(true);
        let mut params = vec![("p".to_owned(), p.shallow_clone())];
        let mut opt = Optimizer::new(kind);
        for _ in 0..300 {
            Optimizer::zero_grad(&mut params);
            let loss = (&p - 3.0).square().sum(Kind::Float);
            loss.backward();
            opt.step(&params, lr).unwrap();
        }
        let v = Vec::<f32>::try_from(&p.detach()).unwrap();
        assert!(v.iter().all(|x| (x - 3.0).abs() < 0.05), "{kind:?}: {v:?}");
    }

    #[test]
    fn adam_and_sgd_minimise_a_quadratic() {
        quadratic_descends(OptimizerKind::adam(), 0.05);
        quadratic_descends(OptimizerKind::Sgd { momentum: 0.9, weight_decay: 0.0 }, 0.01);
    }

    #[test]
    fn adam_first_step_moves_by_lr() {
        let p = Tensor::from_slice(&[1.0f32, -2.0]).set_requires_grad(true);
        let params = vec![("p".to_owned(), p.shallow_clone())];
        (&p * 5.0).sum(Kind::Float).backward();
        let mut opt = Optimizer::new(OptimizerKind::adam());
        opt.step(&params, 0.1).unwrap();
        let v = Vec::<f32>::try_from(&p.detach()).unwrap();
        assert!((v[0] - 0.9).abs() < 1e-5 && (v[1] + 2.1).abs() < 1e-5, "{v:?}");
    }

    #[test]
    fn state_round_trips() {
        let p = Tensor::from_slice(&[1.0f32, 2.0]).set_requires_grad(true);
        let params = vec![("p".to_owned(), p.shallow_clone())];
        (&p * &p).sum(Kind::Float).backward();
        let mut opt = Optimizer::new(OptimizerKind::adam());
        opt.step(&params, 0.1).unwrap();
        let (tensors, steps) = opt.state().unwrap();
        let map: HashMap<String, Tensor> = tensors.into_iter().collect();
        let back =
            Optimizer::restore(OptimizerKind::adam(), &map, &steps, tch::Device::Cpu).unwrap();
        assert_eq!(back.slots["p"].steps, 1);
        let a = Vec::<f32>::try_from(&back.slots["p"].first).unwrap();
        let b = Vec::<f32>::try_from(&opt.slots["p"].first).unwrap();
        assert_eq!(a, b);
    }
}
