//! Optimiser and learning-rate schedule configuration, and the optimiser the training loop uses.
//!
//! Every burn 0.22 optimiser config (`SgdConfig`, `AdamConfig`, ...) `init()`s into the same
//! non-generic [`ModuleOptimizer`], which owns the per-parameter state (keyed by `ParamId`) and
//! applies gradient clipping; AdamW is built from [`super::fused_adamw::FusedAdamW`] instead
//! (one pass on the CPU kernels, burn's state layout), with the clipping added the same way. [`SegOptimizer`] wraps it together with the config that built it,
//! and exposes the state as an [`OptimizerRecord`] (burnpack) so a resumed run continues with
//! the same moments. Model checkpoints written with `Module::into_record`/`save_file` keep the
//! `ParamId`s, which is what lets the reloaded optimiser state find its parameters again.

use std::f64::consts::PI;
use std::path::Path;

use burn::grad_clipping::GradientClippingConfig;
use burn::lr_scheduler::LrSchedulerConfig;
use burn::lr_scheduler::module_lr_scheduler::{ModuleLearningRate, ModuleLrSchedulerConfig};
use burn::module::{Module, ParamGroup};
use burn::optim::decay::WeightDecayConfig;
use burn::optim::momentum::MomentumConfig;
use burn::optim::{
    AdamConfig, GradientsParams, ModuleOptimizer, OptimizerRecord, RmsPropConfig, SgdConfig,
};
use burn::store::RecordError;
use burn::tensor::Bytes;
use serde::{Deserialize, Serialize};

use super::fused_adamw::FusedAdamW;

/// Why an optimiser or schedule config cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum OptimError {
    /// A hyper-parameter is out of range.
    #[error("invalid optimiser config: {0}")]
    Invalid(String),
}

/// Which optimiser, with its own hyper-parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum OptimizerKind {
    /// Stochastic gradient descent; `momentum = 0` disables momentum. Dampening is 0 (as in
    /// PyTorch), not burn's default 0.1.
    Sgd {
        /// Momentum factor in [0, 1).
        momentum: f64,
        /// Nesterov momentum (needs `momentum > 0`).
        nesterov: bool,
    },
    /// Adam; weight decay is an L2 term added to the gradient.
    Adam {
        /// First-moment decay in [0, 1).
        beta1: f32,
        /// Second-moment decay in [0, 1).
        beta2: f32,
        /// Denominator epsilon (> 0).
        eps: f32,
    },
    /// AdamW; weight decay is decoupled (applied to the weights, scaled by the learning rate).
    AdamW {
        /// First-moment decay in [0, 1).
        beta1: f32,
        /// Second-moment decay in [0, 1).
        beta2: f32,
        /// Denominator epsilon (> 0).
        eps: f32,
    },
    /// RMSprop; weight decay is an L2 term added to the gradient.
    RmsProp {
        /// Smoothing constant of the squared-gradient average in [0, 1).
        alpha: f32,
        /// Momentum factor in [0, 1); 0 disables momentum.
        momentum: f32,
        /// Denominator epsilon (> 0).
        eps: f32,
    },
}

impl OptimizerKind {
    /// SGD with momentum 0.9, no Nesterov.
    pub fn sgd() -> Self {
        Self::Sgd {
            momentum: 0.9,
            nesterov: false,
        }
    }

    /// Adam with PyTorch's defaults (0.9, 0.999, 1e-8).
    pub fn adam() -> Self {
        Self::Adam {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// AdamW with PyTorch's defaults (0.9, 0.999, 1e-8).
    pub fn adamw() -> Self {
        Self::AdamW {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        }
    }

    /// RMSprop with PyTorch's alpha/eps (0.99, 1e-8) and no momentum.
    pub fn rmsprop() -> Self {
        Self::RmsProp {
            alpha: 0.99,
            momentum: 0.0,
            eps: 1e-8,
        }
    }

    /// The default-parameter kind for a name: `sgd`, `adam`, `adamw` or `rmsprop`
    /// (case-insensitive).
    pub fn from_name(name: &str) -> Option<Self> {
        match name.to_ascii_lowercase().as_str() {
            "sgd" => Some(Self::sgd()),
            "adam" => Some(Self::adam()),
            "adamw" => Some(Self::adamw()),
            "rmsprop" => Some(Self::rmsprop()),
            _ => None,
        }
    }
}

/// Gradient clipping, applied by burn to each parameter tensor's gradient separately (burn 0.22
/// has no global-norm clipping across all parameters).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum GradClip {
    /// No clipping.
    #[default]
    None,
    /// Rescale a parameter's gradient whose L2 norm exceeds this value.
    Norm(f32),
    /// Clamp every gradient element to `[-value, value]`.
    Value(f32),
}

/// Full optimiser configuration (the learning rate comes from the schedule at each step).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OptimizerConfig {
    /// Optimiser and its hyper-parameters.
    pub kind: OptimizerKind,
    /// Weight decay (L2 penalty, or decoupled decay for AdamW); 0 disables it.
    #[serde(default)]
    pub weight_decay: f32,
    /// Gradient clipping.
    #[serde(default)]
    pub grad_clip: GradClip,
}

impl Default for OptimizerConfig {
    /// AdamW, weight decay 1e-4, no clipping.
    fn default() -> Self {
        Self {
            kind: OptimizerKind::adamw(),
            weight_decay: 1e-4,
            grad_clip: GradClip::None,
        }
    }
}

impl OptimizerConfig {
    /// Check that every hyper-parameter is in range.
    pub fn validate(&self) -> Result<(), OptimError> {
        fn check(ok: bool, what: &str, value: f64) -> Result<(), OptimError> {
            match ok && value.is_finite() {
                true => Ok(()),
                false => Err(OptimError::Invalid(format!("{what} out of range: {value}"))),
            }
        }
        let unit = |v: f64| (0.0..1.0).contains(&v);
        match self.kind {
            OptimizerKind::Sgd { momentum, nesterov } => {
                check(unit(momentum), "momentum (must be in [0, 1))", momentum)?;
                if nesterov && momentum == 0.0 {
                    return Err(OptimError::Invalid("nesterov needs a momentum > 0".into()));
                }
            }
            OptimizerKind::Adam { beta1, beta2, eps }
            | OptimizerKind::AdamW { beta1, beta2, eps } => {
                check(
                    unit(beta1.into()),
                    "beta1 (must be in [0, 1))",
                    beta1.into(),
                )?;
                check(
                    unit(beta2.into()),
                    "beta2 (must be in [0, 1))",
                    beta2.into(),
                )?;
                check(eps > 0.0, "eps (must be > 0)", eps.into())?;
            }
            OptimizerKind::RmsProp {
                alpha,
                momentum,
                eps,
            } => {
                check(
                    unit(alpha.into()),
                    "alpha (must be in [0, 1))",
                    alpha.into(),
                )?;
                check(
                    unit(momentum.into()),
                    "momentum (must be in [0, 1))",
                    momentum.into(),
                )?;
                check(eps > 0.0, "eps (must be > 0)", eps.into())?;
            }
        }
        let wd = self.weight_decay;
        check(wd >= 0.0, "weight_decay (must be >= 0)", wd.into())?;
        match self.grad_clip {
            GradClip::None => Ok(()),
            GradClip::Norm(v) | GradClip::Value(v) => {
                check(v > 0.0, "gradient clip (must be > 0)", v.into())
            }
        }
    }
}

/// The optimiser the training loop steps: one type for every [`OptimizerKind`].
#[derive(Clone)]
pub struct SegOptimizer {
    config: OptimizerConfig,
    inner: ModuleOptimizer,
}

impl std::fmt::Debug for SegOptimizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegOptimizer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Build the optimiser described by `config`, with empty state.
pub fn build_optimizer(config: &OptimizerConfig) -> Result<SegOptimizer, OptimError> {
    config.validate()?;
    let clip = match config.grad_clip {
        GradClip::None => None,
        GradClip::Norm(v) => Some(GradientClippingConfig::Norm(v)),
        GradClip::Value(v) => Some(GradientClippingConfig::Value(v)),
    };
    // L2-style decay for everything but AdamW, whose decay is decoupled.
    let l2 = (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay));
    let inner = match config.kind {
        OptimizerKind::Sgd { momentum, nesterov } => SgdConfig::new()
            .with_momentum((momentum > 0.0).then(|| {
                MomentumConfig::new()
                    .with_momentum(momentum)
                    .with_dampening(0.0)
                    .with_nesterov(nesterov)
            }))
            .with_weight_decay(l2)
            .with_gradient_clipping(clip)
            .init(),
        OptimizerKind::Adam { beta1, beta2, eps } => AdamConfig::new()
            .with_beta_1(beta1)
            .with_beta_2(beta2)
            .with_epsilon(eps)
            .with_weight_decay(l2)
            .with_grad_clipping(clip)
            .init(),
        OptimizerKind::AdamW { beta1, beta2, eps } => {
            let adamw = FusedAdamW::new(beta1, beta2, eps, config.weight_decay);
            match clip {
                Some(clip) => ModuleOptimizer::from(adamw).with_grad_clipping(clip.init()),
                None => ModuleOptimizer::from(adamw),
            }
        }
        OptimizerKind::RmsProp {
            alpha,
            momentum,
            eps,
        } => RmsPropConfig::new()
            .with_alpha(alpha)
            .with_momentum(momentum)
            .with_epsilon(eps)
            .with_weight_decay(l2)
            .with_grad_clipping(clip)
            .init(),
    };
    Ok(SegOptimizer {
        config: config.clone(),
        inner,
    })
}

impl SegOptimizer {
    /// The config this optimiser was built from.
    pub fn config(&self) -> &OptimizerConfig {
        &self.config
    }

    /// One update of `model` with learning rate `lr` (one rate, or one per parameter group:
    /// [`group_rates`]) and the gradients of its parameters
    /// (`GradientsParams::from_grads(loss.backward(), &model)`). Parameters without a gradient
    /// (frozen ones) are left as they are.
    pub fn step<M: Module>(
        &mut self,
        lr: impl Into<ModuleLearningRate>,
        model: M,
        grads: GradientsParams,
    ) -> M {
        crate::core::kernels::profile::time(
            || "optimiser step".into(),
            || self.inner.step(lr, model, grads),
        )
    }

    /// Snapshot of the per-parameter state (moments, momentum buffers, step counts).
    pub fn state(&self) -> OptimizerRecord {
        self.inner.to_record()
    }

    /// Replace the state with a snapshot taken by [`SegOptimizer::state`] from an optimiser of
    /// the same kind. Entries for parameters the model does not have are ignored when stepping.
    ///
    /// burn materialises the loaded tensors on `Device::default()` and moves each to its
    /// parameter's device at the next step. With the `wgpu` feature compiled in that default is
    /// the wgpu device, so on a machine without any wgpu adapter set `BURN_DEVICE=flex` before
    /// loading.
    pub fn load_state(self, state: OptimizerRecord) -> Self {
        Self {
            inner: self.inner.load_record(state),
            config: self.config,
        }
    }

    /// The state as burnpack bytes.
    pub fn state_bytes(&self) -> Result<Bytes, RecordError> {
        self.inner.into_bytes()
    }

    /// Load state from burnpack bytes (see [`SegOptimizer::load_state`]).
    pub fn load_state_bytes(self, bytes: Bytes) -> Result<Self, RecordError> {
        Ok(self.load_state(OptimizerRecord::from_bytes(bytes)?))
    }

    /// Write the state to a burnpack file.
    pub fn save_state(&self, path: impl AsRef<Path>) -> Result<(), RecordError> {
        self.inner.save(path)
    }

    /// Read the state from a burnpack file written by [`SegOptimizer::save_state`].
    pub fn load_state_file(self, path: impl AsRef<Path>) -> Result<Self, RecordError> {
        Ok(self.load_state(OptimizerRecord::load(path)?))
    }
}

/// Learning rates per parameter: `lr` for all, `lr * mult` for the parameters of `group` (the
/// encoder, for differential fine-tuning).
pub fn group_rates(lr: f64, group: Option<(ParamGroup, f64)>) -> ModuleLearningRate {
    let Some((group, mult)) = group else {
        return lr.into();
    };
    let scheduler = ModuleLrSchedulerConfig::new(LrSchedulerConfig::Constant(lr))
        .with_group(group, LrSchedulerConfig::Constant(lr * mult))
        .init()
        .expect("constant learning rates are valid");
    let mut scheduler = scheduler;
    scheduler.step()
}

/// Learning-rate schedule over optimiser steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ScheduleConfig {
    /// The base learning rate throughout.
    #[default]
    Constant,
    /// Multiply by `gamma` every `step_size` steps.
    Step {
        /// Steps between decays (> 0).
        step_size: usize,
        /// Decay factor (> 0).
        gamma: f64,
    },
    /// Cosine annealing from the base rate at step 0 to `min_lr` at `total_steps`.
    Cosine {
        /// Final learning rate.
        min_lr: f64,
    },
    /// Linear warm-up to the base rate over `warmup_steps`, then cosine annealing to `min_lr`
    /// at `total_steps`.
    WarmupCosine {
        /// Length of the warm-up.
        warmup_steps: usize,
        /// Final learning rate.
        min_lr: f64,
    },
}

impl ScheduleConfig {
    /// Check the schedule's parameters.
    pub fn validate(&self) -> Result<(), OptimError> {
        let bad = |msg: String| Err(OptimError::Invalid(msg));
        match *self {
            Self::Constant => Ok(()),
            Self::Step { step_size, gamma } => {
                match step_size > 0 && gamma > 0.0 && gamma.is_finite() {
                    true => Ok(()),
                    false => bad(format!(
                        "step schedule needs step_size > 0 and gamma > 0, got {step_size} and {gamma}"
                    )),
                }
            }
            Self::Cosine { min_lr } | Self::WarmupCosine { min_lr, .. } => {
                match min_lr >= 0.0 && min_lr.is_finite() {
                    true => Ok(()),
                    false => bad(format!("min_lr must be >= 0, got {min_lr}")),
                }
            }
        }
    }
}

/// The warm-up a run of `total_steps` steps gets: the configured length, at most a fifth of
/// the run, so that a short run reaches its peak rate and decays (a Quick run of 16 steps on
/// 30 images had a 20-step warm-up: its rate climbed to 0.0024 and stopped there).
pub fn warmup_for(warmup_steps: usize, total_steps: usize) -> usize {
    warmup_steps.min(total_steps / 5)
}

/// Learning rate for 0-based optimiser step `step` of a run of `total_steps` steps.
///
/// A pure function of its arguments, so a resumed run recomputes exactly the rate it would have
/// used. Steps past `total_steps` keep the final rate.
///
/// - `Constant`: `base_lr`.
/// - `Step`: `base_lr * gamma^(step / step_size)` (integer division).
/// - `Cosine`: `min + (base - min) * (1 + cos(pi * step / total)) / 2`.
/// - `WarmupCosine`: `base * (step + 1) / warmup` during the first `warmup` steps (so step 0
///   already learns), then the cosine above over the remaining `total - warmup` steps; `warmup`
///   is at most a fifth of the run ([`warmup_for`]).
pub fn lr_at(schedule: &ScheduleConfig, base_lr: f64, step: usize, total_steps: usize) -> f64 {
    let cosine = |min_lr: f64, done: usize, length: usize| {
        if length == 0 {
            return base_lr;
        }
        let progress = done.min(length) as f64 / length as f64;
        min_lr + (base_lr - min_lr) * 0.5 * (1.0 + (PI * progress).cos())
    };
    match *schedule {
        ScheduleConfig::Constant => base_lr,
        ScheduleConfig::Step { step_size, gamma } => {
            let decays = step / step_size.max(1);
            base_lr * gamma.powi(decays.min(i32::MAX as usize) as i32)
        }
        ScheduleConfig::Cosine { min_lr } => cosine(min_lr, step, total_steps),
        ScheduleConfig::WarmupCosine {
            warmup_steps,
            min_lr,
        } => {
            let warmup_steps = warmup_for(warmup_steps, total_steps);
            if step < warmup_steps {
                base_lr * (step + 1) as f64 / warmup_steps as f64
            } else {
                cosine(
                    min_lr,
                    step - warmup_steps,
                    total_steps.saturating_sub(warmup_steps),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::unet::{UNet, UNetConfig};
    use crate::core::train::loss::cross_entropy;
    use burn::module::{ModuleVisitor, Param, ParamId};
    use burn::tensor::{Device, Distribution, Int, Tensor};

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn schedule_values() {
        let constant = ScheduleConfig::Constant;
        assert_eq!(lr_at(&constant, 0.1, 57, 100), 0.1);

        let step = ScheduleConfig::Step {
            step_size: 10,
            gamma: 0.5,
        };
        assert!(close(lr_at(&step, 0.1, 9, 100), 0.1));
        assert!(close(lr_at(&step, 0.1, 10, 100), 0.05));
        assert!(close(lr_at(&step, 0.1, 25, 100), 0.025));

        let cosine = ScheduleConfig::Cosine { min_lr: 0.0 };
        assert!(close(lr_at(&cosine, 0.1, 0, 100), 0.1));
        assert!(close(lr_at(&cosine, 0.1, 50, 100), 0.05));
        assert!(close(lr_at(&cosine, 0.1, 100, 100), 0.0));
        assert!(close(lr_at(&cosine, 0.1, 150, 100), 0.0));

        let warm = ScheduleConfig::WarmupCosine {
            warmup_steps: 10,
            min_lr: 0.01,
        };
        assert!(close(lr_at(&warm, 0.1, 0, 110), 0.01));
        assert!(close(lr_at(&warm, 0.1, 4, 110), 0.05));
        assert!(close(lr_at(&warm, 0.1, 10, 110), 0.1));
        // Halfway through the 100 cosine steps: (0.1 + 0.01) / 2.
        assert!(close(lr_at(&warm, 0.1, 60, 110), 0.055));
        assert!(close(lr_at(&warm, 0.1, 110, 110), 0.01));

        // A run of 16 steps with a 20-step warm-up: 3 steps up (a fifth of 16), then down.
        let warm = ScheduleConfig::WarmupCosine {
            warmup_steps: 20,
            min_lr: 0.0,
        };
        assert_eq!(warmup_for(20, 16), 3);
        assert!(close(lr_at(&warm, 0.1, 2, 16), 0.1), "the peak is reached");
        assert!(
            close(lr_at(&warm, 0.1, 16, 16), 0.0),
            "and the decay completes"
        );
        let rates: Vec<f64> = (3..16).map(|s| lr_at(&warm, 0.1, s, 16)).collect();
        assert!(rates.windows(2).all(|w| w[1] < w[0]), "{rates:?}");
        // A run too short to warm up starts at the base rate.
        assert!(close(lr_at(&warm, 0.1, 0, 4), 0.1));
    }

    #[test]
    fn configs_round_trip_through_json() {
        let cfg = OptimizerConfig {
            kind: OptimizerKind::RmsProp {
                alpha: 0.9,
                momentum: 0.5,
                eps: 1e-6,
            },
            weight_decay: 0.0,
            grad_clip: GradClip::Norm(1.0),
        };
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<OptimizerConfig>(&json).unwrap(), cfg);
        let schedule = ScheduleConfig::WarmupCosine {
            warmup_steps: 5,
            min_lr: 1e-5,
        };
        let json = serde_json::to_string(&schedule).unwrap();
        assert_eq!(
            serde_json::from_str::<ScheduleConfig>(&json).unwrap(),
            schedule
        );
        let minimal: OptimizerConfig =
            serde_json::from_str(r#"{"kind":{"type":"sgd","momentum":0.9,"nesterov":true}}"#)
                .unwrap();
        assert_eq!(minimal.grad_clip, GradClip::None);
    }

    #[test]
    fn invalid_configs_are_rejected() {
        let bad = OptimizerConfig {
            kind: OptimizerKind::Adam {
                beta1: 1.0,
                beta2: 0.999,
                eps: 1e-8,
            },
            ..OptimizerConfig::default()
        };
        assert!(build_optimizer(&bad).is_err());
        let bad_clip = OptimizerConfig {
            grad_clip: GradClip::Value(0.0),
            ..OptimizerConfig::default()
        };
        assert!(bad_clip.validate().is_err());
        assert!(OptimizerKind::from_name("AdamW").is_some());
        assert!(OptimizerKind::from_name("lbfgs").is_none());
        assert!(
            ScheduleConfig::Step {
                step_size: 0,
                gamma: 0.5
            }
            .validate()
            .is_err()
        );
    }

    /// Flattened copy of every trainable parameter, to compare models. Batch-norm running
    /// statistics are visited too but skipped: they change on every training forward pass and
    /// are shared between clones of a module.
    fn params(model: &UNet) -> Vec<f32> {
        struct Collect(Vec<f32>);
        impl ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let value = param.val();
                if value.is_require_grad() {
                    let values = value.into_data().convert::<f32>();
                    self.0.extend(values.try_into_vec::<f32>().unwrap());
                }
            }
        }
        let mut collect = Collect(Vec::new());
        model.visit(&mut collect);
        collect.0
    }

    /// One fixed batch; returns the loss before training, after the first step, and after 20.
    fn train(config: OptimizerConfig, lr: f64) -> (f64, bool, f64) {
        let device = Device::flex().autodiff();
        device.seed(7);
        let mut model = UNetConfig::new(2)
            .with_depth(1)
            .with_base_width(4)
            .init(&device);
        let images = Tensor::<4>::random([2, 3, 8, 8], Distribution::Default, &device);
        // Label = whether the first channel is bright: learnable from the input.
        let targets: Tensor<3, Int> = images
            .clone()
            .slice([0..2, 0..1, 0..8, 0..8])
            .greater_elem(0.5)
            .int()
            .squeeze_dim(1);
        let mut optim = build_optimizer(&config).unwrap();
        let loss_of =
            |model: &UNet| cross_entropy(model.forward(images.clone()), targets.clone(), None);

        let first = loss_of(&model).into_scalar::<f32>() as f64;
        let before = params(&model);
        let mut changed = false;
        for step in 0..20 {
            let loss = loss_of(&model);
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(lr, model, grads);
            if step == 0 {
                changed = params(&model) != before;
            }
        }
        let last = loss_of(&model).into_scalar::<f32>() as f64;
        (first, changed, last)
    }

    #[test]
    fn every_optimizer_changes_parameters_and_reduces_loss() {
        let cases = [
            (OptimizerKind::sgd(), 0.05),
            (OptimizerKind::adam(), 0.01),
            (OptimizerKind::adamw(), 0.01),
            (OptimizerKind::rmsprop(), 0.002),
        ];
        for (kind, lr) in cases {
            let config = OptimizerConfig {
                kind: kind.clone(),
                weight_decay: 1e-4,
                grad_clip: GradClip::Norm(10.0),
            };
            let (first, changed, last) = train(config, lr);
            assert!(changed, "{kind:?}: first step changed no parameter");
            assert!(last < first, "{kind:?}: loss {first} -> {last}");
        }
    }

    /// Every float parameter's values by id.
    fn by_id<M: Module>(model: &M) -> std::collections::HashMap<ParamId, Vec<f32>> {
        struct Collect(std::collections::HashMap<ParamId, Vec<f32>>);
        impl ModuleVisitor for Collect {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                let values = param.val().into_data().convert::<f32>();
                self.0
                    .insert(param.id, values.try_into_vec::<f32>().unwrap());
            }
        }
        let mut collect = Collect(Default::default());
        model.visit(&mut collect);
        collect.0
    }

    #[test]
    fn the_encoder_group_gets_its_own_learning_rate() {
        use crate::core::model::segmenter::Segmenter;
        let device = Device::flex().autodiff();
        device.seed(5);
        let model: Segmenter = UNetConfig::new(2)
            .with_depth(1)
            .with_base_width(2)
            .with_batch_norm(false)
            .init(&device)
            .into();
        let images = Tensor::<4>::random([2, 3, 4, 4], Distribution::Default, &device);
        let targets = Tensor::<3, Int>::zeros([2, 4, 4], &device);
        let loss = cross_entropy(model.forward_any_size(images), targets, None);
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        let encoder = model.encoder_group();
        let plain_sgd = OptimizerConfig {
            kind: OptimizerKind::Sgd {
                momentum: 0.0,
                nesterov: false,
            },
            weight_decay: 0.0,
            grad_clip: GradClip::None,
        };
        let before = by_id(&model);
        // Gradients by id (each read at its parameter's rank), before the step consumes them.
        struct Grads<'a>(
            &'a GradientsParams,
            std::collections::HashMap<ParamId, Vec<f32>>,
        );
        impl ModuleVisitor for Grads<'_> {
            fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
                if let Some(g) = self.0.get::<D>(param.id) {
                    let values = g.into_data().convert::<f32>();
                    self.1
                        .insert(param.id, values.try_into_vec::<f32>().unwrap());
                }
            }
        }
        let mut collect = Grads(&grads, Default::default());
        model.visit(&mut collect);
        let grad_values = collect.1;
        let (lr, mult) = (0.5, 0.1);
        let mut optim = build_optimizer(&plain_sgd).unwrap();
        let rates = group_rates(lr, Some((encoder.clone(), mult)));
        let after = by_id(&optim.step(rates, model, grads));
        let (mut in_group, mut outside) = (0, 0);
        for (id, old) in &before {
            let Some(grad) = grad_values.get(id) else {
                continue;
            };
            let rate = if encoder.matches(id, None) {
                in_group += 1;
                lr * mult
            } else {
                outside += 1;
                lr
            };
            for ((o, n), g) in old.iter().zip(&after[id]).zip(grad) {
                let expected = o - rate as f32 * g;
                assert!(
                    (n - expected).abs() < 1e-6,
                    "{id}: {o} - {rate} * {g} gave {n}"
                );
            }
        }
        assert!(
            in_group > 0 && outside > 0,
            "{in_group} encoder and {outside} other tensors"
        );
    }

    #[test]
    fn state_round_trips_through_bytes() {
        let device = Device::flex().autodiff();
        let model = UNetConfig::new(2)
            .with_depth(1)
            .with_base_width(2)
            .init(&device);
        let images = Tensor::<4>::random([1, 3, 4, 4], Distribution::Default, &device);
        let targets = Tensor::<3, Int>::zeros([1, 4, 4], &device);
        let grads = |model: &UNet| {
            let loss = cross_entropy(model.forward(images.clone()), targets.clone(), None);
            GradientsParams::from_grads(loss.backward(), model)
        };
        let config = OptimizerConfig::default();
        let mut optim = build_optimizer(&config).unwrap();
        let model = optim.step(1e-3, model.clone(), grads(&model));
        assert!(!optim.state().is_empty());

        let bytes = optim.state_bytes().unwrap();
        let mut restored = build_optimizer(&config)
            .unwrap()
            .load_state_bytes(bytes)
            .unwrap();
        let expected = params(&optim.step(1e-3, model.clone(), grads(&model)));
        let actual = params(&restored.step(1e-3, model.clone(), grads(&model)));
        let max_diff = expected
            .iter()
            .zip(&actual)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(max_diff < 1e-6, "restored optimiser diverged by {max_diff}");
    }

    #[test]
    fn adamw_on_the_kernels_steps_like_burns_and_shares_its_state() {
        use burn::optim::AdamWConfig;
        let device = Device::flex().autodiff();
        device.seed(3);
        let model = UNetConfig::new(2)
            .with_depth(1)
            .with_base_width(4)
            .init(&device);
        let images = Tensor::<4>::random([2, 3, 8, 8], Distribution::Default, &device);
        let targets = images
            .clone()
            .slice([0..2, 0..1, 0..8, 0..8])
            .greater_elem(0.5)
            .int()
            .squeeze_dim::<3>(1);
        let grads = |model: &UNet| {
            let loss = cross_entropy(model.forward(images.clone()), targets.clone(), None);
            GradientsParams::from_grads(loss.backward(), model)
        };
        let config = OptimizerConfig {
            kind: OptimizerKind::AdamW {
                beta1: 0.8,
                beta2: 0.99,
                eps: 1e-6,
            },
            weight_decay: 0.05,
            grad_clip: GradClip::Norm(0.5),
        };
        // The same optimiser in burn's tensor operations.
        let burns = || SegOptimizer {
            config: config.clone(),
            inner: AdamWConfig::new()
                .with_beta_1(0.8)
                .with_beta_2(0.99)
                .with_epsilon(1e-6)
                .with_weight_decay(0.05)
                .with_grad_clipping(Some(GradientClippingConfig::Norm(0.5)))
                .init(),
        };
        // The kernels take this optimiser's tensors.
        let p = Tensor::<2>::ones([2, 3], &Device::flex());
        let hyper = crate::core::kernels::adamw::Hyper::new([0.8, 0.99, 1e-6], 0.05, 0.1, 1);
        let moments = [p.zeros_like(), p.zeros_like()];
        assert!(crate::core::kernels::ops::adamw(p.clone(), p, moments, hyper).is_some());

        let (mut fused, mut reference) = (build_optimizer(&config).unwrap(), burns());
        let initial = params(&model);
        let (mut a, mut b) = (model.clone(), model);
        let max_diff = |a: &UNet, b: &UNet| {
            params(a)
                .iter()
                .zip(&params(b))
                .map(|(x, y)| (x - y).abs())
                .fold(0.0f32, f32::max)
        };
        for step in 0..3 {
            let lr = 0.05 / (step + 1) as f64;
            a = fused.step(lr, a.clone(), grads(&a));
            b = reference.step(lr, b.clone(), grads(&b));
            let diff = max_diff(&a, &b);
            assert!(diff < 1e-6, "step {step}: {diff}");
        }
        assert_ne!(params(&a), initial);
        // Either optimiser's saved state continues in the other.
        let from_burn = build_optimizer(&config)
            .unwrap()
            .load_state_bytes(reference.state_bytes().unwrap())
            .unwrap();
        let from_fused = burns()
            .load_state_bytes(fused.state_bytes().unwrap())
            .unwrap();
        for (mut optim, name) in [
            (from_burn, "burn's state"),
            (from_fused, "the kernels' state"),
        ] {
            let next = optim.step(0.01, a.clone(), grads(&a));
            let expected = reference.clone().step(0.01, b.clone(), grads(&b));
            let diff = max_diff(&next, &expected);
            assert!(diff < 1e-6, "{name}: {diff}");
        }
    }
}
