//! One optimisation step and one evaluation pass over a batch: the hot path of training.
//!
//! Everything stays on the device; the only host reads are the scalar loss (needed to detect a
//! NaN before the optimiser applies it) and, in validation, one integer code per pixel.

use burn::lr_scheduler::module_lr_scheduler::ModuleLearningRate;
use burn::optim::GradientsParams;
use burn::tensor::{Int, Tensor};

use super::loss::{LossConfig, cross_entropy, distillation};
use super::optim::SegOptimizer;
use crate::core::boundary::BoundaryScore;
use crate::core::metrics::ConfusionMatrix;
use crate::core::model::segmenter::Segmenter;

/// Why a step could not be completed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum StepError {
    /// The loss is NaN or infinite: the update is not applied.
    #[error("the loss is {0}: training diverged (try a lower learning rate or gradient clipping)")]
    NonFiniteLoss(f32),
    /// The device could not run the step.
    #[error("the device failed: {0}")]
    Device(String),
}

/// The second head's part of a step: its targets `[batch, h, w]` (255 = ignore) and the weight
/// of its cross-entropy in the summed loss.
#[derive(Clone, Debug)]
pub struct AuxTargets {
    pub targets: Tensor<3, Int>,
    pub weight: f32,
}

/// A teacher's logits for the batch (`[batch, classes, h, w]`, no gradient) to distil from
/// (see [`crate::core::train::config::Distill`]).
#[derive(Clone, Debug)]
pub struct DistillTargets {
    pub logits: Tensor<4>,
    pub weight: f32,
    pub temperature: f32,
}

/// The targets of a step beyond the labels.
#[derive(Clone, Debug, Default)]
pub struct ExtraTargets {
    pub aux: Option<AuxTargets>,
    pub distill: Option<DistillTargets>,
}

/// Forward, loss, backward and optimiser update on `model` (which lives on an autodiff device).
///
/// `images` is `[batch, 3, h, w]`, `masks` is `[batch, h, w]` (255 = ignore). `lr` is one rate
/// or one per parameter group. Returns the updated model and the batch loss. On a non-finite
/// loss the model is returned unchanged with the error, so the caller still holds the last good
/// weights.
pub fn train_step(
    model: Segmenter,
    optimizer: &mut SegOptimizer,
    loss: &LossConfig,
    lr: impl Into<ModuleLearningRate>,
    images: Tensor<4>,
    masks: Tensor<3, Int>,
) -> (Segmenter, Result<f32, StepError>) {
    let extra = ExtraTargets::default();
    train_step_multi(model, optimizer, loss, extra, lr, images, masks)
}

/// [`train_step`] with the extra targets' terms: the second head's
/// `weight * CE(aux logits, aux targets)` when `extra.aux` is given (and the model has the
/// head), and `weight * distillation(logits, teacher logits)` when `extra.distill` is.
pub fn train_step_multi(
    model: Segmenter,
    optimizer: &mut SegOptimizer,
    loss: &LossConfig,
    extra: ExtraTargets,
    lr: impl Into<ModuleLearningRate>,
    images: Tensor<4>,
    masks: Tensor<3, Int>,
) -> (Segmenter, Result<f32, StepError>) {
    let (logits, aux_term) = match extra.aux {
        Some(aux) if model.aux_channels().is_some() => {
            let out = model.forward(images); // [batch, classes, h, w], [batch, aux, h, w]
            let aux_logits = out.aux.expect("the model has a second head");
            let term = cross_entropy(aux_logits, aux.targets, None).mul_scalar(aux.weight);
            (out.logits, Some(term))
        }
        _ => (model.forward_any_size(images), None),
    };
    let distill_term = extra.distill.map(|d| {
        distillation(logits.clone(), d.logits, d.temperature).mul_scalar(d.weight) // [1]
    });
    let mut batch_loss = loss.loss(logits, masks); // [1]
    for term in [aux_term, distill_term].into_iter().flatten() {
        batch_loss = batch_loss + term;
    }
    let value = match batch_loss.clone().into_scalar_checked() {
        Ok(v) => v,
        Err(e) => return (model, Err(StepError::Device(e))),
    };
    if !value.is_finite() {
        return (model, Err(StepError::NonFiniteLoss(value)));
    }
    let grads = GradientsParams::from_grads(batch_loss.backward(), &model);
    (optimizer.step(lr, model, grads), Ok(value))
}

/// Validation of one batch with the inference copy of the model (`model.valid()`): adds the
/// batch's pixels to `confusion` and returns the batch loss.
pub fn eval_step(
    model: &Segmenter,
    loss: &LossConfig,
    images: Tensor<4>,
    masks: Tensor<3, Int>,
    confusion: &mut ConfusionMatrix,
) -> Result<f32, StepError> {
    eval_step_boundary(model, loss, images, masks, confusion, None)
}

/// [`eval_step`], also adding the road class's edge scores to `boundary` (`(road id, score)`)
/// when given: that reads the batch's masks and predictions back to the host.
pub fn eval_step_boundary(
    model: &Segmenter,
    loss: &LossConfig,
    images: Tensor<4>,
    masks: Tensor<3, Int>,
    confusion: &mut ConfusionMatrix,
    boundary: Option<(u8, &mut BoundaryScore)>,
) -> Result<f32, StepError> {
    let logits = model.forward_any_size(images); // [batch, classes, h, w]
    let preds = logits.clone().argmax(1).squeeze_dim::<3>(1); // [batch, h, w]
    let value = loss
        .loss(logits, masks.clone())
        .into_scalar_checked()
        .map_err(StepError::Device)?;
    if let Some((road, score)) = boundary {
        let [batch, h, w] = masks.dims();
        let read = |t: Tensor<3, Int>| -> Result<Vec<u8>, StepError> {
            let values = t
                .try_into_vec_as::<i64>()
                .map_err(|e| StepError::Device(e.to_string()))?;
            Ok(values.into_iter().map(|v| v.clamp(0, 255) as u8).collect())
        };
        let (truth, pred) = (read(masks.clone())?, read(preds.clone())?);
        for i in 0..batch {
            let range = i * h * w..(i + 1) * h * w;
            score.add(&BoundaryScore::of_masks(
                &truth[range.clone()],
                &pred[range],
                [w, h],
                road,
            ));
        }
    }
    confusion
        .update_from_tensors(masks, preds)
        .map_err(|e| StepError::Device(e.to_string()))?;
    Ok(value)
}

/// Reads a one-element tensor as `f32`, surfacing device errors instead of panicking.
trait ScalarChecked {
    fn into_scalar_checked(self) -> Result<f32, String>;
}

impl ScalarChecked for Tensor<1> {
    fn into_scalar_checked(self) -> Result<f32, String> {
        self.try_into_scalar::<f32>().map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::unet::UNetConfig;
    use crate::core::train::optim::{OptimizerConfig, build_optimizer};
    use burn::tensor::{Device, Distribution};

    /// One fixed batch whose labels follow from the pixels (class = which channel is brightest),
    /// with some pixels ignored.
    fn batch(device: &Device) -> (Tensor<4>, Tensor<3, Int>) {
        let images = Tensor::<4>::random([2, 3, 16, 16], Distribution::Default, device);
        let labels = images.clone().argmax(1).squeeze_dim::<3>(1); // [2, 16, 16]
        let ignore =
            Tensor::<3>::random([2, 16, 16], Distribution::Default, device).lower_elem(0.1);
        (images, labels.mask_fill(ignore, 255))
    }

    #[test]
    fn a_tiny_model_overfits_one_batch() {
        let device = Device::flex().autodiff();
        device.seed(3);
        let mut model: Segmenter = UNetConfig::new(3)
            .with_depth(2)
            .with_base_width(8)
            .init(&device)
            .into();
        let (images, masks) = batch(&device);
        let mut optimizer = build_optimizer(&OptimizerConfig::default()).unwrap();
        let loss = LossConfig::default();
        let mut losses = Vec::new();
        for _ in 0..80 {
            let (next, value) = train_step(
                model,
                &mut optimizer,
                &loss,
                1e-2,
                images.clone(),
                masks.clone(),
            );
            model = next;
            losses.push(value.unwrap());
        }
        let (first, last) = (losses[0], *losses.last().unwrap());
        assert!(last * 10.0 < first, "loss only went {first} -> {last}");
    }

    #[test]
    fn a_non_finite_loss_keeps_the_model_unchanged() {
        let device = Device::flex().autodiff();
        let model: Segmenter = UNetConfig::new(3)
            .with_depth(1)
            .with_base_width(2)
            .init(&device)
            .into();
        let (images, masks) = batch(&device);
        let images = images.mul_scalar(f32::NAN);
        let mut optimizer = build_optimizer(&OptimizerConfig::default()).unwrap();
        let (_, result) = train_step(
            model,
            &mut optimizer,
            &LossConfig::default(),
            1e-2,
            images,
            masks,
        );
        assert!(matches!(result, Err(StepError::NonFiniteLoss(v)) if v.is_nan()));
        assert!(optimizer.state().is_empty(), "no update was applied");
    }

    #[test]
    fn evaluation_counts_every_labelled_pixel() {
        let device = Device::flex();
        let model: Segmenter = UNetConfig::new(3)
            .with_depth(1)
            .with_base_width(2)
            .init(&device)
            .into();
        let (images, masks) = batch(&device);
        let labelled = masks.clone().lower_elem(3).int().sum().into_scalar::<i64>() as u64;
        let mut confusion = ConfusionMatrix::new(3);
        let loss = eval_step(
            &model,
            &LossConfig::default(),
            images,
            masks,
            &mut confusion,
        )
        .unwrap();
        assert!(loss.is_finite() && loss > 0.0);
        assert_eq!(confusion.total(), labelled);
    }
}
