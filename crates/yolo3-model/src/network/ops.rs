//! The darknet layer operations on libtorch tensors, one function per darknet semantic.
//!
//! Conventions fixed here (see `shared/models/README.md`):
//! * inference batch norm is darknet's `(x - mean)/(sqrt(var) + 1e-6)*gamma + beta`: libtorch's
//!   `batch_norm` puts its epsilon inside the square root, so it is given the variance
//!   `(sqrt(var) + 1e-6)^2` and no epsilon (measured: its kernel is about twice as fast as a
//!   broadcast `addcmul` at batch 1);
//! * training batch norm is libtorch's native `batch_norm` with batch statistics,
//!   [`BN_TRAIN_EPS`] and [`BN_MOMENTUM`]; in a data-parallel run (a [`ReplicaSum`] is set)
//!   the statistics are those of the global batch instead: per-channel float64 sums of
//!   `x - k` and `(x - k)^2`, `k` the running mean (shared by the ranks and near the batch
//!   mean, which keeps `E[(x-k)^2] - E[x-k]^2` free of cancellation), and the element count,
//!   reduced over the ranks in one all-reduce inside autograd, so the backward pass reduces
//!   their gradients in one more. (Two passes, mean then squared deviations, take twice the
//!   collectives: the default run on 2 ranks trained at 142 instead of 176 images/s.) Without
//!   it `world` ranks of batch `b` would normalise by `b`-image statistics and could not step
//!   as one process of batch `world * b` does;
//! * leaky `ReLU` has slope 0.1 through ATen's own `leaky_relu` kernels (forward and backward),
//!   reached through a small C++ shim because tch's `leaky_relu` fixes the slope at 0.01
//!   (see `aten.rs`);
//! * max pooling puts `padding/2` before the data and the rest after, and padded samples never
//!   win (they are `-inf`). Where that padding is symmetric (tiny's size-2 stride-2 pools on
//!   even sides need none) libtorch's `max_pool2d` runs on the tensor itself; only size 2
//!   stride 1 copies, padding the right and bottom by one. Measured with `benches/train_step.rs`
//!   (forward + backward, one thread): `max_pool2d` beats a `view` + `amax` over the 2x2 window
//!   (2.3-2.7x slower, its backward compares every input), two successive pair maxima (1.1-1.5x
//!   slower) and a `maximum` of strided slices (2.5-4x slower). Without autograd, though, two
//!   pair maxima need no argmax indices: the maximum of row pairs then of column pairs over
//!   strided views runs 10x faster than `max_pool2d` on NCHW (2.6x faster than `amax` over
//!   reshaped views) and 1.2x faster than its channels-last kernel (8 x 16 x 416 x 416, 2
//!   threads), so inference (detection, validation) uses it for size 2 stride 2.

use std::sync::Arc;

use tch::{Kind, Tensor};

use crate::cfg::{Activation, Maxpool};

/// The differentiable sum of a tensor over every rank of a data-parallel run (its gradient is
/// the sum of the ranks' gradients), which synchronised batch norm builds on.
pub type ReplicaSum = Arc<dyn Fn(&Tensor) -> Result<Tensor, tch::TchError> + Send + Sync>;

/// Darknet's inference batch-norm epsilon, added to the standard deviation.
pub const BN_INFERENCE_EPS: f64 = 1e-6;

/// Epsilon of training-mode batch norm, inside the square root as libtorch computes it
/// (`AlexeyAB` darknet's and pjreddie's GPU value).
pub const BN_TRAIN_EPS: f64 = 1e-5;

/// Running-statistics update rate in libtorch's convention
/// (`running = (1 - m)*running + m*batch`): darknet's `.99/.01` rolling average, also
/// Keras' `momentum=0.99`.
pub const BN_MOMENTUM: f64 = 0.01;

/// Darknet's leaky `ReLU` slope.
pub const LEAKY_SLOPE: f64 = 0.1;

/// The batch-norm parameters and buffers of one conv.
pub(crate) struct BatchNorm {
    pub gamma: Tensor,
    pub beta: Tensor,
    pub running_mean: Tensor,
    pub running_var: Tensor,
    /// Running-statistics update rate ([`BN_MOMENTUM`] unless the run sets another).
    pub momentum: f64,
}

impl BatchNorm {
    /// Applies batch norm to the conv output `xs`: running statistics, or when `train` those
    /// of the batch (of the global batch when `replicas` is given).
    pub(crate) fn forward(
        &self,
        xs: &Tensor,
        train: bool,
        replicas: Option<&ReplicaSum>,
    ) -> Result<Tensor, tch::TchError> {
        if let (true, Some(sum)) = (train, replicas) {
            return self.forward_synchronised(xs, sum);
        }
        if train {
            return xs.f_batch_norm(
                Some(&self.gamma),
                Some(&self.beta),
                Some(&self.running_mean),
                Some(&self.running_var),
                true,
                self.momentum,
                BN_TRAIN_EPS,
                true,
            );
        }
        // libtorch computes 1/sqrt(var' + eps); with var' = (sqrt(var) + 1e-6)^2 and eps = 0
        // that is darknet's 1/(sqrt(var) + 1e-6) (the square root of a rounded square gives
        // the value back), in libtorch's single-pass inference kernel.
        let var = self.running_var.f_sqrt()?.f_add_scalar(BN_INFERENCE_EPS)?.f_square()?;
        xs.f_batch_norm(
            Some(&self.gamma),
            Some(&self.beta),
            Some(&self.running_mean),
            Some(&var),
            false,
            0.0,
            0.0,
            true,
        )
    }
}

impl BatchNorm {
    /// Training batch norm with the statistics of the global batch (see the module docs).
    fn forward_synchronised(&self, xs: &Tensor, sum: &ReplicaSum) -> Result<Tensor, tch::TchError> {
        let c = xs.size()[1];
        let shape = [1, c, 1, 1];
        let per_channel =
            |t: &Tensor| t.f_sum_dim_intlist([0i64, 2, 3].as_slice(), false, Kind::Double);
        // Sums of x - k and (x - k)^2 with k the running mean (the same on every rank, close
        // to the batch mean, and a constant to autograd), so that one reduction gives both
        // moments without the cancellation of E[x^2] - E[x]^2.
        let shift = self.running_mean.f_detach()?;
        let d = xs.f_sub(&shift.f_view(shape)?)?;
        let count =
            Tensor::from_slice(&[(xs.numel() as i64 / c) as f64]).f_to_device(xs.device())?;
        let local = Tensor::f_cat(&[per_channel(&d)?, per_channel(&d.f_square()?)?, count], 0)?;
        let totals = sum(&local)?;
        let n = totals.f_double_value(&[2 * c])?;
        let first = totals.f_narrow(0, 0, c)?.f_div_scalar(n)?;
        let var = totals
            .f_narrow(0, c, c)?
            .f_div_scalar(n)?
            .f_sub(&first.f_square()?)?
            .f_to_kind(Kind::Float)?;
        let mean = first.f_to_kind(Kind::Float)?.f_add(&shift)?;
        let centred = d.f_sub(&first.f_to_kind(Kind::Float)?.f_view(shape)?)?;
        let scale = var.f_add_scalar(BN_TRAIN_EPS)?.f_rsqrt()?.f_mul(&self.gamma)?;
        let ys = centred.f_mul(&scale.f_view(shape)?)?.f_add(&self.beta.f_view(shape)?)?;
        // libtorch's update: the unbiased variance, `running = (1 - m) * running + m * batch`.
        tch::no_grad(|| -> Result<(), tch::TchError> {
            let unbiased = var.f_mul_scalar(n / (n - 1.0).max(1.0))?;
            let m = self.momentum;
            let update = |running: &Tensor, batch: &Tensor| {
                let next = running.f_mul_scalar(1.0 - m)?.f_add(&batch.f_mul_scalar(m)?)?;
                running.shallow_clone().f_copy_(&next)
            };
            update(&self.running_mean, &mean)?;
            update(&self.running_var, &unbiased)?;
            Ok(())
        })?;
        Ok(ys)
    }
}

/// Applies a darknet activation.
pub(crate) fn activate(xs: Tensor, activation: Activation) -> Result<Tensor, tch::TchError> {
    match activation {
        Activation::Linear => Ok(xs),
        Activation::Leaky => super::aten::leaky_relu(&xs, LEAKY_SLOPE),
        Activation::Relu => xs.f_relu(),
        Activation::Logistic => xs.f_sigmoid(),
    }
}

/// Darknet's pooling padding for an `h x w` input: `(before, after_h, after_w)`, `padding/2`
/// before the data and what the last window needs after it (never negative: trailing rows a
/// window does not reach are left out, as darknet does).
pub(crate) fn maxpool_padding(m: &Maxpool, h: i64, w: i64) -> (i64, i64, i64) {
    let before = m.padding / 2;
    let after = |x: i64| {
        let out = (x + m.padding - m.size).div_euclid(m.stride) + 1;
        ((out - 1) * m.stride + m.size - before - x).max(0)
    };
    (before, after(h), after(w))
}

/// Darknet max pooling.
pub(crate) fn maxpool(xs: &Tensor, m: &Maxpool) -> Result<Tensor, tch::TchError> {
    let size = xs.size();
    let (h, w) = (size[2], size[3]);
    let (before, after_h, after_w) = maxpool_padding(m, h, w);
    let k = [m.size, m.size];
    let s = [m.stride, m.stride];
    if m.size == 2 && m.stride == 2 && before == 0 && after_h == 0 && after_w == 0 {
        if !xs.requires_grad() && h % 2 == 0 && w % 2 == 0 {
            // Inference: the maximum of row pairs, then of column pairs, over strided views;
            // bit-identical values (NaN included) without `max_pool2d`'s argmax indices, and
            // the result keeps the input's memory format (NCHW or channels-last).
            let pairs = |t: &Tensor, dim: i64, n: i64| -> Result<Tensor, tch::TchError> {
                t.f_slice(dim, 0, n, 2)?.f_maximum(&t.f_slice(dim, 1, n, 2)?)
            };
            return pairs(&pairs(xs, 2, h)?, 3, w);
        }
        return xs.f_max_pool2d(k, s, [0, 0], [1, 1], false);
    }
    if after_h == before && after_w == before && 2 * before <= m.size {
        // Symmetric: libtorch's own padding is -inf already.
        return xs.f_max_pool2d(k, s, [before, before], [1, 1], false);
    }
    let padded = xs.f_pad([before, after_w, before, after_h], "constant", f64::NEG_INFINITY)?;
    padded.f_max_pool2d(k, s, [0, 0], [1, 1], false)
}

/// Nearest-neighbour upsampling by an integer factor.
pub(crate) fn upsample(xs: &Tensor, stride: i64) -> Result<Tensor, tch::TchError> {
    let size = xs.size();
    xs.f_upsample_nearest2d([size[2] * stride, size[3] * stride], None, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maxpool_size2_stride1_ignores_the_right_and_bottom_edge() {
        let xs =
            Tensor::from_slice(&[1f32, -5., 3., -2., -7., -4., 0., -1., -9.]).view([1, 1, 3, 3]);
        let out = maxpool(&xs, &Maxpool { size: 2, stride: 1, padding: 1 }).unwrap();
        let v: Vec<f32> = Vec::try_from(out.flatten(0, -1)).unwrap();
        assert_eq!(v, vec![1., 3., 3., 0., -1., -4., 0., -1., -9.]);
    }

    #[test]
    fn maxpool_spp_keeps_the_size() {
        let xs = Tensor::arange(49, (tch::Kind::Float, tch::Device::Cpu)).view([1, 1, 7, 7]);
        let out = maxpool(&xs, &Maxpool { size: 5, stride: 1, padding: 4 }).unwrap();
        assert_eq!(out.size(), vec![1, 1, 7, 7]);
        assert_eq!(out.double_value(&[0, 0, 0, 0]), 16.0);
        let out = maxpool(&xs, &Maxpool { size: 2, stride: 2, padding: 1 }).unwrap();
        assert_eq!(out.size(), vec![1, 1, 4, 4], "darknet: (7 + 1 - 2)/2 + 1");
        assert_eq!(out.double_value(&[0, 0, 3, 3]), 48.0);
    }

    #[test]
    fn inference_pooling_matches_max_pool2d_and_training_keeps_a_gradient() {
        let m = Maxpool { size: 2, stride: 2, padding: 1 };
        let xs = Tensor::randn([2, 3, 6, 8], (tch::Kind::Float, tch::Device::Cpu));
        let _ = xs.get(0).get(1).get(2).get(5).fill_(f64::NAN);
        let _ = xs.get(1).get(0).get(3).fill_(f64::NEG_INFINITY);
        let expected = xs.max_pool2d([2, 2], [2, 2], [0, 0], [1, 1], false);
        let out = maxpool(&xs, &m).unwrap();
        let (a, b): (Vec<f32>, Vec<f32>) = (
            Vec::try_from(out.flatten(0, -1)).unwrap(),
            Vec::try_from(expected.flatten(0, -1)).unwrap(),
        );
        assert_eq!(a.len(), 2 * 3 * 3 * 4);
        assert!(a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{a:?} vs {b:?}");
        // The same values from channels-last memory (the oneDNN inference path).
        let cl = xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        assert!(!cl.is_contiguous());
        let c: Vec<f32> =
            Vec::try_from(maxpool(&cl, &m).unwrap().contiguous().flatten(0, -1)).unwrap();
        assert!(c.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits()), "{c:?} vs {b:?}");

        let xs = xs.nan_to_num(0.0, None, None).set_requires_grad(true);
        maxpool(&xs, &m).unwrap().sum(tch::Kind::Float).backward();
        assert_eq!(
            xs.grad().sum(tch::Kind::Float).double_value(&[]),
            72.0,
            "one winner per window"
        );
    }

    #[test]
    fn leaky_has_slope_0_1_and_a_native_backward() {
        let xs = Tensor::from_slice(&[-2f32, 3.]).set_requires_grad(true);
        let ys = activate(xs.shallow_clone(), Activation::Leaky).unwrap();
        let v: Vec<f32> = Vec::try_from(&ys).unwrap();
        assert!((v[0] + 0.2).abs() < 1e-7 && v[1] == 3.0);
        ys.sum(tch::Kind::Float).backward();
        let g: Vec<f32> = Vec::try_from(xs.grad()).unwrap();
        assert!((g[0] - 0.1).abs() < 1e-7 && g[1] == 1.0);
    }

    #[test]
    fn inference_bn_puts_eps_outside_the_sqrt() {
        let bn = BatchNorm {
            gamma: Tensor::from_slice(&[2f32]),
            beta: Tensor::from_slice(&[0.5f32]),
            running_mean: Tensor::from_slice(&[1f32]),
            running_var: Tensor::from_slice(&[4f32]),
            momentum: BN_MOMENTUM,
        };
        let xs = Tensor::from_slice(&[3f32]).view([1, 1, 1, 1]);
        let y = bn.forward(&xs, false, None).unwrap().double_value(&[0, 0, 0, 0]);
        let expected = (3.0 - 1.0) / (2.0 + 1e-6) * 2.0 + 0.5;
        assert!((y - expected).abs() < 1e-6, "{y} vs {expected}");
    }

    /// Synchronised batch norm over one rank (the replica sum is the identity) against
    /// libtorch's native training kernel: output, input and parameter gradients, and the
    /// running statistics' update.
    #[test]
    fn synchronised_bn_of_one_rank_is_libtorch_batch_norm() {
        tch::manual_seed(7);
        let make = || {
            let v = |t: Tensor| t.set_requires_grad(true);
            BatchNorm {
                gamma: v(Tensor::randn([3], (tch::Kind::Float, tch::Device::Cpu)) + 1.0),
                beta: v(Tensor::randn([3], (tch::Kind::Float, tch::Device::Cpu))),
                running_mean: Tensor::randn([3], (tch::Kind::Float, tch::Device::Cpu)),
                running_var: Tensor::rand([3], (tch::Kind::Float, tch::Device::Cpu)) + 0.5,
                momentum: BN_MOMENTUM,
            }
        };
        let native = make();
        let copy = |t: &Tensor| t.detach().copy().set_requires_grad(t.requires_grad());
        let synced = BatchNorm {
            gamma: copy(&native.gamma),
            beta: copy(&native.beta),
            running_mean: native.running_mean.copy(),
            running_var: native.running_var.copy(),
            momentum: BN_MOMENTUM,
        };
        let xs = (Tensor::randn([4, 3, 5, 6], (tch::Kind::Float, tch::Device::Cpu)) * 3.0 + 2.0)
            .set_requires_grad(true);
        let xs2 = copy(&xs);
        let weights = Tensor::randn([4, 3, 5, 6], (tch::Kind::Float, tch::Device::Cpu));
        let one_rank: ReplicaSum = Arc::new(|t: &Tensor| t.f_mul_scalar(1.0));
        let a = native.forward(&xs, true, None).unwrap();
        let b = synced.forward(&xs2, true, Some(&one_rank)).unwrap();
        (&a * &weights).sum(tch::Kind::Float).backward();
        (&b * &weights).sum(tch::Kind::Float).backward();
        let close = |x: &Tensor, y: &Tensor, what: &str| {
            let d = (x - y).abs().max().double_value(&[]);
            let scale = x.abs().max().double_value(&[]).max(1.0);
            assert!(d <= 2e-6 * scale, "{what}: max |diff| {d} (scale {scale})");
        };
        close(&a, &b, "output");
        close(&xs.grad(), &xs2.grad(), "input gradient");
        close(&native.gamma.grad(), &synced.gamma.grad(), "gamma gradient");
        close(&native.beta.grad(), &synced.beta.grad(), "beta gradient");
        close(&native.running_mean, &synced.running_mean, "running mean");
        close(&native.running_var, &synced.running_var, "running variance");
    }
}
