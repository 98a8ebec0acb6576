//! AdamW whose update is one pass over each parameter on the CPU kernels
//! ([`ops::adamw`](crate::core::kernels::ops::adamw)); on other devices, and for tensors the
//! kernels do not take, burn's own [`AdamW`] steps. The state is burn's [`AdamWState`], so
//! optimiser checkpoints written by either load into the other.

use burn::optim::{AdamW, AdamWConfig, AdamWState, AdaptiveMomentumState, LearningRate, Optimizer};
use burn::tensor::{Device, Tensor};

use crate::core::kernels::adamw::Hyper;
use crate::core::kernels::ops;

/// AdamW with decoupled weight decay (no AMSGrad, no cautious decay: what
/// [`super::optim::OptimizerKind::AdamW`] describes).
#[derive(Clone)]
pub struct FusedAdamW {
    /// `[beta1, beta2, epsilon]`.
    betas: [f32; 3],
    weight_decay: f32,
    /// The same optimiser in burn's tensor operations.
    burn: AdamW,
}

impl FusedAdamW {
    pub fn new(beta1: f32, beta2: f32, epsilon: f32, weight_decay: f32) -> Self {
        let burn = AdamWConfig::new()
            .with_beta_1(beta1)
            .with_beta_2(beta2)
            .with_epsilon(epsilon)
            .with_weight_decay(weight_decay)
            .build();
        Self {
            betas: [beta1, beta2, epsilon],
            weight_decay,
            burn,
        }
    }
}

impl Optimizer for FusedAdamW {
    type State<const D: usize> = AdamWState<D>;

    fn step<const D: usize>(
        &self,
        lr: LearningRate,
        tensor: Tensor<D>,
        grad: Tensor<D>,
        state: Option<Self::State<D>>,
    ) -> (Tensor<D>, Option<Self::State<D>>) {
        // Another device or dtype: burn's step, without making moments for the kernel first.
        if !ops::accelerated(&tensor) {
            return self.burn.step(lr, tensor, grad, state);
        }
        let (time, moments) = match &state {
            Some(s) if s.momentum.max_moment_2.is_none() => (
                s.momentum.time + 1,
                [s.momentum.moment_1.clone(), s.momentum.moment_2.clone()],
            ),
            Some(_) => return self.burn.step(lr, tensor, grad, state),
            // Zero moments make the first step's exactly: m = g·(1 - β1), v = g²·(1 - β2).
            None => (1, [tensor.zeros_like(), tensor.zeros_like()]),
        };
        let hyper = Hyper::new(self.betas, self.weight_decay, lr, time);
        match ops::adamw(tensor.clone(), grad.clone(), moments, hyper) {
            Some([tensor, m, v]) => {
                let momentum = AdaptiveMomentumState::new(time, m, v);
                (tensor, Some(AdamWState::new(momentum)))
            }
            None => self.burn.step(lr, tensor, grad, state),
        }
    }

    fn to_device<const D: usize>(state: Self::State<D>, device: &Device) -> Self::State<D> {
        <AdamW as Optimizer>::to_device(state, device)
    }
}
